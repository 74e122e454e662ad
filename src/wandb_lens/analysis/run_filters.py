"""MongoDB-style run filters and ordering, as W&B users write them for `api.runs(filters=...)`.

A run is matched as a document: {"id", "name", "state", "group", "sweep", "job_type", "tags",
"created_at", "config": {...}, "summary_metrics": {...}}. Field paths: `state`, `tags`,
`group`, `config.<key>` (`config.<key>.value` accepted too), `summary_metrics.<key>` or
`summary.<key>`; nested keys by dots, and keys that themselves hold a `/` or `.` as logged.

A role instead of a summary key (`summary.val`, `summary.train`, `summary.lr`, ... the roles of
analysis/keys.py) is resolved per run to that run's own key (`val/loss` in one run, `eval_loss` in
another), so runs that name the same quantity differently filter and sort together. A key the run
really logs under that name (a summary key `val`) wins over the role.
"""

from __future__ import annotations

import functools
import math
import re
import time
from typing import Any

import regex  # the `re` syntax with a match timeout: a $regex that backtracks is stopped, not waited on

OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$regex", "$exists")
LOGIC = ("$and", "$or", "$nor")
MAX_DEPTH = 32
MAX_NODES = 2000
MAX_REGEX = 200
REGEX_BUDGET_S = 1.0  # total time all $regex matches of one query may take
_MISSING = object()
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*[+*{]")


class FilterError(ValueError):
    pass


def _aliases(field: str) -> list[str]:
    for prefix, target in (("summary_metrics.", "summary."), ("summary.", "summary."), ("config.", "config.")):
        if field.startswith(prefix):
            return [target + field[len(prefix):]]
    if field in ("created_at", "createdAt"):
        return ["created_at"]
    if field in ("display_name", "displayName"):
        return ["name"]
    return [field]


@functools.cache
def role_names() -> tuple[str, ...]:
    from .keys import find_keys

    return tuple(find_keys(()))


def summary_roles(summary: dict) -> dict[str, str]:
    """role -> the run's own summary key for it, among its numeric summary keys."""
    from .flatten import flatten
    from .keys import find_keys

    numeric = [k for k, v in flatten(summary or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("_")]
    return {role: key for role, key in find_keys(numeric).items() if key}


def role_field(field: str) -> str | None:
    """The role a field names (`summary.val` -> 'val'), or None for a plain field."""
    path = _aliases(field)[0] if isinstance(field, str) else ""
    head, _, rest = path.partition(".")
    return rest if head == "summary" and rest in role_names() else None


def lookup(doc: dict, field: str) -> Any:
    """The value at a dotted path; a key that contains dots itself is tried whole first. A summary
    role (`summary.val`) the run does not log under that name reads the run's own key for it."""
    path = _aliases(field)[0]
    head, _, rest = path.partition(".")
    node = doc.get(head, _MISSING)
    if not rest:
        return node
    found = _walk(node, rest, head == "config")
    if found is _MISSING and head == "summary" and rest in role_names():
        if "_role_keys" not in doc:
            doc["_role_keys"] = summary_roles(node if isinstance(node, dict) else {})
        key = doc["_role_keys"].get(rest)
        if key is not None:
            found = _walk(node, key, False)
    return found


def references_role(filters: Any, order: str | None) -> bool:
    """Whether the filters or the order name a summary role anywhere."""
    if order and role_field(order.lstrip("+-").strip()):
        return True

    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            return any(walk(v) if k in LOGIC else (isinstance(k, str) and bool(role_field(k)))
                       for k, v in node.items())
        if isinstance(node, list):
            return any(walk(v) for v in node)
        return False

    return walk(filters)


def _walk(node: Any, rest: str, is_config: bool) -> Any:
    if not isinstance(node, dict):
        return _MISSING
    if rest in node:
        return node[rest]
    parts = rest.split(".")
    for i in range(len(parts) - 1, 0, -1):  # longest key first: "train/acc.top1" before "train/acc"
        key = ".".join(parts[:i])
        if key in node:
            found = _walk(node[key], ".".join(parts[i:]), is_config)
            if found is not _MISSING:
                return found
    if is_config and rest.endswith(".value"):
        return _walk(node, rest[: -len(".value")], False)
    return _MISSING


def check(filters: Any) -> None:
    """Validate a filter document up front, so errors name the bad part."""
    count = [0]

    def walk(node: Any, depth: int) -> None:
        count[0] += 1
        if depth > MAX_DEPTH:
            raise FilterError(f"Filter nested deeper than {MAX_DEPTH} levels.")
        if count[0] > MAX_NODES:
            raise FilterError(f"Filter has more than {MAX_NODES} parts.")
        if not isinstance(node, dict):
            raise FilterError(f"A filter must be an object like {{\"state\": \"finished\"}}, got {type(node).__name__}.")
        for key, value in node.items():
            if key in LOGIC:
                if not isinstance(value, list) or not value:
                    raise FilterError(f"{key} takes a non-empty list of filters.")
                for sub in value:
                    walk(sub, depth + 1)
            elif key.startswith("$"):
                raise FilterError(f"Unknown filter operator {key!r}. Supported: {', '.join(OPS + LOGIC)}.")
            elif isinstance(value, dict) and any(k.startswith("$") for k in value):
                for op, arg in value.items():
                    if op not in OPS:
                        raise FilterError(f"Unknown filter operator {op!r} on {key!r}. Supported: {', '.join(OPS)}.")
                    if op in ("$in", "$nin") and not isinstance(arg, list):
                        raise FilterError(f"{op} on {key!r} takes a list.")
                    if op in ("$gt", "$gte", "$lt", "$lte") and (isinstance(arg, (dict, list, bool)) or arg is None):
                        raise FilterError(f"{op} on {key!r} takes a number or a string, got {_kind(arg)}.")
                    if op == "$exists" and not isinstance(arg, bool):
                        raise FilterError(f"$exists on {key!r} takes true or false, got {_kind(arg)}.")
                    if op == "$regex":
                        _compile(arg, key)

    walk(filters, 0)


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}.get(type(v), type(v).__name__)


def _compile(pattern: Any, field: str) -> regex.Pattern:
    return compile_regex(pattern, f"$regex on {field!r}")


def compile_regex(pattern: Any, what: str, flags: int = 0) -> regex.Pattern:
    """A user's pattern, refused when too long, nesting quantifiers or holding backreferences;
    search it with a `timeout` (the `regex` package's) so heavy backtracking is stopped."""
    if not isinstance(pattern, str):
        raise FilterError(f"{what} takes a string.")
    if len(pattern) > MAX_REGEX:
        raise FilterError(f"{what} is longer than {MAX_REGEX} characters.")
    if _NESTED_QUANTIFIER.search(pattern) or re.search(r"\\[1-9]", pattern):
        raise FilterError(
            f"{what} has a nested quantifier or backreference like (a+)+, which can take "
            "exponential time; simplify the pattern."
        )
    try:
        return regex.compile(pattern, flags)
    except (regex.error, ValueError, OverflowError) as exc:
        raise FilterError(f"{what} is not a valid pattern: {exc}.") from None


def _search(rx: regex.Pattern, text: str, field: str, deadline: float | None) -> bool:
    """rx.search under the query's time budget: a pattern that backtracks too long is refused."""
    left = REGEX_BUDGET_S if deadline is None else deadline - time.monotonic()
    try:
        if left <= 0:
            raise TimeoutError
        return rx.search(text, timeout=left) is not None
    except TimeoutError:
        raise FilterError(
            f"$regex on {field!r} took longer than {REGEX_BUDGET_S:g} s (the pattern backtracks heavily on "
            "these values); simplify it, e.g. anchor it or avoid overlapping alternatives like (a|aa)+."
        ) from None


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _cmp(a: Any, op: str, b: Any) -> bool:
    if a is _MISSING or a is None:
        return False
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        if math.isnan(na):
            return False
        a, b = na, nb
    elif type(a) is not type(b) or not isinstance(a, str):
        return False
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, list) and not isinstance(b, list):
        return any(_eq(x, b) for x in a)
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        return na == nb
    return a == b


