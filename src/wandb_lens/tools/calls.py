"""Call tools: query_calls (filter / sort / page any Weave calls) and call_schema (an op's fields).

Both go through the trace source's query language (filter + `$expr`), so the local store and the
W&B trace server answer the same request; counting is a counting query, never a pull.
"""

from __future__ import annotations

from typing import Any

from ..analysis import call_query as cq
from ..analysis import evals as ev
from ..compact import rnd
from ..errors import LensError, close_matches, suggest
from ..sources.weave.refs import is_ref, short_ref
from ..sources.weave.source import op_ref, resolve_project
from . import _base
from ._weave import and_query, minute, op_short, resolve_data_refs, since_query

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
MAX_OFFSET = 1_000_000
CELL = 60  # characters of a cell before it is cut (its size stated)
SCHEMA_SAMPLE = 200
STATUSES = ("success", "error", "running", "descendant_error")


def _until_query(until: str | None) -> dict | None:
    q = since_query(until)
    if q is None:
        return None
    (_, args), = q["$expr"].items()
    return {"$expr": {"$lt": args}}


def _filter(pid: str, op, parent_id, trace_id, roots_only) -> dict:
    flt: dict[str, Any] = {}
    if op:
        flt["op_names"] = [op if is_ref(op) else op_ref(pid, op)]
    if parent_id:
        flt["parent_ids"] = [parent_id]
    if trace_id:
        flt["trace_ids"] = [trace_id]
    if roots_only:
        flt["trace_roots_only"] = True
    return flt


def _cell(v: Any) -> Any:
    if isinstance(v, str):
        if is_ref(v):
            return "ref:" + short_ref(v)
        return v if len(v) <= CELL else v[:CELL] + f"... [{len(v)} chars]"
    if isinstance(v, float):
        return rnd(v, 4)
    if isinstance(v, (dict, list)):
        from ..compact import dumps

        text = dumps(v)
        return v if len(text) <= CELL else text[:CELL] + f"... [{len(text)} chars JSON]"
    return v


def _deref(v, found: dict):
    return found.get(v, v) if isinstance(v, str) else v


def _unknown_op(src, pid: str, op: str) -> None:
    ops = src.op_counts(pid, None, None)
    if ops and op_short(op) not in ops:
        raise LensError(suggest("op", op_short(op), ops))


def _unknown_fields(src, pid: str, flt: dict, fields: list[str]) -> None:
    """After an empty answer: a condition's field no sampled call has gets the closest names."""
    sample = src.calls(pid, flt or None, None, sort_by=[{"field": "started_at", "direction": "desc"}], limit=50)
    known: dict = {}
    for c in sample:
        for root in cq.ROOTS:
            if c.get(root) is not None:
                cq.flatten(c[root], root, known)
    prefixes = {k.rsplit(".", i)[0] for k in known for i in range(k.count(".") + 1)}
    for f in fields:
        if f.split(".", 1)[0] in cq.ROOTS and sample and f not in prefixes:
            near = close_matches(f, known)
            raise LensError(f"No call{' of this op' if flt.get('op_names') else ''} among the newest {len(sample)} "
                            f"has field {f!r}." + (f" Closest: {', '.join(near)}." if near else "") +
                            " See call_schema.")


