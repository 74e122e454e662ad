"""`wandb-lens demo`: a demo project of real W&B runs, written by tiny numpy trainings.

Every run goes through `wandb.init(mode="offline")`, so the files are exactly what W&B writes on
a user's disk. The trainings really behave as named: one converges, one is still improving,
one diverges to NaN, one overfits (validation turns up), one plateaus, one spikes, and one is
killed mid-run. They use different metric names and one declares its own step metric.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

PROJECT = "lens-demo"


def _quiet_env() -> None:
    # wandb.init initialises Weave tracing whenever weave is imported in the process (the demo records
    # evaluations too), and that logs in to W&B: with no key and no terminal, a password prompt.
    # Offline demo runs trace nothing: keep the integration off.
    os.environ.setdefault("WANDB_DISABLE_WEAVE", "true")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    os.environ["WANDB_MODE"] = "offline"


def _init(out: Path, name: str, config: dict, **kw):
    import wandb

    return wandb.init(project=kw.pop("project", PROJECT), name=name, config=config, dir=str(out),
                      mode="offline", reinit="create_new", settings=wandb.Settings(console="off", silent=True), **kw)


def _data(rng, n: int, d: int, noise: float, scale: float = 1.0):
    w = rng.normal(size=d)
    x = rng.normal(size=(n, d)) * scale
    return x, x @ w + rng.normal(size=n) * noise, w


def _cosine(step: int, total: int, peak: float, warmup: int, floor: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * t))


def sgd_regression(out: Path, name: str, *, steps: int, lr: float, seed: int = 0, keys=("train/loss", "val/loss"),
                   val_every: int = 20, schedule: str = "cosine", corrupt_every: int = 0, noise: float = 0.3,
                   scale: float = 1.0, batch: int = 16, tags=(), group: str = "", extra_config=None,
                   step_metric: str | None = None, histograms: bool = False, lr_key: str = "lr",
                   grad_key: str = "grad_norm", exit_code: int = 0, project: str = PROJECT) -> str:
    """Mini-batch linear regression; logs train loss every step and validation every `val_every`."""
    rng = np.random.default_rng(seed)
    x, y, _ = _data(rng, 2000, 8, noise, scale)
    xv, yv = x[1600:], y[1600:]
    x, y = x[:1600], y[:1600]
    config = {"lr": lr, "steps": steps, "batch_size": batch, "schedule": schedule, "seed": seed, "optimizer": "sgd"}
    config.update(extra_config or {})
    run = _init(out, name, config, tags=list(tags), group=group or None, job_type="train", project=project)
    train_key, val_key = keys
    if step_metric:
        run.define_metric(step_metric)
        run.define_metric(train_key, step_metric=step_metric)
        run.define_metric(val_key, step_metric=step_metric)
    w = np.zeros(x.shape[1])
    for step in range(steps):
        cur = _cosine(step, steps, lr, max(1, steps // 20), lr * 0.01) if schedule == "cosine" else lr
        idx = rng.integers(0, len(x), batch)
        xb, yb = x[idx], y[idx].copy()
        if corrupt_every and step > 50 and rng.random() < 1.0 / corrupt_every:
            yb = yb * 25.0  # a bad batch: the loss spikes, the next steps recover
        with np.errstate(over="ignore", invalid="ignore"):
            err = xb @ w - yb
            loss = float(np.mean(err**2))
            grad = 2 * xb.T @ err / batch
            gnorm = float(np.sqrt(np.sum(grad**2)))
        row = {train_key: loss, lr_key: cur, grad_key: gnorm}
        if step_metric:
            row[step_metric] = step * batch
        if histograms and step % 25 == 0:
            import wandb

            row["gradients/layer0.weight"] = wandb.Histogram(grad)
            row["gradients/layer0.bias"] = wandb.Histogram(np.array([gnorm * 1e-3] * 4))
        run.log(row)
        if step % val_every == val_every - 1:
            with np.errstate(over="ignore", invalid="ignore"):
                vloss = float(np.mean((xv @ w - yv) ** 2))
            vrow = {val_key: vloss}
            if step_metric:
                vrow[step_metric] = step * batch
            run.log(vrow)  # a separate log() call, as validation loops do
        with np.errstate(over="ignore", invalid="ignore"):
            w = w - cur * grad
    with np.errstate(over="ignore", invalid="ignore"):
        run.summary["final_weights_norm"] = float(np.sqrt(np.sum(w**2)))
    run_id = run.id
    run.finish(exit_code=exit_code)
    return run_id


def overfit(out: Path, name: str = "overfit-wide-model", seed: int = 1) -> str:
    """Full-batch gradient descent on more features than examples: validation turns up."""
    rng = np.random.default_rng(seed)
    d, n = 60, 50
    w_true = rng.normal(size=d) * 0.3
    x = rng.normal(size=(n, d))
    y = x @ w_true + rng.normal(size=n)
    xv = rng.normal(size=(400, d))
    yv = xv @ w_true + rng.normal(size=400)
    run = _init(out, name, {"lr": 0.005, "features": d, "train_examples": n, "optimizer": "gd", "seed": seed},
                tags=["overfit"], job_type="train")
    w = np.zeros(d)
    for step in range(1500):
        err = x @ w - y
        grad = x.T @ err / n
        run.log({"train_loss": float(np.mean(err**2)), "learning_rate": 0.005})
        if step % 25 == 24:
            run.log({"val_loss": float(np.mean((xv @ w - yv) ** 2))})
        w -= 0.005 * grad
    run_id = run.id
    run.finish()
    return run_id


_KILLED = r"""
import os, signal, sys
sys.path[:0] = {path!r}
from wandb_lens.demo import sgd_regression_until_killed
sgd_regression_until_killed({out!r})
"""


def sgd_regression_until_killed(out: str) -> None:
    """Runs in a child process: trains, then kills itself with SIGKILL mid-run."""
    rng = np.random.default_rng(7)
    x, y, _ = _data(rng, 1000, 8, 0.3)
    run = _init(Path(out), "killed-mid-run", {"lr": 0.02, "steps": 1000, "seed": 7, "optimizer": "sgd"},
                tags=["crash"], job_type="train")
    w = np.zeros(8)
    for step in range(1000):
        idx = rng.integers(0, 1000, 16)
        err = x[idx] @ w - y[idx]
        run.log({"loss": float(np.mean(err**2)), "lr": 0.02})
        w -= 0.02 * 2 * x[idx].T @ err / 16
        if step == 400:
            import time

            time.sleep(1.0)  # let wandb-core write what it has, as a long run would
            os.kill(os.getpid(), signal.SIGKILL)


def write_runs(out: str | os.PathLike) -> dict[str, str]:
    """Write the demo runs under `out/wandb`; returns name -> run id."""
    _quiet_env()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ids = {}
    ids["baseline-cosine"] = sgd_regression(out, "baseline-cosine", steps=800, lr=0.05, seed=0,
                                            tags=["baseline"], group="lr-sweep")
    ids["still-improving"] = sgd_regression(out, "still-improving", steps=300, lr=0.004, seed=2, schedule="constant",
                                            tags=["short"], group="lr-sweep")
    ids["lr-too-high"] = sgd_regression(out, "lr-too-high", steps=400, lr=0.9, seed=3, schedule="constant",
                                        keys=("loss", "val_loss"), scale=1.5, tags=["diverged"], group="lr-sweep",
                                        exit_code=1)
    ids["overfit-wide-model"] = overfit(out)
    ids["plateau-tiny-lr"] = sgd_regression(out, "plateau-tiny-lr", steps=500, lr=2e-6, seed=4, schedule="constant",
                                            keys=("train_loss", "val_loss"), lr_key="learning_rate",
                                            tags=["plateau"], group="lr-sweep")
    ids["spiky-bad-batches"] = sgd_regression(out, "spiky-bad-batches", steps=600, lr=0.03, seed=5,
                                              corrupt_every=60, tags=["unstable"], histograms=True)
    ids["custom-step-axis"] = sgd_regression(out, "custom-step-axis", steps=400, lr=0.05, seed=6,
                                             keys=("train/loss", "eval/loss"), step_metric="trainer/global_step",
                                             grad_key="train/grad_norm", lr_key="train/lr", tags=["baseline"])
    src = str(Path(__file__).resolve().parents[1])
    # its own wandb-core service (not ours, inherited through WANDB_SERVICE), so the run is
    # closed when the killed process's service notices, as it would be for a user
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    proc = subprocess.run([sys.executable, "-c", _KILLED.format(path=[src], out=str(out))],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, env=env)
    if proc.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the killed-run child exited with {proc.returncode}, expected SIGKILL")
    return ids


def write_demo(out: str) -> int:
    ids = write_runs(out)
    from .demo_extras import SWEEP_PROJECT, SWEEP_RUNS, write_extras

    write_extras(out)
    print(f"Wrote 5 runs with console output, system metrics and artifacts (project {PROJECT!r}) and a "
          f"{SWEEP_RUNS}-run sweep group (project {SWEEP_PROJECT!r})", file=sys.stderr)
    from .demo_weave import PROJECT as EVAL_PROJECT, write_evals

    traces_db = write_evals(out)
    print(f"Wrote 2 demo Weave evaluations (project {EVAL_PROJECT!r}) to {traces_db}", file=sys.stderr)
    runs_dir = Path(out).resolve() / "wandb"
    exe = Path(sys.executable).with_name("wandb-lens")
    print(f"Wrote {len(ids) + 1} demo runs (project {PROJECT!r}) to {runs_dir}", file=sys.stderr)
    print("Point a client at them:", file=sys.stderr)
    print(f"  {exe} serve --runs-dir {runs_dir} --traces-db {traces_db}", file=sys.stderr)
    print(f"  {exe} call query_runs '{{\"project\": \"{PROJECT}\"}}' --runs-dir {runs_dir}", file=sys.stderr)
    return 0
