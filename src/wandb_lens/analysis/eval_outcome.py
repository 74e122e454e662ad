"""What happened to one evaluation row, and to one evaluation: the single definition every Weave
tool uses (eval_health, eval_results, compare_evals, eval_efficiency).

A row (one `Evaluation.predict_and_score` call, i.e. one dataset row x trial) FAILED when
- a scorer raised: weave 0.54 lets a scorer's exception end the row with status "error"
  (`exception` set, `output` None, the row's other scores lost); or
- the model could not be called with the row's columns (OpCallError): weave re-raises it, the
  row ends "error" and so does the whole evaluation;
- the model raised: weave catches it (`apply_model_async` -> ApplyModelError), so the row ends
  WITHOUT an exception, status "descendant_error", `output = {"output": None, "scores": {}}`
  ("model_output" for old-style scorers), and its model call (a direct child) holds the exception.
A row with no end time is UNFINISHED (the evaluation is running or was interrupted), never failed.
Anything else is a finished row, even when calls below it raised and were caught (a nested op
inside the model): those show as "caught errors", not failures.
"""

from __future__ import annotations

from typing import Any

from .evals import parse_exception, status_counts

OUTPUT_KEYS = ("output", "model_output")  # weave's model-output key (old-style scorers: model_output)
RULE = ("its model raised (caught by weave: row descendant_error, output None) or a scorer raised (row "
        "error); unfinished rows and caught errors are not failures")


def _status(field: str, value: str) -> dict:
    return {"$eq": [{"$getField": field}, {"$literal": value}]}


CALL_ERROR = "OpCallError"  # the model could not be called with the row's columns: weave re-raises it


def _call_error() -> dict:
    return {"$contains": {"input": {"$getField": "exception"}, "substr": {"$literal": CALL_ERROR}}}


def scorer_failed_expr() -> dict:
    """The trace-query `$expr` of rows a scorer failed (the row call raised, not an OpCallError)."""
    return {"$and": [_status("summary.weave.status", "error"), {"$not": [_call_error()]}]}


def model_failed_expr() -> dict:
    """The trace-query `$expr` of rows whose model raised (caught by weave), or could not be called."""
    caught = {"$and": [_status("summary.weave.status", "descendant_error"),
                       *({"$eq": [{"$getField": f"output.{k}"}, {"$literal": None}]} for k in OUTPUT_KEYS)]}
    return {"$or": [caught, {"$and": [_status("summary.weave.status", "error"), _call_error()]}]}


def failed_expr() -> dict:
    return {"$or": [scorer_failed_expr(), model_failed_expr()]}


def scorer_name(op: str | None) -> str:
    """'LengthScorer.score' -> 'LengthScorer'; a function scorer's op name as it is."""
    op = op or "?"
    return op[: -len(".score")] if op.endswith(".score") else op


def row_outcome(call: dict, errored_children: list[dict] | None = None, op_of=None) -> dict:
    """{'state': 'ok' | 'failed' | 'unfinished', 'where': 'model' | 'scorer <name>' | None,
    'error': {type, line}, 'caught': n caught errors below a finished row}.

    `errored_children`: the row's direct children that raised (op name via `op_of(call)`), used to
    say which scorer raised and to give a model failure its exception.
    """
    op_of = op_of or (lambda c: c.get("op_name"))
    kids = [k for k in errored_children or [] if k.get("exception")]
    if not call.get("ended_at") and not call.get("exception"):
        return {"state": "unfinished", "where": None, "error": {}}
    if call.get("exception"):
        err = parse_exception(call["exception"])
        if err.get("type") == CALL_ERROR:
            where = "model"
        else:
            where = "scorer " + scorer_name(op_of(kids[0])) if kids else "row"
        return {"state": "failed", "where": where, "error": err}
    out = call.get("output")
    n_err = status_counts(call.get("summary")).get("error", 0)
    if isinstance(out, dict) and n_err > 0 and all(out.get(k) is None for k in OUTPUT_KEYS):
        err = parse_exception(kids[0]["exception"]) if kids else {}
        return {"state": "failed", "where": "model", "error": err}
    res: dict[str, Any] = {"state": "ok", "where": None, "error": {}}
    if n_err:
        res["caught"] = n_err
    return res


def error_text(outcome: dict) -> str | None:
    """'ConnectionError: connection reset (model)' for a failed row, else None."""
    if outcome.get("state") != "failed":
        return None
    e = outcome.get("error") or {}
    head = f"{e.get('type')}: {e.get('line')}" if e else "failed (no exception recorded)"
    return f"{head} [{outcome.get('where')}]"


def explain_status(status: str, rows: int, model_failed: int, scorer_failed: int, unfinished: int = 0,
                   caught: int | None = None, root_error: dict | None = None, idle_note: str = "") -> str | None:
    """One line saying what an evaluation's status means in rows."""
    failed = model_failed + scorer_failed
    parts = [f"{n} in {w}" for n, w in ((model_failed, "the model"), (scorer_failed, "a scorer")) if n]
    where = f" ({', '.join(parts)})" if parts else ""
    if status == "error":
        e = root_error or {}
        head = f"the evaluation itself raised {e.get('type', 'an exception')}: {e.get('line', '')}".rstrip(": ")
        return head + (f"; {failed} of {rows} rows failed{where}" if failed else "")
    if status in ("running", "interrupted"):
        head = "running" if status == "running" else "interrupted (no end recorded" + (f"; {idle_note}" if idle_note else "") + ")"
        return f"{head}: {rows - unfinished} rows finished, {failed} failed{where}" + \
            (f", {unfinished} unfinished" if unfinished else "")
    if failed and failed == rows:
        return f"every row failed: {failed} of {rows}{where}"
    if failed:
        return f"{failed} of {rows} rows failed{where}"
    if status == "descendant_error":
        return "every row finished: errors raised below rows were caught" + (f" ({caught} calls)" if caught else "")
    return None
