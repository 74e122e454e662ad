"""Shared by the Weave tools: finding evaluations, their rows, time filters, compact values."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from ..analysis import evals as ev
from ..errors import LensError
from ..sources.weave.refs import is_ref, parse_ref, short_ref
from ..sources.weave.source import EVALUATE_OP, PREDICT_OP, op_ref, resolve_project

ROW_CAP = 2000  # rows read per evaluation when every row is needed (compare_evals)
_REL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def since_query(since: str | None) -> dict | None:
    """'2025-01-31', '2025-01-31T12:00:00Z' or relative '36h' / '7d' -> a started_at query."""
    if not since:
        return None
    m = _REL.match(since)
    if m:
        secs = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        try:
            t = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=secs)
        except (OverflowError, ValueError):  # '99999999999d': before year 1
            raise LensError(f"since={since!r} reaches back before year 1: use a shorter span ('30d') "
                            "or an ISO date ('2025-01-31').") from None
    else:
        try:
            t = dt.datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
        except ValueError:
            raise LensError(f"since={since!r} is not a date: use ISO ('2025-01-31', '2025-01-31T12:00Z') "
                            "or relative ('36h', '7d').") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
    return {"$expr": {"$gt": [{"$convert": {"input": {"$getField": "started_at"}, "to": "double"}},
                              {"$literal": t.timestamp()}]}}


def and_query(*queries: dict | None) -> dict | None:
    exprs = [q["$expr"] for q in queries if q]
    if not exprs:
        return None
    return {"$expr": exprs[0] if len(exprs) == 1 else {"$and": exprs}}


def status_is(status: str) -> dict:
    return {"$expr": {"$eq": [{"$getField": "summary.weave.status"}, {"$literal": status}]}}


def rows_filter(eval_id: str, pid: str) -> dict:
    return {"parent_ids": [eval_id], "op_names": [op_ref(pid, PREDICT_OP)]}


def minute(iso: str | None) -> str | None:
    return iso[:16].replace("T", " ") if iso else None


def op_short(op_name: str | None) -> str:
    if is_ref(op_name):
        try:
            return parse_ref(op_name).name
        except ValueError:
            pass
    return op_name or "?"


def find_call(app, call_id: str, what: str = "call") -> tuple[str, dict]:
    """(project_id, call) for an id, or a clean error."""
    if not isinstance(call_id, str) or not call_id.strip() or len(call_id) > 200:
        raise LensError(f"{what} must be a call id (as listed by eval_health).")
    src = app.traces
    call_id = call_id.strip()
    if hasattr(src, "find_call"):
        call = src.find_call(call_id)
        pid = call["project_id"] if call else None
    else:
        pid = resolve_project(src, None)
        call = src.read_call(pid, call_id)
    if call is None:
        hint = ""
        try:
            pid = pid or resolve_project(src, None)
            recent = src.calls(pid, filter={"op_names": [op_ref(pid, EVALUATE_OP)]}, columns=["id"],
                               sort_by=[{"field": "started_at", "direction": "desc"}], limit=5)
            if recent:
                hint = " Recent evaluations: " + ", ".join(c["id"] for c in recent) + "."
        except LensError:
            pass
        raise LensError(f"No call with id {call_id!r} in {src.describe_location()}.{hint}")
    return pid, call


def find_eval(app, eval_id: str, allow_running: bool = False) -> tuple[str, dict]:
    pid, call = find_call(app, eval_id, "eval_id")
    name = op_short(call.get("op_name"))
    if name != EVALUATE_OP:
        if name == PREDICT_OP and call.get("parent_id"):
            raise LensError(f"Call {eval_id} is an {PREDICT_OP} (one dataset row), not an evaluation; "
                            f"its evaluation is {call['parent_id']}.")
        raise LensError(f"Call {eval_id} is op {name!r}, not an {EVALUATE_OP} call. "
                        "List evaluations with eval_health.")
    if not allow_running and ev.call_status(call) == "running":
        src = app.traces
        done = src.count(pid, rows_filter(call["id"], pid))
        raise LensError(f"Evaluation {eval_id} ({label(call)}) is still running: {done} rows recorded so far, "
                        "results are incomplete. Watch it with eval_health; ask again when it has finished.")
    return pid, call


def label(call: dict) -> str:
    return call.get("display_name") or ((call.get("summary") or {}).get("weave") or {}).get("display_name") \
        or op_short(call.get("op_name"))


def _ref_name(uri: str) -> str:
    """An object ref's name; a malformed ref (damaged or foreign data) is shown cut, not raised."""
    try:
        return parse_ref(uri).name
    except ValueError:
        return str(uri)[:60]


