"""Shape features of one training curve (numpy, vectorised; steps are the x-axis, never row indices).

Definitions (all documented here, used by the verdict rules in `verdict.py`):
- direction: "min" (lower is better) or "max"; "auto" = min when the first 10% of points sit above the
  last 10% (median), else max.
- profile: the curve smoothed for shape questions: for n <= 400 a centred rolling median (window
  2*(n//80)+1), else medians of 400 equal-count buckets. Its noise `noise_p` is the robust std of
  its step-to-step differences / sqrt(2).
- noise: the median local robust std (1.4826 * MAD of each point's 10 neighbours).
  smoothness = noise / (max - min of the profile): LOWER is smoother (0 = a clean line).
- monotonicity: share of profile moves in the good direction.
- spikes: a point is a spike when it lies more than Z_SPIKE robust stds from the median of its 10
  neighbours (5 each side, the point itself excluded), in the bad direction. So a clear spike is found
  in a 50-point run, and a level shift (half the neighbours on each level) is not a spike. Spike points
  closer than 5 points form one event; `spike_count` counts events. For n > 50,000 points, candidates
  are first screened with medians of 16-point blocks, then confirmed with the exact rule.
  spikes_late: >= 2 events in the last 30% of steps at more than twice the earlier rate.
- slopes: least-squares slope (value per step) over 10 equal-count checkpoints; tail_slope over the
  last 20% of points.
- plateaus: profile stretches where the value moves less than max(3*noise_p, 1% of range) over 5% of the
  profile, lasting >= 10% of the run. flat_since: start of the plateau that reaches the end.
- divergence: the profile rises (in the bad direction) from its best to the end by more than
  max(6*noise_p, 10% of the scale) and stays up (end level >= half the peak rise); a positive
  curve spanning > 3 orders of magnitude is judged on its log. start_step is the
  last step where the profile was still within 3*noise_p of its best: where the
  sustained rise really begins, not the curve's start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

K = 5  # neighbours on each side for the spike rule
Z_SPIKE = 6.0
EXACT_MAX = 50_000
PROFILE_POINTS = 400
TOP_SPIKES = 5
N_CHECKPOINTS = 10


@dataclass
class Curve:
    steps: np.ndarray  # finite points only, ordered by step
    values: np.ndarray
    sign: float  # +1: lower is better; -1: higher is better
    px: np.ndarray = field(default_factory=lambda: np.zeros(0))
    py: np.ndarray = field(default_factory=lambda: np.zeros(0))
    noise_p: float = 0.0
    features: dict = field(default_factory=dict)

    def level_at(self, step: float) -> float:
        """The profile's value at `step` (linear interpolation on the step axis)."""
        return float(np.interp(step, self.px, self.py))


