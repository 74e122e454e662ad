"""`make demo`'s second half: a real MCP client session over stdio, calling the main tools."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio


def steps(run_names: dict[str, str]) -> list[tuple[str, dict]]:
    return [
        ("list_projects", {}),
        ("query_runs", {"project": "lens-demo", "order": "+summary.val/loss"}),
        ("query_runs", {"filters": {"state": {"$in": ["crashed", "failed"]}}, "metrics": ["loss"]}),
        ("describe_run", {"run": "lens-demo/custom-step-axis"}),
        ("diagnose_run", {"run": "lens-demo/overfit-wide-model"}),
        ("compare_runs", {"runs": ["lens-demo/baseline-cosine", "lens-demo/still-improving", "lens-demo/plateau-tiny-lr"]}),
        ("plot_overview", {"run": "lens-demo/spiky-bad-batches"}),
    ]


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
        for name, args in steps({}):
            result = await client.call_tool(name, args)
            print(f"$ {name} {args}")
            for block in result.content:
                print(block.text if block.type == "text" else f"[{block.type}]")
            print()
            failed += bool(result.is_error)
        if (out / "traces.db").exists():
            failed += await weave_tour(client)
    return 1 if failed else 0


async def weave_tour(client) -> int:
    """eval_health, then compare_evals on the evaluations it lists (ids are only known at run time)."""
    import json

    failed = 0
    health = await client.call_tool("eval_health", {})
    print(f"$ eval_health {{}}\n{health.content[0].text}\n")
    failed += bool(health.is_error)
    if not health.is_error:
        ids = [row[0] for row in json.loads(health.content[0].text)["evals"]["rows"]]
        args = {"eval_ids": ids}
        result = await client.call_tool("compare_evals", args)
        print(f"$ compare_evals {args}\n{result.content[0].text}\n")
        failed += bool(result.is_error)
    return failed


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-data").resolve()
    return anyio.run(tour, out)


if __name__ == "__main__":
    raise SystemExit(main())
