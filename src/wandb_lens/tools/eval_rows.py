"""Row-level evaluation tools: eval_results (one evaluation) and compare_evals (several)."""

from __future__ import annotations

import json
from typing import Any

from ..analysis import eval_outcome as eo
from ..analysis import evals as ev
from ..compact import rnd
from ..errors import LensError
from . import _base
from ._weave import (
    ROW_CAP, eval_info, eval_objects, eval_state, find_eval, label, model_of, records, row_counts, row_text,
    row_values, rows_filter,
)

MAX_LIMIT = 500
FAILED_CAP = 500  # failed rows read for the error histogram
SCAN_CAP = 2000  # rows read to find the ones that did not pass (only_failed)
MAX_COMPARE = 10
MAX_OFFSET = 1_000_000
FIELDS = 6  # dataset row fields shown per row
FIELD_CHARS = 80
COLS = ["id", "inputs", "output", "exception", "summary", "started_at", "ended_at"]


def _cell(v):
    return rnd(v, 4) if isinstance(v, float) else v


def _err_text(r: dict) -> str | None:
    return eo.error_text(r["outcome"])


def register(server, app) -> None:
    def eval_results(eval_id: str, limit: int = 50, offset: int = 0, only_failed: bool = False) -> dict:
        if limit < 1:
            raise LensError(f"limit must be >= 1 (got {limit}).")
        if offset < 0 or offset > MAX_OFFSET:
            raise LensError(f"offset must be 0..{MAX_OFFSET} (got {offset}).")
        limit = min(limit, MAX_LIMIT)
        src = app.traces
        pid, call = find_eval(app, eval_id)
        flt = rows_filter(call["id"], pid)
        counts = row_counts(src, pid, call)
        total = counts["rows"]
        order = [{"field": "started_at", "direction": "asc"}]
        scanned = None
        # a prefix of the rows in start order, so trial numbers (order of start) are right
        pool = src.calls(pid, flt, None, columns=COLS, sort_by=order,
                         limit=SCAN_CAP if only_failed else offset + limit)
        recs = records(src, pid, pool)
        if only_failed:  # rows that failed or scored false: scores live in each row's output
            scanned = len(pool)
            recs = [r for r in recs if r["passed"] is False]
            n_not_passed = len(recs)
        page = recs[offset:offset + limit]
        failed_calls = src.calls(pid, flt, {"$expr": eo.failed_expr()}, columns=COLS, sort_by=order,
                                 limit=FAILED_CAP) if counts["failed"] else []
        failed_recs = records(src, pid, failed_calls)
        vals = row_values(app, [c for c in pool if c["id"] in {r["call"] for r in page}] + failed_calls[:60])
        names = {k: row_text(v, k) for k, v in vals.items()}
        score_cols: list[str] = []
        for r in page:
            for k in r["scores"]:
                if k not in score_cols:
                    score_cols.append(k)
        trials = max((r["trial"] for r in recs), default=1)
        cols = ["row", *(["trial"] if trials > 1 else []), "call", "passed", "latency_ms", "tokens",
                *score_cols, "error"]
        rows = []
        for r in page:
            rows.append([names.get(r["row"], r["row"][:8]), *([r["trial"]] if trials > 1 else []), r["call"],
                         r["passed"], r["latency_ms"], r["tokens"], *[_cell(r["scores"].get(k)) for k in score_cols],
                         _err_text(r)])
        for r in failed_recs:
            r["row"] = names.get(r["row"], r["row"][:8])
        scope_total = n_not_passed if only_failed else total
        info = eval_info(call, eval_objects(app, [call]))
        status, why = eval_state(app, pid, call)
        out: dict[str, Any] = {
            "eval": {"id": call["id"], "name": label(call), "evaluation": info.get("name"),
                     "model": model_of(call, eval_objects(app, [call])), "dataset": info.get("dataset"),
                     "status": status},
            "rows_total": total, "trials": info.get("trials") or 1, "rows_failed": counts["failed"],
            "failed_model": counts["failed_model"], "failed_scorer": counts["failed_scorer"],
            "rows_passed": sum(r["passed"] is True for r in recs) if len(pool) == total and not only_failed else None,
            "returned": len(rows), "offset": offset, "only_failed": only_failed,
            "truncated": offset + len(rows) < scope_total or (scanned is not None and scanned < total),
            "rows": {"cols": cols, "rows": rows},
            "row_fields": _fields({names.get(r["row"], r["row"][:8]): vals.get(r["row"]) for r in page}),
            "scorer_aggregates": ev.scorer_aggregates(call.get("output")),
            "errors": ev.error_histogram(failed_recs),
        }
        note = eo.explain_status(status, total, counts["failed_model"], counts["failed_scorer"],
                                 counts["unfinished"], root_error=ev.parse_exception(call.get("exception")),
                                 idle_note=why)
        if note:
            out["status_note"] = note
        if counts["unfinished"]:
            out["rows_unfinished"] = counts["unfinished"]
        if out["rows_passed"] is None:
            del out["rows_passed"]
        if only_failed:
            out["rows_not_passed"] = n_not_passed
            if scanned is not None and scanned < total:
                out["scan_note"] = f"rows that did not pass, among the first {scanned} of {total} rows"
        if counts["failed"] > len(failed_calls):
            out["errors_note"] = f"histogram over the first {len(failed_calls)} of {counts['failed']} failed rows"
        out["legend"] = ("row: the dataset row's id field (or a digest); trial: order of start among the row's "
                         "repeats; call: the row's predict_and_score call (get_call); passed: did not fail and "
                         "every boolean score true; failed: " + eo.RULE + "; only_failed: rows that failed or "
                         "scored false; scorer_aggregates: weave's own, failed rows count as not true")
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
        labels = _labels([c for _, c in found], objs)
        evals, notes, all_calls = [], [], []
        for (pid, call), lab in zip(found, labels):
            flt = rows_filter(call["id"], pid)
            total = src.count(pid, flt)
            calls = src.calls(pid, flt, columns=COLS, sort_by=[{"field": "started_at", "direction": "asc"}],
                              limit=ROW_CAP)
            if total > len(calls):
                notes.append(f"{lab}: compared the first {len(calls)} of {total} rows")
            all_calls += calls
            info = eval_info(call, objs)
            evals.append({"id": call["id"], "label": lab, "rows": records(src, pid, calls), "total": total,
                          "dataset": info.get("dataset"), "trials": info.get("trials") or 1,
                          "model": model_of(call, objs), "evaluation": info.get("name")})
        datasets = {e["dataset"] for e in evals}
        if len(datasets) > 1:
            notes.append("different datasets (" + ", ".join(sorted(str(d) for d in datasets)) +
                         "): rows matched by content")
        result = ev.compare(evals)
        shown = set(result["all_fail"]["rows"]) | {r["row"] for r in result["disagreements"]["rows"]}
        for v in result["only_one_solves"].values():
            shown |= set(v["rows"])
        names = {k: row_text(v, k) for k, v in row_values(app, [c for c in all_calls if _key(c) in shown]).items()}
        _rename(result, names)
        out: dict[str, Any] = {
            "evals": [{"id": e["id"], "label": e["label"], "evaluation": e["evaluation"], "rows": e["total"],
                       "trials": e["trials"], "failed": sum(r["failed"] for r in e["rows"]),
                       "passed": sum(r["passed"] is True for r in e["rows"]),
                       "model": {k: v for k, v in e["model"].items() if k != "kind"}} for e in evals],
            **result,
        }
        if len(datasets) == 1:
            out["dataset"] = datasets.pop()
        if notes:
            out["note"] = "; ".join(notes)
        out["legend"] = ("rows = dataset rows x trials; passes: trials passed / trials per row; solve_rate: passed "
                         "trials / trials of matched rows; passed: did not fail and every boolean score true; "
                         "failed: " + eo.RULE + "; best/worst: mean over trials of the share of true boolean scores "
                         "(else mean numeric score), a failed row lowest, ties all named; score_means over rows "
                         "that did not fail")
        return out

    _base.add(server, eval_results,
              "One evaluation's rows (x trials): row id, trial, call id, passed, scores, error and where (model / "
              "scorer), the rows' fields; error histogram. only_failed=true: rows that failed or scored false.")
    _base.add(server, compare_evals,
              "Compare evaluations on the same dataset: solve rate over trials, k/n passes per row, rows all fail, "
              "rows only one solves, best/worst (ties named), score deltas.")


