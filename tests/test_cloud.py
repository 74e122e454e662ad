"""The cloud source against a loopback fake W&B: the real wandb 0.31 client (and its wandb-core
service) runs end to end; only the network peer is fake (tests/fake_wandb.py).

Parity: the same questions asked of the local source and of the cloud source over the same runs
give the same answers. Round trips: the fake counts GraphQL operations per tool call.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from conftest import call
from fake_wandb import GOOD_KEY, OTHER_KEY, FakeWandb, client_env, long_run, runs_from_local

BIG_STEPS = 100_000


@pytest.fixture(scope="module")
def fake(demo_dir, tmp_path_factory):
    runs = runs_from_local(str(demo_dir / "wandb"), cache_dir=str(tmp_path_factory.mktemp("fake-local-cache")))
    runs.append(long_run("lens-team", "big", "long1", BIG_STEPS))
    server = FakeWandb(runs).start()
    mp = pytest.MonkeyPatch()
    client_env(mp, tmp_path_factory.mktemp("no-netrc"))
    yield server
    mp.undo()
    server.stop()


@pytest.fixture(autouse=True)
def _clean_fake(fake):
    fake.reset()  # no fault injected by one test leaks into the next
    yield
    fake.reset()


def _cloud_server(fake, cache_dir, **kw):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    cfg = dict(source="cloud", entity="lens-team", project="lens-demo", base_url=fake.url, cache_dir=str(cache_dir),
               timeout=kw.pop("timeout", 10))
    cfg.update(kw)
    return build_server(AppConfig(**cfg))


@pytest.fixture(scope="module")
def cloud(fake, tmp_path_factory):
    server = _cloud_server(fake, tmp_path_factory.mktemp("cloud-cache"))
    call(server, "list_projects")  # log in once: the Viewer request is not part of any tool's count below
    return server


@pytest.fixture
def ask(cloud, fake):
    fake.reset()
    return lambda tool, **args: call(cloud, tool, args)


def _no_damage(out: dict) -> dict:
    for row in out.get("runs", []):
        row.pop("damaged", None)
    return out


QUERIES = [
    dict(limit=50),
    dict(filters={"state": "finished"}, order="-summary.train/loss", limit=20),
    dict(filters={"tags": {"$in": ["baseline"]}}),
    dict(filters={"config.lr": {"$gte": 0.05}, "state": "finished"}, order="-config.lr"),
    dict(filters={"$or": [{"group": "lr-sweep"}, {"name": {"$regex": "^over"}}]}),
    dict(filters={"summary.val/loss": {"$lt": 0.2}}, order="+summary.val/loss"),
    dict(filters={"summary_metrics.val_loss": {"$exists": True}}, metrics=["val_loss"]),
    dict(limit=3, offset=2, config_keys=["lr", "steps"]),
]


@pytest.mark.parametrize("query", QUERIES, ids=[json.dumps(q)[:60] for q in QUERIES])
def test_query_runs_parity(lens, ask, fake, query):
    local = lens("query_runs", project="lens-demo", **query)
    remote = ask("query_runs", project="lens-demo", **query)
    assert not local.is_error and not remote.is_error, remote.text
    assert _no_damage(remote.json) == _no_damage(local.json)
    assert fake.counts["Runs"] == 1 and sum(fake.counts.values()) == 1  # one page request, total included


def test_query_runs_role_order_resolved_per_run(lens, ask, fake):
    """summary.val is each run's own key: the server applies the plain filters, the role is resolved here."""
    query = dict(filters={"state": "finished", "summary.val": {"$lt": 1}}, order="+summary.val")
    remote = ask("query_runs", project="lens-demo", **query)
    local = lens("query_runs", project="lens-demo", **query)
    assert not remote.is_error, remote.text
    assert _no_damage(remote.json) == _no_damage(local.json)
    assert [r["name"] for r in remote.json["runs"]] == ["custom-step-axis", "baseline-cosine", "still-improving"]
    assert dict(fake.counts) == {"Runs": 1}
    assert json.loads(fake.log[0][1]["filters"]) == {"state": "finished"}


