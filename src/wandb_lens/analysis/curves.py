"""Shape features of one training curve (numpy, vectorised; steps are the x-axis, never row indices).

Definitions (all documented here, used by the verdict rules in `verdict.py`):
- direction: "min" (lower is better) or "max"; "auto" = min when the first 10% of points sit above the
  last 10% (median), else max.
- profile: the smoothed curve every level is read on: a centred rolling median over ~4% of the
  points (at least 5; windows shrink at the ends); beyond 2,000 points, medians of 400 equal-count
  buckets, then the rolling median over ~4% of the buckets. A single outlier never sets a level.
  Its level noise `noise_p` = 1.2533 x robust std of the residuals / sqrt(points per window).
- noise: the robust std of the point-to-point noise, in the metric's units: 1.4826 x MAD of successive
  differences / sqrt(2) (a trend, even a steep one, is not noise).
  smoothness = noise / (max - min of the profile): LOWER is smoother (0 = a clean line).
- monotonicity: share of profile moves in the good direction.
- spikes: the noise model of `noise.py` (log scale for non-negative losses, a run-wide robust scale,
  a material size, events and their rate per 1k points, damage to the trend).
  spikes_late: >= 2 events in the last 30% of steps at more than twice the earlier rate.
- slopes: least-squares slope (value per step) over 10 equal-count checkpoints; tail_slope over the
  last 20% of points.
- plateaus: profile stretches where the value moves less than max(3*noise_p, 1% of range) over 5% of the
  profile, lasting >= 10% of the run. flat_since: start of the plateau that reaches the end.
- divergence: the profile rises (in the bad direction) from its best to the end by more than
  max(DIV_NOISE x noise_p, DIV_FRAC x max(the descent before the best, |best|)), so a wobble that is
  tiny against the run's own descent is no rise, and stays up (the end rise >= half the peak rise).
  start_step is the last step where the profile was still within 3 x noise_p of its best: where the
  smoothed curve leaves its best, not the curve's start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .noise import EXACT_MAX, K, Z_SPIKE, block_stats, spike_model, top_events

PROFILE_POINTS = 400
SMOOTH_DIV = 25  # the smoothing window is ~1/25 (4%) of the points
DIV_NOISE = 6.0
DIV_FRAC = 0.1
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
    spikes: dict = field(default_factory=dict)  # noise.spike_model output (events with their indices)

    def level_at(self, step: float) -> float:
        """The profile's value at `step` (linear interpolation on the step axis)."""
        return float(np.interp(step, self.px, self.py))


