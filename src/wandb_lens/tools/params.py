"""One short description per tool parameter, put into every input schema by `_base.add`.

Every parameter of every tool needs one (tests/test_tools_list_snapshot.py checks it, and the
tools/list budget): an agent reads the schema, not our code. Resolution order for a parameter `p`
of tool `t`: a description given in the signature (`Annotated[str, Field(description=...)]`), then
`PER_TOOL[t][p]`, then `COMMON[p]`. Say what the value is and its default or form in a few words;
do not repeat the tool's description. A new tool adds its entry to PER_TOOL (names already in
COMMON need nothing when the common wording is true for it).
"""

from __future__ import annotations

RUN = "run_id, project/run_id or entity/project/run_id"

COMMON: dict[str, str] = {
    "run": RUN,
    "runs": "Run refs: run_id, project/run_id or entity/project/run_id",
    "project": "Project name (default: all)",
    "step_key": "x axis key, e.g. _step, epoch (default: chosen, stated)",
    "metric": "History key, or role train|val|lr|grad_norm|accuracy|throughput",
    "metrics": "History keys (default: main metrics)",
    "direction": "min|max|auto (auto: from the key name)",
    "limit": "Max rows returned",
    "offset": "Rows to skip (paging)",
    "since": "ISO date or age like 7d, 24h",
    "prefix": "Key prefix of the layers",
    "eval_id": "Evaluation id (from eval_health)",
    "eval_ids": "2-10 evaluation ids (from eval_health)",
    "call_id": "Weave call id",
    "step_min": "First step drawn",
    "step_max": "Last step drawn",
    "smoothing": "Trend EMA 0-0.99 as in W&B (0 off; 0.8)",
}

PER_TOOL: dict[str, dict[str, str]] = {
    "get_history": {
        "keys": "1-10 history keys",
        "steps": "Steps to read at",
        "range": "[start, end] (default: all)",
        "max_rows": "Rows for a range",
        "step_key": "x axis (default _step)",
    },
    "query_runs": {
        "filters": "MongoDB-style filter on state, tags, config.*, summary.*",
        "order": "Field, '-' for descending (default -created_at)",
        "metrics": "summary.* columns to show",
        "config_keys": "config.* columns to show",
    },
    "diagnose_run": {
        "train_key": "Training loss key (default: found)",
        "val_key": "Validation key (default: found)",
    },
    "compare_runs": {
        "metric": "History key, or role train|val|lr|grad_norm|accuracy|throughput (default val)",
        "group_by": "config.* key whose runs are averaged, e.g. config.seed",
    },
    "eval_health": {
        "project": "Weave project (default: configured)",
        "name": "Substring of evaluation or model name",
    },
    "eval_efficiency": {"project": "Weave project (default: configured)"},
    "eval_results": {"only_failed": "Only rows that failed or scored false"},
    "trace_stats": {
        "project": "Weave project (default: configured)",
        "op": "Op name, e.g. Evaluation.evaluate",
        "roots_only": "Count root calls only",
    },
    "run_logs": {
        "tail": "Last lines shown (default 30)",
        "pattern": "Case-insensitive regex",
        "max_matches": "Matches shown (all are counted)",
        "traceback": "Find the last traceback (default: failed runs)",
    },
    "query_calls": {
        "project": "Weave project (default: configured)",
        "op": "Op name, e.g. Evaluation.predict_and_score",
        "status": "success|error|running|descendant_error",
        "until": "ISO date or age (started before)",
        "parent_id": "Direct children of this call",
        "trace_id": "Calls of this trace",
        "roots_only": "Root calls only",
        "where": "Conditions 'field op value', op == != > >= < <= contains",
        "sort": "Field, '-' for descending (default -started_at)",
        "columns": "Extra fields shown, e.g. output.answer",
        "limit": "Max calls returned",
    },
    "call_schema": {"project": "Weave project (default: configured)", "op": "Op name (see trace_stats)"},
    "artifacts": {
        "run": "A run: its artifacts",
        "project": "Project: its collections",
        "name": "Collection: its versions",
    },
    "sweep_analysis": {
        "sweep": "W&B sweep id; metric and goal default to the sweep's",
        "group": "Run group (e.g. the sweep's)",
        "filters": "MongoDB-style filter, as query_runs",
        "metric": "Summary key (default: the val key)",
        "goal": "min|max|auto",
    },
    "get_call": {"depth": "0 no children, 1 children, 2 grandchild counts",
                 "offset": "Children to skip", "limit": "Max children listed"},
    "plot_comparison": {"highlight": "Run drawn on top"},
    "plot_grad_histograms": {"stat": "mean_abs|max_abs|std"},
    "plot_grad_norm_by_layer": {"prefix": "Key prefix of per-layer norms (default: found)"},
}


def describe(tool: str, name: str) -> str | None:
    return PER_TOOL.get(tool, {}).get(name) or COMMON.get(name)
