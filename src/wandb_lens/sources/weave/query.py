"""Reading the local trace store with the trace server's query language.

`filter` is the calls filter (op_names with `:*` wildcards, parent_ids, trace_ids, call_ids,
trace_roots_only, ...); `query` is the `{"$expr": ...}` Mongo-like expression ($and $or $not $eq
$gt $gte $lt $lte $in $contains, $getField, $literal, $convert). Derived fields are computed the
way the W&B trace server computes them: `summary.weave.status` (error / running /
descendant_error / success), `latency_ms`, `trace_name` or `display_name`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .. import bounded_json

STATUS_SQL = ("(CASE WHEN exception IS NOT NULL THEN 'error' WHEN ended_at IS NULL THEN 'running' "
              "WHEN COALESCE(n_err, 0) > 0 THEN 'descendant_error' ELSE 'success' END)")
_SCALARS = {"id", "project_id", "trace_id", "parent_id", "thread_id", "turn_id", "op_name", "display_name",
            "exception", "wb_user_id", "wb_run_id", "wb_run_step", "wb_run_step_end", "deleted_at"}
_TIMES = {"started_at": "started_ts", "ended_at": "ended_ts"}
_JSON = ("inputs", "output", "summary", "attributes")
_DERIVED = {"summary.weave.status": STATUS_SQL, "summary.weave.latency_ms": "latency_ms",
            "summary.weave.trace_name": "(CASE WHEN display_name IS NULL THEN op_short END)",
            "summary.weave.display_name": "display_name"}
_BASE_COLS = ("project_id, id, trace_id, parent_id, thread_id, turn_id, op_name, op_short, display_name, "
              "started_at, ended_at, exception, wb_user_id, wb_run_id, wb_run_step, wb_run_step_end, "
              "latency_ms, n_err")
MAX_LIST = 1000


class QueryError(ValueError):
    """A filter or query the store cannot run (a client error, HTTP 400)."""


def _field(path: str, numeric: bool = False) -> str:
    if path in _DERIVED:
        return _DERIVED[path]
    if path in _TIMES:
        return _TIMES[path] if numeric else path
    if path in _SCALARS:
        return path
    head, _, rest = path.partition(".")
    if head in _JSON:
        if not rest:
            return head
        keys = "".join('."' + k.replace('"', '') + '"' for k in rest.split("."))
        return f"json_extract({head}, '${keys}')"
    raise QueryError(f"unknown field {path!r}")


class _Expr:
    def __init__(self):
        self.args: list[Any] = []

    def compile(self, node: Any, numeric: bool = False) -> str:
        if not isinstance(node, dict) or len(node) != 1:
            raise QueryError(f"bad query node {str(node)[:80]}")
        (op, val), = node.items()
        if op == "$literal":
            if isinstance(val, (dict, list)):
                raise QueryError("literal must be a scalar")
            self.args.append(val)
            return "?"
        if op == "$getField":
            return _field(str(val), numeric)
        if op == "$convert":
            to = val.get("to")
            inner = self.compile(val["input"], numeric=to in ("double", "int"))
            cast = {"double": "REAL", "int": "INTEGER", "string": "TEXT", "bool": "INTEGER"}.get(to)
            if not cast:
                raise QueryError(f"unsupported $convert to {to!r}")
            return f"CAST({inner} AS {cast})"
        if op in ("$and", "$or"):
            if not val:
                return "1" if op == "$and" else "0"
            return "(" + f" {op[1:].upper()} ".join(self.compile(v) for v in val) + ")"
        if op == "$not":
            return f"(NOT COALESCE({self.compile(val[0])}, 0))"
        cmp = {"$eq": "IS", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
        if op in cmp:
            a, b = val
            numeric = any(isinstance(x, dict) and isinstance(x.get("$literal"), (int, float)) for x in (a, b))
            return f"({self.compile(a, numeric)} {cmp[op]} {self.compile(b, numeric)})"
        if op == "$in":
            left, items = val
            if len(items) > MAX_LIST:
                raise QueryError(f"$in list longer than {MAX_LIST}")
            return f"({self.compile(left)} IN ({','.join(self.compile(i) for i in items) or 'NULL'}))"
        if op == "$contains":
            inner = self.compile(val["input"])
            literal = self._lit(val["substr"])
            if val.get("case_insensitive"):  # Unicode folding (casefold), not LIKE's ASCII-only one
                self.args.append(literal.casefold())
                return f"(instr(casefold({inner}), ?) > 0)"
            self.args.append(literal)
            return f"(instr({inner}, ?) > 0)"
        raise QueryError(f"unsupported operator {op!r}")

    @staticmethod
    def _lit(node) -> str:
        if isinstance(node, dict) and "$literal" in node:
            return str(node["$literal"])
        raise QueryError("$contains substr must be a literal")


def where(project_id: str, filter: dict | None, query: dict | None) -> tuple[str, list]:
    conds, args = ["project_id = ?", "deleted_at IS NULL"], [project_id]
    f = filter or {}
    names = f.get("op_names") or []
    if names:
        ors = []
        for name in names:
            if name.endswith(":*"):
                ors.append("op_short = ?")
                args.append(_short(name[:-2]))
            else:
                ors.append("op_name = ?")
                args.append(name)
        conds.append("(" + " OR ".join(ors) + ")")
    for key, col in (("parent_ids", "parent_id"), ("trace_ids", "trace_id"), ("call_ids", "id"),
                     ("wb_run_ids", "wb_run_id"), ("wb_user_ids", "wb_user_id"), ("thread_ids", "thread_id"),
                     ("turn_ids", "turn_id")):
        vals = f.get(key)
        if vals:
            if len(vals) > MAX_LIST:
                raise QueryError(f"{key} longer than {MAX_LIST}")
            conds.append(f"{col} IN ({','.join('?' * len(vals))})")
            args.extend(vals)
    for key in ("input_refs", "output_refs"):
        for ref in f.get(key) or []:
            conds.append(f"{'inputs' if key == 'input_refs' else 'output'} LIKE ?")
            args.append(f"%{ref}%")
    if f.get("trace_roots_only"):
        conds.append("parent_id IS NULL")
    if query:
        expr = query.get("$expr") if isinstance(query, dict) else None
        if expr is None:
            raise QueryError("query must be {'$expr': ...}")
        e = _Expr()
        conds.append(e.compile(expr))
        args.extend(e.args)
    return " AND ".join(conds), args


def _short(prefix: str) -> str:
    from .store import op_short_name

    return op_short_name(prefix + ":x") or prefix


def _order(sort_by, selective: bool = False) -> str:
    """ORDER BY; with a selective filter (ids of parents / traces / calls) the time columns are written
    `+col` so SQLite filters by that filter's index and sorts the few rows, instead of walking the
    whole time index in order."""
    parts = []
    for s in sort_by or []:
        direction = "DESC" if str(s.get("direction", "asc")).lower() == "desc" else "ASC"
        col = _field(s["field"], numeric=True)
        parts.append(f"{'+' if selective and col in ('started_ts', 'ended_ts') else ''}{col} {direction}")
    return " ORDER BY " + ", ".join(parts + [f"{'+' if selective else ''}started_ts ASC", "id ASC"])


def query_calls(conn: sqlite3.Connection, project_id: str, filter=None, query=None, columns=None,
                sort_by=None, limit: int | None = None, offset: int = 0) -> list[dict]:
    cond, args = where(project_id, filter, query)
    wanted = [c for c in _JSON if columns is None or any(c == x.split(".")[0] for x in columns)]
    if "summary" not in wanted:
        wanted.append("summary")  # the derived fields live there
    f = filter or {}
    selective = bool(f.get("parent_ids") or f.get("trace_ids") or f.get("call_ids"))
    sql = f"SELECT {_BASE_COLS}, {', '.join(wanted)} FROM calls WHERE {cond}{_order(sort_by, selective)}"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        args = [*args, int(limit), int(offset or 0)]
    elif offset:
        sql += " LIMIT -1 OFFSET ?"
        args = [*args, int(offset)]
    cur = conn.execute(sql, args)
    names = [c[0] for c in cur.description]
    return [to_call(dict(zip(names, r))) for r in cur]


def to_call(r: dict) -> dict:
    """A stored row as the trace server's call JSON, with the derived `summary.weave` fields."""
    call = {k: r.get(k) for k in ("project_id", "id", "op_name", "display_name", "trace_id", "parent_id",
                                  "thread_id", "turn_id", "started_at", "ended_at", "exception",
                                  "wb_user_id", "wb_run_id", "wb_run_step", "wb_run_step_end")}
    for k in _JSON:
        if k in r:
            call[k] = bounded_json.loads(r[k], fallback_to_text=False) if r[k] is not None else None
    summary = call.get("summary") or {}
    weave = {}
    if r["exception"] is not None:
        weave["status"] = "error"
    elif r["ended_at"] is None:
        weave["status"] = "running"
    elif (r.get("n_err") or 0) > 0:
        weave["status"] = "descendant_error"
    else:
        weave["status"] = "success"
    if r.get("latency_ms") is not None:
        weave["latency_ms"] = r["latency_ms"]
    if r.get("display_name"):
        weave["display_name"] = r["display_name"]
    else:
        weave["trace_name"] = r.get("op_short")
    summary["weave"] = weave
    call["summary"] = summary
    return call


