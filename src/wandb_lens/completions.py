"""completion/complete: values for resource-template and prompt arguments from the configured sources.

Resource templates `wandb-lens://runs/{project}/{run_id}` (and its `/overview.png`): `project` and
`run_id` (within the project already chosen, when the client sends it as context). Prompts: `run`
(run id, name or project/run_id), `runs` (comma-separated: the last item is completed), `metric`
(roles and summary keys), `project` (W&B projects; Weave projects for weave_eval_report), `eval_id`.
Values start with what was typed (case-insensitive prefix), sorted, at most 100 (the spec's cap),
with the total and `hasMore` stated. A source that cannot answer (no trace store, W&B down) gives
no values, never an error: completion is a convenience.
"""

from __future__ import annotations

import logging

import anyio.to_thread

log = logging.getLogger("wandb_lens.completions")

MAX_VALUES = 100  # MCP: at most 100 values per completion
SCAN_EVALS = 1000  # newest evaluations searched for an eval_id prefix
ROLES = ["train", "val", "lr", "grad_norm", "accuracy", "throughput"]  # the roles compare_runs takes as metric


def register(server, app) -> None:
    from mcp.types import Completion, PromptReference, ResourceTemplateReference

    @server.completion()
    async def complete(ref, argument, context):
        given = dict(getattr(context, "arguments", None) or {})
        if isinstance(ref, ResourceTemplateReference) and ref.uri.startswith("wandb-lens://runs/{project}/{run_id}"):
            kind = {"project": "project", "run_id": "run_id"}.get(argument.name)
        elif isinstance(ref, PromptReference):
            kind = _PROMPT_ARGS.get((ref.name, argument.name))
        else:
            kind = None
        if kind is None:
            return None
        try:
            values = await anyio.to_thread.run_sync(_values, app, kind, argument.value or "", given)
        except Exception as exc:  # noqa: BLE001 - a source that cannot answer offers nothing
            log.info("no completions for %s: %s", argument.name, exc)
            values = []
        return Completion(values=values[:MAX_VALUES], total=len(values), has_more=len(values) > MAX_VALUES)


_PROMPT_ARGS = {
    ("diagnose_training_run", "run"): "run",
    ("compare_training_runs", "runs"): "runs",
    ("compare_training_runs", "metric"): "metric",
    ("project_overview", "project"): "project",
    ("eval_error_analysis", "eval_id"): "eval_id",
    ("weave_eval_report", "project"): "weave_project",
}


def _values(app, kind: str, typed: str, given: dict) -> list[str]:
    if kind == "runs":  # "a, b, c": complete the last item, keep the ones before
        head, _, last = typed.rpartition(",")
        lead = f"{head}," if head else ""
        last_stripped = last.lstrip()
        space = last[: len(last) - len(last_stripped)]
        return [f"{lead}{space}{v}" for v in _values(app, "run", last_stripped, given)]
    if kind == "project":
        names = [r["project"] for r in app.runs.project_rows()] if hasattr(app.runs, "project_rows") \
            else [r.project for r in _runs(app, None)]
        return _prefixed(names, typed)
    if kind == "weave_project":
        return _prefixed(app.traces.projects(), typed)
    if kind == "run_id":
        runs = _runs(app, given.get("project") or None)
        return _prefixed([r.id for r in runs] + [r.name for r in runs if r.name], typed)
    if kind == "run":
        runs = _runs(app, None)
        return _prefixed([r.id for r in runs] + [r.name for r in runs if r.name]
                         + [f"{r.project}/{r.id}" for r in runs], typed)
    if kind == "metric":
        keys = set(ROLES)
        for r in _runs(app, None)[:200]:
            keys.update(k for k, v in _flat_numbers(r.summary) if not k.startswith("_"))
        return _prefixed(keys, typed)
    if kind == "eval_id":
        return _prefixed(_eval_ids(app), typed)
    return []


def _runs(app, project: str | None) -> list:
    """Runs of `project` (or all): the local index, or one page of W&B's run list."""
    src = app.runs
    if hasattr(src, "query"):  # W&B cloud: the newest runs, one request
        _total, page, _sample = src.query(project, None, None, 200, 0)
        return list(page)
    return src.list_runs(project) if project else src.list_runs()


def _eval_ids(app) -> list[str]:
    from .sources.weave.source import EVALUATE_OP, op_ref, resolve_project

    src = app.traces
    pid = resolve_project(src, None)
    calls = src.calls(pid, {"op_names": [op_ref(pid, EVALUATE_OP)]}, None, columns=["id"],
                      sort_by=[{"field": "started_at", "direction": "desc"}], limit=SCAN_EVALS)
    return [c["id"] for c in calls if c.get("id")]


def _flat_numbers(summary: dict, prefix: str = ""):
    for k, v in (summary or {}).items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _flat_numbers(v, f"{name}.")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield name, v


def _prefixed(names, typed: str) -> list[str]:
    low = typed.lower()
    return sorted({n for n in names if isinstance(n, str) and n and n.lower().startswith(low)})