def test_query_runs_limit_20_is_one_request(ask, fake):
    out = ask("query_runs", limit=20).json
    assert out["total"] == 8 and out["returned"] == 8
    assert dict(fake.counts) == {"Runs": 1}
    sent = json.loads(fake.log[0][1]["filters"])
    assert sent == {} and fake.log[0][1]["order"] == "-created_at" and fake.log[0][1]["perPage"] == 20


def test_filters_are_translated_to_wandb_names(ask, fake):
    ask("query_runs", filters={"config.lr": {"$lt": 0.01}, "name": "x", "id": "y", "summary.loss": {"$gt": 1}},
        order="-summary.val/loss")
    v = fake.log[-1][1]
    assert json.loads(v["filters"]) == {"config.lr.value": {"$lt": 0.01}, "display_name": "x", "name": "y",
                                        "summary_metrics.loss": {"$gt": 1}}
    assert v["order"] == "-summary_metrics.val/loss"


def test_list_projects_lists_the_entity(ask, fake):
    out = ask("list_projects").json
    assert out["source"] == "cloud"
    assert sorted(p["project"] for p in out["projects"]) == ["big", "lens-demo"]
    assert dict(fake.counts) == {"GetProjects": 1}


def test_describe_run_from_the_keys_index_matches_local(lens, ask, fake):
    for name in ("baseline-cosine", "custom-step-axis", "lr-too-high", "spiky-bad-batches"):
        loc = lens("describe_run", run=f"lens-demo/{name}").json
        rem = ask("describe_run", run=name).json
        for field in ("id", "name", "state", "created_at", "config", "summary", "tags", "group", "metric_defs"):
            assert rem.get(field) == loc.get(field), (name, field)
        assert rem["history"]["rows"] == loc["history"]["rows"]
        assert set(rem["history"]["keys"]) == set(loc["history"]["keys"])
        for key, st in loc["history"]["keys"].items():
            assert rem["history"]["keys"][key]["n"] == st["n"], (name, key)
            assert rem["history"]["keys"][key].get("kind") == st.get("kind"), (name, key)
            if isinstance(st.get("last"), float) and np.isfinite(st["last"]):
                assert rem["history"]["keys"][key]["last"] == st["last"], (name, key)
        assert rem["step_keys"][0] == loc["step_keys"][0]
        assert "keys index" in rem["history"]["note"]
    assert fake.history_requests() == 0  # no history download for describe_run


def _columns_equal(a, b) -> None:
    from wandb_lens.sources.history import HISTOGRAM, NUMERIC

    assert set(a.columns) == set(b.columns)
    for key, ca in a.columns.items():
        cb = b.columns[key]
        assert ca.kind == cb.kind, key
        assert np.array_equal(a.steps[ca.rows], b.steps[cb.rows]), key
        if ca.kind == NUMERIC:
            assert np.array_equal(np.asarray(ca.values), np.asarray(cb.values), equal_nan=True), key
        elif ca.kind == HISTOGRAM:
            assert all(np.array_equal(x, y) for x, y in zip(ca.values, cb.values)), key
            assert all(np.array_equal(x, y) for x, y in zip(ca.bins, cb.bins)), key
        else:
            assert list(ca.values) == list(cb.values), key


def test_history_parity_exact_every_key(demo_dir, fake, tmp_path):
    from wandb_lens.sources.cloud.source import CloudRunSource
    from wandb_lens.sources.local.source import LocalRunSource

    loc = LocalRunSource([str(demo_dir / "wandb")], tmp_path / "local")
    cloud = CloudRunSource(entity="lens-team", project="lens-demo", base_url=fake.url, cache_dir=tmp_path / "c",
                           timeout=10)
    for info in loc.list_runs():
        if info.name == "killed-mid-run":
            continue
        remote = cloud.history(cloud.get_run(info.id))
        _columns_equal(remote, loc.history(info))
        assert remote.n_rows == info.history_rows


