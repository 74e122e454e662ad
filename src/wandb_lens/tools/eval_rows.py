"""Row-level evaluation tools: eval_results (one evaluation) and compare_evals (several)."""

from __future__ import annotations

from typing import Any

from ..analysis import evals as ev
from ..compact import rnd
from ..errors import LensError
from . import _base
from ._weave import (
    ROW_CAP, eval_objects, find_eval, label, model_name, row_labels, row_record, rows_filter, status_is,
)

MAX_LIMIT = 500
FAILED_CAP = 500  # failed rows read for the error histogram
SCAN_CAP = 2000  # rows read to find the ones that did not pass (only_failed)
MAX_COMPARE = 10


def _cell(v):
    return rnd(v, 4) if isinstance(v, float) else v


def register(server, app) -> None:
    def eval_results(eval_id: str, limit: int = 50, only_failed: bool = False) -> dict:
        if limit < 1:
            raise LensError(f"limit must be >= 1 (got {limit}).")
        limit = min(limit, MAX_LIMIT)
        src = app.traces
        pid, call = find_eval(app, eval_id)
        flt = rows_filter(call["id"], pid)
        total = src.count(pid, flt)
        n_failed = src.count(pid, flt, status_is("error"))
        cols_read = ["id", "inputs", "output", "exception", "summary", "started_at"]
        order = [{"field": "started_at", "direction": "asc"}]
        scanned = None
        if only_failed:  # rows that raised or scored false: scores live in each row's output
            pool = src.calls(pid, flt, None, columns=cols_read, sort_by=order, limit=SCAN_CAP)
            scanned = len(pool)
            calls = [c for c in pool if row_record(c)["passed"] is False]
            n_not_passed = len(calls)
            calls = calls[:limit]
        else:
            calls = src.calls(pid, flt, None, columns=cols_read, sort_by=order, limit=limit)
        failed_calls = src.calls(pid, flt, status_is("error"), columns=["id", "inputs", "exception"],
                                 limit=FAILED_CAP) if n_failed else []
        names = row_labels(app, calls + failed_calls[:60])
        recs = [row_record(c) for c in calls]
        score_cols: list[str] = []
        for r in recs:
            for k in r["scores"]:
                if k not in score_cols:
                    score_cols.append(k)
        cols = ["row", "passed", "latency_ms", "tokens", *score_cols, "error"]
        rows = []
        for r in recs:
            err = r["error"]
            err_text = f"{err.get('type')}: {err.get('line')}" + (f" (in {err['where']})" if err.get("where") else "") \
                if err else None
            rows.append([names.get(r["row"], r["row"][:8]), r["passed"], r["latency_ms"], r["tokens"],
                         *[_cell(r["scores"].get(k)) for k in score_cols], err_text])
        failed_recs = [dict(row_record(c), row=names.get(row_record(c)["row"], row_record(c)["row"][:8]))
                       for c in failed_calls]
        scope_total = n_not_passed if only_failed else total
        out: dict[str, Any] = {
            "eval": {"id": call["id"], "name": label(call), "model": model_name(call), "status": ev.call_status(call)},
            "rows_total": total, "rows_errored": n_failed,
            "rows_passed": sum(r["passed"] is True for r in recs) if len(recs) == total else None,
            "returned": len(rows), "only_failed": only_failed,
            "truncated": len(rows) < scope_total or (scanned is not None and scanned < total),
            "rows": {"cols": cols, "rows": rows},
            "scorer_aggregates": ev.scorer_aggregates(call.get("output")),
            "errors": ev.error_histogram(failed_recs),
        }
        if out["rows_passed"] is None:
            del out["rows_passed"]
        if only_failed:
            out["rows_not_passed"] = n_not_passed
            if scanned is not None and scanned < total:
                out["scan_note"] = f"rows that did not pass, among the first {scanned} of {total} rows"
        if n_failed > len(failed_calls):
            out["errors_note"] = f"histogram over the first {len(failed_calls)} of {n_failed} failed rows"
        out["legend"] = ("row: the dataset row's id field (or a digest); passed: no error and every boolean "
                         "score true; only_failed: rows that raised or scored false; rows_errored: rows that raised; "
                         "scorer_aggregates: weave's summary, errored rows count as not true")
        return out

    def compare_evals(eval_ids: list[str]) -> dict:
        ids = list(dict.fromkeys(eval_ids or []))
        if len(ids) < 2:
            raise LensError("compare_evals needs at least two distinct evaluation ids (see eval_health).")
        if len(ids) > MAX_COMPARE:
            raise LensError(f"compare_evals takes at most {MAX_COMPARE} evaluations (got {len(ids)}).")
        src = app.traces
        found = [find_eval(app, i) for i in ids]
        objs = eval_objects(app, [c for _, c in found])
        labels = _labels([c for _, c in found])
        evals, notes, all_calls = [], [], []
        for (pid, call), lab in zip(found, labels):
            flt = rows_filter(call["id"], pid)
            total = src.count(pid, flt)
            calls = src.calls(pid, flt, columns=["id", "inputs", "output", "exception", "summary"],
                              sort_by=[{"field": "started_at", "direction": "asc"}], limit=ROW_CAP)
            if total > len(calls):
                notes.append(f"{lab}: compared the first {len(calls)} of {total} rows")
            all_calls += calls
            recs = [row_record(c) for c in calls]
            evals.append({"id": call["id"], "label": lab, "rows": recs, "total": total,
                          "dataset": (objs.get((call.get("inputs") or {}).get("self")) or {}).get("dataset")})
        datasets = {e["dataset"] for e in evals}
        if len(datasets) > 1:
            notes.append("different datasets (" + ", ".join(sorted(str(d) for d in datasets)) +
                         "): rows matched by content")
        result = ev.compare(evals)
        shown = set(result["all_fail"]["rows"]) | {r["row"] for r in result["disagreements"]["rows"]}
        for v in result["only_one_solves"].values():
            shown |= set(v["rows"])
        names = row_labels(app, [c for c in all_calls if _key(c) in shown])
        _rename(result, names)
        out: dict[str, Any] = {
            "evals": [{"id": e["id"], "label": e["label"], "rows": e["total"],
                       "failed": sum(r["failed"] for r in e["rows"]),
                       "solved": sum(r["passed"] is True for r in e["rows"])} for e in evals],
            **result,
        }
        if len(datasets) == 1:
            out["dataset"] = datasets.pop()
        if notes:
            out["note"] = "; ".join(notes)
        out["legend"] = ("solved: no error and every boolean score true; best/worst per row: share of true boolean "
                         "scores (else mean numeric score), an error ranks lowest; score_means over rows without errors")
        return out

    _base.add(server, eval_results,
              "One evaluation's rows: row id, passed, latency, tokens, each score, first error line; scorer "
              "aggregates and an error histogram. only_failed=true: rows that raised or scored false.")
    _base.add(server, compare_evals,
              "Compare evaluations on the same dataset: solve rate, rows all fail, rows only one solves, "
              "best/worst per row, score deltas per scorer. eval_ids: 2-10 ids from eval_health.")


def _key(call: dict) -> str:
    from ._weave import row_key

    return row_key(call.get("inputs"))


def _labels(calls: list[dict]) -> list[str]:
    """Model names, made unique (with the eval's name or id) when two evaluations share a model."""
    base = [model_name(c) or label(c) for c in calls]
    out = []
    for c, b in zip(calls, base):
        out.append(b if base.count(b) == 1 else f"{b}@{label(c)}")
    seen: dict[str, int] = {}
    for i, lab in enumerate(out):
        if lab in seen:
            out[i] = f"{lab}#{calls[i]['id'][-6:]}"
        seen[lab] = i
    return out


def _rename(result: dict, names: dict[str, str]) -> None:
    def n(k):
        return names.get(k, k[:8])
    result["all_fail"]["rows"] = [n(k) for k in result["all_fail"]["rows"]]
    for v in result["only_one_solves"].values():
        v["rows"] = [n(k) for k in v["rows"]]
    for r in result["disagreements"]["rows"]:
        r["row"] = n(r["row"])
