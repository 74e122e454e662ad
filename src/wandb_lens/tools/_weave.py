"""Shared by the Weave tools: finding evaluations, their rows, time filters, compact values."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from ..analysis import eval_outcome as eo
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
    """(project id, evaluate call); a running evaluation is refused unless allowed (an interrupted one
    is readable: its recorded rows are all there will be)."""
    pid, call = find_call(app, eval_id, "eval_id")
    name = op_short(call.get("op_name"))
    if name != EVALUATE_OP:
        if name == PREDICT_OP and call.get("parent_id"):
            raise LensError(f"Call {eval_id} is an {PREDICT_OP} (one dataset row), not an evaluation; "
                            f"its evaluation is {call['parent_id']}.")
        raise LensError(f"Call {eval_id} is op {name!r}, not an {EVALUATE_OP} call. "
                        "List evaluations with eval_health.")
    if not allow_running and eval_state(app, pid, call)[0] == "running":
        src = app.traces
        done = src.count(pid, rows_filter(call["id"], pid))
        raise LensError(f"Evaluation {eval_id} ({label(call)}) is still running: {done} rows recorded so far, "
                        "results are incomplete. Watch it with eval_health; ask again when it has finished.")
    return pid, call


def eval_state(app, pid: str, call: dict) -> tuple[str, str]:
    """(status, why) where a call with no end is 'interrupted' when its recording process is gone
    (local store), or, when that is unknown (the cloud, another host), when nothing new was recorded
    in its trace for `eval_idle_minutes`; else 'running'."""
    status = ev.call_status(call)
    if status != "running":
        return status, ""
    src = app.traces
    gone = getattr(src, "writer_gone", None)
    state = gone(call.get("started_at")) if gone is not None else None
    if state is True:
        return "interrupted", "its recording process is gone"
    if state is False:  # its recorder still runs (a slow model call is not an interruption)
        return "running", ""
    idle_min = float(getattr(app.config, "eval_idle_minutes", 10.0))
    last = src.calls(pid, {"trace_ids": [call.get("trace_id") or call["id"]]}, columns=["id", "started_at", "ended_at"],
                     sort_by=[{"field": "started_at", "direction": "desc"}], limit=1)
    times = [parse_time(t) for c in last for t in (c.get("started_at"), c.get("ended_at")) if t]
    times = [t for t in times if t is not None]
    if times:
        idle = (dt.datetime.now(dt.timezone.utc) - max(times)).total_seconds() / 60
        if idle >= idle_min:
            return "interrupted", f"nothing recorded for {idle:.0f} min"
    return "running", ""


def parse_time(value) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def row_counts(src, pid: str, call: dict) -> dict:
    """Rows of one evaluation by outcome (analysis.eval_outcome): rows, failed (model / scorer), unfinished.
    Two counting queries, a third when rows failed, a fourth when the evaluation has no end."""
    flt = rows_filter(call["id"], pid)
    rows = src.count(pid, flt)
    failed = src.count(pid, flt, {"$expr": eo.failed_expr()}) if rows else 0
    model = src.count(pid, flt, {"$expr": eo.model_failed_expr()}) if failed else 0  # the rest: a scorer
    unfinished = src.count(pid, flt, status_is("running")) if rows and not call.get("ended_at") else 0
    return {"rows": rows, "failed": failed, "failed_model": model, "failed_scorer": failed - model,
            "unfinished": unfinished}


def label(call: dict) -> str:
    return call.get("display_name") or ((call.get("summary") or {}).get("weave") or {}).get("display_name") \
        or op_short(call.get("op_name"))


def _ref_name(uri: str) -> str:
    """An object ref's name; a malformed ref (damaged or foreign data) is shown cut, not raised."""
    try:
        return parse_ref(uri).name
    except ValueError:
        return str(uri)[:60]


def eval_objects(app, calls: list[dict]) -> dict[str, dict]:
    """Evaluation object and model refs -> what they hold, in one batch read:
    Evaluation: {"kind": "evaluation", "name", "dataset" (name:vN or name:digest), "scorers", "trials"};
    model: {"kind": "model", "class", "attrs" (the published object's scalar fields)} or {"op": name}."""
    refs = sorted({v for c in calls for k in ("self", "model") if is_ref(v := (c.get("inputs") or {}).get(k))})
    out: dict[str, dict] = {}
    if not refs:
        return out
    src = app.traces
    for ref, val in zip(refs, src.read_refs(refs)):
        kind = _ref_kind(ref)
        if kind == "op":
            out[ref] = {"kind": "model", "op": _ref_name(ref)}
        elif isinstance(val, dict) and val.get("_type") == "Evaluation" or isinstance(val, dict) and "scorers" in val:
            ds = val.get("dataset")
            scorers = [_ref_name(s) if is_ref(s) else str(s)[:40] for s in val.get("scorers") or []]
            trials = val.get("trials")
            out[ref] = {"kind": "evaluation", "name": val.get("name"), "dataset": _dataset_label(src, ds),
                        "scorers": scorers, "trials": trials if isinstance(trials, int) and trials > 0 else 1}
        elif isinstance(val, dict):
            attrs = {k: (v[:60] if isinstance(v, str) else v) for k, v in val.items()
                     if not k.startswith("_") and k != "description" and not is_ref(v)
                     and (isinstance(v, (str, int, float, bool)))}
            out[ref] = {"kind": "model", "class": str(val.get("_class_name") or val.get("_type") or _ref_name(ref)),
                        "attrs": attrs}
        elif kind == "object":
            out[ref] = {"kind": "model", "class": _ref_name(ref), "attrs": {}}
    return out