def test_multi_cadence_keys_are_not_lost_to_and_semantics(cloud, fake):
    from wandb_lens.sources.history import NUMERIC

    src = cloud.app.runs
    info = src.get_run("baseline-cosine")
    hist = src.history(info, keys=["train/loss", "val/loss"])
    assert len(hist.columns["train/loss"].rows) == 800 and len(hist.columns["val/loss"].rows) == 40
    steps, _ = hist.numeric("val/loss")
    assert steps[0] == 20 and steps[-1] == 839
    # W&B's own sampled history with both keys: the AND semantics loses everything
    wrun = src._session().wruns[(info.entity, info.project, info.id)]
    both = wrun.history(keys=["train/loss", "val/loss"], pandas=False)
    assert both == []
    assert hist.columns["train/loss"].kind == NUMERIC


def test_fallback_to_graphql_history_pages_without_duplicates(fake, tmp_path):
    from wandb_lens.sources.cloud.source import CloudRunSource

    fake.reset()
    fake.parquet = False  # the export path fails: wandb-core's scan raises
    src = CloudRunSource(entity="lens-team", project="lens-demo", base_url=fake.url, cache_dir=tmp_path, timeout=10)
    info = src.get_run("baseline-cosine")
    hist = src.history(info, keys=["train/loss", "val/loss"])
    fake.parquet = True
    steps, _ = hist.numeric("val/loss")
    assert len(steps) == 40 and len(np.unique(steps)) == 40
    assert len(hist.columns["train/loss"].rows) == 800
    assert fake.counts["HistoryPage"] >= 2


def test_samples_mode_keeps_spikes(cloud, fake):
    src = cloud.app.runs
    info = src.get_run("lens-team/big/long1")
    full = src.history(info, keys=["loss"])
    small = src.history(info, keys=["loss"], samples=200)
    _, y_full = full.numeric("loss")
    s_steps, y = small.numeric("loss")
    assert len(y) <= 420 and y.max() == y_full.max() and y.min() == y_full.min()
    assert int(s_steps[np.argmax(y)]) == int(BIG_STEPS * 0.75)


def test_system_metrics_under_system_names(cloud, fake):
    src = cloud.app.runs
    info = src.get_run("lens-team/big/long1")
    hist = src.history(info, keys=["loss", "system/cpu"])
    steps, cpu = hist.numeric("system/cpu")
    assert len(cpu) == 40 and cpu[0] == 10.0 and cpu[1] == 11.0
    assert np.all(np.diff(steps) > 0)
    assert fake.counts["RunFullHistory"] == 1


def test_diagnose_run_100k_steps_fetches_needed_keys_then_nothing(fake, tmp_path):
    fake.reset()
    server = _cloud_server(fake, tmp_path, project="big")
    t0 = time.perf_counter()
    first = call(server, "diagnose_run", {"run": "long1"})
    t_first = time.perf_counter() - t0
    assert not first.is_error, first.text
    # one scan per key read: the step axis, then loss, lr and val_loss; never _runtime / _timestamp
    # (wandb-core's RunParquetHistory does not name the key, so the scans are counted)
    assert fake.counts["RunParquetHistory"] == 4
    assert fake.counts["Run"] == 1 and fake.counts["Runs"] == 0
    fake.reset()
    t0 = time.perf_counter()
    second = call(server, "diagnose_run", {"run": "long1"})
    t_second = time.perf_counter() - t0
    assert second.text == first.text
    assert fake.history_requests() == 0
    # a new process sharing the cache folder: still no history request
    again = _cloud_server(fake, tmp_path, project="big")
    third = call(again, "diagnose_run", {"run": "long1"})
    assert third.text == first.text and fake.history_requests() == 0
    assert t_second < t_first


def test_running_runs_are_refetched(fake, tmp_path):
    from wandb_lens.sources.cloud.source import CloudRunSource

    run = next(r for r in fake.runs if r.display_name == "still-improving")
    fake.reset()
    src = CloudRunSource(entity="lens-team", project="lens-demo", base_url=fake.url, cache_dir=tmp_path, timeout=10)
    run.state = "running"
    try:
        src.history(src.get_run(run.id), keys=["train/loss"])
        src.history(src.get_run(run.id), keys=["train/loss"])
        assert fake.counts["RunParquetHistory"] == 4  # _step + train/loss, twice
        assert not list(tmp_path.rglob("*.parquet"))
    finally:
        run.state = "finished"


