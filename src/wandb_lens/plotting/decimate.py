"""Honest decimation: fewer points to draw, the same picture.

A line chart has a fixed number of pixel columns. Splitting the x range into one bucket per
column and keeping, in each bucket, the point with the smallest and the point with the largest
value (plus the first and last point of the series) draws the same envelope as the full series:
a single-step spike in a 1,000,000-point curve is still drawn. Buckets are equal widths of x
over [x[0], x[-1]]; the axes' x limits must be exactly that range for buckets to match columns.
"""

from __future__ import annotations

import numpy as np


def bucket_ids(x: np.ndarray, n_buckets: int) -> np.ndarray:
    """The bucket (0 .. n_buckets-1) of each x, equal widths over [x[0], x[-1]]."""
    x0, x1 = float(x[0]), float(x[-1])
    if not x1 > x0:
        return np.zeros(x.shape[0], dtype=np.int64)
    ids = ((x - x0) * (n_buckets / (x1 - x0))).astype(np.int64)
    np.clip(ids, 0, n_buckets - 1, out=ids)
    return ids


def _first_per_segment(mask: np.ndarray, seg: np.ndarray) -> np.ndarray:
    hit = np.flatnonzero(mask)
    if hit.size == 0:
        return hit
    s = seg[hit]
    keep = np.ones(hit.size, dtype=bool)
    keep[1:] = s[1:] != s[:-1]
    return hit[keep]


def minmax_indices(x: np.ndarray, y: np.ndarray, n_buckets: int) -> np.ndarray:
    """Indices (increasing) of the points to draw: per x bucket its min and max, plus both ends.

    `x` must be sorted ascending and `y` finite. Series that already fit (<= 4 points per
    bucket) are returned whole. Uses tsdownsample's MinMax (same buckets, ~10x faster) when it
    is installed, else numpy.
    """
    n = int(y.shape[0])
    n_buckets = max(1, int(n_buckets))
    if n <= 4 * n_buckets:
        return np.arange(n)
    if n_buckets < 2 or not float(x[-1]) > float(x[0]):  # tsdownsample panics on these (one x value)
        return minmax_indices_numpy(x, y, n_buckets)
    try:
        from tsdownsample import MinMaxDownsampler

        idx = MinMaxDownsampler().downsample(x, y, n_out=2 * n_buckets)
        return np.unique(np.concatenate([np.asarray(idx, dtype=np.int64), [0, n - 1]]))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # not installed, an input it refuses, or a Rust panic (pyo3's PanicException is
        return minmax_indices_numpy(x, y, n_buckets)  # a BaseException): the numpy path, same buckets


def minmax_indices_numpy(x: np.ndarray, y: np.ndarray, n_buckets: int) -> np.ndarray:
    n = int(y.shape[0])
    ids = bucket_ids(x, n_buckets)
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(ids[1:], ids[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    seg = np.cumsum(change) - 1  # segment number of each point
    hi = np.maximum.reduceat(y, starts)
    lo = np.minimum.reduceat(y, starts)
    keep = np.concatenate([
        _first_per_segment(y == hi[seg], seg),
        _first_per_segment(y == lo[seg], seg),
        [0, n - 1],
    ])
    return np.unique(keep)


def decimate(x: np.ndarray, y: np.ndarray, n_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) reduced to at most 2 * n_buckets + 2 points that keep every bucket's extremes."""
    idx = minmax_indices(x, y, n_buckets)
    if idx.size == y.size:
        return x, y
    return x[idx], y[idx]


def finite_sorted(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop points where x or y is NaN/Inf; sort by x (stable) when x ever decreases."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.all():
        x, y = x[ok], y[ok]
    if x.size > 1 and np.any(x[1:] < x[:-1]):
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
    return x, y
