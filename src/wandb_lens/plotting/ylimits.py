"""Y limits that keep a panel readable when a curve explodes, and say what they cut.

Two rules, both display decisions (the numbers in the answer are never clipped):
- `far_out`: in an overlay, a whole line far outside the others (a diverged run at 1e30 next to
  losses near 1) is left off the y range: its 2-98% range sits more than 3 typical line spans
  (decades on a log axis) beyond the median line's.
- `explosion_cap`: one curve that rises late far above everything before it (a loss at 0.5 for 900
  steps, then 1e6) gets a ceiling, so its lead-up stays readable. Judged on a profile of bucket
  medians (so single-batch spikes do not count) in decades for positive curves: at its largest rise
  above its best so far, the curve must clear the top of its lead-up (everything up to that best)
  by 2 lead-up scales and, in decades, by 1 decade; the scale is how far the lead-up sits above its
  best (at least 0.3 decades, or 10% of the level when not positive); it must stay up (the end at
  least half as high: a passing excursion is drawn whole); the lead-up must hold at least 10%
  of the points (a curve that explodes from its first steps is drawn whole, on a log axis). The
  ceiling is the higher of one scale above the lead-up's profile and the lead-up's 99.5th
  percentile, so its ordinary noise is not cut. Points above it are marked at the top edge. A curve
  needs 100 points to be judged; a shorter line in the same panel (validation logged every 50 steps)
  is cut at the same ceiling, counted up to where the judged line first passes it.
"""

from __future__ import annotations

import numpy as np

PROFILE = 200
MIN_POINTS = 100  # fewer points make too coarse a profile: drawn whole (or with a capped line's panel)
MIN_LEADUP = 0.10
RISE_SCALES = 2.0
LOG_FLOOR = 0.3  # decades
LIN_FLOOR = 0.10  # of the level


def _profile(t: np.ndarray) -> tuple[np.ndarray, int]:
    """Bucket medians of t (equal counts, at most PROFILE buckets) and the points per bucket."""
    m = max(5, min(PROFILE, t.size // 5))
    k = t.size // m
    return np.median(t[: m * k].reshape(m, k), axis=1), k


def explosion_cap(y: np.ndarray, log: bool) -> float | None:
    """The y ceiling that keeps an exploding curve's lead-up readable, or None (draw it whole).
    y: finite values in step order; log: judge in decades (y all positive)."""
    if y.size < MIN_POINTS or (log and not y.min() > 0):
        return None
    stride = max(1, y.size // 100_000)  # a display decision: a 100k-point sample is plenty
    t = np.log10(y[::stride]) if log else y[::stride]
    p, per = _profile(t)
    best = np.minimum.accumulate(p)
    rise = p - best
    j = int(np.argmax(rise))
    if j == 0 or rise[j] <= 0:
        return None
    jb = int(np.argmin(p[: j + 1]))
    lead = p[: jb + 1]
    floor = LOG_FLOOR if log else LIN_FLOOR * max(abs(float(p[jb])), abs(float(lead.max())), 1e-12)
    scale = max(float(lead.max() - p[jb]), floor)
    height = float(p[j] - lead.max())
    if height <= RISE_SCALES * scale or (log and height <= 1.0) or p[-1] - lead.max() < 0.5 * height:
        return None  # too small, or a passing excursion (the curve came back down): drawn whole
    onset = int(np.flatnonzero(p[: j + 1] <= p[jb] + scale)[-1])  # last bucket still near the best
    if (onset + 1) / p.size < MIN_LEADUP:
        return None
    raw_lead = t[: (onset + 1) * per]
    top = max(float(lead.max()) + scale, float(np.quantile(raw_lead, 0.995)))
    top = float(10 ** top) if log else top
    return top if float(y.max()) > top else None


def far_out(stats: list[tuple[str, float, float, float, float]], log: bool):
    """stats: (label, q2, q98, min, max) per line (log10 values on a log axis). Returns ((lo, hi)
    in data units, labels left out) or (None, [])."""
    if len(stats) < 2:
        return None, []
    lows, highs = np.array([s[1] for s in stats]), np.array([s[2] for s in stats])
    scale = max(float(np.median(highs - lows)), 1.0 if log else 1e-12)
    top, bottom = float(np.median(highs)) + 3 * scale, float(np.median(lows)) - 3 * scale
    inside = [s for s in stats if s[2] <= top and s[1] >= bottom]
    outside = [s[0] for s in stats if s not in inside]
    if not outside or not inside:
        return None, []
    lo = min(s[3] for s in inside)
    hi = max(s[4] for s in inside)
    if hi <= lo:
        hi, lo = hi + (1 if log else abs(hi) * 0.1 + 1e-12), lo - (1 if log else abs(lo) * 0.1 + 1e-12)
    return ((10 ** lo, 10 ** hi) if log else (lo, hi)), outside


def line_stats(label: str, y: np.ndarray, log: bool):
    """(label, q2, q98, min, max) of one line for `far_out`, or None when it cannot be judged."""
    if y.size == 0 or (log and np.any(y <= 0)):
        return None
    t = np.log10(y) if log else y
    q = np.percentile(t, [2, 98]) if t.size > 20 else np.array([t.min(), t.max()])
    return (label, float(q[0]), float(q[1]), float(t.min()), float(t.max()))