def _key(call: dict) -> str:
    from ._weave import row_key

    return row_key(call.get("inputs"))


def _labels(calls: list[dict], objs: dict) -> list[str]:
    """Labels from what differs between the models (class, then differing attributes); evaluations of
    one same model get the evaluation's name, then the call id's tail."""
    base = ev.model_labels([model_of(c, objs) for c in calls])
    out = []
    for c, b in zip(calls, base):
        out.append(b if base.count(b) == 1 else f"{b}@{eval_info(c, objs).get('name') or label(c)}")
    seen: set = set()
    for i, lab in enumerate(out):
        if out.count(lab) > 1 or lab in seen:
            out[i] = f"{lab}#{calls[i]['id'][-6:]}"
        seen.add(out[i])
    return out


def _fields(rows: dict) -> dict:
    """Each listed dataset row's fields, long values cut with their size stated."""
    out = {}
    for name, val in rows.items():
        if isinstance(val, dict):
            out[name] = {k: _cut(v) for k, v in list(val.items())[:FIELDS] if k not in ("id",)}
    return out


def _cut(v):
    if isinstance(v, str) and len(v) > FIELD_CHARS:
        return v[:FIELD_CHARS] + f"... [{len(v)} chars]"
    if isinstance(v, (dict, list)):
        text = json.dumps(v, default=str, ensure_ascii=False)
        return text if len(text) <= FIELD_CHARS else text[:FIELD_CHARS] + f"... [{len(text)} chars JSON]"
    return v


def _rename(result: dict, names: dict[str, str]) -> None:
    def n(k):
        return names.get(k, k[:8])
    result["all_fail"]["rows"] = [n(k) for k in result["all_fail"]["rows"]]
    for v in result["only_one_solves"].values():
        v["rows"] = [n(k) for k in v["rows"]]
    for r in result["disagreements"]["rows"]:
        r["row"] = n(r["row"])
