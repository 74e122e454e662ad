"""Trace tools: trace_stats (counting queries only) and get_call (one call as plain JSON)."""

from __future__ import annotations

from typing import Any

from ..analysis import call_query as cq
from ..analysis import evals as ev
from ..compact import rnd
from ..errors import LensError, suggest
from ..sources.weave.refs import is_ref, short_ref
from ..sources.weave.source import op_ref, resolve_project
from . import _base
from ._weave import find_call, label, op_short, resolve_data_refs, since_query

TOP_OPS = 10
MAX_CHILDREN = 20
MAX_CHILD_LIMIT = 200
MAX_STR = 300
MAX_ITEMS = 30
MAX_DEPTH_VALUE = 6


def plain(value: Any, depth: int = 0) -> Any:
    """Stored weave JSON -> compact plain JSON: refs shortened, objects' `_type` noise dropped,
    long strings cut with their full length stated, long lists cut with their length."""
    if isinstance(value, str):
        if is_ref(value):
            return "ref:" + short_ref(value)
        if len(value) > MAX_STR:
            return value[:MAX_STR] + f"... [{len(value)} chars]"
        return value
    if isinstance(value, dict):
        if depth >= MAX_DEPTH_VALUE:
            return f"{{... {len(value)} keys}}"
        out = {}
        cls = value.get("_class_name")
        if cls:
            out["_class"] = cls
        for i, (k, v) in enumerate(value.items()):
            if k in ("_type", "_class_name", "_bases"):
                continue
            if i >= MAX_ITEMS:
                out["..."] = f"{len(value) - MAX_ITEMS} more keys"
                break
            out[k] = plain(v, depth + 1)
        return out
    if isinstance(value, list):
        items = [plain(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"... {len(value) - MAX_ITEMS} more items ({len(value)} total)")
        return items
    return value


def register(server, app) -> None:
    def trace_stats(project: str | None = None, op: str | None = None, since: str | None = None,
                    roots_only: bool = False) -> dict:
        src = app.traces
        pid = resolve_project(src, project)
        flt: dict[str, Any] = {}
        if op:
            flt["op_names"] = [op if is_ref(op) else op_ref(pid, op)]
        if roots_only:
            flt["trace_roots_only"] = True
        query = since_query(since)
        total = src.count(pid, flt or None, query)
        if total == 0 and op:
            ops = src.op_counts(pid, None, None)
            if ops:
                raise LensError(suggest("op", op, ops))
        status = src.status_counts(pid, flt or None, query)
        roots = total if roots_only else src.count(pid, {**flt, "trace_roots_only": True}, query)
        ops = src.op_counts(pid, flt or None, query)
        top = [{"op": k, **v} for k, v in list(ops.items())[:TOP_OPS]]
        lat, lat_sampled = src.latencies(pid, flt or None, query, [t["op"] for t in top])
        for t in top:
            t.update({f"{k}_ms": v for k, v in cq.percentiles(lat.get(t["op"]) or []).items() if k != "n"})
        # tokens: roots carry their descendants' roll-up, so sum roots unless an op was asked for
        usage_flt = dict(flt) if op else {**flt, "trace_roots_only": True}
        usage, partial = src.usage(pid, usage_flt, query)
        out: dict[str, Any] = {
            "project": pid, "source": src.kind, "calls": total, "roots": roots,
            "errors": status.get("error", 0), "status": status,
            "ops": {"total": len(ops), "truncated": len(ops) > TOP_OPS, "top": top},
        }
        if usage:
            tin = sum(u["input_tokens"] for u in usage.values())
            tout = sum(u["output_tokens"] for u in usage.values())
            out["tokens"] = {"input": tin, "output": tout,
                             "total": sum(u["total_tokens"] for u in usage.values()),
                             "requests": sum(u["requests"] for u in usage.values()), "by_model": usage}
            if partial:
                out["tokens"]["note"] = "summed over the most recent 2000 root calls only"
            costs = [u["cost"] for u in usage.values() if isinstance(u.get("cost"), (int, float))]
            if costs:
                out["tokens"]["cost"] = rnd(sum(costs), 4)
        if src.kind == "local":
            out["cost_note"] = "no cost from a local store (no price table); W&B's trace server has summary.weave.costs"
        if lat_sampled:
            out["latency_note"] = ("latency percentiles over each op's newest "
                                   f"{500 if src.kind == 'cloud' else 2000} calls")
        if total == 0:
            out["note"] = f"No calls in project {pid}" + (f" since {since}" if since else "") + "."
        out["status_legend"] = "error: raised; descendant_error: a call below it raised; running: no end yet"
        return out

    def get_call(call_id: str, depth: int = 1, offset: int = 0, limit: int = MAX_CHILDREN) -> dict:
        if depth < 0 or depth > 2:
            raise LensError("depth must be 0, 1 or 2.")
        if limit < 1 or limit > MAX_CHILD_LIMIT or offset < 0 or offset > 10_000_000:
            raise LensError(f"limit must be 1..{MAX_CHILD_LIMIT} and offset >= 0 (got limit={limit}, offset={offset}).")
        src = app.traces
        pid, call = find_call(app, call_id, "call_id")
        weave = (call.get("summary") or {}).get("weave") or {}
        summary = {k: v for k, v in (call.get("summary") or {}).items() if k != "weave"}
        out: dict[str, Any] = {
            "id": call["id"], "op": op_short(call.get("op_name")), "name": label(call),
            "status": ev.call_status(call), "started_at": call.get("started_at"), "ended_at": call.get("ended_at"),
            "latency_ms": weave.get("latency_ms"), "trace_id": call.get("trace_id"),
            "parent_id": call.get("parent_id"), "inputs": plain(_resolved(app, call.get("inputs"))),
            "output": plain(call.get("output")),
        }
        if call.get("exception"):
            err = ev.parse_exception(call["exception"])
            out["error"] = err
        counts = ev.status_counts(summary)
        if counts:
            out["status_counts"] = counts
        toks = ev.tokens(summary)
        if toks:
            out["tokens"] = toks
        attrs = {k: v for k, v in (call.get("attributes") or {}).items() if k != "weave"}
        if attrs:
            out["attributes"] = plain(attrs)
        if depth >= 1:
            out["children"] = _children(src, pid, call["id"], depth, offset, limit)
        return out

    _base.add(server, trace_stats,
              "Counts over Weave calls: total, roots, errors, status breakdown, top ops with latency p50/p95/max, "
              "token totals (cost when the server has it).")
    _base.add(server, get_call,
              "One Weave call as plain JSON (long values cut, sizes stated) with a summary of its children.")


def _resolved(app, inputs):
    """Inputs with dataset-row refs replaced by the row's fields (objects stay refs)."""
    if not isinstance(inputs, dict):
        return inputs
    found = resolve_data_refs(app, list(inputs.values()))
    return {k: found.get(v, v) if isinstance(v, str) else v for k, v in inputs.items()}


def _children(src, pid: str, call_id: str, depth: int, offset: int = 0, limit: int = MAX_CHILDREN) -> dict:
    flt = {"parent_ids": [call_id]}
    total = src.count(pid, flt)
    out: dict[str, Any] = {"total": total}
    if not total:
        return out
    out["by_op"] = src.op_counts(pid, flt)
    kids = src.calls(pid, flt, columns=["id", "op_name", "display_name", "exception", "summary", "started_at"],
                     sort_by=[{"field": "started_at", "direction": "asc"}], limit=limit, offset=offset)
    listed = []
    for k in kids:
        row = {"id": k["id"], "op": op_short(k.get("op_name")), "status": ev.call_status(k),
               "latency_ms": ((k.get("summary") or {}).get("weave") or {}).get("latency_ms")}
        if k.get("exception"):
            e = ev.parse_exception(k["exception"])
            row["error"] = f"{e.get('type')}: {e.get('line')}"
        if depth >= 2:
            row["children"] = src.count(pid, {"parent_ids": [k["id"]]})
        listed.append(row)
    out.update(offset=offset, returned=len(listed), truncated=offset + len(listed) < total, calls=listed)
    return out
