"""Weave evaluation tools: eval_health, eval_efficiency (and, via register, the row and trace tools).

Counts come from counting queries (rows and failed rows per evaluation, project totals); only the
`limit` evaluate calls listed are read in full.
"""

from __future__ import annotations

from typing import Any

from ..analysis import eval_outcome as eo
from ..analysis import evals as ev
from ..compact import rnd
from ..errors import LensError
from ..sources.weave.source import EVALUATE_OP, PREDICT_OP, op_ref, resolve_project
from . import _base
from ._weave import (
    and_query, eval_info, eval_objects, eval_state, label, minute, model_of, row_counts, since_query,
)

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
    """The newest `limit` evaluate calls with their rows by outcome; totals from counting queries."""
    if limit < 1:
        raise LensError(f"limit must be >= 1 (got {limit}).")
    src = app.traces
    pid = resolve_project(src, project)
    flt = {"op_names": [op_ref(pid, EVALUATE_OP)]}
    query = and_query(since_query(since), _name_query(name))
    total = src.count(pid, flt, query)
    calls = src.calls(pid, flt, query, sort_by=[{"field": "started_at", "direction": "desc"}],
                      limit=min(limit, MAX_LIMIT), include_costs=include_costs and src.kind == "cloud")
    objs = eval_objects(app, calls)
    models = [model_of(c, objs) for c in calls]
    labels = ev.model_labels(models)
    rows = []
    for c, m, lab in zip(calls, models, labels):
        counts = row_counts(src, pid, c)
        status, why = eval_state(app, pid, c)
        info = eval_info(c, objs)
        rows.append({"call": c, **counts, "errors": counts["failed"], "tokens": ev.tokens(c.get("summary")),
                     "cost": ev.cost(c.get("summary")), "status": status, "model": m, "model_label": lab,
                     "eval": info, "trials": info.get("trials") or 1,
                     "note": eo.explain_status(status, counts["rows"], counts["failed_model"], counts["failed_scorer"],
                                               counts["unfinished"], root_error=ev.parse_exception(c.get("exception")),
                                               idle_note=why)})
    return {"pid": pid, "flt": flt, "query": query, "total": total, "evals": rows, "objs": objs}


def _models(items: list[dict]) -> dict:
    """label -> the model's class/op and scalar attributes, once per distinct model."""
    out = {}
    for it in items:
        m = it["model"]
        out.setdefault(it["model_label"], {**({"op": m["op"]} if m.get("op") else {"class": m.get("class")}),
                                           **(m.get("attrs") or {})})
    return out


def _table(items: list[dict]) -> tuple[dict, dict]:
    """Columnar rows (keys once, not per row); evaluation name / dataset / trials hoisted when shared."""
    score_cols: list[str] = []
    for it in items:
        for k in ev.scorer_aggregates(it["call"].get("output")):
            if k not in score_cols:
                score_cols.append(k)
    shared = {}
    hoist = {"eval": lambda it: it["eval"].get("name"), "dataset": lambda it: it["eval"].get("dataset"),
             "trials": lambda it: it["trials"]}
    for key, get in hoist.items():
        vals = {get(it) for it in items} - ({None} if key != "trials" else set())
        if len(vals) <= 1:
            shared[key] = vals.pop() if vals else None
    cols = ["id", "name", *[k for k in ("eval", "dataset") if k not in shared], "started", "dur_s", "status",
            "rows", *(["trials"] if "trials" not in shared else []), "failed", "failed_model", "failed_scorer",
            "err_rate", "tok_in", "tok_out", "tok_total", "model"]
    has_cost = any(it["cost"] is not None for it in items)
    if has_cost:
        cols.append("cost")
    cols += score_cols
    out_rows = []
    for it in items:
        c, t = it["call"], it["tokens"]
        lat = ((c.get("summary") or {}).get("weave") or {}).get("latency_ms")
        row = [c["id"], label(c), *[hoist[k](it) for k in ("eval", "dataset") if k not in shared],
               minute(c.get("started_at")), rnd(lat / 1000, 3) if lat is not None else None, it["status"], it["rows"],
               *([it["trials"]] if "trials" not in shared else []), it["failed"], it["failed_model"],
               it["failed_scorer"], rnd(it["failed"] / it["rows"], 3) if it["rows"] else None,
               t.get("input"), t.get("output"), t.get("total"), it["model_label"]]
        if has_cost:
            row.append(rnd(it["cost"], 4) if it["cost"] is not None else None)
        aggs = ev.scorer_aggregates(c.get("output"))
        for k in score_cols:
            a = aggs.get(k) or {}
            v = a.get("true_fraction", a.get("mean"))
            cell = rnd(v, 3) if v is not None else None
            if "true_count" in a:
                cell = [cell, a["true_count"]]
            row.append(cell)
        out_rows.append(row)
    return {"cols": cols, "rows": out_rows}, shared


