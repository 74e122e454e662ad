"""A 1,000,000-step run written once by the real wandb library (offline), shared by the benchmarks.

`ensure(work)` returns the runs folder (`<work>/bigrun/wandb`) holding project `lens-bench`, run
name `big-1m`. The run is written on first use (about 3 minutes) and reused afterwards; a
`done.json` marker says it is complete, so an interrupted write is redone.

What it logs (values computed up front with numpy, then one `log()` per step as a training
loop would):
- every step: `train/loss` (decaying, noisy, 12 injected spikes), `train/lr` (warmup + cosine to
  a floor), `train/grad_norm` (spikes with the loss), `perf/samples_per_sec`
- every 1,000 steps, in a separate `log()` call: `val/loss`, `val/accuracy`
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = "lens-bench"
NAME = "big-1m"
STEPS = 1_000_000
VAL_EVERY = 1_000
SPIKE_STEPS = [50_000 + 80_000 * i for i in range(12)]

_CHILD = r"""
import sys
sys.path[:0] = {path!r}
from bigrun import _write
_write({out!r}, {steps!r})
"""


def _write(out: str, steps: int) -> None:
    import math

    import numpy as np
    import wandb

    rng = np.random.default_rng(0)
    t = np.arange(steps, dtype=np.float64)
    loss = 0.2 + 2.5 * np.exp(-t / (steps / 8)) + rng.normal(0, 0.02, steps) * (1 + np.exp(-t / (steps / 4)))
    gnorm = 1.0 + 0.5 * np.exp(-t / (steps / 10)) + np.abs(rng.normal(0, 0.05, steps))
    for s in SPIKE_STEPS:
        if s < steps:
            loss[s] += 3.0
            gnorm[s] *= 20.0
    warm = max(1, steps // 50)
    peak, floor = 3e-4, 3e-6
    lr = np.where(t < warm, peak * (t + 1) / warm,
                  floor + 0.5 * (peak - floor) * (1 + np.cos(math.pi * (t - warm) / max(1, steps - warm))))
    sps = 5000 + rng.normal(0, 100, steps)
    run = wandb.init(project=PROJECT, name=NAME, dir=out, mode="offline", config={"steps": steps, "lr": peak},
                     settings=wandb.Settings(console="off", silent=True, x_disable_stats=True))
    for i in range(steps):
        run.log({"train/loss": float(loss[i]), "train/lr": float(lr[i]), "train/grad_norm": float(gnorm[i]),
                 "perf/samples_per_sec": float(sps[i])})
        if i % VAL_EVERY == VAL_EVERY - 1:
            v = float(np.mean(loss[max(0, i - 200): i + 1])) + 0.05
            run.log({"val/loss": v, "val/accuracy": float(1.0 - 0.3 * v)})
    run.finish()


def ensure(work: str | os.PathLike, steps: int = STEPS) -> Path:
    """The runs folder holding the big run, writing it first when missing or incomplete."""
    base = Path(work) / ("bigrun" if steps == STEPS else f"bigrun-{steps}")
    runs_dir = base / "wandb"
    marker = base / "done.json"
    if marker.is_file() and runs_dir.is_dir():
        return runs_dir
    if base.exists():
        import shutil

        shutil.rmtree(base)
    base.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    env.update(WANDB_SILENT="true", WANDB_CONSOLE="off", WANDB_MODE="offline")
    here = str(Path(__file__).resolve().parent)
    print(f"# writing a {steps:,}-step run with wandb offline into {base} (once; a few minutes)", file=sys.stderr)
    subprocess.run([sys.executable, "-c", _CHILD.format(path=[here], out=str(base), steps=steps)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    marker.write_text(json.dumps({"steps": steps, "project": PROJECT, "name": NAME}))
    return runs_dir


if __name__ == "__main__":
    print(ensure(Path(__file__).resolve().parent / "out", int(sys.argv[1]) if len(sys.argv) > 1 else STEPS))
