"""`make demo`'s second half: a real MCP client session over stdio, calling the main tools."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio


DEMO = "lens-demo"
STEPS: list[tuple[str, str, dict]] = [
    ("Which projects are there, and how did their runs end?", "list_projects", {}),
    ("Best runs by validation loss (runs without val/loss sort last)", "query_runs",
     {"project": DEMO, "order": "+summary.val/loss"}),
    ("What broke?", "query_runs", {"filters": {"state": {"$in": ["crashed", "failed"]}}, "metrics": ["loss"]}),
    ("What does this run log, and on which x-axis?", "describe_run", {"run": f"{DEMO}/custom-step-axis"}),
    ("Is this run healthy?", "diagnose_run", {"run": f"{DEMO}/overfit-wide-model"}),
    ("Which run is best? (each run's own validation key)", "compare_runs",
     {"runs": [f"{DEMO}/baseline-cosine", f"{DEMO}/still-improving", f"{DEMO}/plateau-tiny-lr",
               f"{DEMO}/overfit-wide-model"]}),
    ("Show me the curves", "plot_overview", {"run": f"{DEMO}/spiky-bad-batches"}),
    ("Why did this run crash?", "run_logs", {"run": f"{DEMO}/crash-raises"}),
    ("Is my GPU starved?", "system_health", {"run": f"{DEMO}/input-bound-gpu"}),
    ("Is memory leaking?", "system_health", {"run": f"{DEMO}/leaky-memory"}),
    ("Which dataset version did the model use?", "artifacts", {"run": f"{DEMO}/train-on-digits"}),
    ("Which hyperparameters matter in this sweep?", "sweep_analysis", {"project": "lens-sweep", "sweep": "q7lrwd2x"}),
]


def _show(question: str, name: str, args: dict, result) -> None:
    print(f"# {question}\n$ {name} {args}")
    for block in result.content:
        print(block.text if block.type == "text" else f"[{block.type}]")
    print()


async def tour(out: Path) -> int:
    from mcp import Client, StdioServerParameters

    exe = Path(sys.executable).with_name("wandb-lens")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "wandb_lens"]
    params = StdioServerParameters(
        command=command[0],
        args=command[1:] + ["serve", "--runs-dir", str(out / "wandb")]
        + (["--traces-db", str(out / "traces.db")] if (out / "traces.db").exists() else []),
        env={**os.environ},
    )
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        print(f"# connected over stdio: {len(tools)} tools: {', '.join(t.name for t in tools)}\n")
        failed = 0
        for question, name, args in STEPS:
            result = await client.call_tool(name, args)
            _show(question, name, args, result)
            failed += bool(result.is_error)
        if (out / "traces.db").exists():
            failed += await weave_tour(client)
    return 1 if failed else 0


async def weave_tour(client) -> int:
    """eval_health, then compare_evals and the failing rows (ids are only known at run time)."""
    import json

    health = await client.call_tool("eval_health", {})
    _show("Did the Weave evaluations run cleanly?", "eval_health", {}, health)
    if health.is_error:
        return 1
    table = json.loads(health.content[0].text)["evals"]
    rows, failed_col = table["rows"], table["cols"].index("failed")
    ids = [row[0] for row in rows]
    result = await client.call_tool("compare_evals", {"eval_ids": ids})
    _show("Which model solves more?", "compare_evals", {"eval_ids": ids}, result)
    failed = bool(result.is_error)
    worst = max(rows, key=lambda r: r[failed_col])
    args = {"eval_id": worst[0], "only_failed": True, "limit": 10}
    result = await client.call_tool("eval_results", args)
    _show(f"Which rows of {worst[1]} fail, and why?", "eval_results", args, result)
    return failed + bool(result.is_error)


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-data").resolve()
    return anyio.run(tour, out)


if __name__ == "__main__":
    raise SystemExit(main())
