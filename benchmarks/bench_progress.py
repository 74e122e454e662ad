"""Issue 17: MCP progress for a cold call on the 1,000,000-step run (bigrun.py), through the SDK's
in-memory client with a progress callback: time to the first notification, their rate, the longest
silence, and what cancelling does (CPU the process spends in the 3 s after the cancel)."""

from __future__ import annotations

import resource
import tempfile
import time

import anyio


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _run(runs_dir: str, cancel_after: int | None) -> dict:
    from mcp import Client

    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    server = build_server(AppConfig(runs_dirs=[runs_dir], cache_dir=tempfile.mkdtemp(prefix="bench-progress-")))
    seen: list[float] = []
    out: dict = {}

    async def go():
        async with Client(server) as client:
            t0 = time.monotonic()
            enough = anyio.Event()

            async def on_progress(value, total, message):
                seen.append(time.monotonic() - t0)
                if cancel_after is not None and len(seen) >= cancel_after:
                    enough.set()

            async with anyio.create_task_group() as tg:
                async def call():
                    await client.call_tool("describe_run", {"run": "lens-bench/big-1m"}, progress_callback=on_progress)
                    out["elapsed"] = time.monotonic() - t0
                    enough.set()

                tg.start_soon(call)
                await enough.wait()
                if cancel_after is not None:
                    tg.cancel_scope.cancel()
            if cancel_after is not None:
                c0 = _cpu()
                await anyio.sleep(3)
                out["cpu_after_cancel"] = _cpu() - c0

    anyio.run(go)
    out["seen"] = seen
    return out


def bench(ctx) -> list[dict]:
    import bigrun

    runs_dir = str(bigrun.ensure(ctx["work"]))
    whole = _run(runs_dir, None)
    seen = whole["seen"]
    gaps = [b - a for a, b in zip(seen, seen[1:])]
    cancelled = _run(runs_dir, 6)
    return [
        {"name": "first progress notification, cold 1M-step describe_run", "value": f"{seen[0]:.2f} s",
         "target": "<= 1 s"},
        {"name": "notifications / call time", "value": f"{len(seen)} in {whole['elapsed']:.1f} s",
         "target": "<= 4 per s"},
        {"name": "longest silence between notifications", "value": f"{max(gaps):.1f} s" if gaps else "-",
         "target": ""},
        {"name": "CPU in the 3 s after a cancel (6th notification)", "value": f"{cancelled['cpu_after_cancel']:.2f} s",
         "target": "~0 (work stopped)"},
    ]
