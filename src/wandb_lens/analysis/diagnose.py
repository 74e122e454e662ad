"""One run's diagnosis from its series: curve features, the verdict (verdict.py), and the compact
answer `diagnose_run` returns. The tool layer only reads the series (keys, step axis) and adds the
run's identity; everything judged is judged here.

Named for what they are (never a divergence): NaN/Inf only before the first finite train point (a
logging artefact at init), and a validation metric that is NaN/Inf (a broken validation, judged
apart from training). A logged LR that contradicts the run's config (`learning_rate` / `lr` more than
1.5x away from the logged peak, `warmup_steps` > 0 with no warm-up logged) is said.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .curves import Curve, analyse
from .gradients import grad_norm_features
from .schedule import lr_features
from .verdict import judge

EVIDENCE_MAX = 5
ACTIONS_MAX = 4


def _nan_note(c: Curve, key: str) -> str | None:
    F = c.features
    bad = int(F.get("nan_inf") or 0)
    if not bad:
        return None
    if c.values.size == 0:
        return f"{key} is NaN/Inf at all {F['n']} points: a broken metric (empty split, log(0)?), not a training curve"
    if F.get("nan_leading_only"):
        return f"{key} is NaN/Inf only before its first finite point (step {F['first_nan_step']:.0f}): ignored"
    return None


def config_lr_notes(config: dict | None, lr: dict | None) -> list[str]:
    """Where the logged LR contradicts the run's config schedule fields."""
    if not config or not lr or not lr.get("peak"):
        return []
    out = []
    for k, v in config.items():
        name = k.lower().rsplit("/", 1)[-1].rsplit(".", 1)[-1]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            continue
        if name in ("lr", "learning_rate", "learningrate", "lr0", "base_lr", "max_lr", "peak_lr") and v > 0:
            r = lr["peak"] / v
            if r > 1.5 or r < 1 / 1.5:
                out.append(f"config {k}={v:.4g} but the logged LR peaks at {lr['peak']:.4g} (x{r:.3g}): check which "
                           "one the optimizer used")
                break
    for k, v in config.items():
        name = k.lower().rsplit("/", 1)[-1].rsplit(".", 1)[-1]
        if name in ("warmup_steps", "num_warmup_steps", "warmup_iters") and isinstance(v, (int, float)) \
                and not isinstance(v, bool) and v > 0 and not lr.get("warmup_steps"):
            out.append(f"config {k}={v:g} but the logged LR has no warm-up")
            break
    return out


def _summary(F: dict, keys: tuple[str, ...]) -> dict:
    return {k: F.get(k) for k in keys if F.get(k) is not None}


def diagnose(train_xy: tuple[np.ndarray, np.ndarray], train_dir: str, names: dict[str, str | None],
             why: dict[str, str] | None = None, val_xy=None, val_dir: str = "auto", lr_xy=None, grad_xy=None,
             rl: bool = False, config: dict | None = None) -> dict[str, Any]:
    """The verdict answer for one run. names: role -> key ("train", "val", "lr", "grad_norm")."""
    tk, vk = names["train"], names.get("val")
    notes: list[str] = []
    train = analyse(*train_xy, train_dir)
    n = _nan_note(train, tk)
    if n:
        notes.append(n)
    val = None
    pre_ev: list[str] = []
    if val_xy is not None and vk:
        val = analyse(*val_xy, val_dir)
        vn = _nan_note(val, vk)
        VF = val.features
        if val.values.size == 0 and VF.get("nan_inf"):
            pre_ev.append(f"steps {val_xy[0][0]:.0f}-{val_xy[0][-1]:.0f}: {vn}")
            val = None
        elif VF.get("nan_inf") and not VF.get("nan_leading_only"):
            pre_ev.append(f"step {VF['first_nan_step']:.0f}: {vk} NaN/Inf at {VF['nan_inf']} of {VF['n']} points "
                          "(a validation problem; judged on its finite points)")
        elif vn:
            notes.append(vn)
        if val is not None and val.values.size < 4:
            notes.append(f"{vk!r} has {val.values.size} finite point(s): overfitting not judged")
            val = None
    lr = grad = lr_series = None
    if lr_xy is not None and np.isfinite(lr_xy[1]).any():
        lr, lr_series = lr_features(*lr_xy), lr_xy
    if grad_xy is not None:
        grad = grad_norm_features(*grad_xy)
    if train.values.size < 3:
        tr = {"verdict": "diverged", "evidence": [f"{tk}: only {train.values.size} finite point(s) of {train_xy[1].size}"
                                                  f", first NaN/Inf at step {train.features.get('first_nan_step')}"],
              "next_actions": ["lower the learning rate", "add gradient clipping"]}
    else:
        tr = judge(train, val, lr, grad, lr_series, {"train": tk, "val": vk or "val"}, rl=rl)
    evidence = pre_ev + tr["evidence"]
    actions = tr["next_actions"]
    if pre_ev:
        actions = [f"fix the validation metric {vk!r} (NaN/Inf): it says nothing about training"] + actions
    notes += config_lr_notes(config, lr)
    T = train.features
    out: dict[str, Any] = {
        "verdict": tr["verdict"], "evidence": evidence[:EVIDENCE_MAX], "next_actions": actions[:ACTIONS_MAX],
        "keys": {k: v for k, v in names.items() if v and k in ("train", "val", "lr", "grad_norm")},
    }
    if why:
        out["keys_why"] = "; ".join(f"{r}: {w}" for r, w in why.items() if r in ("train", "val") and w)
    out["train"] = _summary(T, ("n", "first", "min", "min_step", "final_mean", "final_std", "spike_count",
                                "spike_rate_per_1k", "nan_inf"))
    if T.get("spike_count"):
        out["train"]["spike_steps"] = sorted(round(e["step"]) for e in T.get("spikes", []))
    if val is not None:
        out["val"] = _summary(val.features, ("n", "min", "min_step", "final_mean", "nan_inf"))
    if lr:
        out["lr"] = _summary(lr, ("peak", "peak_step", "warmup_steps", "shape", "floor", "final"))
    if grad and "median" in grad:
        out["grad_norm"] = _summary(grad, ("median", "final_median", "explosion", "vanishing", "dead"))
    out["notes"] = notes
    out["_val_judged"] = val is not None
    return out
