"""The baseline: a plain pandas-rolling implementation of the reference curve rules
(`/work/shared/docs/reference-behaviour.md`, written from that description, defects included), used to
compare speed and answers with wandb_lens.analysis.curves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def curve_features(values, steps, n_checkpoints: int = 20, direction: str = "auto", spike_z: float = 3.0) -> dict:
    s = pd.Series(np.asarray(values, dtype=np.float64), index=np.asarray(steps))
    finite = np.isfinite(s.to_numpy())
    nan_inf = int((~finite).sum())
    first_nan = s.index[~finite][0] if nan_inf else None
    s = s[finite]
    n = len(s)
    if n < 2:
        return {"n_points": n, "nan_inf_count": nan_inf}
    if direction == "auto":
        half = n // 2
        direction = "decreasing" if s.iloc[:half].mean() > s.iloc[half:].mean() else "increasing"
    sign = -1 if direction == "decreasing" else 1
    window = max(5, n // 50)
    rng = float(s.max() - s.min()) or 1.0
    roll = s.rolling(window, center=True, min_periods=1)
    rmean, rstd = roll.mean(), roll.std()
    smoothness = float(rstd.mean() / rng)
    resid = (s - rmean) * (-sign)  # bad direction: up for a decreasing metric
    spikes = resid[resid > spike_z * rstd]
    diffs = s.diff().dropna()
    monotonicity = float(((diffs * sign) > 0).mean() * 100)
    seg = np.array_split(np.arange(n), n_checkpoints)
    x, y = s.index.to_numpy(dtype=np.float64), s.to_numpy()
    slopes = [float(np.polyfit(x[i], y[i], 1)[0]) if len(i) >= 2 else 0.0 for i in seg]
    trail = diffs.abs().rolling(window).mean()
    flat = trail < rng * 1e-4
    plateau_points = int(flat.sum())
    k = max(window, n // 5)
    tail = diffs.iloc[-k:]
    detected = bool((tail.mean() * sign) < 0)
    start = None
    if detected:  # searched over the whole curve (the reference defect)
        bad = (diffs.rolling(window).mean() * sign) < 0
        start = bad.index[bad.to_numpy()][0] if bad.any() else None
    tenth = s.iloc[-max(1, n // 10):]
    return {
        "n_points": n, "direction": direction, "first": float(s.iloc[0]), "last": float(s.iloc[-1]),
        "min": float(s.min()), "max": float(s.max()), "argmin_step": s.idxmin(), "argmax_step": s.idxmax(),
        "final_10pct_mean": float(tenth.mean()), "final_10pct_std": float(tenth.std()),
        "smoothness": smoothness, "monotonicity_pct": monotonicity, "spike_count": int(len(spikes)),
        "spikes": [{"step": i, "value": float(s.loc[i])} for i in spikes.index[:5]],
        "checkpoint_slopes": slopes, "plateau_points": plateau_points,
        "divergence": {"detected": detected, "start_step": start}, "nan_inf_count": nan_inf, "first_nan_step": first_nan,
    }
