"""get_history through the MCP client, on runs written by the real wandb: values at steps, ranges
down-sampled with extremes kept, and its bad inputs."""

from __future__ import annotations

import json
import shutil

import pytest

import wandb_versions as WV
from conftest import call


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """The compat set's finished run of the current wandb: train/loss = 1/(step+1), val.loss every 10th step."""
    folder = WV.runs_folder("current")
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    server = build_server(AppConfig(runs_dirs=[str(folder)], cache_dir=str(tmp_path_factory.mktemp("c"))))
    run_id = json.loads((folder.parent / "expected-finished.json").read_text())["id"]
    return server, f"compat/{run_id}"


def test_values_at_steps_exact_and_nearest(known):
    server, ref = known
    out = call(server, "get_history", {"run": ref, "keys": ["train/loss", "val.loss"], "steps": [0, 10, 299]}).json
    assert out["step_key"] == "_step" and out["columns"] == ["_step", "train/loss", "val.loss"]
    assert out["rows"] == [[0, 1, 0.2], [10, pytest.approx(1 / 11, rel=1e-4), 0.2], [299, pytest.approx(1 / 300, rel=1e-4),
                                                                                   pytest.approx(2 / 300, rel=1e-4)]]
    assert {"key": "val.loss", "asked": 10, "at": 9} in out["nearest"]  # val.loss is logged at 9, 19, ...
    assert not any(n["asked"] == 299 for n in out["nearest"])


def test_range_is_down_sampled_within_budget_and_says_so(known):
    server, ref = known
    r = call(server, "get_history", {"run": ref, "keys": ["train/loss", "acc"], "range": [50, 250], "max_rows": 12})
    out = r.json
    assert out["range"] == [50, 250] and out["points"] == {"train/loss": 201, "acc": 201} and out["truncated"]
    assert 2 <= len(out["rows"]) <= 12
    steps = [row[0] for row in out["rows"]]
    assert steps[0] == 50 and steps[-1] == 250 and steps == sorted(steps)
    assert all(row[1] == pytest.approx(1 / (row[0] + 1), rel=1e-4) for row in out["rows"] if row[1] is not None)
    full = call(server, "get_history", {"run": ref, "keys": ["train/loss"], "max_rows": 1000}).json
    assert len(full["rows"]) == 300 and not full["truncated"]
    assert len(call(server, "get_history", {"run": ref, "keys": ["train/loss", "val.loss", "acc"]}).text) <= 4000


def test_spike_survives_down_sampling(lens):
    d = lens("describe_run", run="spiky-bad-batches").json["history"]["keys"]["train/loss"]
    out = lens("get_history", run="spiky-bad-batches", keys=["train/loss"]).json
    vals = [row[1] for row in out["rows"]]
    assert out["truncated"] and len(out["rows"]) <= 40
    assert max(vals) == pytest.approx(d["max"], rel=1e-4) and min(vals) == pytest.approx(d["min"], rel=1e-4)


def test_declared_step_axis_is_named(lens):
    out = lens("get_history", run="custom-step-axis", keys=["eval/loss"]).json
    assert out["declared_axes"] == {"eval/loss": "trainer/global_step"}
    on_own = lens("get_history", run="custom-step-axis", keys=["eval/loss"], step_key="trainer/global_step").json
    assert on_own["step_key"] == "trainer/global_step" and on_own["rows"][0][0] == 19 * 16
    r = lens("get_history", run="custom-step-axis", keys=["eval/loss"], step_key="train/lr")
    assert r.is_error and "never logged together with step_key 'train/lr'" in r.text and "trainer/global_step" in r.text


def test_bad_inputs_say_what_exists(known):
    server, ref = known
    r = call(server, "get_history", {"run": ref, "keys": ["train/los"]})
    assert r.is_error and "Close matches: train/loss" in r.text
    r = call(server, "get_history", {"run": ref, "keys": ["acc"], "steps": [5, 400]})
    assert r.is_error and "step 400 is outside the run" in r.text and "0..299" in r.text
    r = call(server, "get_history", {"run": ref, "keys": ["acc"], "range": [500, 600]})
    assert r.is_error and "0..299" in r.text
    r = call(server, "get_history", {"run": ref, "keys": ["acc"], "steps": [1], "range": [0, 5]})
    assert r.is_error and "either steps" in r.text


def test_run_still_being_written_answers_what_it_has(known, tmp_path):
    from test_run_folders import _cut_before_exit

    folder = WV.runs_folder("current")
    src = next(p for p in folder.iterdir() if p.name.endswith(known[1].split("/")[1]))
    dst = tmp_path / "wandb" / src.name
    shutil.copytree(src, dst)
    _cut_before_exit(next(dst.glob("run-*.wandb")))
    shutil.rmtree(dst / "logs")  # no writer pid: a log written seconds ago reads as running
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    server = build_server(AppConfig(runs_dirs=[str(tmp_path / "wandb")], cache_dir=str(tmp_path / "c")))
    out = call(server, "get_history", {"run": known[1], "keys": ["train/loss"], "steps": [299]}).json
    assert out["state"].startswith("running: what was logged so far")
    r = call(server, "get_history", {"run": known[1], "keys": ["acc"], "steps": [1000]})
    assert r.is_error and "still being written" in r.text
