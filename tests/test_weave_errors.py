"""Bad input for the Weave tools: clear tool errors naming the cause, never a traceback, never the key."""

from __future__ import annotations

import shutil
import socket
import sqlite3

import pytest
from conftest import call
from weave_fixtures import API_KEY, cloud_server_for


def _local(path):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    return build_server(AppConfig(traces_db=str(path)))


def _err(result, *needles):
    assert result.is_error, result.text
    assert "Traceback" not in result.text and API_KEY not in result.text
    for n in needles:
        assert n in result.text, result.text
    return result.text


def _ids(wlens):
    out = wlens("eval_health").json
    cols = out["evals"]["cols"]
    return {r[cols.index("model")]: r[0] for r in out["evals"]["rows"]}


def test_unknown_and_wrong_kind_of_id(wlens, weave_db):
    _err(wlens("eval_results", eval_id="0000-no-such-call"), "No call with id '0000-no-such-call'",
         "Recent evaluations")
    ids = _ids(wlens)
    row = [k for k in wlens("get_call", call_id=ids["guesser-v1"]).json["children"]["calls"]
           if k["op"] == "Evaluation.predict_and_score"][0]
    _err(wlens("eval_results", eval_id=row["id"]), "one dataset row", ids["guesser-v1"])
    model_call = wlens("get_call", call_id=row["id"]).json["children"]["calls"]
    model_id = [k["id"] for k in model_call if k["op"] == "guesser-v1"][0]
    _err(wlens("compare_evals", eval_ids=[ids["calculator-v2"], model_id]), "op 'guesser-v1'", "not an")
    _err(wlens("eval_results", eval_id=weave_db["running"]), "still running", "0 rows recorded")
    _err(wlens("compare_evals", eval_ids=[ids["calculator-v2"]]), "at least two")
    _err(wlens("get_call", call_id="nope"), "No call with id 'nope'")
    _err(wlens("get_call", call_id=ids["calculator-v2"], depth=5), "depth must be")
    _err(wlens("eval_health", project="no-such-project"), "no-such-project")


def test_empty_missing_corrupt_and_locked_store(tmp_path, weave_db):
    from wandb_lens.sources.weave.store import TraceStore

    empty = tmp_path / "empty.db"
    TraceStore(str(empty)).close()
    _err(call(_local(empty), "eval_health"), "trace store is empty")
    _err(call(_local(tmp_path / "missing.db"), "trace_stats"), "No trace store at")
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"this is not sqlite at all" * 200)
    _err(call(_local(bad), "eval_health"), "corrupted")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.commit()
    _err(call(_local(other), "eval_health"), "not a wandb-lens trace store")

    locked = tmp_path / "locked.db"
    shutil.copy(weave_db["path"], locked)
    holder = sqlite3.connect(locked)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        _err(call(_local(locked), "eval_health"), "locked")
    finally:
        holder.rollback()
        holder.close()
    assert not call(_local(locked), "eval_health").is_error  # readable once the writer is gone


def test_trace_server_down_401_500(loopback):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _err(call(cloud_server_for(f"http://127.0.0.1:{port}"), "eval_health"), "Cannot reach the Weave trace server")
    _err(call(cloud_server_for(loopback.url, key="wrong-key"), "trace_stats"), "refused the W&B API key", "401")
    loopback.force_status = 500
    try:
        _err(call(cloud_server_for(loopback.url), "eval_health"), "answered HTTP 500")
    finally:
        loopback.force_status = None
    _err(call(cloud_server_for(loopback.url, project=None), "eval_health"), "No W&B project configured")


def test_cloud_key_never_sent_in_clear_nor_logged(loopback, caplog):
    server = cloud_server_for(loopback.url)
    assert not call(server, "trace_stats").is_error
    assert API_KEY not in caplog.text
    seen = [p for p, _ in loopback.requests]
    assert "/calls/query_stats" in seen and "/objs/query" in seen


def test_cloud_eval_health_downloads_at_most_limit_calls(loopback):
    server = cloud_server_for(loopback.url)
    loopback.requests.clear()
    out = call(server, "eval_health", {"limit": 1}).json
    assert out["returned"] == 1 and out["total"] == 3
    streams = [b for p, b in loopback.requests if p == "/calls/stream_query"]
    assert streams[0]["limit"] == 1 and all(b.get("limit") == 1 for b in streams)  # + the running one's last call


@pytest.mark.parametrize("tool,args", [("eval_results", {"eval_id": ""}), ("eval_results", {"eval_id": "x", "limit": 0})])
def test_argument_errors(wlens, tool, args):
    _err(wlens(tool, **args))


def test_store_contains_is_case_sensitive_unless_asked(weave_db):
    """Regression: the store's `$contains` used SQLite LIKE, which ignores ASCII case, although
    weave's query language (and W&B's server) match case-sensitively unless `case_insensitive`."""
    from wandb_lens.sources.weave.source import LocalTraceSource

    src = LocalTraceSource(weave_db["path"])
    pid = src.projects()[0]

    def n(substr: str, ci: bool) -> int:
        q = {"$expr": {"$contains": {"input": {"$getField": "op_name"}, "substr": {"$literal": substr},
                                     "case_insensitive": ci}}}
        return src.count(pid, None, q)

    assert n("Evaluation.evaluate", False) > 0
    assert n("evaluation.evaluate", False) == 0
    assert n("evaluation.evaluate", True) == n("Evaluation.evaluate", False)