def count_calls(conn: sqlite3.Connection, project_id: str, filter=None, query=None) -> int:
    cond, args = where(project_id, filter, query)
    return conn.execute(f"SELECT COUNT(*) FROM calls WHERE {cond}", args).fetchone()[0]


def status_counts(conn, project_id: str, filter=None, query=None) -> dict[str, int]:
    cond, args = where(project_id, filter, query)
    return dict(conn.execute(f"SELECT {STATUS_SQL} AS s, COUNT(*) FROM calls WHERE {cond} GROUP BY s", args))


def op_counts(conn, project_id: str, filter=None, query=None) -> dict[str, dict[str, int]]:
    """Per op short name: calls and errors."""
    cond, args = where(project_id, filter, query)
    sql = (f"SELECT op_short, COUNT(*), SUM(exception IS NOT NULL) FROM calls WHERE {cond} "
           "GROUP BY op_short ORDER BY COUNT(*) DESC")
    return {name or "?": {"calls": n, "errors": e or 0} for name, n, e in conn.execute(sql, args)}


def usage_by_model(conn, project_id: str, filter=None, query=None) -> dict[str, dict[str, int]]:
    """Token usage per model summed over the matching calls' `summary.usage`."""
    cond, args = where(project_id, filter, query)
    sql = (
        "SELECT u.key, SUM(COALESCE(json_extract(u.value, '$.requests'), 0)), "
        "SUM(COALESCE(json_extract(u.value, '$.input_tokens'), json_extract(u.value, '$.prompt_tokens'), 0)), "
        "SUM(COALESCE(json_extract(u.value, '$.output_tokens'), json_extract(u.value, '$.completion_tokens'), 0)), "
        "SUM(COALESCE(json_extract(u.value, '$.total_tokens'), 0)) "
        f"FROM (SELECT summary FROM calls WHERE {cond} AND tok_total IS NOT NULL) AS c, "
        "json_each(c.summary, '$.usage') AS u "
        "GROUP BY u.key"
    )
    return {m: {"requests": r, "input_tokens": i, "output_tokens": o, "total_tokens": t or i + o}
            for m, r, i, o, t in conn.execute(sql, args)}


def latency_by_op(conn, project_id: str, filter=None, query=None, ops: list[str] | None = None,
                  newest: int = 2000) -> tuple[dict[str, list], bool]:
    """Per op short name: the latencies (ms) of its `newest` most recent ended calls (the op index
    walked backwards), and whether any op had more."""
    out: dict[str, list] = {}
    sampled = False
    for op in ops or []:
        cond, args = where(project_id, filter, query)
        rows = conn.execute(f"SELECT latency_ms FROM calls WHERE {cond} AND op_short = ? AND latency_ms IS NOT NULL "
                            "ORDER BY started_ts DESC LIMIT ?", [*args, op, newest + 1]).fetchall()
        sampled |= len(rows) > newest
        out[op] = sorted(r[0] for r in rows[:newest])
    return out, sampled
