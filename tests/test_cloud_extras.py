"""Sweeps by id and console logs from W&B cloud, against the loopback fake (tests/fake_wandb.py) serving
the extras runs (a 16-run sweep whose runs record their sweep id, a run that raised): the real wandb
client's GetSweep / GetSweeps / RunFiles queries, the file download with HTTP Range. Answers are
compared with the local source's over the same runs."""

from __future__ import annotations

import json

import pytest

from conftest import call
from fake_wandb import FakeWandb, client_env, runs_from_local

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
    client_env(mp, tmp_path_factory.mktemp("no-netrc"))
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
    r = call(cloud, "sweep_analysis", {"sweep": SWEEP_ID})
    a = _json(r)
    assert len(r.texts[0].encode()) <= 3000
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


def _sent(fake) -> int:
    return sum(e[1]["sent"] for e in fake.log if e[0] == "GET" and "/files/run/" in e[1]["path"])


def test_run_logs_from_the_cloud_equal_the_local_answer(cloud, xlens, fake):
    local = _json(xlens("run_logs", run="lens-demo/crash-raises"))
    fake.reset()
    got = _json(call(cloud, "run_logs", {"run": "lens-demo/crash-raises"}))
    assert fake.counts["RunFiles"] == 1
    assert got["source"] == "output.log from W&B" and got["bytes"] == local["bytes"]
    assert got["traceback"]["error"] == "KeyError: 'label'" and got["traceback"] == local["traceback"]
    assert got.get("tail") == local.get("tail")
    pat = _json(call(cloud, "run_logs", {"run": "lens-demo/crash-raises", "pattern": "WARNING"}))
    assert pat["matches"] == _json(xlens("run_logs", run="lens-demo/crash-raises", pattern="WARNING"))["matches"]
    diag = _json(call(cloud, "diagnose_run", {"run": "lens-demo/crash-raises"}))
    assert diag["error"] == "KeyError: 'label'" and diag["error_from"] == "output.log from W&B", diag
    none = _json(call(cloud, "run_logs", {"run": "sweep-00"}))
    assert none["console"].startswith("none: no output.log among the run's files on W&B")


@pytest.fixture
def big_log(fake):
    """A 6.6 MB output.log ending in a traceback, on a run of its own."""
    from fake_wandb import FakeRun

    lines = [f"step {i}: loss {1 / (i + 1):.5f} " + "x" * 40 for i in range(100_000)]
    tb = ["Traceback (most recent call last):", '  File "train.py", line 9, in <module>', "    step()",
          "RuntimeError: CUDA out of memory"]
    data = ("\n".join(lines + tb) + "\n").encode()
    if fake.find("lens-team", "lens-sweep", "biglog01") is None:
        fake.add_run(FakeRun(id="biglog01", project="lens-sweep", entity="lens-team", display_name="biglog",
                             state="failed", created_at=1.7e9, config={}, summary={}, files={"output.log": data}))
    fake.reset()
    yield data
    fake.reset()


def test_a_tail_reads_only_the_end_of_a_big_output_log(cloud, fake, big_log):
    got = _json(call(cloud, "run_logs", {"run": "biglog01", "tail": 5}))
    assert got["traceback"]["error"] == "RuntimeError: CUDA out of memory" and got["bytes"] == len(big_log)
    assert got["traceback"]["before"][-1].startswith("step 99999:")
    assert 0 < _sent(fake) <= 256 * 1024, _sent(fake)  # the windows from the end (64 KB, then 256 KB), not 6.6 MB


def test_without_range_support_one_bounded_download_stated(cloud, fake, big_log):
    fake.ranges = False
    got = _json(call(cloud, "run_logs", {"run": "biglog01", "tail": 5}))
    assert got["traceback"]["error"] == "RuntimeError: CUDA out of memory"
    assert f"server ignored HTTP Range: downloaded {len(big_log) / 1e6:.1f} MB)" in got["source"], got["source"]
    assert _sent(fake) == len(big_log)


def test_search_window_and_download_bound_are_stated(cloud, fake, big_log, monkeypatch):
    from wandb_lens.sources.cloud import files

    monkeypatch.setattr(files, "SEARCH_CAP", 1 << 20)
    got = _json(call(cloud, "run_logs", {"run": "biglog01", "pattern": "^step 9999[0-9]:"}))
    assert got["matches"]["total"] == 10 and got["source"].endswith(f"(searched its last 1.0 of {len(big_log) / 1e6:.1f} MB)")
    assert _sent(fake) == 1 << 20
    fake.ranges = False
    monkeypatch.setattr(files, "DOWNLOAD_MAX", 2 << 20)
    r = call(cloud, "run_logs", {"run": "biglog01"})
    assert r.is_error and "ignored the HTTP Range request" in r.text and "2 MB read without Range" in r.text, r.text


def test_a_file_url_that_is_not_http_is_never_read(cloud, fake, big_log):
    fake.file_url = "file:///etc/"
    r = call(cloud, "run_logs", {"run": "biglog01"})
    assert r.is_error and "non-HTTP address (file:)" in r.text and "root:" not in r.text, r.text
