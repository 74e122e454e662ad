"""Labelled runs written by real PyTorch trainings (CPU, tiny models) through `wandb.init(mode="offline")`,
logged with the key conventions of HF Trainer, Lightning, Keras and plain loops.

Every run's label follows from its training dynamics and is CHECKED while the run is written, on
noise-free quantities the curve itself does not show (the full-data loss, the LR, the return of
the greedy policy): `_check` raises when a run does not do what its label says, so a label is never
a guess about a curve. The one-line reason of each label is in SUITE.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

PROJECT = "lens-torch"


def _torch():
    import torch

    torch.set_num_threads(1)
    return torch


def _init(out: Path, name: str, config: dict):
    from wandb_lens.demo import _init as init

    return init(out, name, config, project=PROJECT)


class Keys:
    """Key conventions of real frameworks: train, val, lr, grad norm, step key (None = _step only)."""
    HF = ("train/loss", "eval/loss", "train/learning_rate", "train/grad_norm", "train/global_step")
    LIGHTNING = ("train_loss_step", "val_loss", "lr-Adam", None, "trainer/global_step")
    KERAS = ("loss", "val_loss", "lr", None, None)
    PLAIN = ("loss", "val/loss", "lr", "grad_norm", None)


def _check(cond: bool, name: str, what: str) -> None:
    if not cond:
        raise AssertionError(f"labelled run {name!r} does not do what its label says: {what}")


def _data(seed: int, n: int | None = None, d: int = 16, classes: int = 5, label_noise: float = 0.1,
          linear: bool = False):
    """A teacher classification task with label noise (the loss has a floor above 0): (sample(batch),
    train set, validation set). n None: online (every batch fresh, so train and validation agree and
    the loss settles at its floor); else a fixed train set of n examples (a model can memorise it)."""
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    if linear:
        teacher = torch.nn.Linear(d, classes)
    else:
        teacher = torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.Tanh(), torch.nn.Linear(32, classes))
    with torch.no_grad():
        for p in teacher.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 1.5)

    def make(m: int):
        x = torch.randn(m, d, generator=g)
        with torch.no_grad():
            y = teacher(x).argmax(1)
        flip = torch.rand(m, generator=g) < label_noise
        return x, torch.where(flip, torch.randint(0, classes, (m,), generator=g), y)

    xv, yv = make(1000)
    if n is None:
        xt, yt = make(2000)  # a fixed sample to measure the full-data loss on
        return (lambda b: make(b)), (xt, yt), (xv, yv)
    xt, yt = make(n)
    return (lambda b: (lambda i: (xt[i], yt[i]))(torch.randint(0, n, (b,), generator=g))), (xt, yt), (xv, yv)


def _lr_at(kind: str, step: int, total: int, peak: float) -> float:
    if kind == "constant":
        return peak
    if kind == "warmup_cosine":
        warm = max(1, total // 10)
        if step < warm:
            return peak * (step + 1) / warm
        return peak * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
    if kind == "warmup_linear":
        warm = max(1, total // 20)
        return peak * (step + 1) / warm if step < warm else peak * max(0.0, (total - step) / (total - warm))
    if kind == "step":  # x0.1 at 50% and 75%
        return peak * (0.1 ** (int(step >= total // 2) + int(step >= 3 * total // 4)))
    if kind == "early_cut":  # x0.001 at 5% of the run: the LR collapses
        return peak * (1e-3 if step >= total // 20 else 1.0)
    if kind == "range_test":  # LR grows 1.5% per step: fine at first, then far too high
        return peak * 1.015 ** step
    if kind == "long_warmup":
        return peak * min(1.0, (step + 1) / total * 1.05)
    raise ValueError(kind)


def classify(out: Path, name: str, *, seed: int, steps: int, batch: int, lr: float, opt: str = "adam",
             sched: str = "constant", keys=Keys.HF, width: int = 64, n: int | None = None, label_noise: float = 0.1,
             linear: bool = True,
             val_every: int = 50, corrupt_every: int = 0, onecycle: bool = False, watch: bool = False,
             log_every: int = 1, dead_init: bool = False, nan_first: bool = False, nan_val: bool = False) -> dict:
    """An MLP classifier trained by minibatches; returns facts measured on noise-free quantities."""
    torch = _torch()
    torch.manual_seed(seed)
    sample, (xt, yt), (xv, yv) = _data(seed, n=n, label_noise=label_noise, linear=linear)
    model = torch.nn.Sequential(torch.nn.Linear(xt.shape[1], width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                                torch.nn.ReLU(), torch.nn.Linear(width, 5))
    if dead_init:  # every hidden unit starts dead: no gradient reaches the first layers
        with torch.no_grad():
            model[0].bias.fill_(-30.0)
            model[2].bias.fill_(-30.0)
    optim = torch.optim.Adam(model.parameters(), lr=lr) if opt == "adam" else \
        torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    one = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=lr, total_steps=steps) if onecycle else None
    tk, vk, lk, gk, sk = keys
    cfg = {"learning_rate": lr, "optimizer": opt, "batch_size": batch, "schedule": "onecycle" if onecycle else sched,
           "seed": seed}
    if watch:  # wandb.watch logs through the global run: start this one as the global run
        import wandb

        run = wandb.init(project=PROJECT, name=name, config=cfg, dir=str(out), mode="offline",
                         reinit="finish_previous", settings=wandb.Settings(console="off", silent=True))
    else:
        run = _init(out, name, cfg)
    if sk:
        run.define_metric(sk)
        run.define_metric("*", step_metric=sk)
    if watch:
        run.watch(model, log="gradients", log_freq=50)
    loss_fn = torch.nn.CrossEntropyLoss()
    full = []
    acc = []
    for step in range(steps):
        if not one:
            for pg in optim.param_groups:
                pg["lr"] = _lr_at(sched, step, steps, lr)
        cur = optim.param_groups[0]["lr"]
        xb, yb = sample(batch)
        if corrupt_every and step > steps // 10 and torch.rand(1).item() < 1.0 / corrupt_every:
            xb = xb * 40.0  # a corrupt batch (unnormalised inputs): a huge loss and a damaging step
        loss = loss_fn(model(xb), yb)
        optim.zero_grad()
        loss.backward()
        gn = float(torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")))
        optim.step()
        if one:
            one.step()
        acc.append(loss.item())
        row = {}
        if step % log_every == log_every - 1:
            val = float(np.mean(acc)) if log_every > 1 else float(loss)  # HF averages over logging_steps
            acc = []
            row[tk] = float("nan") if (nan_first and step < log_every) else val
            row[lk] = cur
            if gk:
                row[gk] = gn
        if step % val_every == val_every - 1:
            with torch.no_grad():
                vl = float(loss_fn(model(xv), yv))
                full.append((step, float(loss_fn(model(xt), yt)), vl))
            row[vk] = float("nan") if nan_val else vl
            if keys is Keys.LIGHTNING:
                row["epoch"] = step // val_every
        if row:
            if sk:
                row[sk] = step + 1
            run.log(row)
    run.finish()
    f = np.array(full)
    return {"id": run.id, "steps": f[:, 0], "train_full": f[:, 1], "val": f[:, 2]}


def regression(out: Path, name: str, *, seed: int, steps: int, batch: int, lr: float, opt: str = "adam",
               sched: str = "constant", keys=Keys.PLAIN, noise: float = 0.0, val_every: int = 50) -> dict:
    """A linear-teacher regression with an MLP; with noise 0 the loss can fall to ~1e-6 and wobble."""
    torch = _torch()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1200, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + noise * torch.randn(1200, 1, generator=g)
    xt, yt, xv, yv = x[:1000], y[:1000], x[1000:], y[1000:]
    model = torch.nn.Linear(8, 1) if noise == 0 else \
        torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    optim = torch.optim.Adam(model.parameters(), lr=lr) if opt == "adam" else \
        torch.optim.SGD(model.parameters(), lr=lr)
    tk, vk, lk, gk, sk = keys
    run = _init(out, name, {"learning_rate": lr, "optimizer": opt, "batch_size": batch, "seed": seed})
    full = []
    for step in range(steps):
        for pg in optim.param_groups:
            pg["lr"] = _lr_at(sched, step, steps, lr)
        idx = torch.randint(0, 1000, (batch,), generator=g)
        loss = torch.mean((model(xt[idx]) - yt[idx]) ** 2)
        optim.zero_grad()
        loss.backward()
        optim.step()
        row = {tk: float(loss), lk: optim.param_groups[0]["lr"]}
        if step % val_every == val_every - 1:
            with torch.no_grad():
                vl = float(torch.mean((model(xv) - yv) ** 2))
                full.append((step, float(torch.mean((model(xt) - yt) ** 2)), vl))
            row[vk] = vl
        run.log(row)
    run.finish()
    f = np.array(full)
    return {"id": run.id, "steps": f[:, 0], "train_full": f[:, 1], "val": f[:, 2]}


def bandit_pg(out: Path, name: str, *, seed: int, episodes: int, lr: float, key: str = "episode_reward",
              window: int = 0, arms: int = 10) -> dict:
    """REINFORCE on a Gaussian multi-armed bandit (10 pulls per episode); logs the episode return
    (or, with `window`, its running mean over the last `window` episodes like SB3's ep_rew_mean)."""
    torch = _torch()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(arms, generator=g)
    logits = torch.zeros(arms, requires_grad=True)
    optim = torch.optim.Adam([logits], lr=lr)
    run = _init(out, name, {"learning_rate": lr, "algo": "reinforce", "seed": seed})
    hist, greedy = [], []
    for ep in range(episodes):
        probs = torch.softmax(logits, 0)
        a = torch.multinomial(probs, 10, replacement=True, generator=g)
        r = means[a] + torch.randn(10, generator=g)
        loss = -(torch.log(probs[a]) * (r - r.mean())).sum()
        optim.zero_grad()
        loss.backward()
        optim.step()
        ret = float(r.sum())
        hist.append(ret)
        row = {key: float(np.mean(hist[-window:])) if window else ret, "train/policy_loss": float(loss),
               "learning_rate": lr}
        run.log(row)
        greedy.append(float((torch.softmax(logits, 0) * means).sum() * 10))
    run.finish()
    return {"id": run.id, "expected_return": np.array(greedy), "best_possible": float(means.max() * 10)}


def _tail_move(v: np.ndarray, share: float) -> float:
    """How far the noise-free curve moved the good way over its last `share` of points, as a share of
    its whole descent: median of the first half of that stretch minus median of the second half."""
    t = v[int(len(v) * (1 - share)):]
    h = max(1, len(t) // 2)
    descent = float(v[0] - np.min(v)) or 1e-12
    return float(np.median(t[:h]) - np.median(t[h:])) / descent


def _bayes_ce(noise: float, k: int = 5) -> float:
    """Cross-entropy of the best possible predictor under uniform label noise (the loss floor)."""
    p_true, p_other = 1 - noise + noise / k, noise / k
    return float(-(p_true * np.log(p_true) + (k - 1) * p_other * np.log(p_other))) if noise else 0.0


def _write(out: Path, name: str, spec) -> dict:
    verdict, why, fn, check = spec
    facts = fn(out, name)
    measured = check(facts, name)
    if verdict == "auto":
        verdict = measured
    _check(verdict == measured, name, f"measured {measured}")
    return {"id": facts["id"], "verdict": verdict, "why": why}


def _no_alarm(f, n):
    """converged or healthy, from the full-data train loss, on the windows the verdict rules use:
    < 2% of the descent gained over the last 40% (median of its first half vs its second half) is
    converged, > 4% over the last 25% (still improving at the end) is healthy; in between is
    ambiguous and refused. Validation must not turn up (> 10% above its best)."""
    t = f["train_full"]
    _check(t[-1] < 0.8 * t[0], n, "a real descent first")
    _check(f["val"][-1] <= 1.1 * f["val"].min() + 1e-6, n, "validation not rising")
    flat, falling = _tail_move(t, 0.4), _tail_move(t, 0.25)
    if flat < 0.02:
        return "converged"
    if falling > 0.04:
        return "healthy"
    raise AssertionError(f"labelled run {n!r} is ambiguous: gained {flat:.1%} of its descent over the last 40%")


def _healthy(f, n):
    _check(_tail_move(f["train_full"], 0.25) > 0.04, n, "full-data train loss still falling over the last 25%")
    return "healthy"


def _warming(f, n):
    t = f["train_full"]
    _check(t[-1] > 0.8 * t[0], n, "the loss has barely moved yet (still warming up)")
    return "healthy"


def _overfit(f, n):
    j = int(np.argmin(f["val"]))
    _check(j < 0.8 * len(f["val"]) and f["val"][-1] > 1.1 * f["val"][j], n, "validation rises >10% after its best")
    _check(f["train_full"][-1] < f["train_full"][j], n, "train still falling")
    return "overfit"


def _diverged(f, n):
    t = f["train_full"]
    best = np.nanmin(t)
    _check(not np.isfinite(t[-1]) or t[-1] - best > 0.5 * (t[0] - best), n,
           "full-data loss ends NaN or risen by more than half its descent")
    return "diverged"


def _plateaued(noise: float):
    def check(f, n):
        t = f["train_full"]
        _check(abs(_tail_move(t, 0.6)) < 0.05 or t[-1] > 0.9 * t[0], n, "flat over the last 60%")
        _check(t[-1] > 1.5 * _bayes_ce(noise) + 0.1, n, "stuck far above the loss floor of the task")
        return "plateaued"
    return check


def _unstable(f, n):
    return "unstable"  # by construction: corrupt batches are injected (see `corrupt_every`)


def _rl_converged(f, n):
    e = f["expected_return"]
    _check(abs(e[-1] - e[int(len(e) * 0.6)]) < 0.03 * abs(f["best_possible"]) + 0.05 and
           e[-1] > 0.9 * f["best_possible"], n, "greedy return at its optimum over the last 40%")
    return "converged"


def _rl_healthy(f, n):
    e = f["expected_return"]
    _check(e[-1] - e[int(len(e) * 0.75)] > 0.05 * abs(f["best_possible"]), n, "greedy return still rising")
    return "healthy"


def suite() -> dict[str, tuple]:
    """name -> (verdict ("auto": converged or healthy as measured by `_no_alarm`), one-line reason,
    writer, label check)."""
    C, R, B = classify, regression, bandit_pg
    return {
        # healthy / converged (the no-alarm class): small batches, heavy-tailed batch loss
        "t-hf-cosine-b8": ("auto", "HF keys, warm-up+cosine, batch 8; label from the full-data loss",
                           lambda o, n: C(o, n, seed=1, steps=1200, batch=8, lr=1e-2, sched="warmup_cosine",
                                          keys=Keys.HF), _no_alarm),
        "t-lightning-onecycle-b4": ("auto", "Lightning keys, OneCycle, batch 4",
                                    lambda o, n: C(o, n, seed=2, steps=1200, batch=4, lr=1e-2, onecycle=True,
                                                   keys=Keys.LIGHTNING), _no_alarm),
        "t-keras-stepdecay-sgd": ("auto", "Keras keys, SGD+momentum, step decay x0.1 at 50%/75%",
                                  lambda o, n: C(o, n, seed=3, steps=1200, batch=16, lr=0.1, opt="sgd",
                                                 sched="step", keys=Keys.KERAS), _no_alarm),
        "t-plain-b2-const": ("auto", "plain keys, batch 2, constant Adam: very heavy-tailed noise",
                             lambda o, n: C(o, n, seed=4, steps=1500, batch=2, lr=3e-3, keys=Keys.PLAIN), _no_alarm),
        "t-hf-logging-steps": ("auto", "HF logging_steps=10 (averaged loss), warm-up+linear decay",
                               lambda o, n: C(o, n, seed=5, steps=1500, batch=8, lr=1e-2, sched="warmup_linear",
                                              keys=Keys.HF, log_every=10), _no_alarm),
        "t-adam-tiny-loss": ("converged", "noise-free linear regression: Adam falls orders of magnitude, then wobbles",
                             lambda o, n: R(o, n, seed=6, steps=1500, batch=32, lr=3e-2),
                             lambda f, n: (_check(f["train_full"][-1] < 1e-3 * f["train_full"][0], n, "fell 3 orders"),
                                           "converged")[1]),
        "t-nan-first-point": ("auto", "a NaN logged only at the first step (logging at init), then a normal run",
                              lambda o, n: C(o, n, seed=7, steps=1200, batch=16, lr=3e-3, keys=Keys.PLAIN,
                                             nan_first=True), _no_alarm),
        "t-watch-sgd-b16": ("auto", "wandb.watch gradients, SGD momentum, constant LR",
                            lambda o, n: C(o, n, seed=8, steps=1200, batch=16, lr=0.1, opt="sgd", watch=True,
                                           keys=Keys.PLAIN), _no_alarm),
        "t-lightning-slow-adam": ("healthy", "Adam at a small LR on a harder task: full-data loss still falling",
                                  lambda o, n: C(o, n, seed=11, steps=1200, batch=8, lr=1e-4, keys=Keys.LIGHTNING,
                                                 label_noise=0.0, width=128, linear=False), _healthy),
        "t-hf-short-b4": ("healthy", "batch 4, a short run stopped while the loss is still falling",
                          lambda o, n: C(o, n, seed=12, steps=600, batch=4, lr=3e-4, keys=Keys.HF, label_noise=0.0,
                                         linear=False), _healthy),
        "t-warmup-not-done": ("healthy", "stopped during a long warm-up: the LR is still rising, the loss barely moved",
                              lambda o, n: C(o, n, seed=13, steps=400, batch=8, lr=2e-5, sched="long_warmup",
                                             keys=Keys.HF, label_noise=0.0, linear=False), _warming),
        "t-nan-val-healthy": ("healthy", "validation metric NaN at every point (broken eval); train still falling",
                              lambda o, n: C(o, n, seed=14, steps=1000, batch=8, lr=2e-4, keys=Keys.LIGHTNING,
                                             label_noise=0.0, nan_val=True, linear=False), _healthy),
        "t-rl-bandit-rising": ("healthy", "REINFORCE bandit, small LR: the greedy return is still rising",
                               lambda o, n: B(o, n, seed=15, episodes=1500, lr=0.004), _rl_healthy),
        "t-rl-sb3-rising": ("healthy", "SB3-style rollout/ep_rew_mean (100-episode mean), still rising",
                            lambda o, n: B(o, n, seed=16, episodes=1500, lr=0.003, key="rollout/ep_rew_mean",
                                           window=100), _rl_healthy),
        "t-rl-bandit-solved": ("converged", "REINFORCE bandit: the policy reaches the best arm, return flat at it",
                               lambda o, n: B(o, n, seed=17, episodes=1500, lr=0.05), _rl_converged),
        # unstable: corrupt batches (x40 inputs) give real bad-batch spikes
        "t-hf-bad-batches": ("unstable", "corrupt batches every ~60 steps under SGD: spikes that set it back",
                             lambda o, n: C(o, n, seed=21, steps=1200, batch=16, lr=0.05, opt="sgd",
                                            corrupt_every=60, keys=Keys.HF), _unstable),
        "t-lightning-bad-batches": ("unstable", "corrupt batches every ~40 steps under Adam",
                                    lambda o, n: C(o, n, seed=22, steps=1200, batch=16, lr=3e-3, corrupt_every=40,
                                                   keys=Keys.LIGHTNING), _unstable),
        # diverged
        "t-sgd-lr-too-high": ("diverged", "SGD at LR 0.6 on a tanh MLP regression: the loss blows up to NaN",
                              lambda o, n: R(o, n, seed=31, steps=600, batch=16, lr=0.6, opt="sgd", noise=0.1),
                              _diverged),
        "t-lr-range-test": ("diverged", "LR grows 1.5%/step: the loss falls, then rises and stays up",
                            lambda o, n: C(o, n, seed=32, steps=700, batch=32, lr=1e-4, opt="sgd",
                                           sched="range_test", keys=Keys.HF), _diverged),
        # overfit: a wide MLP on 150 noisy examples
        "t-overfit-lightning": ("overfit", "wide MLP, 120 train examples with 30% label noise: val loss turns up",
                                lambda o, n: C(o, n, seed=41, steps=1500, batch=16, lr=3e-3, n=150, width=256,
                                               label_noise=0.3, keys=Keys.LIGHTNING), _overfit),
        "t-overfit-hf": ("overfit", "the same with HF keys and warm-up+cosine",
                         lambda o, n: C(o, n, seed=42, steps=1500, batch=16, lr=3e-3, n=150, width=256,
                                        label_noise=0.3, sched="warmup_cosine", keys=Keys.HF), _overfit),
        # plateaued
        "t-lr-cut-early": ("plateaued", "LR cut x1000 at 5% of the run: the loss stops falling there",
                           lambda o, n: C(o, n, seed=51, steps=1200, batch=16, lr=1e-3, sched="early_cut",
                                          keys=Keys.LIGHTNING, label_noise=0.0), _plateaued(0.0)),
        "t-tiny-lr": ("plateaued", "Adam at LR 1e-7: the loss never moves",
                      lambda o, n: C(o, n, seed=52, steps=800, batch=16, lr=1e-7, keys=Keys.HF), _plateaued(0.1)),
        "t-dead-relu": ("plateaued", "every hidden ReLU dead from init: no gradient, flat loss",
                        lambda o, n: C(o, n, seed=53, steps=800, batch=16, lr=1e-3, dead_init=True, keys=Keys.HF),
                        _plateaued(0.1)),
    }


# runs never used to tune the rules: other seeds / sizes / keys of the same dynamics, judged separately
HELD_OUT = {
    "h-hf-cosine-b4": ("auto", "warm-up+cosine, batch 4, another seed",
                       lambda o, n: classify(o, n, seed=101, steps=1200, batch=4, lr=5e-3, sched="warmup_cosine",
                                             keys=Keys.HF), _no_alarm),
    "h-keras-slow": ("healthy", "Keras keys, small LR, still falling",
                     lambda o, n: classify(o, n, seed=102, steps=1000, batch=16, lr=1e-4, keys=Keys.KERAS,
                                           label_noise=0.0, width=128, linear=False), _healthy),
    "h-bad-batches-plain": ("unstable", "corrupt batches every ~50 steps, plain keys",
                            lambda o, n: classify(o, n, seed=103, steps=1000, batch=16, lr=0.05, opt="sgd",
                                                  corrupt_every=50, keys=Keys.PLAIN), _unstable),
    "h-overfit-plain": ("overfit", "wide MLP on 150 noisy examples, plain keys",
                        lambda o, n: classify(o, n, seed=104, steps=1200, batch=8, lr=2e-3, n=150, width=256,
                                              label_noise=0.3, keys=Keys.PLAIN), _overfit),
    "h-lr-cut-hf": ("plateaued", "LR cut x1000 at 5%, HF keys",
                    lambda o, n: classify(o, n, seed=105, steps=1000, batch=8, lr=1e-3, sched="early_cut",
                                          keys=Keys.HF, label_noise=0.0), _plateaued(0.0)),
    "h-rl-solved-sb3": ("converged", "SB3-style mean return at the optimum",
                        lambda o, n: bandit_pg(o, n, seed=106, episodes=1500, lr=0.05, key="rollout/ep_rew_mean",
                                               window=100), _rl_converged),
}


def write(out: Path) -> dict[str, dict]:
    """Write every run (one process, runs in sequence); name -> {"id", "verdict", "why", "held_out"}.
    A run whose dynamics fail its label check is left out of the labels (listed under "excluded")."""
    out = Path(out)
    made: dict[str, dict] = {}
    for group, held in ((suite(), False), (HELD_OUT, True)):
        for name, spec in group.items():
            try:
                made[name] = {**_write(out, name, spec), "held_out": held}
            except AssertionError as exc:
                made[name] = {"excluded": str(exc), "held_out": held}
    return made