def register(server, app) -> None:
    def query_calls(project: str | None = None, op: str | None = None, status: str | None = None,
                    since: str | None = None, until: str | None = None, parent_id: str | None = None,
                    trace_id: str | None = None, roots_only: bool = False, where: list[str] | None = None,
                    sort: str | None = None, columns: list[str] | None = None, limit: int = DEFAULT_LIMIT,
                    offset: int = 0) -> dict:
        if limit < 1 or limit > MAX_LIMIT:
            raise LensError(f"limit must be 1..{MAX_LIMIT} (got {limit}).")
        if offset < 0 or offset > MAX_OFFSET:
            raise LensError(f"offset must be 0..{MAX_OFFSET} (got {offset}).")
        if status and status not in STATUSES:
            raise LensError(suggest("status", status, STATUSES))
        if isinstance(where, str):
            where = [where]
        if len(where or []) > 10 or len(columns or []) > 10:
            raise LensError("at most 10 conditions in where and 10 columns.")
        src = app.traces
        pid = resolve_project(src, project)
        try:
            exprs, fields = cq.conditions_expr(where)
            sort_by = cq.sort_spec(sort)
            extra = [cq.field_path(c) for c in columns or []]
        except cq.ConditionError as exc:
            raise LensError(f"Bad query_calls argument: {exc}.") from None
        if status:
            exprs.append({"$eq": [{"$getField": "summary.weave.status"}, {"$literal": status}]})
        flt = _filter(pid, op, parent_id, trace_id, roots_only)
        query = and_query(since_query(since), _until_query(until), {"$expr": {"$and": exprs}} if exprs else None)
        total = src.count(pid, flt or None, query)
        if total == 0 and op:
            _unknown_op(src, pid, op)
        if total == 0 and fields:
            _unknown_fields(src, pid, flt, fields)
        read = sorted({"id", "op_name", "display_name", "started_at", "ended_at", "exception", "summary",
                       *(c.split(".", 1)[0] for c in extra)})
        calls = src.calls(pid, flt or None, query, columns=read, limit=limit, offset=offset,
                          sort_by=sort_by or [{"field": "started_at", "direction": "desc"}]) if total > offset else []
        cols = ["id", "op", "status", "started", "latency_ms", *extra]
        found = resolve_data_refs(app, [cq.get_path(c, f) for c in calls for f in extra])
        any_err = any(c.get("exception") for c in calls)
        if any_err:
            cols.append("error")
        rows = []
        for c in calls:
            weave = (c.get("summary") or {}).get("weave") or {}
            row = [c["id"], op_short(c.get("op_name")), ev.call_status(c), minute(c.get("started_at")),
                   weave.get("latency_ms"), *[_cell(_deref(cq.get_path(c, f), found)) for f in extra]]
            if any_err:
                e = ev.parse_exception(c.get("exception")) if c.get("exception") else {}
                row.append(_cell(f"{e.get('type')}: {e.get('line')}") if e else None)
            rows.append(row)
        out: dict[str, Any] = {"project": pid, "total": total, "offset": offset, "returned": len(rows),
                               "truncated": offset + len(rows) < total, "calls": {"cols": cols, "rows": rows}}
        if sort_by:
            out["sorted_by"] = sort
        if total == 0:
            out["note"] = "No call matches."
        return out

    def call_schema(op: str, project: str | None = None) -> dict:
        src = app.traces
        pid = resolve_project(src, project)
        if not isinstance(op, str) or not op.strip():
            raise LensError("op must be an op name, e.g. Evaluation.predict_and_score (see trace_stats).")
        flt = {"op_names": [op if is_ref(op) else op_ref(pid, op.strip())]}
        total = src.count(pid, flt)
        if total == 0:
            _unknown_op(src, pid, op.strip())
            return {"project": pid, "op": op, "calls": 0, "note": "No calls of this op."}
        sample = src.calls(pid, flt, None, sort_by=[{"field": "started_at", "direction": "desc"}],
                           limit=SCHEMA_SAMPLE)
        out = {"project": pid, "op": op_short(op), "calls": total, **cq.schema(sample, fmt=_cell)}
        out["legend"] = ("fields: path -> type, in (calls of the sample having it), top [value, count] or min/max; "
                         "use the paths in query_calls where / columns")
        return out

    _base.add(server, query_calls,
              "List Weave calls filtered by op, status, time, parent/trace and field conditions "
              "('output.usage.total_tokens > 1000'); sorted, paged, chosen columns.")
    _base.add(server, call_schema,
              "An op's fields (inputs, output, attributes, summary) over its newest 200 calls: type, presence, "
              "commonest values or min/max.")