def profile(steps: np.ndarray, x: np.ndarray, block_medians=None) -> tuple[np.ndarray, np.ndarray, float]:
    """(x, y, level noise) of the smoothed curve: a centred rolling median over ~4% of the points
    (at least 5; windows shrink at the ends); beyond 2,000 points, medians of 400 equal-count buckets
    first, then the rolling median over the buckets. The level noise is the standard error of such a
    median: 1.2533 x the robust std of the residuals from it / sqrt(points in the window)."""
    n = x.size
    if n > 5 * PROFILE_POINTS:
        m = PROFILE_POINTS
        if block_medians is not None and block_medians.size >= 4 * m:
            # long curves: medians of the 16-point block medians (median of medians)
            nb = block_medians.size
            size = nb // m
            by = np.median(block_medians[: size * m].reshape(m, size), axis=1)
            bx = steps[: size * m * 16].reshape(m, size * 16).mean(axis=1, dtype=np.float64)
            size *= 16
        else:
            size = n // m
            cut = size * m
            by = np.median(x[:cut].reshape(m, size), axis=1)
            bx = steps[:cut].reshape(m, size).mean(axis=1, dtype=np.float64)
            if cut < n:  # the remainder joins the last bucket
                by[-1] = np.median(x[(m - 1) * size:])
                bx[-1] = float(np.mean(steps[(m - 1) * size:]))
        h = max(1, m // SMOOTH_DIV // 2)
        px, py, per = bx, _rolling_median(by, h), size * (2 * h + 1)
    else:
        h = max(2, n // SMOOTH_DIV // 2)
        px, py, per = steps.astype(np.float64), _rolling_median(x, h), 2 * h + 1
    k = max(1, n // 50_000)  # a run-wide estimate: an evenly strided sample is enough
    resid = x[::k] - (np.interp(steps[::k], px, py) if px.size > 1 else py[0])
    sd = 1.4826 * float(np.median(np.abs(resid - np.median(resid)))) if resid.size >= 3 else 0.0
    return px, py, 1.2533 * sd / np.sqrt(per)


def _rolling_median(x: np.ndarray, h: int) -> np.ndarray:
    n = x.size
    if n < 3:
        return x.copy()
    h = min(h, (n - 1) // 2)
    from numpy.lib.stride_tricks import sliding_window_view

    padded = np.concatenate([np.full(h, np.nan), x, np.full(h, np.nan)])
    win = sliding_window_view(padded, 2 * h + 1)
    out = np.median(win[h:n - h], axis=1) if n > 2 * h else np.zeros(0)
    edges = [np.nanmedian(win[i]) for i in range(h)], [np.nanmedian(win[i]) for i in range(max(h, n - h), n)]
    return np.concatenate([edges[0], out, edges[1]])


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
    """Sustained rise of the smoothed curve b (bad direction = up) from its best to the end."""
    m = b.size
    if m < 6:
        return {"detected": False}
    j = int(np.argmin(b))
    tail = max(3, m // 20)
    if j >= m - tail:
        return {"detected": False}
    end_level = float(np.median(b[-tail:]))
    rise = end_level - float(b[j])
    descent = float(np.max(b[: j + 1]) - b[j])
    ref = max(descent, abs(float(b[j])), 1e-300)
    big = rise > DIV_FRAC * ref  # large against the run's own descent (or level), in the metric's units
    lb = b
    if b.min() > 0 and b.max() / b.min() > 1e3:  # an explosion over orders of magnitude: noise and start in log
        lb = np.log(b)
        d = np.diff(lb)
        noise_p = float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))
    band = max(3 * noise_p, 1e-9 * abs(float(lb[j])))
    inside = np.flatnonzero(lb[j:] <= lb[j] + band) + j
    s = int(inside[-1])
    l_rise = float(np.median(lb[-tail:]) - lb[j])
    peak = float(np.max(lb[s:]) - lb[j])
    detected = (big and l_rise > DIV_NOISE * noise_p and s < m - tail and l_rise >= 0.5 * peak)
    out = {"detected": bool(detected)}
    if detected:
        out.update(start_step=float(px[s]), rise=rise, rise_frac=rise / ref, best_step=float(px[j]))
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
        first_bad = int(np.flatnonzero(~finite)[0])
        out["first_nan_step"] = float(steps[first_bad])
        out["nan_share_after"] = float(np.mean(~finite[first_bad:]))
        last_finite = np.flatnonzero(finite)
        if last_finite.size == 0 or last_finite[-1] < np.flatnonzero(~finite)[-1]:
            out["nan_to_end"] = True
    else:
        out["nan_inf"] = 0
        out["first_nan_step"] = None
    s, x = steps[finite], values[finite]
    nf = int(x.size)
    if bad and finite.any() and not (~finite[np.argmax(finite):]).any():
        out["nan_leading_only"] = True  # NaN/Inf only before the first finite point (e.g. a first log at init)
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
    tail = x[-max(min(3, nf), nf // 10):]  # the final 10%, at least 3 points
    out.update(final_mean=float(tail.mean()), final_std=float(tail.std()),
               final_noise=_local_noise(x[-max(5, nf // 4):]))  # the noise near the end (the tie test)
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
    blocks = block_stats(x) if nf > EXACT_MAX else None
    px, py, noise_p = profile(s, x, blocks[0] if blocks else None)
    curve.px, curve.py, curve.noise_p = px, py, noise_p
    b = sign * py
    rng = float(py.max() - py.min()) or float(x[i_max] - x[i_min])
    sp = spike_model(s, x, sign, rng, blocks)
    curve.spikes = sp
    ev = sp["events"]
    ev_steps = np.array([e["step"] for e in ev])
    span = float(s[-1] - s[0]) or 1.0
    n_late = int(np.sum(ev_steps > s[0] + 0.7 * span))
    n_early = len(ev) - n_late
    noise = _local_noise(x)
    out.update(
        noise=noise, smoothness=noise / rng if rng else 0.0,
        monotonicity=float(np.mean(np.diff(b) < 0)) if b.size > 1 else 0.0,
        spike_count=len(ev), spike_rate_per_1k=round(sp["per_1k_points"], 3), spikes_damaging=sp["damaging"],
        spike_scale=sp["scale"], spikes=top_events(ev),
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


def _local_noise(x: np.ndarray) -> float:
    """Robust std of the point-to-point noise, in the metric's units: 1.4826 x MAD of successive
    differences / sqrt(2) (a trend, even a steep one, is not noise); a strided sample for long curves."""
    d = np.diff(x)
    if d.size == 0:
        return 0.0
    d = d[:: max(1, d.size // 100_000)]
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))


def _logged(steps: np.ndarray, x: float) -> float:
    """A profile position (a bucket mean for long curves) reported as the nearest logged step."""
    i = int(np.clip(np.searchsorted(steps, x), 1, steps.size - 1)) if steps.size > 1 else 0
    if steps.size > 1 and abs(steps[i - 1] - x) <= abs(steps[i] - x):
        i -= 1
    return float(steps[i])


def curve_features(steps: np.ndarray, values: np.ndarray, direction: str = "auto") -> dict:
    """Shape features of one metric: see the module docstring for every definition."""
    return analyse(steps, values, direction).features
