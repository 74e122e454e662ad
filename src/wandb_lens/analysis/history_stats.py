"""Per-key statistics of a history column: counts, step range, min / max / last, NaN count."""

from __future__ import annotations

import numpy as np


def numeric_stats(steps: np.ndarray, values: np.ndarray) -> dict:
    n = int(values.size)
    out: dict = {"n": n}
    if n == 0:
        return out
    out["steps"] = [int(steps[0]), int(steps[-1])]
    finite = np.isfinite(values)
    bad = n - int(finite.sum())
    if bad:
        out["nan_inf"] = bad
        out["first_nan_step"] = int(steps[np.flatnonzero(~finite)[0]])
    if finite.any():
        v = values[finite]
        out["min"] = float(v.min())
        out["max"] = float(v.max())
    out["last"] = float(values[-1])
    return out
