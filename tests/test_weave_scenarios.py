"""Row outcomes, trials, model identity, row content and interrupted evaluations, on evaluations
recorded by the real weave client (tests/weave_scenarios.py), on the local store and through the
loopback trace server alike. Every expected number comes from `Evaluation.evaluate`'s own return
value or from the scenario's bookkeeping (which model / scorer raised on which row)."""

from __future__ import annotations

import pytest
import weave_scenarios as ws
from conftest import call
from weave_fixtures import API_KEY

QA = {m: f"QAModel(model_name={m})" for m in ("alpha", "beta", "gamma")}


@pytest.fixture(scope="module")
def scen(tmp_path_factory) -> dict:
    path = str(tmp_path_factory.mktemp("scen") / "traces.db")
    results = ws.record(path)
    killed_rows = ws.record_killed(path)
    return {"path": path, "results": results, "killed_rows": killed_rows}


@pytest.fixture(scope="module")
def scen_servers(scen):
    from trace_http_server import LoopbackTraceServer

    from wandb_lens.app import App, AppConfig
    from wandb_lens.server import build_server
    from wandb_lens.sources.weave.http import CloudTraceSource

    loop = LoopbackTraceServer(scen["path"], API_KEY)
    servers = {"local": build_server(AppConfig(traces_db=scen["path"]))}
    for project in (ws.PROJECT, ws.PROJECT + "-killed"):
        app = App(AppConfig(eval_idle_minutes=0.0))  # the cloud has no writer to ask: idle time only
        app.use("traces", CloudTraceSource("local", project, url=loop.url, api_key=API_KEY, timeout=5))
        servers["cloud", project] = build_server(app=app)
    yield servers
    loop.close()


@pytest.fixture(params=["local", "cloud"])
def sl(request, scen_servers):
    """sl(tool, project=..., **args) on the local store or the loopback cloud source."""
    def run(tool, project=ws.PROJECT, **args):
        if request.param == "local":
            return call(scen_servers["local"], tool, {"project": project, **args} if tool in (
                "eval_health", "eval_efficiency", "trace_stats", "query_calls", "call_schema") else args)
        return call(scen_servers["cloud", project], tool, args)
    return run


def _short(label: str) -> str:
    """'QAModel(model_name=alpha, ...)' -> 'alpha'; 'NestedModel' -> 'nested'; 'needs_prompt' -> 'broken'."""
    if "=" in label:
        return label.split("=")[1].split(",")[0].rstrip(")")
    return {"NestedModel": "nested", "needs_prompt": "broken"}.get(label, label)


def _health(sl, project=ws.PROJECT):
    out = sl("eval_health", project=project).json
    cols = out["evals"]["cols"]
    return out, {r[cols.index("model")]: dict(zip(cols, r)) for r in out["evals"]["rows"]}


def _true(result: dict, scorer="exact", key="correct") -> dict:
    return (result.get(scorer) or {}).get(key) or {}


