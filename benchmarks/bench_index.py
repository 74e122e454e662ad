"""Issue 18 item 2, index side: a 1,000-run project of small runs (`many_runs.py`, written once).

In a new process with a fresh cache dir, through an in-memory MCP client:
- first `list_projects` (cold: every run indexed; the imports of the first call are in the figure),
- `list_projects` again in a new process over the disk index (a restarted server),
- a filtered, ordered `query_runs` in the warm server (median of 5),
for runs written the way wandb-core (0.19+) writes them and the way wandb 0.10-0.17's Python writer
does (one summary record at the tail). Each row says how the indexes were built (`index_method`).

    python benchmarks/bench_index.py [RUNS] [STEPS]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CHILD = r"""
import json, statistics, sys, time
import anyio
from mcp import Client
from wandb_lens.app import AppConfig
from wandb_lens.server import build_server

import resource
runs_dir, cache = sys.argv[1], sys.argv[2]

def _cpu():  # this process and its finished children (the index helper)
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

QUERY = {"project": "many-runs", "filters": {"state": "finished", "config.optimizer": "adam",
         "summary.val/loss": {"$lt": 5}}, "order": "summary.val/loss", "limit": 10}

async def go():
    out = {}
    server = build_server(AppConfig(runs_dirs=[runs_dir], cache_dir=cache))
    async with Client(server) as c:
        t, cpu = time.perf_counter(), _cpu()
        r = await c.call_tool("list_projects", {})
        out["list_projects"] = time.perf_counter() - t
        out["cpu"] = _cpu() - cpu
        out["answer"] = json.loads(r.content[0].text)
        times = []
        for _ in range(5):
            t = time.perf_counter()
            q = await c.call_tool("query_runs", QUERY)
            times.append(time.perf_counter() - t)
        out["query_runs"] = statistics.median(times)
        out["matched"] = json.loads(q.content[0].text).get("total")
    return out

res = anyio.run(go)
from collections import Counter
methods = Counter()
import glob, os
for f in glob.glob(os.path.join(cache, "index", "*.json")):
    methods[json.load(open(f))["scan"].get("index_method", "scan")] += 1
res["methods"] = dict(methods)
print(json.dumps(res, default=str))
"""


def measure(runs_dir: Path, cache: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(runs_dir), str(cache)], capture_output=True,
                          text=True, timeout=900)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def bench(ctx, runs: int = 1000, steps: int = 1000) -> list[dict]:
    sys.path.insert(0, str(HERE))
    import many_runs

    rows = []
    for legacy in (False, True):
        folder = many_runs.ensure(runs, steps, legacy=legacy)
        size = sum(p.stat().st_size for p in folder.glob("*/run-*.wandb")) / 1e6
        kind = "wandb 0.10-0.17 writer" if legacy else "wandb-core writer"
        with tempfile.TemporaryDirectory(prefix="lens-index-") as cache:
            before = load()
            cold = measure(folder, Path(cache))
            again = measure(folder, Path(cache))
        states = cold["answer"]["projects"][0]["states"]
        label = f"{runs:,} runs x {steps:,} steps ({kind}, {size:,.0f} MB)"
        rows.append({"name": f"first list_projects, {label}, cold", "target": "<= 3 s",
                     "value": f"{cold['list_projects']:.2f} s wall, {cold['cpu']:.1f} s CPU (index: {cold['methods']}; "
                              f"states {states}; load average {before})"})
        rows.append({"name": f"list_projects in a new process over the disk index, {label}", "target": "",
                     "value": f"{again['list_projects']:.2f} s"})
        rows.append({"name": f"filtered, ordered query_runs in the warm server, {label} (median of 5)",
                     "target": "<= 0.3 s", "value": f"{cold['query_runs']:.3f} s ({cold['matched']} matched)"})
    return rows


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    for row in bench({}, *args):
        print(f"{row['name']}: {row['value']}  [{row['target']}]")
