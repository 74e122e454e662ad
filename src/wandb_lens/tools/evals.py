"""Weave evaluation tools: eval_health, eval_efficiency (and, via register, the row and trace tools).

Counts come from counting queries (rows and failed rows per evaluation, project totals); only the
`limit` evaluate calls listed are read in full.
"""

from __future__ import annotations

from typing import Any

from ..analysis import evals as ev
from ..compact import rnd
from ..errors import LensError
from ..sources.weave.source import EVALUATE_OP, PREDICT_OP, op_ref, resolve_project
from . import _base
from ._weave import and_query, eval_objects, label, minute, model_name, rows_filter, since_query, status_is

MAX_LIMIT = 100
EFFICIENCY_LIMIT = 20


def _name_query(name: str | None) -> dict | None:
    if not name:
        return None
    lit = {"$literal": name}
    return {"$expr": {"$or": [
        {"$contains": {"input": {"$getField": f}, "substr": lit, "case_insensitive": True}}
        for f in ("display_name", "inputs.self", "inputs.model")]}}


def list_evals(app, project, limit, name=None, since=None, include_costs=True) -> dict[str, Any]:
    """The newest `limit` evaluate calls with their row counts; totals from counting queries."""
    if limit < 1:
        raise LensError(f"limit must be >= 1 (got {limit}).")
    src = app.traces
    pid = resolve_project(src, project)
    flt = {"op_names": [op_ref(pid, EVALUATE_OP)]}
    query = and_query(since_query(since), _name_query(name))
    total = src.count(pid, flt, query)
    calls = src.calls(pid, flt, query, sort_by=[{"field": "started_at", "direction": "desc"}],
                      limit=min(limit, MAX_LIMIT), include_costs=include_costs and src.kind == "cloud")
    rows = []
    for c in calls:
        n = src.count(pid, rows_filter(c["id"], pid))
        failed = src.count(pid, rows_filter(c["id"], pid), status_is("error")) if n else 0
        rows.append({"call": c, "rows": n, "errors": failed, "tokens": ev.tokens(c.get("summary")),
                     "cost": ev.cost(c.get("summary")), "status": ev.call_status(c)})
    return {"pid": pid, "flt": flt, "query": query, "total": total, "evals": rows}


def _table(items: list[dict], objs: dict) -> tuple[dict, dict]:
    """Columnar rows (keys once, not per row); dataset / scorers hoisted when shared."""
    score_cols: list[str] = []
    for it in items:
        for k in ev.scorer_aggregates(it["call"].get("output")):
            if k not in score_cols:
                score_cols.append(k)
    datasets = {(objs.get((it["call"].get("inputs") or {}).get("self")) or {}).get("dataset") for it in items}
    datasets.discard(None)
    shared = {}
    if len(datasets) <= 1:
        shared["dataset"] = datasets.pop() if datasets else None
    cols = ["id", "name", "started", "dur_s", "status", "rows", "errors", "err_rate", "tok_in", "tok_out",
            "tok_total", "model"]
    has_cost = any(it["cost"] is not None for it in items)
    if has_cost:
        cols.append("cost")
    if "dataset" not in shared:
        cols.append("dataset")
    cols += score_cols
    out_rows = []
    for it in items:
        c, t = it["call"], it["tokens"]
        lat = ((c.get("summary") or {}).get("weave") or {}).get("latency_ms")
        row = [c["id"], label(c), minute(c.get("started_at")), rnd(lat / 1000, 3) if lat is not None else None,
               it["status"], it["rows"], it["errors"],
               rnd(it["errors"] / it["rows"], 3) if it["rows"] else None,
               t.get("input"), t.get("output"), t.get("total"), model_name(c)]
        if has_cost:
            row.append(rnd(it["cost"], 4) if it["cost"] is not None else None)
        if "dataset" not in shared:
            row.append((objs.get((c.get("inputs") or {}).get("self")) or {}).get("dataset"))
        aggs = ev.scorer_aggregates(c.get("output"))
        for k in score_cols:
            a = aggs.get(k) or {}
            v = a.get("true_fraction", a.get("mean"))
            row.append(rnd(v, 3) if v is not None else None)
        out_rows.append(row)
    return {"cols": cols, "rows": out_rows}, shared


