"""Labelled scenario runs for the diagnostics tests: real tiny numpy trainings logged through
`wandb.init(mode="offline")`, each with the verdict its training dynamics produce.

Every run logs train metrics every step and validation in a separate `log()` call every N steps
(as evaluation loops do). Names vary across runs; some declare a custom step metric. The killed run
is a child process that SIGKILLs itself mid-training.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from wandb_lens.demo import _init, overfit

PROJECT = "lens-scenarios"


def _lr(kind: str, step: int, total: int, peak: float) -> float:
    if kind == "constant":
        return peak
    if kind == "cosine":
        warm = max(1, total // 20)
        if step < warm:
            return peak * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return peak * 0.01 + 0.5 * peak * 0.99 * (1 + math.cos(math.pi * t))
    if kind == "collapse":  # an exponential decay far too fast: the LR is ~0 after 15% of the run
        return peak * 0.96 ** step
    if kind == "ramp":  # LR grows 4x over the first half (a runaway schedule), then holds just past stability
        return peak * (1 + 3.0 * min(1.0, 2 * step / total))
    raise ValueError(kind)


def regression(out: Path, name: str, *, steps: int, lr: float, schedule: str = "constant", seed: int = 0,
               keys=("train/loss", "val/loss"), val_every: int = 20, batch: int = 16, noise: float = 0.3,
               scale: float = 1.0, corrupt_every: int = 0, corrupt_after: float = 0.0, step_metric: str | None = None,
               lr_key: str = "lr", grad_key: str | None = "grad_norm", label: str = "") -> str:
    """Mini-batch linear regression (8 features); `corrupt_every` injects bad batches (loss spikes)."""
    rng = np.random.default_rng(seed)
    w_true = rng.normal(size=8)
    x = rng.normal(size=(2000, 8)) * scale
    y = x @ w_true + rng.normal(size=2000) * noise
    xv, yv, x, y = x[1600:], y[1600:], x[:1600], y[:1600]
    run = _init(out, name, {"lr": lr, "steps": steps, "schedule": schedule, "seed": seed, "batch_size": batch,
                            "label": label}, project=PROJECT)
    tk, vk = keys
    if step_metric:
        run.define_metric(step_metric)
        run.define_metric(tk, step_metric=step_metric)
        run.define_metric(vk, step_metric=step_metric)
    w = np.zeros(8)
    for step in range(steps):
        cur = _lr(schedule, step, steps, lr)
        idx = rng.integers(0, len(x), batch)
        xb, yb = x[idx], y[idx].copy()
        if corrupt_every and step > max(30, corrupt_after * steps) and rng.random() < 1.0 / corrupt_every:
            yb = yb * 25.0
        with np.errstate(all="ignore"):
            err = xb @ w - yb
            grad = 2 * xb.T @ err / batch
            row = {tk: float(np.mean(err**2)), lr_key: cur}
            if grad_key:
                row[grad_key] = float(np.sqrt(np.sum(grad**2)))
        if step_metric:
            row[step_metric] = (step + 1) * batch
        run.log(row)
        if step % val_every == val_every - 1:
            with np.errstate(all="ignore"):
                vrow = {vk: float(np.mean((xv @ w - yv) ** 2))}
            if step_metric:
                vrow[step_metric] = (step + 1) * batch
            run.log(vrow)
        with np.errstate(all="ignore"):
            w = w - cur * grad
    run_id = run.id
    run.finish()
    return run_id


def logistic_overfit(out: Path, name: str, *, seed: int, d: int = 60, n: int = 40, steps: int = 800,
                     lr: float = 0.5, keys=("train/loss", "validation/loss"), val_every: int = 10,
                     step_metric: str | None = None) -> str:
    """Logistic regression with more features than examples: train loss -> 0, validation turns up."""
    rng = np.random.default_rng(seed)
    w_true = rng.normal(size=d) * 0.5
    x = rng.normal(size=(n, d))
    xv = rng.normal(size=(500, d))
    flip = rng.random(n) < 0.15  # label noise the model memorises

    def labels(a, noisy):
        p = (a @ w_true > 0).astype(float)
        return np.where(noisy, 1 - p, p)

    y, yv = labels(x, flip), labels(xv, np.zeros(500, bool))
    run = _init(out, name, {"lr": lr, "features": d, "examples": n, "seed": seed, "label": "overfit"}, project=PROJECT)
    tk, vk = keys
    if step_metric:
        run.define_metric(step_metric)
        run.define_metric(tk, step_metric=step_metric)
        run.define_metric(vk, step_metric=step_metric)
    w = np.zeros(d)

    def nll(a, t, w):
        z = np.clip(a @ w, -30, 30)
        p = 1 / (1 + np.exp(-z))
        return float(-np.mean(t * np.log(p + 1e-12) + (1 - t) * np.log(1 - p + 1e-12))), p

    for step in range(steps):
        loss, p = nll(x, y, w)
        row = {tk: loss}
        if step_metric:
            row[step_metric] = step
        run.log(row)
        if step % val_every == val_every - 1:
            vrow = {vk: nll(xv, yv, w)[0]}
            if step_metric:
                vrow[step_metric] = step
            run.log(vrow)
        w -= lr * x.T @ (p - y) / n
    run_id = run.id
    run.finish()
    return run_id


_KILLED = r"""
import sys
sys.path[:0] = {path!r}
from scenarios import killed_child
killed_child({out!r})
"""


def killed_child(out: str) -> None:
    """Runs in a child process: a constant-LR training that SIGKILLs itself at step 500."""
    rng = np.random.default_rng(17)
    x = rng.normal(size=(1000, 8))
    y = x @ rng.normal(size=8) + rng.normal(size=1000) * 0.3
    run = _init(Path(out), "killed-converging", {"lr": 0.03, "steps": 2000, "label": "converged"}, project=PROJECT)
    w = np.zeros(8)
    for step in range(2000):
        idx = rng.integers(0, 1000, 16)
        err = x[idx] @ w - y[idx]
        run.log({"loss": float(np.mean(err**2)), "learning_rate": 0.03})
        w -= 0.03 * 2 * x[idx].T @ err / 16
        if step == 500:
            import time

            time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGKILL)


# name -> (expected verdict, writer). Verdicts follow from the dynamics: see each comment.
def scenarios() -> dict[str, tuple[str, object]]:
    R = regression
    return {
        # diverged: LR far above 2/lambda_max -> the loss explodes to inf/NaN, or grows to the end
        "div-nan-loss": ("diverged", lambda o, n: R(o, n, steps=300, lr=0.9, scale=1.5, keys=("loss", "val_loss"))),
        "div-nan-evalnames": ("diverged", lambda o, n: R(o, n, steps=400, lr=0.7, scale=1.5, seed=3,
                                                         keys=("train/loss", "eval/loss"), val_every=25)),
        "div-lr-ramp": ("diverged", lambda o, n: R(o, n, steps=400, lr=0.09, schedule="ramp", seed=4, scale=1.7,
                                                   batch=256, keys=("train_loss", "eval_loss"))),
        "div-short": ("diverged", lambda o, n: R(o, n, steps=80, lr=1.2, scale=1.5, seed=5, val_every=10)),
        # overfit: more parameters than examples; validation turns up while train keeps falling
        "ovf-linear": ("overfit", lambda o, n: overfit(o, n, seed=1)),
        "ovf-linear-2": ("overfit", lambda o, n: overfit(o, n, seed=8)),
        "ovf-logistic": ("overfit", lambda o, n: logistic_overfit(o, n, seed=2)),
        "ovf-logistic-stepmetric": ("overfit", lambda o, n: logistic_overfit(
            o, n, seed=3, keys=("train_loss", "val_loss"), step_metric="trainer/global_step", val_every=20)),
        # unstable: bad batches -> repeated spikes that recover
        "uns-bad-batches": ("unstable", lambda o, n: R(o, n, steps=600, lr=0.03, seed=6, corrupt_every=60,
                                                       schedule="cosine")),
        "uns-lossnames": ("unstable", lambda o, n: R(o, n, steps=400, lr=0.02, seed=7, corrupt_every=40,
                                                     keys=("loss", "val_loss"), grad_key="train/grad_norm")),
        "uns-late": ("unstable", lambda o, n: R(o, n, steps=500, lr=0.02, seed=8, corrupt_every=25, corrupt_after=0.7)),
        "uns-short": ("unstable", lambda o, n: R(o, n, steps=150, lr=0.03, seed=9, corrupt_every=20, val_every=10)),
        # plateaued: the LR is far too small, the inputs too small to learn from, or the LR collapses early
        "pla-tiny-lr": ("plateaued", lambda o, n: R(o, n, steps=500, lr=2e-6, seed=10, keys=("train_loss", "val_loss"),
                                                    lr_key="learning_rate")),
        "pla-tiny-lr-stepmetric": ("plateaued", lambda o, n: R(o, n, steps=400, lr=1e-6, seed=11, keys=(
            "train/loss", "eval/loss"), step_metric="train/global_step", lr_key="train/lr")),
        "pla-lr-collapse": ("plateaued", lambda o, n: R(o, n, steps=600, lr=0.004, schedule="collapse", seed=12)),
        "pla-lr-collapse-2": ("plateaued", lambda o, n: R(o, n, steps=400, lr=0.003, schedule="collapse", seed=13,
                                                          keys=("loss", "val_loss"), lr_key="learning_rate")),
        # converged: a real descent, then flat near the best
        "cvg-cosine": ("converged", lambda o, n: R(o, n, steps=800, lr=0.05, schedule="cosine", seed=14)),
        "cvg-stepmetric": ("converged", lambda o, n: R(o, n, steps=400, lr=0.05, schedule="cosine", seed=15, keys=(
            "train/loss", "eval/loss"), step_metric="trainer/global_step", grad_key="train/grad_norm", lr_key="train/lr")),
        "cvg-constant-long": ("converged", lambda o, n: R(o, n, steps=2500, lr=0.02, seed=16, keys=("loss", "val_loss"),
                                                          val_every=100)),
        "cvg-short": ("converged", lambda o, n: R(o, n, steps=120, lr=0.08, seed=18, val_every=10)),
        # healthy: still improving at the end
        "hlt-slow": ("healthy", lambda o, n: R(o, n, steps=300, lr=0.004, seed=19)),
        "hlt-names": ("healthy", lambda o, n: R(o, n, steps=600, lr=0.0015, seed=20, keys=("train_loss", "eval_loss"),
                                                lr_key="learning_rate", val_every=50)),
        "hlt-fullbatch": ("healthy", lambda o, n: R(o, n, steps=400, lr=0.0008, seed=21, batch=1600, noise=0.1)),
        "hlt-short": ("healthy", lambda o, n: R(o, n, steps=60, lr=0.01, seed=22, val_every=10)),
    }


def write(out: str | os.PathLike, only: list[str] | None = None, killed: bool = True) -> dict[str, dict]:
    """Write the scenario runs under `out/wandb`; returns name -> {"id", "verdict"}."""
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ["WANDB_MODE"] = "offline"
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, (verdict, fn) in scenarios().items():
        if only and name not in only:
            continue
        made[name] = {"id": fn(out, name), "verdict": verdict}
    if killed:
        env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
        src = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "src")]
        proc = subprocess.run([sys.executable, "-c", _KILLED.format(path=src, out=str(out))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, env=env)
        if proc.returncode != -signal.SIGKILL:
            raise RuntimeError(f"killed child exited with {proc.returncode}")
        made["killed-converging"] = {"id": None, "verdict": "converged"}
    return made


if __name__ == "__main__":
    import json
    import time

    t0 = time.time()
    print(json.dumps(write(sys.argv[1], sys.argv[2:] or None)), file=sys.stderr)
    print(f"{time.time() - t0:.1f} s", file=sys.stderr)


def extras(out: str | os.PathLike) -> dict[str, str]:
    """Unlabelled runs for comparison and bad-input tests: repeated seeds, odd keys, histograms."""
    import wandb

    out = Path(out).resolve()
    ids = {}
    for lr, tag in ((0.02, "a"), (0.004, "b")):
        for seed in range(3):
            name = f"seed-{tag}{seed}"
            ids[name] = regression(out, name, steps=200, lr=lr, seed=100 + seed, val_every=20, label="seeds")
    run = _init(out, "odd-keys", {"lr": 0.01, "label": "odd"}, project=PROJECT)
    rng = np.random.default_rng(5)
    for step in range(120):
        row = {"loss": float(2.0 * np.exp(-step / 30) + 0.05 * rng.random()), "const": 1.0, "allnan": float("nan"),
               "phase": "warm" if step < 60 else "main", "epoch": step % 50}
        if step in (10, 90):
            row["rare"] = float(step)
        if step == 50:
            row["single"] = 3.0
        if step % 20 == 0:
            row["gradients/layer0.weight"] = wandb.Histogram(rng.normal(size=200))
            row["gradients/layer9.dead"] = wandb.Histogram(np.zeros(50))
        if step >= 60 and step % 20 == 0:
            row["gradients/late.weight"] = wandb.Histogram(rng.normal(size=200) * 3)
        run.log(row)
    ids["odd-keys"] = run.id
    run.finish()
    return ids


def held_out(out: str | os.PathLike) -> dict[str, dict]:
    """Runs written the same way but never used to tune the rules; verdicts predicted from the dynamics."""
    out = Path(out).resolve()
    return {
        # cosine LR 0.012 on a well-conditioned regression: reaches the noise floor by ~step 200, then flat
        "heldout-converged": {"id": regression(out, "heldout-converged", steps=700, lr=0.012, schedule="cosine",
                                               seed=31, keys=("training/loss", "valid/loss"), val_every=35, batch=32),
                              "verdict": "converged"},
        # 100 features, 50 noisy examples: memorises the noise, validation turns up
        "heldout-overfit": {"id": logistic_overfit(out, "heldout-overfit", seed=41, d=100, n=50, steps=600, lr=0.3,
                                                   keys=("loss", "val_loss"), val_every=15),
                            "verdict": "overfit"},
    }