def _field_match(value: Any, cond: Any, field: str, deadline: float | None = None) -> bool:
    if not (isinstance(cond, dict) and any(k.startswith("$") for k in cond)):
        return value is not _MISSING and _eq(value, cond)
    for op, arg in cond.items():
        if op == "$eq":
            ok = value is not _MISSING and _eq(value, arg)
        elif op == "$ne":
            ok = value is _MISSING or not _eq(value, arg)
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            ok = _cmp(value, op, arg)
        elif op == "$in":
            ok = value is not _MISSING and any(_eq(value, a) for a in arg)
        elif op == "$nin":
            ok = value is _MISSING or not any(_eq(value, a) for a in arg)
        elif op == "$exists":
            ok = (value is not _MISSING and value is not None) == bool(arg)
        else:  # $regex
            rx = _compile(arg, field)
            vals = value if isinstance(value, list) else [value]
            ok = any(isinstance(v, str) and _search(rx, v, field, deadline) for v in vals)
        if not ok:
            return False
    return True


def deadline() -> float:
    """The time by which one query's $regex matches must be done (pass it to `matches`)."""
    return time.monotonic() + REGEX_BUDGET_S


def matches(doc: dict, filters: dict | None, deadline: float | None = None) -> bool:
    if not filters:
        return True
    for key, cond in filters.items():
        if key == "$and":
            ok = all(matches(doc, sub, deadline) for sub in cond)
        elif key == "$or":
            ok = any(matches(doc, sub, deadline) for sub in cond)
        elif key == "$nor":
            ok = not any(matches(doc, sub, deadline) for sub in cond)
        else:
            ok = _field_match(lookup(doc, key), cond, key, deadline)
        if not ok:
            return False
    return True


def parse_order(order: str | None) -> tuple[str, bool] | None:
    """'-summary.val_loss' -> ('summary.val_loss', descending=True)."""
    if not order:
        return None
    if not isinstance(order, str) or len(order) > 300:
        raise FilterError("order must be a field name like '-summary.val_loss' or '+created_at'.")
    desc = order.startswith("-")
    field = order.lstrip("+-").strip()
    if not field:
        raise FilterError("order names no field: use e.g. '-summary.val_loss' or '+created_at'.")
    return field, desc


def sort_docs(docs: list[dict], order: str | None) -> list[dict]:
    parsed = parse_order(order)
    if parsed is None:
        return docs
    field, desc = parsed

    def key(doc: dict):
        v = lookup(doc, field)
        n = _num(v)
        if n is not None and not math.isnan(n):
            return (0, n, "")
        if isinstance(v, str):
            return (1, 0.0, v)
        return None

    present = [(key(d), i, d) for i, d in enumerate(docs)]
    have = [p for p in present if p[0] is not None]
    missing = [p[2] for p in present if p[0] is None]
    have.sort(key=lambda p: (p[0][0], -p[0][1] if desc else p[0][1], p[0][2]), reverse=False)
    if desc:  # strings: reverse within their block
        nums = [p for p in have if p[0][0] == 0]
        strs = sorted([p for p in have if p[0][0] == 1], key=lambda p: p[0][2], reverse=True)
        have = nums + strs
    return [p[2] for p in have] + missing