# ----- bad input -----------------------------------------------------------------------------------
def _error(result) -> str:
    assert result.is_error
    assert GOOD_KEY not in result.text and OTHER_KEY not in result.text
    return result.text


def test_unknown_project_entity_and_run(ask):
    text = _error(ask("query_runs", project="lens-dem"))
    assert "Unknown project 'lens-dem'" in text and "lens-demo" in text
    text = _error(ask("describe_run", run="baseline-cosin"))
    assert "No run" in text and "baseline-cosine" in text
    text = _error(ask("describe_run", run="ghost-entity/lens-demo/abc"))
    assert "ghost-entity" in text and "No run" in text


def test_run_deleted_between_calls(ask, fake):
    run = next(r for r in fake.runs if r.display_name == "plateau-tiny-lr")
    assert not ask("describe_run", run=run.id).is_error
    fake.deleted.add(run.id)
    text = _error(ask("describe_run", run=run.id))
    assert "No run" in text and "deleted" in text


def test_server_error_500_is_a_clear_error(ask, fake):
    fake.fail["Run"] = (500, 100)
    t0 = time.perf_counter()
    text = _error(ask("describe_run", run="baseline-cosine"))
    assert "server error" in text and "HTTP 500" in text and "Retry later" in text
    assert time.perf_counter() - t0 < 15


def test_slow_wandb_times_out_clearly(fake, tmp_path):
    server = _cloud_server(fake, tmp_path, timeout=2)
    call(server, "list_projects")
    fake.reset()
    fake.delay["Runs"] = 8
    t0 = time.perf_counter()
    text = _error(call(server, "query_runs", {}))
    assert "did not answer within" in text and "WANDB_LENS_TIMEOUT" in text
    assert time.perf_counter() - t0 < 8


def test_rejected_filter_is_a_clear_error(ask, fake):
    fake.reject_filters = True
    text = _error(ask("query_runs", filters={"state": "finished"}))
    assert "W&B rejected the filters" in text


def test_wrong_key_and_no_key(fake, tmp_path, monkeypatch):
    bad = "z" * 40
    server = _cloud_server(fake, tmp_path)
    monkeypatch.setenv("WANDB_API_KEY", bad)
    text = _error(call(server, "query_runs", {}))
    assert "rejected the API key" in text and bad not in text
    monkeypatch.delenv("WANDB_API_KEY")
    text = _error(call(_cloud_server(fake, tmp_path / "n"), "query_runs", {}))
    assert "No W&B API key" in text


def test_auto_source_choice(fake, tmp_path, monkeypatch):
    from wandb_lens.app import App, AppConfig

    assert App(AppConfig(runs_dirs=[str(tmp_path)])).config.source == "local"
    assert App(AppConfig()).config.source == "cloud"  # a key in WANDB_API_KEY, no --runs-dir
    monkeypatch.delenv("WANDB_API_KEY")
    assert App(AppConfig()).config.source == "local"


def test_per_user_caches_never_cross(fake, tmp_path):
    """Two users behind one source: the second can't read what the first fetched."""
    from wandb_lens.sources.cloud.source import CloudRunSource, request_key

    src = CloudRunSource(entity="lens-team", project="lens-demo", base_url=fake.url, cache_dir=tmp_path, timeout=10)
    tok = request_key.set(GOOD_KEY)
    try:
        info = src.get_run("baseline-cosine")
        assert len(src.history(info, keys=["train/loss"]).columns["train/loss"].rows) == 800
    finally:
        request_key.reset(tok)
    tok = request_key.set(OTHER_KEY)
    try:
        with pytest.raises(Exception) as err:
            src.history(info, keys=["train/loss"])
        assert ("No run" in str(err.value) or "Unknown project" in str(err.value)) and OTHER_KEY not in str(err.value)
    finally:
        request_key.reset(tok)
    names = [p.name for p in (tmp_path / "cloud").iterdir()]
    assert len(names) == 1 and GOOD_KEY not in json.dumps(names)
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert GOOD_KEY.encode() not in p.read_bytes()