def model_name(call: dict) -> str | None:
    m = (call.get("inputs") or {}).get("model")
    if is_ref(m):
        return _ref_name(m)
    if isinstance(m, dict):
        return str(m.get("name") or m.get("_class_name") or "model")
    return str(m) if m else None


def eval_objects(app, calls: list[dict]) -> dict[str, dict]:
    """Evaluation object ref -> {"dataset": short name, "scorers": [names]} (one batch read)."""
    refs = sorted({c["inputs"]["self"] for c in calls if is_ref((c.get("inputs") or {}).get("self"))})
    out: dict[str, dict] = {}
    if not refs:
        return out
    for ref, val in zip(refs, app.traces.read_refs(refs)):
        if not isinstance(val, dict):
            continue
        ds = val.get("dataset")
        scorers = [_ref_name(s) if is_ref(s) else str(s)[:40] for s in val.get("scorers") or []]
        out[ref] = {"dataset": short_ref(ds) if is_ref(ds) else None, "scorers": scorers,
                    "name": val.get("name")}
    return out


def row_key(inputs: dict | None) -> str:
    """A dataset row's identity: its table-row digest when the example is a ref, else a content hash."""
    ex = (inputs or {}).get("example")
    if is_ref(ex):
        try:
            r = parse_ref(ex)
        except ValueError:
            return ex
        for edge, val in reversed(r.extra):
            if edge == "id":
                return val
        return ex
    blob = json.dumps(ex, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:43]


def row_labels(app, calls: list[dict]) -> dict[str, str]:
    """row key -> a short human label: the row's own id field, else a digest of its first values."""
    refs = {}
    plain = {}
    for c in calls:
        ex = (c.get("inputs") or {}).get("example")
        key = row_key(c.get("inputs"))
        if is_ref(ex):
            refs.setdefault(key, ex)
        else:
            plain[key] = ex
    vals = dict(zip(refs.keys(), app.traces.read_refs(list(refs.values())))) if refs else {}
    vals.update(plain)
    return {k: row_text(v, k) for k, v in vals.items()}


def row_text(val: Any, key: str) -> str:
    if isinstance(val, dict):
        for id_key in ("id", "row_id", "example_id", "task_id", "name"):
            if isinstance(val.get(id_key), (str, int)) and not isinstance(val.get(id_key), bool):
                return str(val[id_key])[:40]
        text = ", ".join(f"{k}={str(v)[:25]}" for k, v in list(val.items())[:2])
        return text[:60]
    return key[:8]


def row_record(c: dict) -> dict:
    """One predict_and_score call -> row fields the analysis uses."""
    out = c.get("output") if isinstance(c.get("output"), dict) else {}
    failed = ev.call_status(c) == "error"
    scores = ev.flatten_scores(out.get("scores") or {})
    return {
        "row": row_key(c.get("inputs")), "call": c["id"], "failed": failed, "scores": scores,
        "passed": ev.row_passed(scores, failed), "error": ev.parse_exception(c.get("exception")) if failed else {},
        "latency_ms": ((c.get("summary") or {}).get("weave") or {}).get("latency_ms"),
        "tokens": ev.tokens(c.get("summary")).get("total"),
    }