def _ref_kind(uri: str) -> str | None:
    try:
        return parse_ref(uri).kind
    except ValueError:
        return None


def _dataset_label(src, ds) -> str | None:
    if not is_ref(ds):
        return None
    version = getattr(src, "obj_version", None)
    n = version(ds) if version else None
    try:
        r = parse_ref(ds)
    except ValueError:
        return short_ref(ds)
    return f"{r.name}:v{n}" if isinstance(n, int) else short_ref(ds)


def model_of(call: dict, objs: dict) -> dict:
    """The evaluated model's identity: {"class", "attrs"} for a weave.Model, {"op"} for a function."""
    m = (call.get("inputs") or {}).get("model")
    if is_ref(m):
        return objs.get(m) or ({"op": _ref_name(m)} if _ref_kind(m) == "op" else {"class": _ref_name(m), "attrs": {}})
    if isinstance(m, dict):
        return {"class": str(m.get("_class_name") or m.get("name") or "model"), "attrs": {}}
    return {"op": str(m)} if m else {}


def eval_info(call: dict, objs: dict) -> dict:
    return objs.get((call.get("inputs") or {}).get("self")) or {}


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


def row_values(app, calls: list[dict]) -> dict:
    """row key -> the dataset row's fields (refs resolved in one batch read)."""
    refs = {}
    vals = {}
    for c in calls:
        ex = (c.get("inputs") or {}).get("example")
        key = row_key(c.get("inputs"))
        if is_ref(ex):
            refs.setdefault(key, ex)
        else:
            vals[key] = ex
    if refs:
        vals.update(zip(refs.keys(), app.traces.read_refs(list(refs.values()))))
    return vals


def row_text(val: Any, key: str) -> str:
    if isinstance(val, dict):
        for id_key in ("id", "row_id", "example_id", "task_id", "name"):
            if isinstance(val.get(id_key), (str, int)) and not isinstance(val.get(id_key), bool):
                return str(val[id_key])[:40]
        text = ", ".join(f"{k}={str(v)[:25]}" for k, v in list(val.items())[:2])
        return text[:60]
    return key[:8]


def row_record(c: dict, kids: list[dict] | None = None) -> dict:
    """One predict_and_score call -> row fields the analysis uses (outcome per analysis.eval_outcome)."""
    out = c.get("output") if isinstance(c.get("output"), dict) else {}
    oc = eo.row_outcome(c, kids, lambda k: op_short(k.get("op_name")))
    failed = oc["state"] == "failed"
    scores = ev.flatten_scores(out.get("scores") or {})
    return {
        "row": row_key(c.get("inputs")), "call": c["id"], "state": oc["state"], "failed": failed,
        "where": oc["where"], "scores": scores, "started_at": c.get("started_at"), "outcome": oc,
        "passed": None if oc["state"] == "unfinished" else ev.row_passed(scores, failed),
        "error": {**oc["error"], "where": oc["where"]} if failed else {},
        "latency_ms": ((c.get("summary") or {}).get("weave") or {}).get("latency_ms"),
        "tokens": ev.tokens(c.get("summary")).get("total"),
    }


def errored_children(src, pid: str, calls: list[dict]) -> dict[str, list[dict]]:
    """parent id -> its direct children that raised, for the rows that look failed (one query per 1000)."""
    ids = [c["id"] for c in calls if c.get("exception") or (
        ev.call_status(c) == "descendant_error" and isinstance(c.get("output"), dict)
        and all(c["output"].get(k) is None for k in eo.OUTPUT_KEYS))]
    out: dict[str, list[dict]] = {}
    raised = {"$expr": {"$not": [{"$eq": [{"$getField": "exception"}, {"$literal": None}]}]}}
    for i in range(0, len(ids), 1000):
        for k in src.calls(pid, {"parent_ids": ids[i:i + 1000]}, raised,
                           columns=["id", "parent_id", "op_name", "exception", "started_at"],
                           sort_by=[{"field": "started_at", "direction": "asc"}]):
            out.setdefault(k.get("parent_id"), []).append(k)
    return out


def records(src, pid: str, calls: list[dict]) -> list[dict]:
    """Row records with their outcome and trial number (order of start among a row's repeats)."""
    kids = errored_children(src, pid, calls)
    recs = [row_record(c, kids.get(c["id"])) for c in calls]
    seen: dict[str, int] = {}
    for r in sorted(recs, key=lambda r: (r["started_at"] or "", r["call"])):
        r["trial"] = seen[r["row"]] = seen.get(r["row"], 0) + 1
    return recs


def data_refs(values) -> list[str]:
    """The refs among `values` that point into data (a dataset row or a key of it: '.../attr/rows/id/x',
    '.../key/question'), not whole objects (an Evaluation, a Model): those are resolved for display."""
    out = []
    for v in values:
        if is_ref(v) and v not in out:
            try:
                if parse_ref(v).extra:
                    out.append(v)
            except ValueError:
                continue
    return out


def resolve_data_refs(app, values, cap: int = 200) -> dict:
    """ref -> its value, for the data refs among `values` (one batch read, at most `cap`)."""
    refs = data_refs(values)[:cap]
    if not refs:
        return {}
    try:
        vals = app.traces.read_refs(refs)
    except LensError:
        return {}
    return {r: v for r, v in zip(refs, vals) if v is not None}
