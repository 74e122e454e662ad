"""query_runs / describe_run / list_projects on the demo runs, through an in-memory MCP client.

Expected numbers come from what the demo trainings log (wandb_lens.demo): e.g. baseline-cosine
logs train/loss every step for 800 steps and val/loss in a separate log() call every 20 steps.
"""

from __future__ import annotations

import json


def test_tools_list_names_and_read_only(demo_server):
    import anyio
    from mcp import Client

    async def go():
        async with Client(demo_server) as c:
            return (await c.list_tools()).tools

    tools = anyio.run(go)
    names = {t.name for t in tools}
    assert {"list_projects", "query_runs", "describe_run"} <= names
    for t in tools:
        assert t.annotations.read_only_hint is True, t.name
        assert "title" not in json.dumps(t.input_schema), t.name


def test_list_projects_counts_states(lens):
    r = lens("list_projects")
    assert not r.is_error
    p = r.json["projects"][0]
    assert p["project"] == "lens-demo"
    assert p["runs"] == 8
    assert p["states"] == {"finished": 6, "failed": 1, "crashed": 1}


def test_query_runs_states_config_summary(lens, demo_ids):
    r = lens("query_runs", project="lens-demo", limit=50, config_keys=["lr", "steps"], metrics=["train/loss", "loss"])
    out = r.json
    assert out["total"] == 8 and out["returned"] == 8 and out["truncated"] is False
    by_name = {row["name"]: row for row in out["runs"]}
    assert by_name["lr-too-high"]["state"] == "failed"
    assert by_name["killed-mid-run"]["state"] == "crashed"
    assert by_name["baseline-cosine"]["state"] == "finished"
    assert by_name["baseline-cosine"]["config"] == {"lr": 0.05, "steps": 800}
    assert by_name["plateau-tiny-lr"]["config"]["lr"] == 2e-06
    assert by_name["baseline-cosine"]["id"] == demo_ids["baseline-cosine"]
    assert set(by_name["baseline-cosine"]["summary"]) == {"train/loss"}
    assert set(by_name["killed-mid-run"]["summary"]) == {"loss"}


def test_query_runs_summary_matches_last_logged_value(lens):
    out = lens("query_runs", filters={"display_name": "baseline-cosine"}, metrics=["train/loss"]).json
    summary_loss = out["runs"][0]["summary"]["train/loss"]
    desc = lens("describe_run", run="lens-demo/baseline-cosine").json
    last = desc["history"]["keys"]["train/loss"]["last"]
    assert abs(last - summary_loss) <= 1e-3 * abs(last)  # listing rounds to 4 significant digits


def test_query_runs_filters_and_order(lens):
    out = lens("query_runs", filters={"tags": {"$in": ["baseline"]}}).json
    assert sorted(r["name"] for r in out["runs"]) == ["baseline-cosine", "custom-step-axis"]
    out = lens("query_runs", filters={"config.lr": {"$gte": 0.05}, "state": "finished"}, order="-config.lr").json
    assert [r["name"] for r in out["runs"]][:1] == ["custom-step-axis"] or out["runs"][0]["config"]["lr"] >= 0.05
    lrs = [r["config"]["lr"] for r in out["runs"]]
    assert lrs == sorted(lrs, reverse=True) and all(lr >= 0.05 for lr in lrs)
    out = lens("query_runs", filters={"$or": [{"group": "lr-sweep"}, {"name": {"$regex": "^over"}}]}).json
    assert out["total"] == 5
    out = lens("query_runs", filters={"summary.val/loss": {"$lt": 0.2}}, order="+summary.val/loss").json
    assert [r["name"] for r in out["runs"]] == ["baseline-cosine", "still-improving"]
    out = lens("query_runs", filters={"summary_metrics.val_loss": {"$exists": True}}).json
    assert sorted(r["name"] for r in out["runs"]) == ["lr-too-high", "overfit-wide-model", "plateau-tiny-lr"]


def test_query_runs_paging_states_total_and_cut(lens):
    out = lens("query_runs", limit=3, offset=0).json
    assert out["total"] == 8 and out["returned"] == 3 and out["truncated"] is True
    rest = lens("query_runs", limit=10, offset=3).json
    assert rest["returned"] == 5 and rest["truncated"] is False
    ids = [r["id"] for r in out["runs"]] + [r["id"] for r in rest["runs"]]
    assert len(set(ids)) == 8


def test_query_runs_default_columns_are_compact(lens):
    r = lens("query_runs")
    assert len(r.text.encode()) < 4000
    assert "null" not in r.text and "\n" not in r.text
    cols = r.json["columns"]
    assert 0 < len(cols["summary"]) <= 4 and 0 < len(cols["config"]) <= 4


