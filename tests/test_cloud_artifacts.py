"""artifacts from W&B cloud against the loopback fake (tests/fake_wandb.py + fake_wandb_artifacts.py),
the real wandb client's artifact and registry queries end to end. The fake is seeded from the local
catalog of the extras runs (a data-prep run logs a dataset, a training run uses it and logs three model
versions), so the cloud answer is compared with the local one over the same artifacts; a registry
holds the best model; one version's files are gone (deleted) and one is past its TTL."""

from __future__ import annotations

import json

import pytest

from conftest import call
from fake_wandb import GOOD_KEY, FakeWandb, runs_from_local

PROJECT = "lens-demo"


@pytest.fixture(scope="module")
def fake(extras_dir, tmp_path_factory):
    from wandb_lens.sources.local.artifacts import resolve
    from wandb_lens.sources.local.source import LocalRunSource

    cache = str(tmp_path_factory.mktemp("fa-cache"))
    runs = runs_from_local(str(extras_dir / "wandb"), cache_dir=cache)
    server = FakeWandb(runs).start()
    cat = LocalRunSource([str(extras_dir / "wandb")], cache).artifact_catalog(PROJECT)
    store = server.artifacts
    arts = {}
    for cname, seq in cat.versions.items():
        for v in seq:
            arts[id(v)] = store.add("lens-team", PROJECT, cname, v.type, v.run_id, v.digest, v.size, v.files,
                                    v.metadata, [a for a in v.aliases if a != "latest"])
    for cname, uses in cat.used.items():
        for u in uses:
            store.use(arts[id(resolve(cat, u.name))], "lens-team", PROJECT, u.run_id)
    model = next(a for a in store.arts.values() if a.name == "digits-model" and a.index == 2)
    reg = store.add_registry("model")
    store.link(model, reg, "digits-classifier", ["production"])
    gone = store.add("lens-team", "lens-scratch", "old-features", "dataset", None, "d" * 32, 512, 3, {"rows": 10},
                     state="DELETED")
    store.add("lens-team", "lens-scratch", "old-features", "dataset", None, "e" * 32, 640, 3, {"rows": 12},
              ttl=3600, created_at=1.7e9)
    assert gone.index == 0
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_API_KEY", GOOD_KEY)
    mp.setenv("NETRC", str(tmp_path_factory.mktemp("no-netrc") / "netrc"))
    mp.delenv("WANDB_ENTITY", raising=False)
    mp.delenv("WANDB_PROJECT", raising=False)
    yield server
    mp.undo()
    server.stop()


@pytest.fixture(scope="module")
def cloud(fake, tmp_path_factory):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    return build_server(AppConfig(source="cloud", entity="lens-team", project=PROJECT, base_url=fake.url,
                                  cache_dir=str(tmp_path_factory.mktemp("ca-cache")), timeout=10))


def _json(r) -> dict:
    assert not r.is_error, r.text
    assert len(r.texts[0].encode()) <= 3000, len(r.texts[0])
    return json.loads(r.texts[0])


def _ids(xlens) -> dict:
    """display name -> run id of the extras runs (cloud lineage names runs by id)."""
    q = xlens("query_runs", project=PROJECT, limit=50).json
    return {r["name"]: r["id"] for r in q["runs"]}


def test_run_artifacts_match_the_local_answer(cloud, xlens, fake):
    ids = _ids(xlens)
    local = xlens("artifacts", run="train-on-digits").json
    fake.counts.clear()
    a = _json(call(cloud, "artifacts", {"run": ids["train-on-digits"]}))
    assert fake.counts["RunOutputArtifacts"] == 1 and fake.counts["RunInputArtifacts"] == 1
    assert a["logged"] == local["logged"]  # versions, sizes, files, aliases, digests as the local logs say
    assert a["used"] == {"cols": ["name", "type", "produced_by"],
                         "rows": [["digits-small:v0", "dataset", ids["prepare-data"]]], "total": 1}
    bare = next(i for n, i in ids.items() if n not in ("train-on-digits", "prepare-data"))
    assert _json(call(cloud, "artifacts", {"run": bare}))["artifacts"].startswith("none")


