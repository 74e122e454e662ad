"""Analysis workflows as MCP prompts: which tools to call, in what order, and the answer format."""

from __future__ import annotations

VERDICT_FORMAT = (
    "Answer in this format:\n"
    "Verdict: <healthy | unstable | overfit | plateaued | diverged | converged>\n"
    "Evidence:\n- <step range> - <what the numbers and the plot show>\n"
    "Next actions:\n- <a concrete change: a hyperparameter, logging, or code>"
)


def diagnose_training_run(run: str) -> str:
    return (
        f"Diagnose the W&B training run {run!r}.\n"
        f"1. describe_run(run={run!r}): note its state (a crashed or running run is judged on what it "
        "logged), the history keys, and the step-key candidates. If they disagree, say which x-axis you use.\n"
        f"2. diagnose_run(run={run!r}): the verdict with its evidence and next actions.\n"
        f"3. plot_overview(run={run!r}): look at the image; check the verdict against the picture "
        "(spike trains, a noisy band, the schedule shape).\n"
        "4. If the run logs gradient histograms or per-layer norms, plot_grad_histograms / "
        "plot_grad_norm_by_layer for dead layers or late widening.\n"
        "5. When the numbers and the picture disagree, read wandb-lens://docs/training-diagnostics.\n"
        + VERDICT_FORMAT
    )


def compare_training_runs(runs: str, metric: str) -> str:
    return (
        f"Compare these W&B runs on {metric!r}: {runs}.\n"
        f"1. compare_runs(runs=[...], metric={metric!r}): the ranking (final-10% mean, best value and step, "
        "tail slope, smoothness, spikes, verdict), ties judged with the noise, and the config keys that differ.\n"
        f"2. plot_comparison(runs=[...], metric={metric!r}, highlight=<the best run>): at most 6 runs on one axis.\n"
        "3. For the best and the worst run, diagnose_run to explain the difference.\n"
        "Answer with: the ranking table (run, final, best@step, verdict), which config differences "
        "explain it, and the run to continue from.\n" + VERDICT_FORMAT.replace("Verdict:", "Verdict of the best run:")
    )


def project_overview(project: str) -> str:
    return (
        f"Give an overview of the W&B project {project!r}.\n"
        "1. list_projects: how many runs, in which states.\n"
        f"2. query_runs(project={project!r}, order=\"-created_at\"): the latest runs; then the best ones by "
        "the main validation metric (order=\"+summary.<metric>\").\n"
        "3. query_runs with filters={\"state\": {\"$in\": [\"crashed\", \"failed\"]}}: what broke.\n"
        "4. compare_runs on the best 5 by the main metric, and plot_comparison of them.\n"
        "Answer with: the state counts, the best runs with their key config, what failed, and "
        "3 concrete next experiments. State totals and say when a list was cut."
    )


def eval_error_analysis(eval_id: str) -> str:
    return (
        f"Analyse the failures of the Weave evaluation {eval_id!r}.\n"
        f"1. eval_health(name or project): check the status and the failed rows (model / scorer) of {eval_id!r}.\n"
        f"2. eval_results(eval_id={eval_id!r}, only_failed=true, limit=50): the failing rows and the "
        "error histogram.\n"
        "3. Open coding: for each failing row, one short note on what went wrong (from its input, output, "
        "scores and error; get_call(call_id) for a row you need to see whole).\n"
        "4. Axial coding: group the notes into a small taxonomy (3-7 labels), each with a count and 1-2 "
        "example row ids. Keep crashes (exceptions) apart from wrong answers (low scores).\n"
        "Answer with: the taxonomy table (label, count, examples), the most common root cause, and the "
        "fixes in order of rows they would recover."
    )


def weave_eval_report(project: str) -> str:
    return (
        f"Report on the Weave evaluations in project {project!r}.\n"
        f"1. eval_health(project={project!r}): every evaluation with its status, counts, tokens, scores.\n"
        f"2. compare_evals(eval_ids=[...]) for evaluations on the same dataset: solve rate per model, rows "
        "every model fails, rows only one solves.\n"
        f"3. eval_efficiency(project={project!r}): tokens, cost and latency per success.\n"
        f"4. trace_stats(project={project!r}): error rate and top ops across all traces.\n"
        "Answer with: a table (evaluation, model, status, success/error, score, tokens per success), "
        "which model is better and by how much, the rows to look at, and what the evaluation cost."
    )


PROMPTS = [
    (diagnose_training_run, "Workflow: diagnose one training run (verdict, evidence, next actions)."),
    (compare_training_runs, "Workflow: rank and compare runs on one metric. runs: comma-separated."),
    (project_overview, "Workflow: overview of a W&B project: states, best runs, failures."),
    (eval_error_analysis, "Workflow: failing rows of a Weave evaluation grouped into a taxonomy."),
    (weave_eval_report, "Workflow: report on a project's Weave evaluations: which model solves more, cost."),
]


def register(server, app) -> None:
    for fn, description in PROMPTS:
        server.prompt(name=fn.__name__, description=description)(fn)
    _clear_prompt_errors(server)


def _clear_prompt_errors(server) -> None:
    """The SDK answers a prompt with a missing argument as 'Internal server error'; say what is missing."""
    from mcp.shared.exceptions import MCPError
    from mcp_types.jsonrpc import INVALID_PARAMS

    original = server.get_prompt
    names = [fn.__name__ for fn, _ in PROMPTS]

    async def get_prompt(name, arguments=None, context=None):
        try:
            return await original(name, arguments, context)
        except MCPError:
            raise
        except ValueError as exc:
            text = str(exc)
            if text.startswith("Unknown prompt"):
                text += f". Prompts: {', '.join(names)}"
            raise MCPError(INVALID_PARAMS, text) from None

    server.get_prompt = get_prompt
