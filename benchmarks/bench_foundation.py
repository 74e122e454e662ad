"""Issue 2 targets: start-up, tools/list size, cold/cached read of a 200k-step run, answer sizes."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio


def stdio_first_tools_list(args: list[str], env: dict | None = None) -> tuple[float, int]:
    """Seconds from process start to the first tools/list answer, and that answer's byte size."""
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}}
    msgs = [init, {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    proc.stdin.write("".join(json.dumps(m) + "\n" for m in msgs).encode())
    proc.stdin.flush()
    size = 0
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("server closed stdout before answering tools/list")
        msg = json.loads(line)
        if msg.get("id") == 2:
            elapsed = time.perf_counter() - t0
            size = len(json.dumps(msg["result"], separators=(",", ":")).encode())
            break
    proc.kill()
    proc.wait()
    return elapsed, size


def make_big_run(work: Path, steps: int = 200_000) -> Path:
    """A 200k-step x 5-metric offline run, written once by the real wandb library."""
    out = work / f"big{steps}"
    done = out / "done"
    if done.exists():
        return out / "wandb"
    code = f"""
import numpy as np, wandb
run = wandb.init(mode="offline", project="bench", name="big-{steps}", dir={str(out)!r})
rng = np.random.default_rng(0)
for i in range({steps}):
    run.log({{"loss": 1/(i+1) + rng.random()*0.01, "acc": i/{steps}, "lr": 0.1, "grad_norm": rng.random(), "throughput": 100.0}})
run.finish()
"""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "WANDB_SILENT": "true"},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done.write_text("ok")
    return out / "wandb"


def timed_read(runs_dir: Path, cache: Path) -> dict:
    """Run in a fresh process so the cold read pays what a new server pays, library imports excluded
    (wandb's protobuf classes, pyarrow, numpy and pandas: ~1.2 s once per process, at the first call)."""
    code = f"""
import json, time
from wandb_lens.sources.local.source import LocalRunSource
import wandb.proto.wandb_internal_pb2, pyarrow.parquet, numpy, pandas  # pyarrow's numpy conversions import pandas
src = LocalRunSource([{str(runs_dir)!r}], {str(cache)!r})
t0 = time.perf_counter(); run = src.list_runs()[0]; t1 = time.perf_counter()
h = src.history(run); t2 = time.perf_counter()
print(json.dumps({{"index_s": t1 - t0, "history_s": t2 - t1, "rows": h.n_rows}}))
"""
    res = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def answer_sizes(demo: Path, cache: Path) -> list[tuple[str, int]]:
    from mcp import Client

    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    server = build_server(AppConfig(runs_dirs=[str(demo / "wandb")], cache_dir=str(cache)))
    calls = [("list_projects", {}), ("query_runs", {}), ("describe_run", {"run": "lens-demo/baseline-cosine"}),
             ("describe_run", {"run": "lens-demo/spiky-bad-batches"})]

    async def go():
        out = []
        async with Client(server) as c:
            for name, args in calls:
                r = await c.call_tool(name, args)
                out.append((f"{name} {json.dumps(args)}", sum(len(b.text.encode()) for b in r.content if b.type == "text")))
        return out

    return anyio.run(go)


def query_runs_100(work: Path, cache: Path) -> int:
    """query_runs with default columns over a project of 100 runs (default limit 20)."""
    from mcp import Client

    from wandb_lens.app import AppConfig
    from wandb_lens.demo import sgd_regression
    from wandb_lens.server import build_server

    out = work / "runs100"
    if not (out / "done").exists():
        os.environ["WANDB_SILENT"] = "true"
        for i in range(100):
            sgd_regression(out, f"sweep-{i:03d}", steps=60, lr=0.01 * (1 + i % 7), seed=i, val_every=10,
                           project="sweep100", tags=["sweep"], group=f"g{i % 4}")
        (out / "done").write_text("ok")
    server = build_server(AppConfig(runs_dirs=[str(out / "wandb")], cache_dir=str(cache)))

    async def go():
        async with Client(server) as c:
            r = await c.call_tool("query_runs", {"project": "sweep100"})
            return len(r.content[0].text.encode())

    return anyio.run(go)


def bench(ctx) -> list[dict]:
    work: Path = ctx["work"]
    rows = []
    cmd = [sys.executable, "-m", "wandb_lens", "serve", "--runs-dir", str(work)]
    times, size = [], 0
    for _ in range(5):
        t, size = stdio_first_tools_list(cmd)
        times.append(t)
    rows.append({"name": "start to first tools/list (stdio, median of 5)", "value": f"{statistics.median(times):.2f} s",
                 "target": "<= 2.0 s"})
    rows.append({"name": "tools/list result size (all tools)", "value": f"{size:,} B", "target": "issue 2 tools <= 12,000 B"})
    big = make_big_run(work)
    cache = work / "cache-big"
    import shutil

    shutil.rmtree(cache, ignore_errors=True)
    cold = timed_read(big, cache)
    warm = timed_read(big, cache)
    rows.append({"name": f"cold history read, {cold['rows']:,} steps x 5 metrics", "value": f"{cold['history_s']:.2f} s",
                 "target": "<= 3.0 s"})
    rows.append({"name": "cold run index (metadata + summary) of the same run", "value": f"{cold['index_s']:.2f} s",
                 "target": ""})
    rows.append({"name": "cached re-read (new process, parquet cache)", "value": f"{warm['history_s']:.3f} s",
                 "target": "<= 0.2 s"})
    demo = work / "demo"
    if not (demo / "done").exists():
        from wandb_lens.demo import write_runs

        write_runs(demo)
        (demo / "done").write_text("ok")
    for name, n in answer_sizes(demo, work / "cache-demo"):
        rows.append({"name": f"answer size: {name}", "value": f"{n:,} B", "target": ""})
    rows.append({"name": "query_runs default columns, 100-run project", "value": f"{query_runs_100(work, work / 'cache-100'):,} B",
                 "target": "<= 4,000 B"})
    return rows
