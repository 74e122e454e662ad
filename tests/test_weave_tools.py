"""The Weave tools on real evaluations recorded by the weave library (wandb_lens.demo_weave),
on the local store and through the loopback trace-server HTTP source alike.

Expected numbers come from what the demo records: 10 rows per model; calculator-v2 solves all but
q07 and never errors; guesser-v1 solves q01 q02 q03 q05 q09 and its q04 row errors in
numeric_format; every model call reports usage with the demo's token formula.
"""

from __future__ import annotations

from conftest import call

from wandb_lens import demo_weave as dw


def _tokens(model: str) -> tuple[int, int]:
    """(prompt, completion) token sums the demo's model reports over the 10 rows."""
    p = c = 0
    for row in dw.DATASET:
        if model == "calculator-v2":
            ans = row["expected"] if row["id"] not in dw.CALCULATOR_WRONG else str(int(row["expected"]) + 1)
        elif row["id"] == dw.GUESSER_UNKNOWN:
            ans = "unknown"
        elif row["id"] in dw.GUESSER_RIGHT:
            ans = row["expected"]
        else:
            ans = str(int(row["expected"]) * 2 + 1)
        u = dw._usage(row["question"], ans)
        p, c = p + u["prompt_tokens"], c + u["completion_tokens"]
    return p, c


def _health(wlens):
    out = wlens("eval_health").json
    cols = out["evals"]["cols"]
    rows = {r[cols.index("model")]: dict(zip(cols, r)) for r in out["evals"]["rows"]}
    return out, rows


def test_eval_health_counts_tokens_scores(wlens, weave_db):
    out, rows = _health(wlens)
    assert out["total"] == 3 and out["returned"] == 3 and out["truncated"] is False
    assert out["totals"]["status"] == {"success": 1, "descendant_error": 1, "running": 1}
    assert out["totals"]["rows"] == 20 and out["totals"]["rows_failed"] == 1
    calc, guess = rows["calculator-v2"], rows["guesser-v1"]
    assert (calc["status"], calc["rows"], calc["failed"], calc["err_rate"]) == ("success", 10, 0, 0)
    assert (guess["status"], guess["rows"], guess["failed"], guess["err_rate"]) == ("descendant_error", 10, 1, 0.1)
    assert (guess["failed_model"], guess["failed_scorer"]) == (0, 1)
    assert guess["id"] not in out.get("status_notes", {})  # the columns say it: 1 row failed, in a scorer
    for name, row in (("calculator-v2", calc), ("guesser-v1", guess)):
        p, c = _tokens(name)
        assert (row["tok_in"], row["tok_out"], row["tok_total"]) == (p, c, p + c)
        recorded = weave_db["results"][name]
        agg = recorded["exact_match"]["correct"]
        assert row["exact_match.correct"] == [round(agg["true_fraction"], 3), agg["true_count"]]
    assert calc["exact_match.correct"] == [0.9, 9] and guess["exact_match.correct"] == [0.5, 5]
    assert out["dataset"].startswith("arith-qa:")
    assert out["scorers"] == ["exact_match", "numeric_format"]
    cols = out["evals"]["cols"]
    running = [r for r in out["evals"]["rows"] if r[0] == weave_db["running"]][0]
    assert running[cols.index("status")] == "running" and running[cols.index("rows")] == 0


def test_eval_health_limit_name_since(wlens):
    out = wlens("eval_health", limit=1).json
    assert out["total"] == 3 and out["returned"] == 1 and out["truncated"] is True
    out = wlens("eval_health", name="guesser").json
    assert out["total"] == 1 and out["evals"]["rows"][0][out["evals"]["cols"].index("model")] == "guesser-v1"
    assert wlens("eval_health", since="2000-01-01").json["total"] == 3
    empty = wlens("eval_health", since="2999-01-01").json
    assert empty["total"] == 0 and "No Weave evaluations" in empty["note"]
    bad = wlens("eval_health", since="last tuesday")
    assert bad.is_error and "not a date" in bad.text


