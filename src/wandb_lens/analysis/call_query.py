"""query_calls / call_schema without MCP or a store: conditions written as text turned into the
trace server's `$expr` query language, and the field schema of a sample of calls.

A condition is `<field> <operator> <value>`: field a dotted path under inputs / output /
attributes / summary (or op_name, display_name, exception, started_at, ended_at, latency_ms,
status); operator one of == != > >= < <= contains; value JSON (a number, true, false, null,
"quoted") or bare text. `contains` matches case-insensitively (Unicode case folding).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

OPERATORS = ("==", "!=", ">=", "<=", ">", "<", "contains")
ROOTS = ("inputs", "output", "attributes", "summary")
ALIASES = {"latency_ms": "summary.weave.latency_ms", "status": "summary.weave.status", "op": "op_name",
           "name": "display_name"}
SCALARS = ("id", "op_name", "display_name", "exception", "started_at", "ended_at", "trace_id", "parent_id",
           "wb_run_id", "wb_user_id", "thread_id", "turn_id")
_COND = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(==|!=|>=|<=|>|<|=|\bcontains\b)\s*(.*?)\s*$", re.S)
_OPISH = re.compile(r"^\s*[A-Za-z_][\w.\-]*\s*([^\w\s\"'.\-]+|[A-Za-z_]+)")


class ConditionError(ValueError):
    """A condition that cannot be read: the message names the operator or the part at fault."""


def field_path(name: str) -> str:
    """A user's field name -> the trace server's field ('latency_ms' -> 'summary.weave.latency_ms')."""
    name = name.strip()
    name = ALIASES.get(name, name)
    head = name.split(".", 1)[0]
    if head in ROOTS or name in SCALARS or name.startswith("summary.weave."):
        return name
    raise ConditionError(f"unknown field {name!r}: use a path under {', '.join(ROOTS)} "
                         f"(e.g. output.usage.total_tokens) or one of {', '.join([*SCALARS[:6], *ALIASES])}")


def _value(text: str) -> Any:
    text = text.strip()
    if not text:
        raise ConditionError("a value is missing")
    try:
        return json.loads(text)
    except ValueError:
        if len(text) >= 2 and text[0] == text[-1] == "'":
            return text[1:-1]
        return text


def parse_condition(cond: str) -> tuple[str, str, Any]:
    """'output.usage.total_tokens > 1000' -> ('output.usage.total_tokens', '>', 1000)."""
    if not isinstance(cond, str) or not cond.strip():
        raise ConditionError("empty condition")
    if len(cond) > 500:
        raise ConditionError("condition longer than 500 characters")
    m = _COND.match(cond)
    if not m:
        bad = _OPISH.match(cond)
        op = bad.group(1) if bad else cond.strip()[:20]
        raise ConditionError(f"condition {cond.strip()[:80]!r}: unknown operator {op!r}; use one of "
                             f"{' '.join(OPERATORS)} (e.g. output.usage.total_tokens > 1000)")
    name, op, raw = m.groups()
    if raw[:1] in ("<", ">", "=", "!", "~"):
        raise ConditionError(f"condition {cond.strip()[:80]!r}: unknown operator {op + raw.split()[0][:3]!r}; use one "
                             f"of {' '.join(OPERATORS)}")
    op = "==" if op == "=" else op
    value = _value(raw)
    if op in (">", ">=", "<", "<=") and not isinstance(value, (int, float)) or isinstance(value, bool) and op in (
            ">", ">=", "<", "<="):
        raise ConditionError(f"condition {cond.strip()[:80]!r}: operator {op!r} needs a number, got {raw.strip()[:30]!r}")
    if op == "contains" and not isinstance(value, str):
        value = json.dumps(value)
    if isinstance(value, (dict, list)):
        raise ConditionError(f"condition {cond.strip()[:80]!r}: operator {op!r} compares scalars, not {type(value).__name__}s")
    return field_path(name), op, value


def to_expr(field: str, op: str, value: Any) -> dict:
    get = {"$getField": field}
    if op == "contains":
        return {"$contains": {"input": get, "substr": {"$literal": value}, "case_insensitive": True}}
    if op in (">", ">=", "<", "<="):
        key = {">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}[op]
        if field in ("started_at", "ended_at"):
            return {key: [{"$convert": {"input": get, "to": "double"}}, {"$literal": float(value)}]}
        return {key: [{"$convert": {"input": get, "to": "double"}}, {"$literal": value}]}
    eq = {"$eq": [get, {"$literal": value}]}
    return eq if op == "==" else {"$not": [eq]}


def conditions_expr(conds: list[str] | None) -> tuple[list[dict], list[str]]:
    """Conditions -> ($expr list, field paths used)."""
    exprs, fields = [], []
    for c in conds or []:
        f, op, v = parse_condition(c)
        exprs.append(to_expr(f, op, v))
        fields.append(f)
    return exprs, fields


def sort_spec(sort: str | None) -> list[dict] | None:
    """'-latency_ms' -> [{"field": "summary.weave.latency_ms", "direction": "desc"}]."""
    if not sort:
        return None
    s = sort.strip()
    desc = s.startswith("-")
    return [{"field": field_path(s.lstrip("-+")), "direction": "desc" if desc else "asc"}]


def get_path(call: dict, path: str) -> Any:
    cur: Any = call
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def flatten(value: Any, prefix: str, out: dict, depth: int = 0) -> None:
    """Leaf paths of a JSON value: {'a': {'b': 1}} -> {'prefix.a.b': 1}; lists are leaves."""
    if isinstance(value, dict) and value and depth < 6:
        for k, v in list(value.items())[:100]:
            if k in ("_type", "_class_name", "_bases"):
                continue
            flatten(v, f"{prefix}.{k}", out, depth + 1)
    else:
        out[prefix] = value


def type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "ref" if v.startswith("weave:///") else "string"
    if isinstance(v, list):
        return "list"
    return "object"


def schema(calls: list[dict], top: int = 3, cut: int = 40, max_fields: int = 60, fmt=None) -> dict:
    """Fields seen in the calls' inputs / output / attributes / summary: type(s), share present,
    most common values (cut to `cut` chars; numbers get min / max)."""
    seen: dict[str, list] = {}
    for c in calls:
        flat: dict = {}
        for root in ROOTS:
            v = c.get(root)
            if root == "summary" and isinstance(v, dict):
                v = {k: x for k, x in v.items() if k != "weave"}
            if root == "attributes" and isinstance(v, dict):
                v = {k: x for k, x in v.items() if k != "weave"}
            if v is not None and v != {}:
                flatten(v, root, flat)
        for k, v in flat.items():
            seen.setdefault(k, []).append(v)
    fields = {}
    for path in sorted(seen)[:max_fields]:
        vals = seen[path]
        types = Counter(type_name(v) for v in vals)
        entry: dict[str, Any] = {"type": "|".join(t for t, _ in types.most_common()), "in": len(vals)}
        nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if nums:
            entry["min"], entry["max"] = min(nums), max(nums)
        scal = [v for v in vals if isinstance(v, (str, bool)) or v is None]
        if scal and not nums:
            common = Counter(json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v for v in scal)
            entry["top"] = [[(fmt or (lambda x: short(x, cut)))(v), n] for v, n in common.most_common(top)]
            if len(common) > top:
                entry["distinct"] = len(common)
        fields[path] = entry
    out = {"sampled": len(calls), "fields": fields}
    if len(seen) > max_fields:
        out["fields_total"] = len(seen)
    return out


def percentiles(values: list[float]) -> dict:
    """p50 / p95 / max of values (nearest rank), with n."""
    vals = sorted(v for v in values if isinstance(v, (int, float)))
    if not vals:
        return {}

    def rank(p: float):  # nearest rank: the smallest value with at least p of the values at or below it
        return vals[min(len(vals) - 1, max(0, math.ceil(p * len(vals)) - 1))]
    return {"n": len(vals), "p50": rank(0.5), "p95": rank(0.95), "max": vals[-1]}


def short(v: Any, cut: int) -> Any:
    if isinstance(v, str) and len(v) > cut:
        return v[:cut] + f"... [{len(v)} chars]"
    return v