def test_health_counts_rows_failed_by_model_and_scorer(sl, scen):
    out, rows = _health(sl)
    res = scen["results"]
    # labels from what differs between the models: model_name and temperature among the QAModels
    assert out["total"] == 6 and set(rows) == {"QAModel(model_name=down, temperature=0.0)", "NestedModel",
                                               "needs_prompt", *(
        f"QAModel(model_name={m}, temperature=0.2)" for m in ("alpha", "beta", "gamma"))}
    by = {_short(lab): r for lab, r in rows.items()}
    # rows = dataset rows x trials; failed = model raised (caught by weave) + scorer raised
    expect = {"alpha": (6, 1, 1, 0, 1), "beta": (6, 1, 2, 1, 1), "gamma": (18, 3, 3, 0, 3),
              "down": (30, 1, 30, 30, 0), "nested": (3, 1, 0, 0, 0), "broken": (4, 1, 4, 4, 0)}
    # weave aborts `broken` at the first OpCallError it re-raises: how many of the 4 rows, started
    # together, ended (failed in the model) before that is a race
    b = by["broken"]
    assert b["rows"] == 4 and 1 <= b["failed"] == b["failed_model"] <= 4 and b["failed_scorer"] == 0
    expect["broken"] = (4, 1, b["failed"], b["failed"], 0)
    for m, (n, trials, failed, f_model, f_scorer) in expect.items():
        r = by[m]
        assert (r["rows"], r["trials"], r["failed"], r["failed_model"], r["failed_scorer"]) == \
            (n, trials, failed, f_model, f_scorer), m
        agg = _true(res[m])
        if agg:  # weave's own aggregate: [true_fraction, true_count]
            assert r["exact.correct"] == [round(agg["true_fraction"], 3), agg["true_count"]]
    assert by["down"]["exact.correct"] is None and res["down"]["exact"] is None
    notes = out["status_notes"]
    assert notes[by["down"]["id"]] == "every row failed: 30 of 30 (30 in the model)"
    assert by["beta"]["id"] not in notes  # the columns tell it: 2 rows failed, 1 in the model, 1 in a scorer
    assert notes[by["nested"]["id"]].startswith("every row finished: errors raised below rows were caught")
    assert by["nested"]["status"] == "descendant_error" and by["alpha"]["status"] == "descendant_error"
    assert out["totals"]["rows"] == 6 + 6 + 18 + 30 + 3 + 4 and out["totals"]["rows_failed"] == 1 + 2 + 3 + 30 + 4
    # the model could not be called with the rows' columns: weave raised for the whole evaluation
    assert res["broken"] == {"raised": "OpCallError"} and by["broken"]["status"] == "error"
    assert notes[by["broken"]["id"]].startswith("the evaluation itself raised OpCallError: Call error: ")
    assert notes[by["broken"]["id"]].endswith("; 4 of 4 rows failed (4 in the model)")
    assert by["gamma"]["eval"] == "capitals-qa" and by["down"]["eval"] == "down-eval"
    assert by["nested"]["dataset"] == "capitals:v1" and by["alpha"]["dataset"] == "capitals:v0"
    assert out["models"]["NestedModel"] == {"class": "NestedModel"}
    assert out["models"]["QAModel(model_name=alpha, temperature=0.2)"] == {
        "class": "QAModel", "model_name": "alpha", "temperature": 0.2}


def test_efficiency_counts_model_failures(sl):
    out = sl("eval_efficiency", project=ws.PROJECT).json
    by = {_short(e["model"]): e for e in out["evals"]}
    assert (by["down"]["successes"], by["down"]["failed"]) == (0, 30)
    assert by["beta"]["successes"] == 4 and by["gamma"]["successes"] == 15 and by["nested"]["successes"] == 3


def test_results_rows_say_where_they_failed(sl, scen):
    _, rows = _health(sl)
    beta = rows["QAModel(model_name=beta, temperature=0.2)"]
    out = sl("eval_results", eval_id=beta["id"]).json
    assert (out["rows_total"], out["rows_failed"], out["failed_model"], out["failed_scorer"]) == (6, 2, 1, 1)
    assert out["status_note"] == "2 of 6 rows failed (1 in the model, 1 in a scorer)"
    assert out["eval"]["evaluation"] == "capitals-qa" and out["eval"]["dataset"] == "capitals:v0"
    assert out["eval"]["model"]["attrs"] == {"model_name": "beta", "temperature": 0.2}
    cols = out["rows"]["cols"]
    table = {r[0]: dict(zip(cols, r)) for r in out["rows"]["rows"]}
    assert "trial" not in cols
    assert table["c3"]["error"] == "ConnectionError: connection reset by peer [model]"
    assert table["c3"]["passed"] is False and table["c3"]["exact.correct"] is None
    assert table["c4"]["error"].startswith("KeyError: ") and table["c4"]["error"].endswith("[scorer LengthScorer]")
    assert "no length rule for 'Wien'" in table["c4"]["error"]
    assert sorted(k for k, r in table.items() if r["passed"]) == ["c1", "c2", "c5", "c6"]
    assert out["rows_passed"] == _true(scen["results"]["beta"])["true_count"] == 4
    assert {(e["type"], e["where"], e["count"]) for e in out["errors"]} == {
        ("ConnectionError", "model", 1), ("KeyError", "scorer LengthScorer", 1)}
    # each row's call id opens the row; the dataset row's fields are resolved, long values cut
    row = sl("get_call", call_id=table["c3"]["call"]).json
    assert row["op"] == "Evaluation.predict_and_score" and row["parent_id"] == beta["id"]
    assert row["inputs"]["example"]["question"] == "Capital of Côte d'Ivoire?"  # the row ref, resolved
    assert row["inputs"]["model"].startswith("ref:QAModel:")  # objects stay refs
    big = sl("get_call", call_id=table["c5"]["call"], depth=0).json["inputs"]["example"]["context"]
    assert big.endswith(f"... [{len(ws.BIG)} chars]") and len(big) < 400
    fields = out["row_fields"]
    assert fields["c3"]["question"] == "Capital of Côte d'Ivoire?"
    assert fields["c5"]["context"].endswith(f"... [{len(ws.BIG)} chars]") and len(fields["c5"]["context"]) < 120
    failed = sl("eval_results", eval_id=beta["id"], only_failed=True).json
    assert sorted(r[0] for r in failed["rows"]["rows"]) == ["c3", "c4"]