def test_eval_results_rows_errors_histogram(wlens):
    _, rows = _health(wlens)
    out = wlens("eval_results", eval_id=rows["guesser-v1"]["id"]).json
    assert out["rows_total"] == 10 and out["rows_failed"] == 1 and out["rows_passed"] == 5
    assert out["returned"] == 10 and out["truncated"] is False
    cols = out["rows"]["cols"]
    table = {r[0]: dict(zip(cols, r)) for r in out["rows"]["rows"]}
    assert sorted(k for k, r in table.items() if r["passed"]) == sorted(dw.GUESSER_RIGHT)
    assert table["q04"]["error"] == "ValueError: answer 'unknown' is not a number [scorer numeric_format]"
    assert table["q04"]["exact_match.correct"] is None
    assert table["q01"]["numeric_format.digits"] == 1 and table["q01"]["exact_match.correct"] is True
    p, c = dw._usage("2 + 3", "5")["prompt_tokens"], dw._usage("2 + 3", "5")["completion_tokens"]
    assert table["q01"]["tokens"] == p + c
    assert out["errors"] == [{"type": "ValueError", "line": "answer 'unknown' is not a number",
                              "where": "scorer numeric_format", "count": 1, "rows": ["q04"]}]
    assert out["scorer_aggregates"]["exact_match.correct"] == {"true_fraction": 0.5, "true_count": 5}
    failed = wlens("eval_results", eval_id=rows["guesser-v1"]["id"], only_failed=True).json
    # the row that raised and the rows answered wrong: everything the guesser did not get right
    not_right = sorted({r["id"] for r in dw.DATASET} - dw.GUESSER_RIGHT)
    assert sorted(r[0] for r in failed["rows"]["rows"]) == not_right and failed["truncated"] is False
    assert failed["rows_not_passed"] == len(not_right) == 5 and failed["rows_failed"] == 1
    few = wlens("eval_results", eval_id=rows["guesser-v1"]["id"], only_failed=True, limit=2).json
    assert few["returned"] == 2 and few["truncated"] is True and few["rows_not_passed"] == 5
    cut = wlens("eval_results", eval_id=rows["calculator-v2"]["id"], limit=3).json
    assert cut["returned"] == 3 and cut["truncated"] is True and cut["rows_total"] == 10


def test_compare_evals(wlens):
    _, rows = _health(wlens)
    out = wlens("compare_evals", eval_ids=[rows["calculator-v2"]["id"], rows["guesser-v1"]["id"]]).json
    assert out["rows_matched"] == 10 and out["rows_unmatched"] == 0
    assert out["solve_rate"] == {"calculator-v2": 0.9, "guesser-v1": 0.5}
    assert out["all_fail"] == {"count": 1, "rows": ["q07"]}
    only = sorted({r["id"] for r in dw.DATASET} - dw.GUESSER_RIGHT - dw.CALCULATOR_WRONG)
    assert out["only_one_solves"] == {"calculator-v2": {"count": 4, "rows": only}}
    q04 = [r for r in out["disagreements"]["rows"] if r["row"] == "q04"][0]
    assert q04["passes"] == {"calculator-v2": "1/1", "guesser-v1": "0/1"} and q04["worst"] == ["guesser-v1"]
    deltas = out["score_means"]["exact_match.correct"]
    assert deltas["calculator-v2"] == 0.9 and abs(deltas["guesser-v1"] - 5 / 9) < 1e-4
    assert {e["label"]: (e["failed"], e["passed"]) for e in out["evals"]} == {
        "calculator-v2": (0, 9), "guesser-v1": (1, 5)}


def test_eval_efficiency(wlens):
    out = wlens("eval_efficiency").json
    by = {e["model"]: e for e in out["evals"] if e.get("model") in ("calculator-v2", "guesser-v1")}
    p, c = _tokens("guesser-v1")
    assert by["guesser-v1"]["successes"] == 9 and by["guesser-v1"]["tokens_per_success"] == round((p + c) / 9, 2)
    p, c = _tokens("calculator-v2")
    assert by["calculator-v2"]["tokens_per_success"] == (p + c) / 10
    assert out["fewest_tokens_per_success"] == by["calculator-v2"]["id"]


