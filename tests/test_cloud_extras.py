"""Sweeps by id and console logs from W&B cloud, against the loopback fake (tests/fake_wandb.py) serving
the extras runs (a 16-run sweep whose runs record their sweep id, a run that raised): the real wandb
client's GetSweep / GetSweeps / RunFiles queries, the file download with HTTP Range. Answers are
compared with the local source's over the same runs."""

from __future__ import annotations

import json

import pytest

from conftest import call
from fake_wandb import GOOD_KEY, FakeWandb, runs_from_local

SWEEP_CONFIG = {"method": "random", "name": "lr-wd search", "metric": {"name": "train/loss", "goal": "maximize"},
                "parameters": {"lr": {"min": 1e-4, "max": 0.1}, "weight_decay": {"values": [0, 1e-3, 1e-2, 3e-2]}}}


@pytest.fixture(scope="module")
def fake(extras_dir, tmp_path_factory):
    from wandb_lens.demo_extras import SWEEP_ID, SWEEP_PROJECT

    runs = runs_from_local(str(extras_dir / "wandb"), cache_dir=str(tmp_path_factory.mktemp("fx-cache")))
    server = FakeWandb(runs).start()
    server.add_sweep("lens-team", SWEEP_PROJECT, SWEEP_ID, SWEEP_CONFIG)
    server.add_sweep("lens-team", SWEEP_PROJECT, "zz0other", {"method": "grid", "parameters": {}}, state="RUNNING")
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

    return build_server(AppConfig(source="cloud", entity="lens-team", project="lens-sweep", base_url=fake.url,
                                  cache_dir=str(tmp_path_factory.mktemp("cx-cache")), timeout=10))


def _json(r) -> dict:
    assert not r.is_error, r.text
    return json.loads(r.texts[0])


def test_sweep_by_id_from_the_cloud(cloud, xlens, fake):
    from wandb_lens.demo_extras import SWEEP_ID

    fake.counts.clear()
    a = _json(call(cloud, "sweep_analysis", {"sweep": SWEEP_ID}))
    assert fake.counts["GetSweep"] == 1
    # the sweep's own metric and goal are the defaults (train/loss, maximize: not what the runs alone suggest)
    assert a["metric"] == "train/loss" and a["goal"] == "max", a
    assert a["sweep"] == {"id": SWEEP_ID, "name": "lr-wd search", "state": "FINISHED", "method": "random",
                          "metric": {"name": "train/loss", "goal": "maximize"}, "runs": 16,
                          "params": ["lr", "weight_decay"], "created_at": a["sweep"]["created_at"]}
    local = _json(xlens("sweep_analysis", sweep=SWEEP_ID, metric="train/loss", goal="max"))
    assert a["runs"] == local["runs"] == 16
    assert a["best"] == local["best"] and a["params"] == local["params"]
    # an explicit metric wins over the sweep's
    b = _json(call(cloud, "sweep_analysis", {"sweep": f"lens-sweep/{SWEEP_ID}", "metric": "val/loss"}))
    assert b["metric"] == "val/loss" and b["goal"] == "min" and b["runs"] == 16


def test_unknown_sweep_id_names_the_closest(cloud):
    from wandb_lens.demo_extras import SWEEP_ID

    r = call(cloud, "sweep_analysis", {"sweep": SWEEP_ID[:-1] + "y"})
    assert r.is_error and f"Close matches: {SWEEP_ID}" in r.text and "zz0other" in r.text, r.text
    r = call(cloud, "sweep_analysis", {"sweep": "x", "project": "no-such-project"})
    assert r.is_error and "Unknown project 'no-such-project'" in r.text and "lens-sweep" in r.text, r.text
