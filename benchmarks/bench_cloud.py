"""Cloud source: round trips per tool and cached vs uncached history, against the loopback fake W&B
(tests/fake_wandb.py) serving the demo runs plus a 100,000-step run. The real wandb 0.31 client and
its wandb-core service do the requests; only the server is fake (loopback, no real network latency:
against W&B add one network round trip per request counted here)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def bench(ctx) -> list[dict]:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import call
    from fake_wandb import GOOD_KEY, FakeWandb, long_run, runs_from_local

    from wandb_lens.app import AppConfig
    from wandb_lens.demo import write_runs
    from wandb_lens.server import build_server

    demo = ctx["work"] / "cloud-demo"
    if not (demo / "wandb").is_dir():
        write_runs(demo)
    runs = runs_from_local(str(demo / "wandb"), cache_dir=str(ctx["work"] / "cloud-local-cache"))
    runs.append(long_run("lens-team", "big", "long1", 100_000))
    fake = FakeWandb(runs).start()
    os.environ["WANDB_API_KEY"] = GOOD_KEY
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        def server():
            return build_server(AppConfig(source="cloud", entity="lens-team", project="lens-demo", base_url=fake.url,
                                          cache_dir=cache, timeout=20))

        s = server()
        t0 = time.perf_counter()
        call(s, "list_projects")
        rows.append({"name": "list_projects, first call (login)", "value":
                     f"{time.perf_counter() - t0:.2f} s", "target": ""})
        fake.reset()
        t0 = time.perf_counter()
        call(s, "query_runs", {"limit": 20})
        dt = time.perf_counter() - t0
        n = sum(fake.counts.values())
        rows.append({"name": "query_runs(limit=20) requests", "value": f"{n} ({dict(fake.counts)}), {dt * 1000:.0f} ms",
                     "target": "1 page + <= 1 count"})
        fake.reset()
        call(s, "describe_run", {"run": "baseline-cosine"})
        rows.append({"name": "describe_run requests (no history download)", "value": str(dict(fake.counts)),
                     "target": "0 history requests"})
        for label, srv in (("uncached", server()), ("same process, cached", None), ("new process, disk cache", "new")):
            srv = s if srv is None else (server() if srv == "new" else srv)
            if label == "uncached":
                s = srv
            fake.reset()
            t0 = time.perf_counter()
            out = call(srv, "diagnose_run", {"run": "big/long1"})
            dt = time.perf_counter() - t0
            hist = fake.history_requests()
            rows.append({"name": f"diagnose_run 100k steps, {label}", "value":
                         f"{dt:.2f} s, {fake.counts['RunParquetHistory']} key scans + {fake.counts['parquet-download']} parquet range reads"
                         + (" ERROR" if out.is_error else ""),
                         "target": "first: needed keys only; second: 0 history requests"})
    fake.stop()
    return rows
