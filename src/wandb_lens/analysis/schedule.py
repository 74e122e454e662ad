"""Learning-rate schedule features: peak, warmup (in steps), decay shape, floor, restarts.

- peak / peak_step: the largest LR and the first step it is reached.
- warmup_steps: peak_step - first step, in STEP units (not a point count), when the LR starts below
  90% of the peak; else 0.
- decay shape, fitted on the post-peak segment up to the first restart, time t in [0, 1]:
  constant (range < 1% of peak); step (a few flat levels with jumps); linear p-(p-f)t;
  cosine f+(p-f)(1+cos(pi t))/2 (with a floor f, fitted, not assumed 0); exponential
  (log-linear, fitted on positive values only with x kept aligned); inverse-sqrt a/sqrt(s+b).
  The best fit by RMSE (relative to the peak) wins; "unknown" when none fits within 5%.
- restarts: after the peak, the LR rises above 1.01x its running trough by more than 10% of the peak.
"""

from __future__ import annotations

import numpy as np


def _rmse(y: np.ndarray, fit: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - fit) ** 2)))


def _fit_floor(t: np.ndarray, y: np.ndarray, peak: float, shape: np.ndarray) -> tuple[float, np.ndarray]:
    """y ~ f + (peak - f) * shape(t): least-squares floor f."""
    g = 1.0 - shape
    den = float((g * g).sum())
    f = float(((y - peak * shape) * g).sum() / den) if den > 0 else 0.0
    return f, f + (peak - f) * shape


def decay_shape(steps: np.ndarray, lr: np.ndarray, peak: float) -> dict:
    """Shape of a decaying LR segment starting at its peak."""
    if lr.size < 4 or peak <= 0:
        return {"shape": "unknown"}
    t = (steps - steps[0]) / max(float(steps[-1] - steps[0]), 1e-12)
    fits: dict[str, tuple[float, dict]] = {}
    f, fit = _fit_floor(t, lr, peak, 1.0 - t)
    fits["linear"] = (_rmse(lr, fit), {"floor": f})
    f, fit = _fit_floor(t, lr, peak, 0.5 * (1 + np.cos(np.pi * t)))
    fits["cosine"] = (_rmse(lr, fit), {"floor": f})
    pos = lr > 0
    if pos.sum() >= 3:
        tp, ly = t[pos], np.log(lr[pos])
        a = np.polyfit(tp, ly, 1)
        fit_e = np.exp(np.polyval(a, t))
        fits["exponential"] = (_rmse(lr, fit_e), {"rate_per_step": float(a[0] / max(float(steps[-1] - steps[0]), 1e-12))})
    s = steps - steps[0]
    best_inv = None
    for b in np.geomspace(1, max(2.0, float(s[-1])), 24):
        basis = 1.0 / np.sqrt(s + b)
        amp = float((basis * lr).sum() / (basis * basis).sum())
        err = _rmse(lr, amp * basis)
        if best_inv is None or err < best_inv[0]:
            best_inv = (err, {})
    fits["inverse-sqrt"] = best_inv
    d = np.abs(np.diff(lr))
    jumps = int(np.sum(d > 0.05 * peak))
    if 1 <= jumps <= 8 and np.sum(d > 1e-6 * peak) <= 2 * jumps + 2:
        fits["step"] = (0.0, {"drops": jumps})
    name = min(fits, key=lambda k: fits[k][0])
    err, extra = fits[name]
    if err > 0.05 * peak:
        return {"shape": "unknown", "fit_rmse_rel": err / peak}
    return {"shape": name, **extra}


def lr_features(steps: np.ndarray, lr: np.ndarray) -> dict:
    ok = np.isfinite(lr)
    steps, lr = np.asarray(steps, dtype=np.float64)[ok], np.asarray(lr, dtype=np.float64)[ok]
    if lr.size == 0:
        return {"note": "no finite learning-rate values"}
    ip = int(np.argmax(lr))
    peak = float(lr[ip])
    out: dict = {"peak": peak, "peak_step": float(steps[ip]), "final": float(lr[-1]),
                 "final_over_peak": float(lr[-1] / peak) if peak else None}
    out["warmup_steps"] = float(steps[ip] - steps[0]) if lr[0] < 0.9 * peak else 0.0
    if float(lr.max() - lr.min()) <= 0.01 * abs(peak):
        out["shape"] = "constant"
        return out
    post_s, post = steps[ip:], lr[ip:]
    trough = np.minimum.accumulate(post)
    rise = (post > 1.01 * trough) & (post - trough > 0.1 * peak)
    starts = np.flatnonzero(rise & ~np.concatenate([[False], rise[:-1]]))
    if starts.size:
        out["restart_steps"] = [float(post_s[i]) for i in starts[:10]]
        if starts.size > 10:
            out["restarts_total"] = int(starts.size)
        seg_end = int(starts[0])
    else:
        seg_end = post.size
    out.update(decay_shape(post_s[:seg_end], post[:seg_end], peak))
    return out
