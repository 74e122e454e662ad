"""Run folders as W&B shows them: a resumed run (one id, two folders), a run from another host
without an exit record, a log without a summary record. Written by the real wandb (offline)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import call

SCRIPT = """
import sys, wandb
part, host = int(sys.argv[1]), sys.argv[2]
run = wandb.init(project="res", id=sys.argv[3], resume="allow", mode="offline", name="resumed",
                 config={"lr": 0.1, "part": part}, settings=wandb.Settings(host=host))
start = 0 if part == 1 else 50
for s in range(start, start + 50):
    wandb.log({"loss": 1.0 / (s + 1)} if part == 1 else {"loss": 1.0 / (s + 1), "acc": s / 100})
run.summary["part_done"] = part
run.finish()
"""


def _write(out: Path, *args) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    subprocess.run([sys.executable, "-c", SCRIPT, *map(str, args)], cwd=out, env=env, check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    out = tmp_path_factory.mktemp("folders")
    _write(out, 1, "", "resumeid1")
    _write(out, 2, "", "resumeid1")
    _write(out, 1, "elsewhere-node-7", "otherhost1")
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    server = build_server(AppConfig(runs_dirs=[str(out / "wandb")], cache_dir=str(tmp_path_factory.mktemp("c"))))
    return out / "wandb", server


def test_resumed_run_is_one_run_with_history_continued(folders):
    runs, server = folders
    listing = call(server, "query_runs", {"project": "res"}).json
    assert sorted(r["id"] for r in listing["runs"]) == ["otherhost1", "resumeid1"]
    d = call(server, "describe_run", {"run": "res/resumeid1"}).json
    assert d["history"]["rows"] == 100 and d["history"]["keys"]["loss"]["steps"] == [0, 99]
    assert d["history"]["keys"]["acc"]["steps"] == [50, 99]  # the second folder's rows, numbered on
    assert len(d["resumed"]["folders"]) == 2 and "restart at 0" in d["resumed"]["steps"][0]
    assert d["summary"]["part_done"] == 2 and d["config"]["part"] == 2
    first = d["resumed"]["folders"][0]
    one = call(server, "describe_run", {"run": first}).json  # each folder is still a reference
    assert one["history"]["rows"] == 50 and one["summary"]["part_done"] == 1 and "resumed" not in one
    assert call(server, "describe_run", {"run": "resumeid1"}).json["history"]["rows"] == 100


def _cut_before_exit(path: Path) -> None:
    """Keep the records before the exit record: the log of a writer killed before it exited."""
    from wandb.proto import wandb_internal_pb2 as pb

    from wandb_lens.sources.local.wandb_file import Framing

    data = path.read_bytes()
    framing = Framing(data, start=7)
    end = 7
    for rec in framing.records():
        if pb.Record.FromString(rec).WhichOneof("record_type") == "exit":
            break
        end = framing.end_offset
    path.write_bytes(data[:end])


def test_run_from_another_host_is_never_running_by_file_age(folders, tmp_path):
    runs, _ = folders
    import shutil

    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    for run_id in ("otherhost1", "resumeid1"):
        src = sorted(runs.glob(f"*-{run_id}"))[0]
        dst = tmp_path / "wandb" / src.name
        shutil.copytree(src, dst)
        _cut_before_exit(next(dst.glob("run-*.wandb")))
        shutil.rmtree(dst / "logs")  # no writer pid to check: only the file's age is left
    server = build_server(AppConfig(runs_dirs=[str(tmp_path / "wandb")], cache_dir=str(tmp_path / "c")))
    states = {r["id"]: r.get("state") for r in call(server, "query_runs", {}).json["runs"]}
    assert states == {"otherhost1": "crashed", "resumeid1": "running"}  # written seconds ago, this host


def test_resumed_and_other_host_logs_walk_to_the_scans_index(folders):
    from test_index_walk import assert_same_index

    logs = sorted(folders[0].glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 3
    assert [assert_same_index(p.read_bytes(), str(p)) for p in logs] == ["", "", ""]
