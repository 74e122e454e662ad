"""The trend line drawn over raw points: W&B's default smoothing, a time-weighted EMA.

W&B's line plots smooth with a "time weighted exponential moving average" (TWEMA, their default):
with `w = min(sqrt(smoothing), 0.999)`, each point's weight decays by `w ** dx`, where dx is the
step distance to the next point measured in 1/1000ths of the line's step range; a de-bias term keeps
the first values from leaning towards 0:

    last = last * w**dx + y;  debias = debias * w**dx + 1;  trend = last / debias

So sparse and dense lines (a validation key every 500 steps, a train key every step) get the same
smoothing per step range, and the same `smoothing` value (0 = off, 0.99 = heavy) reads as it does
in W&B's panel settings. On a log-y panel the renderer smooths log10 values (a geometric mean), so
a few 1000x bad-batch spikes do not lift the trend above every raw point as a linear EMA would.
Computed over every finite point, vectorised in blocks (no Python loop per point); lines over
50,000 points are first averaged in groups of consecutive points (`trend`), about 5 ms for 1,000,000.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT = 0.8  # the plot tools' default: a readable trend that lags by under 1% of the step range
VIEWPORT_SCALE = 1000.0
GROUP_FROM = 50_000
GROUP_POINTS = 20_000
_BLOCK = 50.0  # exponent span per block: e**50 keeps y * e**(a*dx) far from float overflow


def twema(x: np.ndarray, y: np.ndarray, smoothing: float) -> np.ndarray:
    """The time-weighted EMA of y (x ascending, both finite), as W&B draws it for `smoothing`."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if n < 2 or smoothing <= 0:
        return y.copy()
    w = min(math.sqrt(smoothing), 0.999)
    span = float(x[-1] - x[0])
    if not span > 0:
        return np.full(n, float(np.mean(y)))
    a = -math.log(w)
    e = (x - x[0]) * (a * VIEWPORT_SCALE / span)  # a * (position in 1/1000ths of the range)
    out = np.empty(n)
    starts = np.searchsorted(e, np.arange(0.0, float(e[-1]) + _BLOCK, _BLOCK), side="left")
    starts = np.unique(np.append(starts[starts < n], n))
    last = debias = 0.0
    prev_e = float(e[0])
    for s, t in zip(starts[:-1], starts[1:]):
        base = float(e[s])
        decay_in = math.exp(-(base - prev_e))  # carry from the previous block to this block's base
        grow = np.exp(e[s:t] - base)  # the common factor exp(-(e_i - base)) cancels in num / den
        num = np.cumsum(y[s:t] * grow)
        num += last * decay_in
        den = np.cumsum(grow)
        den += debias * decay_in
        np.divide(num, den, out=out[s:t])
        shrink = 1.0 / float(grow[-1])
        last, debias, prev_e = float(num[-1]) * shrink, float(den[-1]) * shrink, float(e[t - 1])
    return out


def trend(x: np.ndarray, y: np.ndarray, smoothing: float, geometric: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(x, trend) to draw: the TWEMA of y (of log10 y when geometric). Over GROUP_FROM points, the EMA
    runs over the means of groups of consecutive points (at most GROUP_POINTS groups): every point
    still counts, and within one group of a 1,000,000-point line the decay differs by under 1%."""
    t = np.log10(y) if geometric else y
    if y.size > GROUP_FROM:
        k = -(-y.size // GROUP_POINTS)
        m = y.size // k
        head_x, head_t = x[: m * k].reshape(m, k).mean(axis=1), t[: m * k].reshape(m, k).mean(axis=1)
        if m * k < y.size:
            head_x = np.append(head_x, x[m * k:].mean())
            head_t = np.append(head_t, t[m * k:].mean())
        x, t = head_x, head_t
    out = twema(x, t, smoothing)
    return x, (10 ** out if geometric else out)


def describe(smoothing: float) -> str:
    """How the answer states the smoothing."""
    if smoothing <= 0:
        return "off: raw points only"
    return (f"time-weighted EMA {smoothing:g} as W&B (of log10 on log axes): bold trend over faint raw points; "
            "raw only: clean curves, LR, under 60 points")