def test_trace_stats_counts(wlens):
    out = wlens("trace_stats").json
    # per eval: evaluate + summarize + 10 x (predict_and_score + model + 2 scorers); plus the running one
    assert out["calls"] == 2 * (2 + 10 * 4) + 1 and out["roots"] == 3
    assert out["status"] == {"success": 81, "error": 2, "descendant_error": 1, "running": 1}
    assert out["errors"] == 2
    top = {o["op"]: o for o in out["ops"]["top"]}
    pas = top["Evaluation.predict_and_score"]
    assert (pas["calls"], pas["errors"]) == (20, 1) and 0 <= pas["p50_ms"] <= pas["p95_ms"] <= pas["max_ms"]
    assert top["numeric_format"]["errors"] == 1 and top["Evaluation.evaluate"]["calls"] == 3
    tin = sum(_tokens(m)[0] for m in ("calculator-v2", "guesser-v1"))
    tout = sum(_tokens(m)[1] for m in ("calculator-v2", "guesser-v1"))
    assert (out["tokens"]["input"], out["tokens"]["output"], out["tokens"]["total"]) == (tin, tout, tin + tout)
    assert out["tokens"]["requests"] == 20 and list(out["tokens"]["by_model"]) == [dw.MODEL]
    ops = wlens("trace_stats", op="numeric_format").json
    assert ops["calls"] == 20 and ops["errors"] == 1 and ops["roots"] == 0
    roots = wlens("trace_stats", roots_only=True).json
    assert roots["calls"] == 3 and roots["status"] == {"success": 1, "descendant_error": 1, "running": 1}
    bad = wlens("trace_stats", op="numeric_fromat")
    assert bad.is_error and "numeric_format" in bad.text


def test_get_call_plain_json_and_children(wlens):
    _, rows = _health(wlens)
    out = wlens("get_call", call_id=rows["guesser-v1"]["id"]).json
    assert out["op"] == "Evaluation.evaluate" and out["status"] == "descendant_error"
    assert out["inputs"]["model"].startswith("ref:guesser-v1:")
    assert out["status_counts"]["error"] == 2  # the failed row and the scorer that raised
    kids = out["children"]
    assert kids["total"] == 11 and kids["truncated"] is False
    assert kids["by_op"]["Evaluation.predict_and_score"] == {"calls": 10, "errors": 1}
    failed_row = [k for k in kids["calls"] if k["status"] == "error"][0]
    row = wlens("get_call", call_id=failed_row["id"], depth=2).json
    assert row["error"]["type"] == "ValueError" and row["output"] is None if "output" in row else True
    assert {k["op"] for k in row["children"]["calls"]} == {"guesser-v1", "exact_match", "numeric_format"}
    assert all(k["children"] == 0 for k in row["children"]["calls"])
    assert "children" not in wlens("get_call", call_id=failed_row["id"], depth=0).json


def test_cost_from_the_trace_server(cloud_server, weave_server):
    """W&B's trace server prices usage (summary.weave.costs with include_costs); a local store cannot."""
    from trace_http_server import PRICES

    from wandb_lens.compact import rnd

    unit_p, unit_c = PRICES[dw.MODEL]
    out = call(cloud_server, "eval_efficiency", {}).json
    by = {e["model"]: e for e in out["evals"]}
    for name in ("calculator-v2", "guesser-v1"):
        p, c = _tokens(name)
        assert by[name]["cost"] == rnd(p * unit_p + c * unit_c, 4) > 0
    ts = call(cloud_server, "trace_stats", {}).json
    p = sum(_tokens(m)[0] for m in ("calculator-v2", "guesser-v1"))
    c = sum(_tokens(m)[1] for m in ("calculator-v2", "guesser-v1"))
    assert ts["tokens"]["cost"] == rnd(p * unit_p + c * unit_c, 4) > 0
    local = call(weave_server, "trace_stats", {}).json
    assert "cost" not in local["tokens"] and "no cost from a local store" in local["cost_note"]
