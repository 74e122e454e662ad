"""The noise model of a training curve: spikes judged against the curve's own distribution.

Minibatch loss noise is multiplicative and right-skewed: near a converged level, batch loss / local
median has quantiles of about 1%: 0.47, 50%: 1.0, 99%: 3.75, 99.9%: 4.7. So:
- scale: a lower-is-better curve with no negative values is judged on log(value) (zeros: log(value +
  1% of its median)); any other curve (negative log likelihoods, returns, accuracies) on its values.
- local level: the median of the point's 10 neighbours (5 each side, the point itself excluded, the
  local linear trend removed); residual = (log) value - local level.
- run-wide scale sigma: 1.4826 x the MAD of all residuals. A point's scale is max(sigma, its local
  robust std from the same 10 neighbours): a noisy stretch is judged against its own noise.
- spike point: residual above Z_SPIKE x scale in the bad direction AND material: on log scale the
  value is at least MATERIAL x the local level (a doubling); on a linear scale z >= Z_MATERIAL_LINEAR.
  Healthy heavy-tailed noise stays below z 5 on log scale; real bad-batch spikes sit at z 9-24.
- events: spike points closer than 5 points form one event (its largest point reported).
- rate: events per 1,000 logged points, so a run's length is accounted for.
- damage: an event damages the trend when the median of the W points after it sits worse than the
  median of the W points before it (W = max(5, min(50, n // 100))) by more than
  max(DAMAGE_Z x the noise of that difference (1.77 sigma / sqrt(W)), log 1.25) on log scale
  (max(DAMAGE_Z x that noise, 10% of the curve's smoothed range) on a linear scale).
For more than 50,000 points candidates are screened against medians of 16-point blocks first.
"""

from __future__ import annotations

import numpy as np

K = 5  # neighbours on each side
Z_SPIKE = 6.0
MATERIAL = 2.0
Z_MATERIAL_LINEAR = 12.0
DAMAGE_Z = 4.0
DAMAGE_MIN_RATIO = 1.25
EXACT_MAX = 50_000
TOP = 5


def transform(x: np.ndarray, sign: float) -> tuple[np.ndarray, float | None]:
    """(values on the scale spikes are judged on, the offset of the log or None for a linear scale)."""
    if sign > 0 and x.size and float(x.min()) >= 0:
        if float(x.min()) > 0:
            return np.log(x), 0.0
        med = float(np.median(x))
        if med > 0:
            return np.log(x + 0.01 * med), 0.01 * med
    return x, None


