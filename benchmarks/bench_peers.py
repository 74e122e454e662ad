"""Issue 9 peer comparison: our start-up and tools/list size against the SDK's own floor.

Both servers are started the same way in the same run: a real stdio subprocess driven by the SDK
client (`mcp.Client(StdioServerParameters)`), timed from spawn to the first tools/list answer
(initialize included), one warm-up each, then 5 interleaved rounds, median. The floor is a minimal
`MCPServer` with one tool on the same interpreter. Sizes are the tools/list `result` as written
on the wire, compact JSON bytes (scripts/snapshot_tools_list.py), the figure an agent pays.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from snapshot_tools_list import compact_size, wire_tools_list  # noqa: E402

ROUNDS = 5
FLOOR_SERVER = '''"""The SDK's floor: a minimal MCPServer with one tool."""
from mcp.server import MCPServer

server = MCPServer("floor")


@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text


server.run("stdio")
'''


async def _first_tools_list(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    t0 = time.perf_counter()
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        elapsed = time.perf_counter() - t0  # shutdown not counted
    return elapsed, len(tools)


def first_tools_list(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds from spawning `command` to the SDK client holding its tools/list answer; tool count."""
    return anyio.run(_first_tools_list, command, env)


def demo_runs(work: Path) -> Path:
    demo = work / "demo"  # shared with bench_foundation
    if not (demo / "done").exists():
        from wandb_lens.demo import write_runs

        write_runs(demo)
        (demo / "done").write_text("ok")
    return demo / "wandb"


def bench(ctx) -> list[dict]:
    work: Path = ctx["work"]
    env = {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": "offline"}
    exe = Path(sys.executable).with_name("wandb-lens")
    ours = ([str(exe)] if exe.exists() else [sys.executable, "-m", "wandb_lens"]) + [
        "serve", "--runs-dir", str(demo_runs(work)), "--cache-dir", str(work / "cache-peers")]
    floor_py = work / "floor_server.py"
    floor_py.write_text(FLOOR_SERVER)
    floor = [sys.executable, str(floor_py)]

    servers = {"ours": ours, "floor": floor}
    times: dict[str, list[float]] = {k: [] for k in servers}
    counts: dict[str, int] = {}
    for k, cmd in servers.items():  # warm-up: OS file cache, bytecode
        first_tools_list(cmd, env)
    for _ in range(ROUNDS):
        for k, cmd in servers.items():
            t, counts[k] = first_tools_list(cmd, env)
            times[k].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    sizes = {k: compact_size(wire_tools_list(cmd, env=env)) for k, cmd in servers.items()}

    def spread(k: str) -> str:
        return f"{med[k]:.2f} s (min {min(times[k]):.2f}, max {max(times[k]):.2f})"

    return [
        {"name": f"wandb-lens: spawn to first tools/list answer (stdio, SDK client, median of {ROUNDS})",
         "value": spread("ours"), "target": ""},
        {"name": "SDK floor (MCPServer, 1 tool): same measure, same run", "value": spread("floor"), "target": ""},
        {"name": "start-up overhead that is ours (median difference)",
         "value": f"{med['ours'] - med['floor']:+.2f} s ({med['ours'] / med['floor']:.1f}x the floor)", "target": ""},
        {"name": f"wandb-lens: tools/list result size ({counts['ours']} tools)", "value": f"{sizes['ours']:,} B",
         "target": "<= 16,000 B"},
        {"name": "SDK floor: tools/list result size (1 tool)", "value": f"{sizes['floor']:,} B", "target": ""},
        {"name": "wandb-lens: tools/list bytes per tool (mean)",
         "value": f"{sizes['ours'] / max(counts['ours'], 1):,.0f} B", "target": ""},
    ]