def test_describe_run_counts_steps_and_candidates(lens):
    d = lens("describe_run", run="custom-step-axis").json
    keys = d["history"]["keys"]
    assert d["history"]["rows"] == 420
    assert keys["train/loss"]["n"] == 400 and keys["eval/loss"]["n"] == 20
    assert keys["eval/loss"]["steps"] == [20, 419]
    assert keys["trainer/global_step"]["max"] == 399 * 16
    assert d["step_keys"][0]["key"] == "trainer/global_step"
    assert "define_metric" in d["step_keys"][0]["why"]
    assert {"name": "eval/loss", "step_metric": "trainer/global_step"} in d["metric_defs"]


def test_describe_run_multi_cadence_keys_not_lost(lens):
    d = lens("describe_run", run="lens-demo/baseline-cosine").json
    keys = d["history"]["keys"]
    assert keys["train/loss"]["n"] == 800
    assert keys["val/loss"]["n"] == 40  # logged in its own log() call every 20 steps
    assert keys["val/loss"]["steps"] == [20, 839]
    assert d["history"]["rows"] == 840


def test_describe_run_histograms_and_nan(lens):
    d = lens("describe_run", run="spiky-bad-batches").json
    g = d["history"]["keys"]["gradients/layer0.weight"]
    assert g["kind"] == "histogram" and g["n"] == 24
    div = lens("describe_run", run="lr-too-high").json
    loss = div["history"]["keys"]["loss"]
    assert loss["n"] == 400 and loss["nan_inf"] > 0 and loss["first_nan_step"] > 0
    assert div["state"] == "failed"


def test_describe_killed_run_is_data(lens):
    d = lens("describe_run", run="killed-mid-run").json
    assert d["state"] == "crashed"
    assert d["history"]["keys"]["loss"]["n"] in (400, 401)  # steps 0..399 written, step 400 maybe lost with the process
    assert d["config"]["steps"] == 1000


def test_unknown_run_lists_close_matches(lens):
    r = lens("describe_run", run="baseline-cosin")
    assert r.is_error
    assert "baseline-cosine" in r.text and "No run" in r.text
    r = lens("describe_run", run="nope/abc")
    assert r.is_error and "Unknown project 'nope'" in r.text and "lens-demo" in r.text


def test_bad_query_arguments_are_clear_errors(lens):
    r = lens("query_runs", filters={"config.lr": {"$near": 1}})
    assert r.is_error and "Unknown filter operator '$near'" in r.text and "$regex" in r.text
    r = lens("query_runs", limit=-1)
    assert r.is_error and "limit must be >= 1" in r.text
    r = lens("query_runs", limit=10**9)
    assert not r.is_error and "capped at 200" in r.json["note"] and r.json["total"] == 8
    r = lens("query_runs", filters={"name": {"$regex": "(a+)+$"}})
    assert r.is_error and "nested quantifier" in r.text
    r = lens("query_runs", project="missing-project")
    assert r.is_error and "lens-demo" in r.text
    r = lens("describe_run", run="a/b/c/d")
    assert r.is_error and "Invalid run reference" in r.text
    # the server keeps answering after errors
    assert not lens("list_projects").is_error


def test_query_runs_order_and_filter_by_role(lens):
    """summary.val resolves per run to its own key (val/loss, val_loss, eval/loss): one true order."""
    out = lens("query_runs", order="+summary.val").json
    rows = [r for r in out["runs"] if "val" in r.get("summary", {})]
    keys = {r["name"]: r["role_keys"]["val"] for r in rows}
    assert keys["custom-step-axis"] == "eval/loss" and keys["baseline-cosine"] == "val/loss"
    assert keys["overfit-wide-model"] == "val_loss"
    values = [r["summary"]["val"] for r in rows]
    finite = [v for v in values if isinstance(v, float)]
    assert finite == sorted(finite) and len(finite) >= 5
    # eval/loss (0.083) sorts among val/loss runs by value, not last
    assert [r["name"] for r in rows][:2] == ["custom-step-axis", "baseline-cosine"]
    assert out["runs"][-1]["name"] == "killed-mid-run"  # logs no validation key: last
    assert "val/loss" not in out["columns"]["summary"]  # the role column already shows it
    out = lens("query_runs", filters={"summary.val": {"$lt": 0.2}}, order="-summary.val").json
    assert [r["name"] for r in out["runs"]] == ["still-improving", "baseline-cosine", "custom-step-axis"]
    out = lens("query_runs", filters={"summary.val": {"$gt": 1}, "state": "finished"}).json
    assert sorted(r["name"] for r in out["runs"]) == ["overfit-wide-model", "plateau-tiny-lr", "spiky-bad-batches"]
    out = lens("query_runs", filters={"summary_metrics.train": {"$exists": True}}, metrics=["train"]).json
    assert {r["role_keys"]["train"] for r in out["runs"]} >= {"train/loss", "loss", "train_loss"}
