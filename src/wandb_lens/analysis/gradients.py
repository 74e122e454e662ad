"""Gradient-norm rules and per-layer histogram statistics.

Gradient-norm rules (documented, used by diagnose_run):
- explosion: after the first 10% of points (the initial transient), a point above 10x the median of
  the first half of the run (first 10% excluded), or (late growth) the last-10% median above 10x it. `explosion_steps` lists where points crossed 10x.
- vanishing: the last-10% median below 1e-3 x the median of the first 10% (after the first point).
- dead: last-10% mean < 0.01 x the overall median and last-10% std < 0.001 x the overall median
  (the reference rule), or every last-10% value == 0.
- kurtosis: excess kurtosis of the finite values (heavy tails = occasional large gradients).

Histogram keys (`gradients/<layer>`, `parameters/<layer>`, any histogram column): per layer and logged
step: mean, mean_abs, variance, excess kurtosis from bin centres weighted by counts; max_abs = largest
|bin centre| of a non-empty bin; at_max_bin = share of the count in the fullest bin. Layers are taken
from every history row (a layer first logged late is still found). A layer is dead when its last
mean_abs is below 1e-3 x the median last mean_abs of its family, or all its mass sits in one bin
containing 0.
"""

from __future__ import annotations

import numpy as np

EXPLODE = 10.0
VANISH = 1e-3


def grad_norm_features(steps: np.ndarray, g: np.ndarray) -> dict:
    ok = np.isfinite(g)
    out: dict = {}
    if (~ok).any():
        out["nan_inf"] = int((~ok).sum())
    s, g = np.asarray(steps, dtype=np.float64)[ok], np.asarray(g, dtype=np.float64)[ok]
    n = g.size
    if n < 4:
        out["note"] = f"only {n} finite grad-norm point(s)"
        return out
    skip = max(1, n // 10)  # the first 10% (initial transient: large gradients at init are normal)
    half = np.median(g[skip: max(skip + 1, n // 2)])
    tail = g[-max(1, n // 10):]
    head = g[1: max(2, n // 10 + 1)]
    med = float(np.median(g))
    out["median"] = med
    out["final_median"] = float(np.median(tail))
    over = np.flatnonzero(g[skip:] > EXPLODE * half) + skip if half > 0 else np.zeros(0, dtype=np.int64)
    late_growth = half > 0 and float(np.median(tail)) > EXPLODE * half
    out["explosion"] = bool(over.size or late_growth)
    if over.size:
        starts = over[np.concatenate([[True], np.diff(over) > 1])]
        out["explosion_steps"] = [float(s[i]) for i in starts[:5]]
        out["explosion_events"] = int(starts.size)
    h = float(np.median(head)) if head.size else 0.0
    out["vanishing"] = bool(h > 0 and float(np.median(tail)) < VANISH * h)
    # moments of values scaled to |x| <= 1: a diverged run's norms (1e200) would overflow their squares
    scale = float(np.max(np.abs(g)))
    gs, ts, ms = (g / scale, tail / scale, med / scale) if scale > 0 else (g, tail, med)
    out["dead"] = bool((ms > 0 and ts.mean() < 0.01 * ms and ts.std() < 0.001 * ms) or np.all(tail == 0))
    sd = float(gs.std())
    out["kurtosis"] = float(np.mean(((gs - gs.mean()) / sd) ** 4) - 3.0) if sd > 0 else 0.0
    out["p95"] = float(np.percentile(g, 95))
    return out


def histogram_stats(counts: list, bins: list) -> dict:
    """Stats over time of one histogram key: arrays, one entry per logged step."""
    rows = []
    for c, e in zip(counts, bins):
        c = np.asarray(c, dtype=np.float64)
        e = np.asarray(e, dtype=np.float64)
        if c.size == 0 or e.size != c.size + 1 or c.sum() <= 0:
            rows.append((np.nan,) * 6)
            continue
        m = 0.5 * (e[:-1] + e[1:])
        w = c / c.sum()
        mean = float((w * m).sum())
        var = float((w * (m - mean) ** 2).sum())
        kurt = float((w * (m - mean) ** 4).sum() / var**2 - 3.0) if var > 0 else 0.0
        nz = c > 0
        at_max = float(c.max() / c.sum())
        zero_bin = bool(np.any((e[:-1] <= 0) & (e[1:] >= 0) & (c == c.max())))
        # the sign of the last field carries "the fullest bin holds 0"
        rows.append((mean, float((w * np.abs(m)).sum()), var, kurt, float(np.abs(m[nz]).max()),
                     -at_max if zero_bin else at_max))
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    return {"mean": a[:, 0], "mean_abs": a[:, 1], "variance": a[:, 2], "kurtosis": a[:, 3], "max_abs": a[:, 4],
            "at_max_bin": np.abs(a[:, 5]), "zero_bin_max": a[:, 5] < 0}


def layer_table(layers: dict[str, tuple[np.ndarray, list, list]], limit: int = 8) -> dict:
    """layers: key -> (steps, counts, bins). Per-layer summary rows, dead layers, the full count."""
    summ = {}
    for key, (steps, counts, bins) in layers.items():
        st = histogram_stats(counts, bins)
        ok = np.isfinite(st["mean_abs"])
        if not ok.any():
            continue
        i = np.flatnonzero(ok)
        last, first = i[-1], i[0]
        summ[key] = {
            "n": int(ok.sum()), "steps": [float(steps[first]), float(steps[last])],
            "mean_abs": [float(st["mean_abs"][first]), float(st["mean_abs"][last])],
            "variance": float(st["variance"][last]), "kurtosis": float(st["kurtosis"][last]),
            "max_abs": float(np.nanmax(st["max_abs"])), "at_max_bin": float(st["at_max_bin"][last]),
            "_all_zero": bool(st["zero_bin_max"][last] and st["at_max_bin"][last] >= 0.999),
        }
    if not summ:
        return {"layers_total": 0}
    med = float(np.median([v["mean_abs"][1] for v in summ.values()]))
    dead = [k for k, v in summ.items() if v["_all_zero"] or (med > 0 and v["mean_abs"][1] < VANISH * med)]
    for v in summ.values():
        v.pop("_all_zero")
    order = sorted(summ, key=lambda k: (k not in dead, -summ[k]["max_abs"]))
    out = {"layers_total": len(summ), "layers": {k: summ[k] for k in order[:limit]}}
    if dead:
        out["dead_layers"] = dead[:limit]
        out["dead_total"] = len(dead)
    return out