def test_all_rows_failing_in_the_model(sl):
    _, rows = _health(sl)
    down = rows["QAModel(model_name=down, temperature=0.0)"]
    out = sl("eval_results", eval_id=down["id"], only_failed=True).json
    assert out["rows_failed"] == 30 and out["rows_not_passed"] == 30 and out["returned"] == 30
    assert out["status_note"] == "every row failed: 30 of 30 (30 in the model)"
    cols = out["rows"]["cols"]
    assert all(r[cols.index("error")].startswith("ConnectionError: connection refused by llm-gateway:443")
               for r in out["rows"]["rows"])
    assert sum(g.get("count", g.get("other", 0)) for g in out["errors"]) == 30


def test_trials_are_counted_and_numbered(sl, scen):
    _, rows = _health(sl)
    gamma = rows["QAModel(model_name=gamma, temperature=0.2)"]
    out = sl("eval_results", eval_id=gamma["id"]).json
    assert out["rows_total"] == 18 and out["trials"] == 3
    cols = out["rows"]["cols"]
    assert cols[:3] == ["row", "trial", "call"]
    per_row: dict = {}
    for r in out["rows"]["rows"]:
        per_row.setdefault(r[0], []).append(r[1])
    assert {k: sorted(v) for k, v in per_row.items()} == {f"c{i}": [1, 2, 3] for i in range(1, 7)}
    c1 = sorted((r[1], r[cols.index("passed")]) for r in out["rows"]["rows"] if r[0] == "c1")
    assert c1 == [(1, True), (2, False), (3, True)]  # wrong in its 2nd trial only
    assert out["rows_passed"] == _true(scen["results"]["gamma"])["true_count"] == 14


def test_compare_trials_labels_ties(sl, scen):
    _, rows = _health(sl)
    ids = [rows[f"QAModel(model_name={m}, temperature=0.2)"]["id"] for m in ("alpha", "beta", "gamma")]
    out = sl("compare_evals", eval_ids=ids).json
    labels = [QA[m] for m in ("alpha", "beta", "gamma")]
    assert [e["label"] for e in out["evals"]] == labels
    assert out["rows_matched"] == 6 and out["trials_matched"] == {QA["alpha"]: 6, QA["beta"]: 6, QA["gamma"]: 18}
    for m in ("alpha", "beta", "gamma"):  # passed trials / trials == weave's exact.correct true_fraction here
        agg = _true(scen["results"][m])
        assert out["solve_rate"][QA[m]] == pytest.approx(agg["true_fraction"], abs=1e-4)
        assert 0 <= out["solve_rate"][QA[m]] <= 1
    assert out["all_fail"] == {"count": 1, "rows": ["c4"]}
    dis = {r["row"]: r for r in out["disagreements"]["rows"]}
    assert dis["c1"]["passes"] == {QA["alpha"]: "1/1", QA["beta"]: "1/1", QA["gamma"]: "2/3"}
    assert dis["c1"]["best"] == [QA["alpha"], QA["beta"]] and dis["c1"]["worst"] == [QA["gamma"]]
    assert dis["c2"]["best"] == [QA["beta"], QA["gamma"]] and dis["c2"]["worst"] == [QA["alpha"]]
    assert dis["c3"]["passes"] == {QA["alpha"]: "1/1", QA["beta"]: "0/1", QA["gamma"]: "3/3"}
    assert {e["label"]: (e["rows"], e["trials"], e["failed"], e["passed"]) for e in out["evals"]} == {
        QA["alpha"]: (6, 1, 1, 4), QA["beta"]: (6, 1, 2, 4), QA["gamma"]: (18, 3, 3, 14)}
    assert out["dataset"] == "capitals:v0"