def test_http_bearer_keys_per_request(fake, tmp_path):
    """`serve --transport http`: each request's Bearer key is used for that request only."""
    import socket
    import subprocess
    import sys

    import anyio
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "WANDB_SERVICE")}
    env["WANDB_BASE_URL"] = fake.url
    proc = subprocess.Popen([sys.executable, "-m", "wandb_lens", "serve", "--transport", "http", "--port", str(port),
                             "--source", "cloud", "--entity", "lens-team", "--project", "lens-demo",
                             "--cache-dir", str(tmp_path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
                time.sleep(0.1)

        async def as_user(key):
            from mcp import ClientSession
            from mcp.client.streamable_http import streamable_http_client

            headers = {"Authorization": f"Bearer {key}"} if key else {}
            async with httpx.AsyncClient(headers=headers, timeout=30) as http:
                async with streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http) as (r, w, *_):
                    async with ClientSession(r, w) as session:
                        await session.initialize()
                        result = await session.call_tool("query_runs", {"limit": 2})
                        try:  # resources use the caller's key too
                            res = await session.read_resource("wandb-lens://runs/lens-demo/baseline-cosine")
                            text = res.contents[0].text
                        except Exception as exc:  # an MCP error answer
                            text = f"ERROR {exc}"
                        return result, text

        async def both():
            out = {}

            async def one(name, key):
                out[name] = await as_user(key)

            async with anyio.create_task_group() as tg:
                tg.start_soon(one, "alice", GOOD_KEY)
                tg.start_soon(one, "bob", OTHER_KEY)
                tg.start_soon(one, "nobody", None)
            return out

        res = anyio.run(both)
        (alice, alice_res), (bob, bob_res), (nobody, nobody_res) = res["alice"], res["bob"], res["nobody"]
        assert not alice.is_error and json.loads(alice.content[0].text)["total"] == 8
        assert bob.is_error and "Unknown project 'lens-demo'" in bob.content[0].text
        assert nobody.is_error and "No W&B API key" in nobody.content[0].text
        assert json.loads(alice_res)["name"] == "baseline-cosine"
        assert bob_res.startswith("ERROR") and "No W&B API key" in nobody_res
        for r, text in ((alice, alice_res), (bob, bob_res), (nobody, nobody_res)):
            assert GOOD_KEY not in r.content[0].text and OTHER_KEY not in r.content[0].text
            assert GOOD_KEY not in text and OTHER_KEY not in text
    finally:
        proc.terminate()
        err = proc.communicate(timeout=10)[1].decode()
    assert GOOD_KEY not in err and OTHER_KEY not in err


def test_port_digits_are_not_read_as_an_http_status():
    """Regression: a 500 from W&B at a URL with port 40141 was reported as '401: rejected the key'."""
    from wandb_lens.sources.cloud.source import CloudRunSource

    src = CloudRunSource(base_url="http://127.0.0.1:40141", timeout=1)
    err = RuntimeError("Post http://127.0.0.1:40141/graphql: giving up after 3 attempts: HTTP 500 Internal Server Error")
    text = src._explain(err, "reading run x", None)
    assert "server error" in text and "rejected the API key" not in text
    err = RuntimeError("Post http://127.0.0.1:40341/graphql: HTTP 401 Unauthorized")
    assert "rejected the API key" in src._explain(err, "reading run x", None)


def test_get_history_same_answer_as_local(lens, ask, fake):
    for args in ({"keys": ["train/loss", "val/loss"], "steps": [0, 100, 799]},
                 {"keys": ["train/loss", "val/loss"], "range": [100, 600], "max_rows": 20}):
        loc = lens("get_history", run="lens-demo/baseline-cosine", **args).json
        rem = ask("get_history", run="baseline-cosine", **args).json
        loc.pop("run"), rem.pop("run")
        assert rem == loc
    r = ask("get_history", run="baseline-cosine", keys=["train/los"])
    assert r.is_error and "Close matches: train/loss" in r.text