def register(server, app) -> None:
    from . import calls, eval_rows, traces

    def eval_health(project: str | None = None, limit: int = 20, name: str | None = None,
                    since: str | None = None) -> dict:
        found = list_evals(app, project, limit, name, since)
        src, pid, items = app.traces, found["pid"], found["evals"]
        if found["total"] == 0:
            where = f" matching name={name!r}" if name else ""
            where += f" since {since}" if since else ""
            return {"project": pid, "total": 0, "evals": {"cols": [], "rows": []},
                    "note": f"No Weave evaluations{where} in project {pid}."}
        table, shared = _table(items)
        status = src.status_counts(pid, found["flt"], found["query"])
        interrupted = sum(it["status"] == "interrupted" for it in items)
        if interrupted and status.get("running"):
            status["running"] -= interrupted
            status["interrupted"] = interrupted
            status = {k: v for k, v in status.items() if v}
        totals: dict[str, Any] = {"evaluations": found["total"], "status": status}
        if name or found["total"] <= len(items):  # the listed evaluations are all the matching ones
            rows_n, rows_failed = sum(it["rows"] for it in items), sum(it["failed"] for it in items)
            totals["rows_over"] = "listed evaluations"
        else:
            rflt = {"op_names": [op_ref(pid, PREDICT_OP)]}
            since_q = since_query(since)
            rows_n = src.count(pid, rflt, since_q)
            rows_failed = src.count(pid, rflt, and_query(since_q, {"$expr": eo.failed_expr()}))
        totals.update(rows=rows_n, rows_failed=rows_failed,
                      row_failure_rate=rnd(rows_failed / rows_n, 3) if rows_n else None)
        shown_tokens = sum(it["tokens"].get("total") or 0 for it in items)
        if shown_tokens:
            totals["tokens_listed"] = shown_tokens
        out: dict[str, Any] = {"project": pid, "total": found["total"], "returned": len(items),
                               "truncated": len(items) < found["total"], **shared, "evals": table,
                               "totals": totals}
        # the columns already tell "k of n rows failed (model / scorer)": notes for the other meanings
        notes = {it["call"]["id"]: it["note"] for it in items
                 if it["note"] and (it["status"] != "descendant_error" or not 0 < it["failed"] < it["rows"])}
        if notes:
            out["status_notes"] = notes
        models = {k: v for k, v in _models(items).items() if "class" in v}
        if models:
            out["models"] = models
        scorer_names = sorted({s for it in items for s in it["eval"].get("scorers", [])})
        if scorer_names:
            out["scorers"] = scorer_names
        out["legend"] = ("rows = dataset rows x trials; failed: the model raised (weave catches it: row "
                         "descendant_error, output None) or a scorer raised; status_notes: the other meanings of a "
                         "status; boolean scores [true_fraction, true_count], else mean; interrupted: no end, "
                         "writer gone or idle")
        return out

    def eval_efficiency(project: str | None = None) -> dict:
        found = list_evals(app, project, EFFICIENCY_LIMIT)
        items = found["evals"]
        rows = []
        for it in items:
            c, t = it["call"], it["tokens"]
            ok = it["rows"] - it["failed"] - it["unfinished"]
            lat = ((c.get("summary") or {}).get("weave") or {}).get("latency_ms")
            model_lat = ((c.get("output") or {}).get("model_latency") or {}) if isinstance(c.get("output"), dict) else {}
            row = {"id": c["id"], "name": label(c), "model": it["model_label"], "status": it["status"],
                   "rows": it["rows"], "failed": it["failed"], "successes": ok, "tokens": t.get("total"),
                   "tokens_per_success": _rounded(ev.per_success(t.get("total"), ok)),
                   "latency_s_per_success": _rounded(ev.per_success(lat / 1000 if lat is not None else None, ok)),
                   "model_latency_mean_s": rnd(model_lat["mean"], 3) if isinstance(model_lat.get("mean"), (int, float)) else None}
            if it["cost"] is not None:
                row["cost"] = rnd(it["cost"], 4)
                row["cost_per_success"] = _rounded(ev.per_success(it["cost"], ok))
            rows.append(row)
        out: dict[str, Any] = {"project": found["pid"], "total": found["total"], "returned": len(rows),
                               "truncated": len(rows) < found["total"], "evals": rows,
                               "legend": "successes: finished rows that did not fail (" + eo.RULE + "); latency: "
                                         "the evaluation's wall time per success"}
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
              "Weave evaluations (newest first): status explained, rows x trials, failed rows (model / scorer), "
              "tokens, model and its attributes, scorer aggregates, project totals.")
    _base.add(server, eval_efficiency,
              "Per evaluation: tokens, latency (and cost when known) per successful row; 0 successes is stated.")
    eval_rows.register(server, app)
    traces.register(server, app)
    calls.register(server, app)


def _rounded(v):
    return rnd(v, 4) if isinstance(v, float) else v