def test_caught_errors_below_rows_are_not_failures(sl, scen):
    out, rows = _health(sl)
    nested = rows["NestedModel"]
    res = sl("eval_results", eval_id=nested["id"]).json
    assert res["rows_failed"] == 0 and res["rows_passed"] == _true(scen["results"]["nested"])["true_count"] == 3
    assert res["eval"]["name"] == "Überprüfung-nested"


def test_name_filter_folds_unicode_case(sl):
    out = sl("eval_health", project=ws.PROJECT, name="ÜBERPRÜFUNG").json
    cols = out["evals"]["cols"]
    # weave reuses the last evaluation_name for the next evaluation's display name: the broken one
    # shows "Überprüfung-nested" too; the Evaluation object's own name tells them apart
    got = {(r[cols.index("name")], r[cols.index("eval")], r[cols.index("model")]) for r in out["evals"]["rows"]}
    assert got == {("Überprüfung-nested", "nested-eval", "NestedModel"),
                   ("Überprüfung-nested", "broken-eval", "needs_prompt")}


def test_killed_recorder_is_interrupted_and_readable(sl, scen):
    project = ws.PROJECT + "-killed"
    out, rows = _health(sl, project)
    r = rows["slow_model"]
    done = scen["killed_rows"]
    assert r["status"] == "interrupted" and out["totals"]["status"] == {"interrupted": 1}
    assert r["rows"] >= done >= 4 and r["failed"] == 0
    assert out["status_notes"][r["id"]].startswith("interrupted (no end recorded;")
    res = sl("eval_results", project=project, eval_id=r["id"]).json
    assert res["eval"]["status"] == "interrupted" and res["rows_total"] == r["rows"]
    finished = [x for x in res["rows"]["rows"] if x[res["rows"]["cols"].index("passed")] is not None]
    assert len(finished) == r["rows"] - res.get("rows_unfinished", 0) >= done


def _q(sl, **args):
    return sl("query_calls", project=ws.PROJECT, **args).json


def test_query_calls_filters_match_the_bookkeeping(sl):
    raised = _q(sl, op="QAModel.predict", status="error", columns=["inputs.question"], limit=5)
    assert raised["total"] == 30 + len(ws.BETA_RAISES) and raised["returned"] == 5 and raised["truncated"] is True
    cols = raised["calls"]["cols"]
    assert cols == ["id", "op", "status", "started", "latency_ms", "inputs.question", "error"]
    assert all(r[5].startswith("q") for r in raised["calls"]["rows"][:4])  # down's rows: question refs resolved
    err = raised["calls"]["rows"][0][-1]
    assert err.startswith("ConnectionError: ") and err.endswith(" chars]")  # cut, size stated
    last = _q(sl, op="QAModel.predict", status="error", limit=5, offset=30)
    assert last["returned"] == 1 and last["truncated"] is False
    # per-row scores below 1: alpha's c2 and gamma's c1 (2nd trial) answered "?"
    low = _q(sl, op="Evaluation.predict_and_score", where=["output.scores.LengthScorer.ratio < 1"],
             columns=["output.scores.LengthScorer.ratio"])
    assert low["total"] == 2 and [r[-1] for r in low["calls"]["rows"]] == [0.2, 0.2]
    # case-folded contains, unicode equality (alpha + beta + gamma x 3 answered each)
    assert _q(sl, op="QAModel.predict", where=["output.answer contains YAMOUSSOUKRO"])["total"] == sum(
        a == "Yamoussoukro" for *_, a in ws.answers()) == 4
    assert _q(sl, op="QAModel.predict", where=['output.answer == "東京"'])["total"] == sum(
        a == "東京" for *_, a in ws.answers()) == 5
    both = _q(sl, op="QAModel.predict", where=["output.answer != null", 'output.answer contains "o"'])
    assert both["total"] == sum(a is not None and "o" in a.casefold() for *_, a in ws.answers()) == 8
    assert _q(sl, roots_only=True)["total"] == 6 and _q(sl, until="2000-01-01")["total"] == 0


