"""Values nested ~1,000 deep in users' data (issue 15): one bad value, never one bad run or a lost
record. A run log crafted from a real demo run's records plus a summary record, a config record and
a history row each holding one value nested 1,000 deep beside ordinary ones; and a Weave call whose
output is nested 1,000 deep. Everything else in those records, runs and calls is read."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import call
from test_fuzz_readers import frame
from wandb_lens.sources.bounded_json import MAX_DEPTH, TOO_DEEP, loads

DEEP_LIST = "[" * 1000 + "]" * 1000
DEEP_OBJ = '{"a":' * 1000 + "1" + "}" * 1000
ALMOST = '{"a":' * 900 + "1" + "}" * 900  # parses, but too deep for anything that recurses after


def _depth(value) -> tuple[int, object]:
    d = 0
    while isinstance(value, (dict, list)) and value:
        value = value["a"] if isinstance(value, dict) else value[0]
        d += 1
    return d, value


def test_loads_cuts_one_value_and_keeps_its_siblings():
    doc = loads('{"ok": 1.5, "deep": ' + DEEP_LIST + ', "s": "]]]", "after": [1, {"x": 2}]}')
    assert doc["ok"] == 1.5 and doc["s"] == "]]]" and doc["after"] == [1, {"x": 2}]
    assert _depth(doc["deep"]) == (MAX_DEPTH - 1, TOO_DEEP)
    assert _depth(loads(ALMOST)) == (MAX_DEPTH, TOO_DEEP)
    json.dumps(loads(ALMOST))  # what is left can be written anywhere
    assert loads("not json {") == "not json {" and loads('{"a": [1, 2]}') == {"a": [1, 2]}


def _crafted_run(demo_dir, demo_ids, dest: Path) -> Path:
    from wandb.proto import wandb_internal_pb2 as pb

    from wandb_lens.sources.local.wandb_file import Framing

    src = next((demo_dir / "wandb").glob(f"*-{demo_ids['still-improving']}/run-*.wandb"))
    records = list(Framing(src.read_bytes()).records())
    cfg = pb.Record()
    for key, value in (("deep_cfg", DEEP_OBJ), ("lr2", "0.1"), ("almost", ALMOST)):
        it = cfg.config.update.add()
        it.key, it.value_json = key, value
    summ = pb.Record()
    for key, value in (("deep", DEEP_LIST), ("ok", "1.5"), ("almost", ALMOST)):
        it = summ.summary.update.add()
        it.key, it.value_json = key, value
    hist = pb.Record()
    hist.history.step.num = 300
    for key, value in (("_step", "300"), ("train/loss", "0.125"), ("deep_h", DEEP_LIST)):
        it = hist.history.item.add()
        it.key, it.value_json = key, value
    exit_at = next(i for i, r in enumerate(records) if pb.Record.FromString(r).WhichOneof("record_type") == "exit")
    crafted = [*records[:exit_at], cfg.SerializeToString(), summ.SerializeToString(), hist.SerializeToString(),
               *records[exit_at:]]
    folder = dest / src.parent.name
    folder.mkdir(parents=True)
    out = folder / src.name
    out.write_bytes(frame(crafted))
    return out


def test_a_run_with_values_1000_deep_is_read_whole(tmp_path, demo_dir, demo_ids):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server
    from wandb_lens.sources.local.source import LocalRunSource

    runs = tmp_path / "wandb"
    _crafted_run(demo_dir, demo_ids, runs)
    rid = demo_ids["still-improving"]
    run = LocalRunSource([runs], cache_dir=tmp_path / "c1").get_run(rid)
    assert not run.damage, run.damage
    assert run.summary["ok"] == 1.5 and run.config["lr2"] == 0.1  # the rest of each record kept
    assert _depth(run.summary["deep"])[1] == TOO_DEEP and _depth(run.config["deep_cfg"])[1] == TOO_DEEP
    assert _depth(run.summary["almost"])[1] == TOO_DEEP
    server = build_server(AppConfig(runs_dirs=[str(runs)], cache_dir=str(tmp_path / "c2")))
    desc = call(server, "describe_run", {"run": rid})
    assert not desc.is_error, desc.text
    assert desc.json["config"]["lr2"] == 0.1 and desc.json["summary"]["ok"] == 1.5
    assert desc.json["history"]["keys"]["train/loss"]["n"] == 301  # the row with the deep value kept
    for tool in ("diagnose_run", "curve_features"):
        out = call(server, tool, {"run": rid})
        assert not out.is_error, (tool, out.text)
    # a restart reads the index cache written with those values
    again = build_server(AppConfig(runs_dirs=[str(runs)], cache_dir=str(tmp_path / "c2")))
    assert call(again, "describe_run", {"run": rid}).json["summary"]["ok"] == 1.5


def test_a_weave_call_with_output_1000_deep_is_one_bad_value(weave_db, tmp_path):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    db = tmp_path / "traces.db"
    a, b = sqlite3.connect(weave_db["path"]), sqlite3.connect(db, isolation_level=None)
    a.backup(b)
    a.close()
    cid = b.execute("SELECT id FROM calls WHERE op_short = 'exact_match' LIMIT 1").fetchone()[0]
    b.execute("UPDATE calls SET output = ? WHERE id = ?", ('{"correct": true, "trace": ' + DEEP_LIST + "}", cid))
    b.close()
    server = build_server(AppConfig(traces_db=str(db)))
    got = call(server, "get_call", {"call_id": cid})
    assert not got.is_error, got.text
    assert "nested deeper than" in got.text and "correct" in got.text
    for tool, args in (("trace_stats", {}), ("eval_health", {}), ("query_calls", {"op": "exact_match"})):
        out = call(server, tool, args)
        assert not out.is_error, (tool, out.text)
