"""Issue 14: get_history on a 1M-step run whose history is cached (memory), through the MCP client:
values at 5 steps, and the whole range down-sampled to the default 40 rows; answer sizes."""

from __future__ import annotations

import time


def bench(ctx) -> list[dict]:
    import sys

    from synth_run import metric_names, write_run

    sys.path.insert(0, str(ctx["work"].parent.parent / "tests"))
    from conftest import call

    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    work = ctx["work"] / "history1m"
    runs = work / "wandb"
    if not any(runs.glob("*/run-h1m00001.wandb")):
        write_run(runs, 1_000_000, 4, run_id="h1m00001")
    server = build_server(AppConfig(runs_dirs=[str(runs)], cache_dir=str(work / "cache")))
    keys = metric_names(4)[:2]
    t = time.perf_counter()
    call(server, "get_history", {"run": "h1m00001", "keys": keys, "steps": [0]})  # decode + cache once
    cold = time.perf_counter() - t
    rows = [{"name": "get_history, 1M-step run, first call (decode + parquet cache)", "value": f"{cold:.1f} s",
             "target": ""}]
    for label, args in (("values at 5 steps, 2 keys", {"steps": [0, 1000, 250_000, 777_777, 999_999]}),
                        ("whole range, 2 keys, default 40 rows", {})):
        best, size = 1e9, 0
        for _ in range(5):
            t = time.perf_counter()
            r = call(server, "get_history", {"run": "h1m00001", "keys": keys, **args})
            best = min(best, time.perf_counter() - t)
            size = len(r.text)
        assert not r.is_error, r.text
        rows.append({"name": f"get_history, 1M-step cached run, {label} (best of 5, MCP round trip)",
                     "value": f"{best:.3f} s, {size:,} B", "target": "<= 0.3 s, <= 4,000 B"})
    return rows