def test_project_collections_and_versions(cloud, xlens):
    ids = _ids(xlens)
    a = _json(call(cloud, "artifacts", {"project": PROJECT}))
    local = xlens("artifacts", project=PROJECT).json
    assert a["collections"]["cols"] == local["collections"]["cols"] and a["collections"]["total"] == 2
    by = {r[0]: r for r in a["collections"]["rows"]}
    lby = {r[0]: r for r in local["collections"]["rows"]}
    assert by["digits-small"][:6] == lby["digits-small"][:6]
    assert by["digits-small"][6:] == [[ids["prepare-data"]], [ids["train-on-digits"]]]
    assert by["digits-model"][:6] == lby["digits-model"][:6] and by["digits-model"][2:4] == [3, "v2"]
    v = _json(call(cloud, "artifacts", {"project": PROJECT, "name": "digits-model"}))
    lv = xlens("artifacts", project=PROJECT, name="digits-model").json
    assert v["versions_total"] == 3 and v["type"] == "model"
    assert [(r["version"], r["aliases"], r["digest"], r["bytes"]) for r in v["versions"]] == \
        [(r["version"], r["aliases"], r["digest"], r["bytes"]) for r in lv["versions"]]
    assert {r["produced_by"] for r in v["versions"]} == {ids["train-on-digits"]}
    d = _json(call(cloud, "artifacts", {"project": PROJECT, "name": "digits-small:v0"}))
    assert d["versions"][0]["used_by"] == [ids["train-on-digits"]]
    assert d["versions"][0]["metadata"]["rows"] == 600
    assert d["versions"][0]["files_on_disk"] == "stored in W&B"


def test_registry_collections(cloud, xlens):
    ids = _ids(xlens)
    a = _json(call(cloud, "artifacts", {"project": "wandb-registry-model"}))
    assert a["collections"]["rows"] == [["digits-classifier", "model", 1, "v0", 3000, ["latest", "production"],
                                         [f"lens-team/{PROJECT}/{ids['train-on-digits']}"], []]]
    v = _json(call(cloud, "artifacts", {"project": "wandb-registry-model", "name": "digits-classifier"}))
    assert v["versions"][0]["version"] == "v0" and v["versions"][0]["aliases"] == ["latest", "production"]
    r = call(cloud, "artifacts", {"project": "wandb-registry-modl"})
    assert r.is_error and "wandb-registry-model" in r.text


def test_files_gone_still_list_metadata(cloud):
    v = _json(call(cloud, "artifacts", {"project": "lens-scratch", "name": "old-features"}))
    rows = {r["version"]: r for r in v["versions"]}
    assert rows["v0"]["files_on_disk"] == "gone: deleted in W&B (metadata kept)" and rows["v0"]["metadata"] == {"rows": 10}
    assert rows["v1"]["files_on_disk"] == "gone: TTL expired (metadata kept)" and rows["v1"]["bytes"] == 640


def test_unknown_names_and_the_key_never_shown(cloud, fake, capfd):
    r = call(cloud, "artifacts", {"project": PROJECT, "name": "digits"})
    assert r.is_error and "digits-small" in r.text and "digits-model" in r.text
    r = call(cloud, "artifacts", {"project": "lens-dmo"})
    assert r.is_error and "lens-demo" in r.text
    out, err = capfd.readouterr()
    assert GOOD_KEY not in r.text + out + err


def test_many_artifacts_stay_under_the_budget(cloud, fake, xlens):
    """A run that logged 30 versions of long-named collections: the answer is cut to 3,000 B and says so."""
    ids = _ids(xlens)
    bare = next(i for n, i in ids.items() if n not in ("train-on-digits", "prepare-data"))
    for i in range(30):
        fake.artifacts.add("lens-team", PROJECT, f"tokenized-corpus-shard-{i:03d}-with-a-long-name", "dataset", bare,
                           f"{i:032x}", 10 ** 9 + i, 1000, {"i": i}, ["candidate"])
    a = _json(call(cloud, "artifacts", {"run": bare}))
    n = len(a["logged"]["rows"])
    assert a["logged"]["total"] == 30 and 5 <= n <= 20
    assert a["cut"].startswith(f"logged: {n} shown of 30 (")
    c = _json(call(cloud, "artifacts", {"project": PROJECT}))
    assert c["collections"]["total"] == 32 and c["cut"].startswith(f"collections: {len(c['collections']['rows'])} shown of 32")


def test_no_project_names_projects_and_registries(fake, tmp_path):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    bare = build_server(AppConfig(source="cloud", entity="lens-team", base_url=fake.url, cache_dir=str(tmp_path),
                                  timeout=10))
    r = call(bare, "artifacts", {})
    assert r.is_error and "lens-demo" in r.text and "wandb-registry-model" in r.text, r.text


def test_w_and_b_failing_is_a_clear_error(cloud, fake):
    fake.fail["ProjectArtifactCollections"] = (500, 10)
    try:
        r = call(cloud, "artifacts", {"project": PROJECT})
    finally:
        fake.fail.clear()
    assert r.is_error and "server error" in r.text and "artifacts of lens-team/lens-demo" in r.text, r.text
    assert GOOD_KEY not in r.text