def neighbour_stats(x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of the 2K neighbours of x[idx] (itself excluded, local trend removed); edges
    reflected (odd)."""
    n = x.size
    if n > K + 1:
        pad = np.concatenate([2 * x[0] - x[K:0:-1], x, 2 * x[-1] - x[-2:-K - 2:-1]])
    else:
        pad = np.pad(x, K, mode="edge")
    offs = np.concatenate([np.arange(-K, 0), np.arange(1, K + 1)])
    win = pad[idx[:, None] + K + offs[None, :]]
    left = np.median(win[:, :K], axis=1)
    right = np.median(win[:, K:], axis=1)
    slope = (right - left) / (K + 1)
    win = win - slope[:, None] * offs[None, :]
    win.sort(axis=1)
    med = 0.5 * (win[:, K - 1] + win[:, K])
    dev = np.abs(win - med[:, None])
    dev.sort(axis=1)
    mad = 0.5 * (dev[:, K - 1] + dev[:, K])
    return med, mad


def block_stats(x: np.ndarray, b: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Medians / MADs of consecutive b-point blocks and each point's deviation from its block median."""
    nb = x.size // b
    blocks = x[: nb * b].reshape(nb, b)
    srt = np.sort(blocks, axis=1)
    med = 0.5 * (srt[:, b // 2 - 1] + srt[:, b // 2])
    dev = np.sort(np.abs(srt - med[:, None]), axis=1)
    mad = 0.5 * (dev[:, b // 2 - 1] + dev[:, b // 2])
    return med, mad, blocks - med[:, None]


def _robust_std(r: np.ndarray, m: int = 100_000) -> float:
    """1.4826 x MAD; on an evenly strided sample of m points for long arrays (a run-wide estimate)."""
    if r.size == 0:
        return 0.0
    r = r[:: max(1, r.size // m)]
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def _points(y: np.ndarray, sign: float, eps: float | None, blocks=None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                                   float]:
    """(spike point indices, their z, their residual, run-wide sigma) on the transformed curve y.
    `blocks`: block_stats of the untransformed curve (long curves), reused for the screening."""
    n = y.size
    is_log = eps is not None
    bad = sign if not is_log else 1.0  # on log scale the curve is lower-is-better by construction
    if n <= EXACT_MAX:
        idx = np.arange(n)
        med, mad = neighbour_stats(y, idx)
        resid = y - med
        sigma = _robust_std(resid)
    else:
        if blocks is None:
            blocks = block_stats(y if not is_log else np.exp(y) - eps)
        bmed = blocks[0]
        nb = bmed.size
        yb = y[: nb * 16].reshape(nb, 16)
        bdev = yb - (np.log(np.maximum(bmed, 0) + eps)[:, None] if is_log else bmed[:, None])
        sigma = _robust_std(bdev.ravel())
        hit = bdev * bad > 0.5 * Z_SPIKE * max(sigma, 1e-300)
        idx = np.concatenate([np.flatnonzero(hit.ravel()), np.arange(bdev.size, n)])
        if idx.size == 0:
            return idx, np.zeros(0), np.zeros(0), sigma
        med, mad = neighbour_stats(y, idx)
        resid = y[idx] - med
    scale = np.maximum(np.maximum(1.4826 * mad, sigma), 1e-12 * np.maximum(np.abs(med), 1.0))
    r = resid * bad
    z = r / scale
    hit = z > Z_SPIKE
    hit &= (r >= np.log(MATERIAL)) if is_log else (z >= Z_MATERIAL_LINEAR)
    return idx[hit], z[hit], r[hit], sigma


def _events(idx: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spike points closer than K apart form one event: (peak index, z, last index of the event)."""
    if idx.size == 0:
        return idx, z, idx
    group = np.concatenate([[0], np.cumsum(np.diff(idx) > K)])
    order = np.lexsort((-z, group))
    _, first = np.unique(group[order], return_index=True)
    pick = order[first]
    last = idx[np.concatenate([np.flatnonzero(np.diff(group)), [group.size - 1]])]
    return idx[pick], z[pick], last


def spike_model(steps: np.ndarray, x: np.ndarray, sign: float, smooth_range: float, blocks=None) -> dict:
    """Spike events of one finite curve (steps ascending) under the model in the module docstring."""
    n = x.size
    out: dict = {"scale": "linear", "sigma": 0.0, "events": [], "count": 0,
                 "per_1k_points": 0.0, "damaging": 0}
    if n < 2 * K + 1:
        return out
    y, eps = transform(x, sign)
    is_log = eps is not None
    out["scale"] = "log" if is_log else "linear"
    idx, z, _, sigma = _points(y, sign, eps, blocks)
    out["sigma"] = sigma
    ev, ez, last = _events(idx, z)
    if ev.size == 0:
        return out
    w = max(K, min(50, n // 100))
    bad = 1.0 if is_log else sign
    start = np.concatenate([[0], np.cumsum(np.diff(idx) > K)])
    firsts = idx[np.concatenate([[0], np.flatnonzero(np.diff(start)) + 1])]
    need = max(DAMAGE_Z * 1.77 * sigma / np.sqrt(w),
               np.log(DAMAGE_MIN_RATIO) if is_log else 0.1 * smooth_range)
    events = []
    for i, zi, a, e in zip(ev, ez, firsts, last):
        pre = y[max(0, a - w): a]
        post = y[e + 1: e + 1 + w]
        dmg = bool(pre.size >= 3 and post.size >= 3 and bad * (np.median(post) - np.median(pre)) > need)
        events.append({"i": int(i), "step": float(steps[i]), "value": float(x[i]), "z": float(zi), "damage": dmg})
    med_local, _ = neighbour_stats(y, ev)
    for e, m in zip(events, med_local):
        lvl = float(np.exp(m)) if is_log else float(m)
        if is_log:
            lvl -= eps
        e["level"] = lvl
    out.update(events=events, count=len(events), per_1k_points=1000.0 * len(events) / n,
               damaging=int(sum(e["damage"] for e in events)), window=w)
    return out


def top_events(events: list[dict], k: int = TOP) -> list[dict]:
    """The k largest events (by z), as {step, value, level, z, damage}."""
    return [{kk: e[kk] for kk in ("step", "value", "level", "z", "damage")}
            for e in sorted(events, key=lambda e: -e["z"])[:k]]
