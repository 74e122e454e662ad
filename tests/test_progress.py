"""MCP progress for long tool calls, as the SDK client's progress callback sees it.

A cold index and decode of a real 300,000-step run (written once by wandb offline with
benchmarks/bigrun.py, cached under ~/.cache/wandb-lens-test) must report within 1 s of the call
starting, with values that only grow and at most a few notifications a second. Over streamable HTTP
the same notifications reach the client (a small demo run keeps that test short). Cancelling a call
stops its work at the next report.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import anyio
import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = 300_000


@pytest.fixture(scope="session")
def big_runs_dir() -> Path:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bigrun

    digest = hashlib.sha256((ROOT / "benchmarks" / "bigrun.py").read_bytes()).hexdigest()[:12]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wandb-lens-test" / digest
    return bigrun.ensure(base, STEPS)


def _call_with_progress(target, args: dict, tool: str = "describe_run"):
    """(seconds to the first notification, notifications [(t, progress, total, message)], result, seconds)."""
    from mcp import Client

    seen: list[tuple[float, float, float | None, str | None]] = []

    async def go():
        async with Client(target) as client:
            t0 = time.monotonic()

            async def on_progress(value, total, message):
                seen.append((time.monotonic() - t0, value, total, message))

            result = await client.call_tool(tool, args, progress_callback=on_progress)
            return result, time.monotonic() - t0

    result, elapsed = anyio.run(go)
    return seen, result, elapsed


def _check_progress(seen, result, elapsed):
    assert not result.is_error, result.content[0].text
    assert seen, "no notifications/progress for a cold decode"
    assert seen[0][0] < 1.0, f"first progress after {seen[0][0]:.2f} s"
    values = [v for _, v, _, _ in seen]
    assert all(b > a for a, b in zip(values, values[1:])), f"progress went backwards: {values}"
    assert len(seen) <= 4 * elapsed + 3, f"{len(seen)} notifications in {elapsed:.1f} s"
    assert any("run-" in (m or "") and "MB" in (m or "") for _, _, _, m in seen), seen
    for _, value, total, _ in seen:
        assert total is None or value <= total


def test_cold_decode_reports_progress_in_memory(big_runs_dir, tmp_path):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    server = build_server(AppConfig(runs_dirs=[str(big_runs_dir)], cache_dir=str(tmp_path / "cache")))
    seen, result, elapsed = _call_with_progress(server, {"run": "lens-bench/big-1m"})
    _check_progress(seen, result, elapsed)
    assert json.loads(result.content[0].text)["history"]  # the decoded answer itself


def test_progress_reaches_a_streamable_http_client(demo_dir, demo_ids, tmp_path):
    """The same notifications over the wire (a cold decode of a small demo run: its start and end)."""
    from lens_http import LensHTTP

    server = LensHTTP(["--runs-dir", str(demo_dir / "wandb")], tmp_path)
    try:
        seen, result, elapsed = _call_with_progress(server.url, {"run": "lens-demo/baseline-cosine"})
    finally:
        server.stop()
    _check_progress(seen, result, elapsed)
    assert seen[-1][1] == seen[-1][2]  # the last one says the decode is complete


def test_cancel_stops_the_work_at_its_next_report():
    """The tool layer makes progress.report a cancellation point: a cancelled call ends in its
    worker thread instead of running on for nobody."""
    from mcp import Client
    from mcp.server import MCPServer

    from wandb_lens import progress
    from wandb_lens.tools import _base

    server = MCPServer("cancel-test")
    reached = {"step": -1, "ended_by": None}

    def count_slowly(steps: int = 500) -> dict:
        try:
            for i in range(steps):
                reached["step"] = i
                progress.report(i, steps, f"step {i}")
                time.sleep(0.01)
        except BaseException as exc:
            reached["ended_by"] = type(exc).__name__
            raise
        return {"steps": steps}

    _base.add(server, count_slowly, "Counts slowly, reporting progress each step.")

    async def go():
        async with Client(server) as client:
            with anyio.move_on_after(0.5):
                await client.call_tool("count_slowly", {"steps": 500})
            await anyio.sleep(0.3)
            stopped_at = reached["step"]
            again = await client.call_tool("count_slowly", {"steps": 3})
            return stopped_at, again

    stopped_at, again = anyio.run(go)
    assert reached["ended_by"] == "CancelledError"
    assert stopped_at < 200, f"work ran on to step {stopped_at} after the cancel"
    assert json.loads(again.content[0].text) == {"steps": 3}  # the server serves on
