"""Values of chosen history keys at given steps, or over a step range down-sampled to a row budget.

Each key is a series on the chosen step axis (its own points only: keys logged in different
`log()` calls are never joined by row). At a step: the key's value there, or the nearest point
with its step stated. Over a range: each key keeps, per equal-width step bucket, its min and its
max (and the range's first and last point), as the plots decimate, so a one-step spike in a
million points is still in the answer; the rows are the union of the kept steps.
"""

from __future__ import annotations

import numpy as np

from ..plotting.decimate import minmax_indices

Series = tuple[np.ndarray, np.ndarray]  # (x ascending, y)


def axis_range(series: dict[str, Series]) -> tuple[float, float] | None:
    lo = [float(x[0]) for x, _ in series.values() if x.size]
    hi = [float(x[-1]) for x, _ in series.values() if x.size]
    return (min(lo), max(hi)) if lo else None


def at_steps(series: dict[str, Series], steps: list[float]) -> tuple[list[list], list[dict]]:
    """Rows [step, value per key] at each asked step; `nearest` says where a value came from
    another step ({"key", "asked", "at"})."""
    rows: list[list] = []
    nearest: list[dict] = []
    for s in steps:
        row: list = [s]
        for key, (x, y) in series.items():
            if not x.size:
                row.append(None)
                continue
            i = int(np.searchsorted(x, s))
            if i < x.size and x[i] == s:
                row.append(float(y[i]))
                continue
            cands = [j for j in (i - 1, i) if 0 <= j < x.size]
            j = min(cands, key=lambda k: (abs(float(x[k]) - s), -k))
            row.append(float(y[j]))
            nearest.append({"key": key, "asked": s, "at": float(x[j])})
        rows.append(row)
    return rows, nearest


def window(series: dict[str, Series], start: float, end: float, max_rows: int) -> tuple[list[list], dict]:
    """Rows [step, value per key or None] over [start, end]; per key the points in range and kept."""
    keys = list(series)
    budget = max(2, int(max_rows))
    buckets = max(1, budget // (2 * max(1, len(keys))) - 1)
    kept: dict[str, dict[float, float]] = {}
    counts: dict[str, dict] = {}
    for key, (x, y) in series.items():
        lo, hi = int(np.searchsorted(x, start, "left")), int(np.searchsorted(x, end, "right"))
        xs, ys = x[lo:hi], y[lo:hi]
        finite = np.isfinite(ys)
        if xs.size and not finite.all():  # NaN/Inf points are kept as they are (they matter), the rest decimated
            idx_f = np.flatnonzero(finite)
            keep = np.union1d(idx_f[minmax_indices(xs[idx_f], ys[idx_f], buckets)] if idx_f.size else idx_f,
                              np.flatnonzero(~finite))
        elif xs.size:
            keep = minmax_indices(xs, ys, buckets)
        else:
            keep = np.zeros(0, dtype=np.int64)
        kept[key] = dict(zip(xs[keep].tolist(), ys[keep].tolist()))
        counts[key] = {"points": int(xs.size), "kept": int(keep.size)}
    steps = sorted(set().union(*[set(v) for v in kept.values()])) if kept else []
    rows = [[s, *[kept[k].get(s) for k in keys]] for s in steps]
    return rows, counts
