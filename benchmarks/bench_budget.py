"""Issue 18 items 2-3 (consumer side): one big run through an MCP client in this process.

    python benchmarks/bench_budget.py LOG_DIR [--other SMALL_RUNS_DIR] [--cache DIR]

- the run's first index (started by a listing, in the background), then
- cold diagnose_run (fresh cache): seconds to the first progress notification, to the answer,
  whether the answer was partial (the per-call budget, WANDB_LENS_CALL_BUDGET_S) and how much it
  covered; while it decodes, a second client times list_projects and describe_run of a run in
  `--other` (a small run: "other runs' calls") about once a second;
- when the first answer was partial: how long until the background decode filled the cache;
- cached: diagnose_run and describe_run in a new process (nothing in memory), peak RSS of each.
LOG_DIR holds the run folder (e.g. /work/scale-out/scale/1000000x50).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cold(log_dir: str, other: str | None, cache: str) -> dict:
    import anyio
    from mcp import Client

    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    roots = [log_dir] + ([other] if other else [])
    server = build_server(AppConfig(runs_dirs=roots, cache_dir=cache))
    out: dict = {"others": []}

    async def go():
        async with Client(server) as client:
            runs = json.loads((await client.call_tool("query_runs", {"limit": 50})).content[0].text)
            refs = [r["id"] for r in runs.get("runs", [])]
            big = next(r for r in refs if "synth" in r or "big" in r) if len(refs) > 1 else refs[0]
            small = next((r for r in refs if r != big), None)
            if small:  # a finished small run's history read once: its later calls are the "other runs' calls"
                await client.call_tool("describe_run", {"run": small})
            t = time.monotonic()  # the run's first index (the listing started it in the background)
            while "indexing" in (await client.call_tool("list_projects", {})).content[0].text:
                await anyio.sleep(0.5)
            out["index_s"] = round(time.monotonic() - t, 1)
            t0 = time.monotonic()
            first: list[float] = []
            done = anyio.Event()

            async def on_progress(value, total, message):
                if not first:
                    first.append(time.monotonic() - t0)

            async def others():
                async with Client(server) as c2:
                    while not done.is_set():
                        await anyio.sleep(1.0)
                        t = time.monotonic()
                        await c2.call_tool("list_projects", {})
                        lp = time.monotonic() - t
                        t = time.monotonic()
                        if small:
                            await c2.call_tool("describe_run", {"run": small})
                        out["others"].append((round(lp, 3), round(time.monotonic() - t, 3) if small else None))

            async with anyio.create_task_group() as tg:
                if other:
                    tg.start_soon(others)
                res = await client.call_tool("diagnose_run", {"run": big}, progress_callback=on_progress)
                done.set()
            out["cold_s"] = round(time.monotonic() - t0, 2)
            out["first_progress_s"] = round(first[0], 2) if first else None
            answer = json.loads(res.content[0].text) if not res.is_error else {"error": res.content[0].text}
            out["partial"] = answer.get("partial")
            out["verdict"] = answer.get("verdict")
            if out["partial"]:  # wait for the background decode with a second call
                os.environ["WANDB_LENS_CALL_BUDGET_S"] = "3600"
                t = time.monotonic()
                await client.call_tool("describe_run", {"run": big})
                out["rest_of_decode_s"] = round(time.monotonic() - t, 2)
            out["run"] = big

    os.environ.setdefault("WANDB_LENS_CALL_BUDGET_S", "45")
    anyio.run(go)
    out["peak_rss_mb"] = _rss_mb()
    return out


def _cached(log_dir: str, cache: str, tool: str, run: str) -> dict:
    import anyio
    from mcp import Client

    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    server = build_server(AppConfig(runs_dirs=[log_dir], cache_dir=cache))

    async def go():
        async with Client(server) as client:
            await client.call_tool("list_projects", {})  # index from its cache: not part of the figure
            t = time.monotonic()
            res = await client.call_tool(tool, {"run": run})
            return time.monotonic() - t, res.is_error

    s, err = anyio.run(go)
    return {"tool": tool, "cached_s": round(s, 3), "error": err, "peak_rss_mb": _rss_mb()}


def _rss_mb() -> int:
    """Peak RSS of this process image (VmHWM: ru_maxrss would carry the parent's peak across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return -1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("log_dir")
    ap.add_argument("--other")
    ap.add_argument("--cache")
    ap.add_argument("--_cached", nargs=2)
    a = ap.parse_args()
    if a._cached:
        print(json.dumps(_cached(a.log_dir, a.cache, *a._cached)))
        return
    cache = a.cache or tempfile.mkdtemp(prefix="lens-bench-budget-")
    cold = _cold(a.log_dir, a.other, cache)
    print(json.dumps({"cold": cold}), flush=True)
    for tool in ("diagnose_run", "describe_run"):
        res = subprocess.run([sys.executable, __file__, a.log_dir, "--cache", cache, "--_cached", tool, cold["run"]],
                             capture_output=True, text=True)
        print(res.stdout.strip() or res.stderr[-2000:], flush=True)


if __name__ == "__main__":
    main()