def register(server, app) -> None:
    from . import eval_rows, traces

    def eval_health(project: str | None = None, limit: int = 20, name: str | None = None,
                    since: str | None = None) -> dict:
        found = list_evals(app, project, limit, name, since)
        src, pid, items = app.traces, found["pid"], found["evals"]
        if found["total"] == 0:
            where = f" matching name={name!r}" if name else ""
            where += f" since {since}" if since else ""
            return {"project": pid, "total": 0, "evals": {"cols": [], "rows": []},
                    "note": f"No Weave evaluations{where} in project {pid}."}
        objs = eval_objects(app, [it["call"] for it in items])
        table, shared = _table(items, objs)
        status = src.status_counts(pid, found["flt"], found["query"])
        totals: dict[str, Any] = {"evaluations": found["total"], "status": status}
        if name:  # rows of the matching evaluations only: sum over the listed ones
            rows_n, rows_err = sum(it["rows"] for it in items), sum(it["errors"] for it in items)
            totals["rows_over"] = "listed evaluations"
        else:
            rflt = {"op_names": [op_ref(pid, PREDICT_OP)]}
            since_q = since_query(since)
            rows_n = src.count(pid, rflt, since_q)
            rows_err = src.count(pid, rflt, and_query(since_q, status_is("error")))
        totals.update(rows=rows_n, row_errors=rows_err, row_error_rate=rnd(rows_err / rows_n, 3) if rows_n else None)
        shown_tokens = sum(it["tokens"].get("total") or 0 for it in items)
        if shown_tokens:
            totals["tokens_listed"] = shown_tokens
        out: dict[str, Any] = {"project": pid, "total": found["total"], "returned": len(items),
                               "truncated": len(items) < found["total"], **shared, "evals": table,
                               "totals": totals}
        scorer_names = sorted({s for o in objs.values() for s in o.get("scorers", [])})
        if scorer_names:
            out["scorers"] = scorer_names
        out["legend"] = ("score columns: true_fraction for boolean scores (failed rows count as not true), "
                         "else mean; rows = predict_and_score calls; errors = failed rows")
        return out

    def eval_efficiency(project: str | None = None) -> dict:
        found = list_evals(app, project, EFFICIENCY_LIMIT)
        items = found["evals"]
        rows = []
        for it in items:
            c, t = it["call"], it["tokens"]
            ok = it["rows"] - it["errors"]
            lat = ((c.get("summary") or {}).get("weave") or {}).get("latency_ms")
            model_lat = ((c.get("output") or {}).get("model_latency") or {}) if isinstance(c.get("output"), dict) else {}
            row = {"id": c["id"], "name": label(c), "model": model_name(c), "status": it["status"],
                   "rows": it["rows"], "successes": ok, "tokens": t.get("total"),
                   "tokens_per_success": _rounded(ev.per_success(t.get("total"), ok)),
                   "latency_s_per_success": _rounded(ev.per_success(lat / 1000 if lat is not None else None, ok)),
                   "model_latency_mean_s": rnd(model_lat["mean"], 3) if isinstance(model_lat.get("mean"), (int, float)) else None}
            if it["cost"] is not None:
                row["cost"] = rnd(it["cost"], 4)
                row["cost_per_success"] = _rounded(ev.per_success(it["cost"], ok))
            rows.append(row)
        out: dict[str, Any] = {"project": found["pid"], "total": found["total"], "returned": len(rows),
                               "truncated": len(rows) < found["total"], "evals": rows,
                               "legend": "successes: rows that finished without error; latency: the "
                                         "evaluation's wall time per success"}
        ranked = [r for r in rows if isinstance(r["tokens_per_success"], (int, float))]
        if ranked:
            out["fewest_tokens_per_success"] = min(ranked, key=lambda r: r["tokens_per_success"])["id"]
        if not found["total"]:
            out["note"] = f"No Weave evaluations in project {found['pid']}."
        elif not any(r["tokens"] for r in rows):
            out["note"] = ("No token usage recorded: weave rolls usage up only when an op's output carries "
                           "both 'usage' and 'model'.")
        if app.traces.kind == "local":
            out["cost_note"] = "cost is not available from a local store (no price table)"
        return out

    _base.add(server, eval_health,
              "Weave evaluations (newest first): status, rows, failed rows, error rate, tokens, model, scorer "
              "aggregates, plus project totals. since: ISO date or '7d'; name: substring of eval/model name.")
    _base.add(server, eval_efficiency,
              "Per evaluation: tokens, latency (and cost when known) per successful row; 0 successes is stated.")
    eval_rows.register(server, app)
    traces.register(server, app)


def _rounded(v):
    return rnd(v, 4) if isinstance(v, float) else v
