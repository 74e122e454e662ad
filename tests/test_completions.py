"""completion/complete through the SDK client: resource-template and prompt arguments from the sources."""

from __future__ import annotations

import anyio


def _complete(server, ref, name: str, value: str, context: dict | None = None):
    from mcp import Client

    async def go():
        async with Client(server) as client:
            return (await client.complete(ref, {"name": name, "value": value}, context)).completion

    return anyio.run(go)


def _template(uri: str):
    from mcp.types import ResourceTemplateReference

    return ResourceTemplateReference(type="ref/resource", uri=uri)


def _prompt(name: str):
    from mcp.types import PromptReference

    return PromptReference(type="ref/prompt", name=name)


def test_run_template_completes_project_then_run_id(demo_server, demo_ids):
    got = _complete(demo_server, _template("wandb-lens://runs/{project}/{run_id}"), "project", "lens")
    assert got.values == ["lens-demo"] and got.total == 1 and got.has_more is False
    ids = _complete(demo_server, _template("wandb-lens://runs/{project}/{run_id}"), "run_id", "",
                    {"project": "lens-demo"})
    assert set(demo_ids.values()) <= set(ids.values)  # ids and names of the project's runs
    some = next(iter(demo_ids.values()))
    one = _complete(demo_server, _template("wandb-lens://runs/{project}/{run_id}/overview.png"), "run_id",
                    some[:6].upper(), {"project": "lens-demo"})
    assert some in one.values and all(v.lower().startswith(some[:6].lower()) for v in one.values)
    none = _complete(demo_server, _template("wandb-lens://runs/{project}/{run_id}"), "run_id", "x",
                     {"project": "no-such-project"})
    assert none.values == []


def test_prompt_arguments_complete_runs_metrics_and_projects(demo_server, demo_ids):
    name = "baseline-cosine"
    got = _complete(demo_server, _prompt("diagnose_training_run"), "run", "baseline-c")
    assert name in got.values
    runs = _complete(demo_server, _prompt("compare_training_runs"), "runs", "still-improving, baseline-c")
    assert runs.values == ["still-improving, baseline-cosine"]
    metric = _complete(demo_server, _prompt("compare_training_runs"), "metric", "va")
    assert "val" in metric.values and any(v.startswith("val") and v != "val" for v in metric.values)
    project = _complete(demo_server, _prompt("project_overview"), "project", "")
    assert project.values == ["lens-demo"]


def test_completions_are_capped_at_100(demo_server):
    got = _complete(demo_server, _prompt("diagnose_training_run"), "run", "")
    assert len(got.values) <= 100 and got.total >= len(got.values)
    assert got.has_more is (got.total > 100)


def test_eval_ids_complete_from_the_trace_store(weave_server):
    from wandb_lens.demo_weave import PROJECT

    every = _complete(weave_server, _prompt("eval_error_analysis"), "eval_id", "")
    assert every.values and every.total == len(every.values)
    first = every.values[0]
    one = _complete(weave_server, _prompt("eval_error_analysis"), "eval_id", first[:8])
    assert first in one.values and all(v.startswith(first[:8]) for v in one.values)
    projects = _complete(weave_server, _prompt("weave_eval_report"), "project", "")
    assert any(p.endswith(PROJECT) for p in projects.values)


def test_a_source_that_cannot_answer_offers_nothing(demo_server):
    """No trace store configured: no eval ids, no error."""
    got = _complete(demo_server, _prompt("eval_error_analysis"), "eval_id", "a")
    assert got.values == []