def _neighbour_stats(x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of the 2K neighbours of x[idx] (itself excluded); edges reflected (odd)."""
    n = x.size
    pad = np.concatenate([2 * x[0] - x[K:0:-1], x, 2 * x[-1] - x[-2:-K - 2:-1]]) if n > K + 1 else None
    if pad is None:
        pad = np.pad(x, K, mode="edge")
    offs = np.concatenate([np.arange(-K, 0), np.arange(1, K + 1)])
    win = pad[idx[:, None] + K + offs[None, :]]
    # remove the local linear trend (slope between the left and right neighbour medians), so a steep
    # stretch of the curve does not pass for noise
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


def _block_stats(x: np.ndarray, b: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Medians / MADs of consecutive b-point blocks and each point's deviation from its block median."""
    n = x.size
    nb = n // b
    blocks = x[: nb * b].reshape(nb, b)
    srt = np.sort(blocks, axis=1)
    med = 0.5 * (srt[:, b // 2 - 1] + srt[:, b // 2])
    dev = np.sort(np.abs(srt - med[:, None]), axis=1)
    mad = 0.5 * (dev[:, b // 2 - 1] + dev[:, b // 2])
    return med, mad, blocks - med[:, None]


def spikes(steps: np.ndarray, x: np.ndarray, sign: float | None, blocks=None) -> tuple[np.ndarray, np.ndarray, float]:
    """(indices of spike points, their robust z, the curve's local noise). sign None = both ways.

    The robust std of a point is max(1.4826 * MAD of its neighbours, the curve's median local noise):
    ten neighbours alone give too unsteady a scale (Gaussian noise would show ~1 spike per 1,000 points).
    """
    n = x.size
    if n < 2 * K + 1:
        return np.zeros(0, dtype=np.int64), np.zeros(0), 0.0
    if n <= EXACT_MAX:
        idx = np.arange(n)
        med, mad = _neighbour_stats(x, idx)
        noise = float(np.median(1.4826 * mad))
    else:
        bmed, bmad, bdev = blocks if blocks is not None else _block_stats(x)
        noise = float(np.median(1.4826 * bmad))
        floor = max(noise, 1e-300)
        dev = bdev * (sign if sign else 1.0)
        if not sign:
            dev = np.abs(dev)
        hit = dev > 0.5 * Z_SPIKE * np.maximum(1.4826 * bmad, floor)[:, None]
        idx = np.flatnonzero(hit.ravel())
        idx = np.concatenate([idx, np.arange(bdev.size, n)])  # the few points after the last block
        if idx.size == 0:
            return idx, np.zeros(0), noise
        med, mad = _neighbour_stats(x, idx)
    scale = np.maximum(1.4826 * mad, max(noise, 1e-12))
    scale = np.maximum(scale, 1e-9 * np.abs(med))
    z = (x[idx] - med) / scale
    if sign:
        z = z * sign
    else:
        z = np.abs(z)
    hit = z > Z_SPIKE
    return idx[hit], z[hit], noise


def _events(idx: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spike points closer than K apart form one event; (event peak indices, their z), by step."""
    if idx.size == 0:
        return idx, z
    group = np.concatenate([[0], np.cumsum(np.diff(idx) > K)])
    order = np.lexsort((-z, group))
    _, first = np.unique(group[order], return_index=True)
    pick = order[first]
    return idx[pick], z[pick]


def profile(steps: np.ndarray, x: np.ndarray, block_medians=None) -> tuple[np.ndarray, np.ndarray, float]:
    n = x.size
    if block_medians is not None and block_medians.size >= 4 * PROFILE_POINTS:
        # long curves: medians of the 16-point block medians (median of medians), 400 buckets
        m = PROFILE_POINTS
        nb = block_medians.size
        size = nb // m
        py = np.median(block_medians[: size * m].reshape(m, size), axis=1)
        b = (n // nb) if nb else 1
        px = steps[: size * m * b].reshape(m, size * b).mean(axis=1, dtype=np.float64)
    elif n <= PROFILE_POINTS:
        h = max(1, n // 80)
        if n >= 2 * h + 1:
            from numpy.lib.stride_tricks import sliding_window_view

            padded = np.pad(x, h, mode="edge")
            py = np.median(sliding_window_view(padded, 2 * h + 1), axis=1)
        else:
            py = x.copy()
        px = steps.astype(np.float64)
    else:
        m = PROFILE_POINTS
        size = n // m
        cut = size * m
        py = np.median(x[:cut].reshape(m, size), axis=1)
        px = steps[:cut].reshape(m, size).mean(axis=1, dtype=np.float64)
        if cut < n:  # the remainder joins the last bucket
            py[-1] = np.median(x[(m - 1) * size:])
            px[-1] = float(np.mean(steps[(m - 1) * size:]))
    d = np.diff(py)
    noise_p = float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2)) if d.size >= 3 else 0.0
    return px, py, noise_p


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and its standard error."""
    if x.size < 3:
        return (float((y[-1] - y[0]) / (x[-1] - x[0])) if x.size == 2 and x[-1] != x[0] else 0.0), 0.0
    xc = x - x.mean()
    sxx = float((xc * xc).sum())
    if sxx == 0:
        return 0.0, 0.0
    b = float((xc * (y - y.mean())).sum() / sxx)
    resid = y - y.mean() - b * xc
    se = float(np.sqrt(max(float((resid * resid).sum()), 0.0) / (x.size - 2) / sxx))
    return b, se


def _checkpoint_slopes(s: np.ndarray, x: np.ndarray, k: int = N_CHECKPOINTS) -> dict:
    n = x.size
    k = max(1, min(k, n // 3))
    bounds = np.linspace(0, n, k + 1).astype(np.int64)
    seg = np.repeat(np.arange(k), np.diff(bounds))
    xs = s - s[bounds[:-1]][seg]
    starts = bounds[:-1]
    cnt = np.diff(bounds).astype(np.float64)
    sx = np.add.reduceat(xs, starts)
    sy = np.add.reduceat(x, starts)
    sxx = np.add.reduceat(xs * xs, starts)
    sxy = np.add.reduceat(xs * x, starts)
    den = cnt * sxx - sx * sx
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(den > 0, (cnt * sxy - sx * sy) / np.where(den > 0, den, 1), 0.0)
    edges = np.append(s[bounds[:-1]], s[-1])
    return {"at_steps": edges.tolist(), "per_step": slope.tolist()}


def _plateaus(px: np.ndarray, b: np.ndarray, noise_p: float) -> list[tuple[int, int]]:
    m = b.size
    w = max(2, m // 20)
    if m < w + 2:
        return []
    rng = float(b.max() - b.min())
    tol = max(3 * noise_p, 0.01 * rng, 1e-12)
    flat = np.abs(b[w:] - b[:-w]) <= tol
    covered = np.zeros(m, dtype=np.int64)
    starts = np.flatnonzero(flat)
    if starts.size == 0:
        return []
    np.add.at(covered, starts, 1)
    np.add.at(covered, starts + w, -1)
    mask = np.cumsum(covered) > 0
    mask[starts + w] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    out = []
    for a, e in zip(edges[::2], edges[1::2]):
        if e - a >= max(2 * w, m // 10):
            out.append((a, e - 1))
    return out


def _divergence(px: np.ndarray, b: np.ndarray, noise_p: float) -> dict:
    m = b.size
    if m < 6:
        return {"detected": False}
    raw = b
    if b.min() > 0 and b.max() / b.min() > 1e3:  # an explosion over orders of magnitude: judge it in log
        b = np.log(b)
        d = np.diff(b)
        noise_p = float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))
    j = int(np.argmin(b))
    tail = max(3, m // 20)
    end_level = float(np.median(b[-tail:]))
    rise = end_level - float(b[j])
    if j >= m - tail:
        return {"detected": False}
    descent = float(np.max(b[: j + 1]) - b[j])
    scale = max(abs(float(b[j])), descent, 1e-12) if b is raw else 1.0
    band = max(3 * noise_p, 1e-9 * scale)
    inside = np.flatnonzero(b[j:] <= b[j] + band) + j
    s = int(inside[-1])
    peak = float(np.max(b[s:]) - b[j])
    detected = (rise > max(6 * noise_p, 0.1 * scale) and s < m - tail
                and end_level - b[j] >= 0.5 * peak)
    out = {"detected": bool(detected)}
    if detected:
        out["start_step"] = float(px[s])
        out["rise"] = float(np.median(raw[-tail:]) - raw[j])
    return out


def analyse(steps: np.ndarray, values: np.ndarray, direction: str = "auto") -> Curve:
    """Features of one curve plus its profile (the verdict rules use both)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _analyse(steps, values, direction)


def _analyse(steps: np.ndarray, values: np.ndarray, direction: str) -> Curve:
    steps = np.asarray(steps, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if steps.size and np.any(np.diff(steps) < 0):
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
    n = int(values.size)
    finite = np.isfinite(values)
    out: dict = {"n": n}
    bad = n - int(finite.sum())
    if bad:
        out["nan_inf"] = bad
        out["first_nan_step"] = float(steps[np.flatnonzero(~finite)[0]])
        last_finite = np.flatnonzero(finite)
        if last_finite.size == 0 or last_finite[-1] < np.flatnonzero(~finite)[-1]:
            out["nan_to_end"] = True
    else:
        out["nan_inf"] = 0
        out["first_nan_step"] = None
    s, x = steps[finite], values[finite]
    nf = int(x.size)
    if direction not in ("min", "max"):
        if nf >= 2:
            k = max(1, nf // 10)
            direction = "min" if np.median(x[:k]) >= np.median(x[-k:]) else "max"
        else:
            direction = "min"
    sign = 1.0 if direction == "min" else -1.0
    out["direction"] = direction
    curve = Curve(s, x, sign)
    curve.features = out
    if nf == 0:
        out["note"] = "no finite values: nothing to judge"
        return curve
    out.update(first=float(x[0]), first_step=float(s[0]), last=float(values[-1]), last_step=float(steps[-1]))
    i_min, i_max = int(np.argmin(x)), int(np.argmax(x))
    out.update(min=float(x[i_min]), min_step=float(s[i_min]), max=float(x[i_max]), max_step=float(s[i_max]))
    tail = x[-max(1, nf // 10):]
    out.update(final_mean=float(tail.mean()), final_std=float(tail.std()))
    if nf < 3:
        out["note"] = f"only {nf} finite point(s): no shape features"
        out.update(spike_count=0, spikes=[])
        curve.px, curve.py = s.copy(), x.copy()
        return curve
    if x[i_max] == x[i_min]:
        out["note"] = "constant value"
        out.update(spike_count=0, spikes=[], noise=0.0, smoothness=0.0, tail_slope=0.0,
                   flat_since=float(s[0]), divergence={"detected": False})
        curve.px, curve.py = s.copy(), x.copy()
        return curve
    blocks = _block_stats(x) if nf > EXACT_MAX else None
    px, py, noise_p = profile(s, x, blocks[0] if blocks else None)
    curve.px, curve.py, curve.noise_p = px, py, noise_p
    b = sign * py
    idx, z, noise = spikes(s, x, sign, blocks)
    ev_idx, ev_z = _events(idx, z)
    span = float(s[-1] - s[0]) or 1.0
    late_cut = s[0] + 0.7 * span
    n_late = int(np.sum(s[ev_idx] > late_cut))
    n_early = int(ev_idx.size - n_late)
    top = np.argsort(-ev_z)[:TOP_SPIKES]
    rng = float(py.max() - py.min()) or float(x[i_max] - x[i_min])
    out.update(
        noise=noise, smoothness=noise / rng if rng else 0.0,
        monotonicity=float(np.mean(np.diff(b) < 0)) if b.size > 1 else 0.0,
        spike_count=int(ev_idx.size),
        spikes=[{"step": float(s[i]), "value": float(x[i]), "z": float(v)} for i, v in zip(ev_idx[top], ev_z[top])],
        spikes_late=bool(n_late >= 2 and n_late / 0.3 > 2 * n_early / 0.7),
    )
    out["slopes"] = _checkpoint_slopes(s, x)
    t0 = max(0, nf - max(3, nf // 5))
    slope, se = _slope(s[t0:], x[t0:])
    out.update(tail_slope=slope, tail_slope_se=se)
    plats = _plateaus(px, b, noise_p)
    out["plateaus"] = [[_logged(s, px[a]), _logged(s, px[e])] for a, e in plats]
    if plats and plats[-1][1] == b.size - 1:
        out["flat_since"] = _logged(s, px[plats[-1][0]])
    div = _divergence(px, b, noise_p)
    if "start_step" in div:
        div["start_step"] = _logged(s, div["start_step"])
    out["divergence"] = div
    return curve


def _logged(steps: np.ndarray, x: float) -> float:
    """A profile position (a bucket mean for long curves) reported as the nearest logged step."""
    i = int(np.clip(np.searchsorted(steps, x), 1, steps.size - 1)) if steps.size > 1 else 0
    if steps.size > 1 and abs(steps[i - 1] - x) <= abs(steps[i] - x):
        i -= 1
    return float(steps[i])


def curve_features(steps: np.ndarray, values: np.ndarray, direction: str = "auto") -> dict:
    """Shape features of one metric: see the module docstring for every definition."""
    return analyse(steps, values, direction).features
