"""Issue 16: run_logs on a 100 MB output.log (tail, traceback, pattern search) and parameter
importance over 500 runs. Reader and analysis functions called directly (no MCP round trip)."""

from __future__ import annotations

import time


def _log(path, mb: int = 100) -> None:
    if path.exists() and path.stat().st_size >= mb * 1_000_000:
        return
    with open(path, "w") as f:
        i = 0
        while f.tell() < mb * 1_000_000:
            f.write("".join(f"step {j}: loss {(j * 7919) % 10007 / 10007:.5f} lr 3e-4 samples/s 1234.5\n"
                            for j in range(i, i + 10000)))
            i += 10000
        f.write('Traceback (most recent call last):\n  File "train.py", line 3\n    boom()\n'
                "RuntimeError: CUDA out of memory\n")


def bench(ctx) -> list[dict]:
    import numpy as np

    from wandb_lens.analysis.importance import importance_table
    from wandb_lens.sources.local import console as C

    work = ctx["work"] / "extras"
    work.mkdir(exist_ok=True)
    path = work / "output.log"
    _log(path)
    rows = []
    text = C.open_output_log(str(path), [str(work)])
    with text:
        t = time.perf_counter()
        C.tail(text, 30)
        tb = C.last_traceback(text)
        rows.append({"name": "run_logs tail (30 lines) + last traceback, 100 MB output.log",
                     "value": f"{time.perf_counter() - t:.3f} s", "target": "<= 1 s"})
        assert tb and tb["error"] == "RuntimeError: CUDA out of memory"
        t = time.perf_counter()
        found = C.search(text, C.compile_pattern(r"loss 0\.1234"), 20)
        rows.append({"name": f"run_logs pattern search, same file ({found.get('total')} matches counted)",
                     "value": f"{time.perf_counter() - t:.2f} s", "target": ""})
    rng = np.random.default_rng(1)
    n = 500
    params = {"lr": list(10 ** rng.uniform(-4, -1, n)), "wd": list(rng.choice([0.0, 1e-3, 1e-2], n)),
              "bs": list(rng.choice([16, 32, 64], n).tolist()), "dropout": list(rng.uniform(0, 0.5, n)),
              "opt": list(rng.choice(["adam", "sgd"], n)), "seed": list(range(n))}
    y = (np.log10(params["lr"]) + 2.5) ** 2 + 30 * np.asarray(params["wd"]) + rng.normal(0, 0.05, n)
    best = 1e9
    for _ in range(3):
        t = time.perf_counter()
        table = importance_table(params, y)
        best = min(best, time.perf_counter() - t)
    top = [r["param"] for r in table[:2]]
    rows.append({"name": f"parameter importance, 500 runs x 6 params (best of 3; top 2: {', '.join(top)})",
                 "value": f"{best:.2f} s", "target": "<= 1 s"})
    return rows