def test_query_calls_tree_sort_and_size(sl):
    _, rows = _health(sl)
    beta = rows["QAModel(model_name=beta, temperature=0.2)"]
    kids = _q(sl, parent_id=beta["id"], limit=50)
    assert kids["total"] == 6 + 1  # the rows and summarize
    trace = sl("get_call", call_id=beta["id"], depth=0).json["trace_id"]
    assert _q(sl, trace_id=trace)["total"] == 1 + 7 + 6 * 3 - 1  # eval, its children, per row model + 2 scorers (beta's c3 scores nothing)
    slow = _q(sl, op="Evaluation.evaluate", sort="-latency_ms")
    lat = [r[4] for r in slow["calls"]["rows"]]
    assert lat == sorted(lat, reverse=True) and slow["sorted_by"] == "-latency_ms"
    default = sl("query_calls", project=ws.PROJECT)
    assert len(default.text.encode()) <= 4000 and default.json["returned"] == 20


def test_query_calls_bad_input_names_what_exists(sl):
    bad = sl("query_calls", project=ws.PROJECT, op="QAModel.predcit")
    assert bad.is_error and "QAModel.predict" in bad.text
    bad = sl("query_calls", project=ws.PROJECT, where=["output.usage.total_tokens >> 3"])
    assert bad.is_error and "unknown operator '>>'" in bad.text and "\n" not in bad.text.strip()
    bad = sl("query_calls", project=ws.PROJECT, op="exact", where=["output.corect == true"])
    assert bad.is_error and "output.correct" in bad.text
    bad = sl("query_calls", project=ws.PROJECT, where=["output.x > many"])
    assert bad.is_error and "'>' needs a number" in bad.text
    bad = sl("query_calls", project=ws.PROJECT, status="failed")
    assert bad.is_error and "descendant_error" in bad.text


def test_call_schema_and_children_paging(sl):
    out = sl("call_schema", project=ws.PROJECT, op="QAModel.predict").json
    assert out["calls"] == 60 and out["sampled"] == 60
    ans = out["fields"]["output.answer"]
    assert ans["type"] == "string" and ans["in"] == 60 - 31
    assert ["Paris", 5] in ans["top"] or ans["top"][0][1] == 5
    assert out["fields"]["inputs.question"]["type"] == "ref"
    _, rows = _health(sl)
    gamma = rows["QAModel(model_name=gamma, temperature=0.2)"]
    page = sl("get_call", call_id=gamma["id"], offset=15, limit=10).json["children"]
    assert (page["total"], page["offset"], page["returned"], page["truncated"]) == (19, 15, 4, False)
    assert [c["op"] for c in page["calls"]][-1] == "Evaluation.summarize"


def test_trace_stats_latency_per_op(sl):
    out = sl("trace_stats", project=ws.PROJECT).json
    top = {t["op"]: t for t in out["ops"]["top"]}
    ev_ = top["Evaluation.evaluate"]
    lat = sorted(r[4] for r in _q(sl, op="Evaluation.evaluate")["calls"]["rows"])
    n = len(lat)  # nearest rank
    assert ev_["max_ms"] == lat[-1] and ev_["p50_ms"] == lat[-(-n // 2) - 1] and ev_["p95_ms"] == lat[-1]
    assert top["QAModel.predict"]["errors"] == 31
