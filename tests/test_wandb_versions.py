"""Runs written by real wandb 0.12 ... current, read through the MCP client and compared with
what that version itself wrote (files/wandb-summary.json where it writes one, the logged values).

Per version: listed (all three runs, right project and name), state (finished / failed / crashed
as W&B shows them), summary, config, history. The venvs and runs are built on demand and cached
(tests/wandb_versions.py); RELIABILITY.md has the table.
"""

from __future__ import annotations

import json
import math
import os

import pytest

import wandb_versions as WV
from conftest import call

STATE = {"finished": "finished", "failed": "failed", "killed": "crashed"}


def _state(version: str, kind: str) -> str:
    # wandb 0.9's monitor records a SIGKILLed user process as exit code 0, state "finished", in
    # wandb-metadata.json: that is what W&B showed for it, so that is what we show
    return "finished" if kind == "killed" and version.startswith("0.9.") else STATE[kind]


@pytest.fixture(scope="module", params=WV.VERSIONS)
def version_runs(request, tmp_path_factory):
    try:
        folder = WV.runs_folder(request.param)
    except WV.Unavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    server = build_server(AppConfig(runs_dirs=[str(folder)], cache_dir=str(tmp_path_factory.mktemp("cache"))))
    expected = {k: json.loads((folder.parent / f"expected-{k}.json").read_text()) for k in WV.KINDS}
    return request.param, folder, server, expected


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _close(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-12)  # answers keep 5 significant digits
    return a == b


def _written_summary(folder, run_id: str) -> dict | None:
    """files/wandb-summary.json as that version wrote it (wandb <= 0.17 offline), without _ keys."""
    path = next(folder.glob(f"*-{run_id}"), None)
    path = path / "files" / "wandb-summary.json" if path else None
    if path is None or not path.exists():
        return None
    return {k: v for k, v in _flat(json.loads(path.read_text())).items() if not k.startswith("_")}


def test_listed_and_state(version_runs):
    version, _, server, expected = version_runs
    out = call(server, "query_runs", {"project": "compat"}).json
    rows = {r["name"]: r for r in out["runs"]}
    assert sorted(rows) == ["failed-run", "finished-run", "killed-run"], (version, out)
    for kind in WV.KINDS:
        row = rows[f"{kind}-run"]
        assert row["id"] == expected[kind]["id"]
        assert row.get("state", out.get("same_for_all", {}).get("state")) == _state(version, kind), (version, kind, row)


@pytest.mark.parametrize("kind", ["finished", "failed"])
def test_summary_config_history_of_runs_that_exited(version_runs, kind):
    version, folder, server, expected = version_runs
    exp = expected[kind]
    d = call(server, "describe_run", {"run": f"compat/{exp['id']}"}).json
    assert d["state"] == STATE[kind]
    if kind == "failed":
        assert d["exit_code"] == 1 and d.get("finish_called") in (False, None)
    else:
        assert "finish_called" not in d
    want = _written_summary(folder, exp["id"]) or _flat(exp["summary"])
    got = d["summary"]
    assert set(want) <= set(got), (version, sorted(set(want) - set(got)))
    assert all(_close(got[k], v) for k, v in want.items()), (version, {k: (got[k], v) for k, v in want.items()})
    assert "summary_derived" not in d
    assert d["config"] == _flat(exp["config"]), version
    loss = d["history"]["keys"]["train/loss"]
    assert loss["n"] == exp["steps"] and loss["steps"] == [0, exp["steps"] - 1], (version, loss)
    assert d["history"]["keys"]["val.loss"]["n"] == exp["steps"] // 10, version


def test_killed_run_is_data(version_runs):
    version, _, server, expected = version_runs
    exp = expected["killed"]
    d = call(server, "describe_run", {"run": f"compat/{exp['id']}"}).json
    assert d["state"] == _state(version, "killed"), (version, d["state"])
    keys = d["history"]["keys"]
    n = keys["train/loss"]["n"]
    assert 0 < n <= exp["steps"], (version, n)
    last = keys["train/loss"]["steps"][1]
    # W&B shows the last logged values: from the log's summary records (wandb-core writes a row's
    # summary before its history record, so a cut log may hold one row more), or derived from history
    got = d["summary"]["train/loss"]
    assert _close(got, 1.0 / (last + 1)) or _close(got, 1.0 / (last + 2)), (version, d["summary"], last)
    assert ("summary_derived" in d) == (version in ("0.12.21", "0.15.12", "0.17.9")), version
    for k, v in _flat({k: v for k, v in exp["config"].items() if k != "late"}).items():
        assert d["config"][k] == v, (version, k)


def test_old_layout_system_metrics(version_runs):
    """wandb 0.9's wandb-events.jsonl samples are the run's `system/...` columns, values as written."""
    version, folder, server, expected = version_runs
    if not version.startswith("0.9."):
        pytest.skip("system metrics of the .wandb log are tested in test_system.py")
    run_id = expected["finished"]["id"]
    samples = [json.loads(line) for line in next(folder.glob(f"*-{run_id}")).joinpath("wandb-events.jsonl")
               .read_text().splitlines() if line.strip()]
    assert samples and "system.cpu" in samples[0]
    got = call(server, "get_history", {"run": run_id, "keys": ["system/cpu", "system/memory"]}).json
    assert [row[1] for row in got["rows"]] == [s["system.cpu"] for s in samples], got
    assert [row[2] for row in got["rows"]] == [s["system.memory"] for s in samples], got
    health = call(server, "system_health", {"run": run_id}).json
    assert health["while_steps_ran"]["system/cpu"][2] == len(samples), health
