"""Ranking runs on one metric with the noise in mind, and what differs between their configs.

Tie rule: two runs whose final-10% means (at least 3 points) differ by less than 2x the larger
spread are tied, the spread of a run being the larger of its final-10% std and its point-to-point
noise over its last quarter (so a
run with few validation points still has a noise estimate); among tied runs the smoother one (lower
`smoothness`, then fewer spikes) ranks first. Runs whose curve diverged, or that the caller marks
(a diverged verdict, a failed run), rank after the others whatever their last value (their huge
final spread would otherwise tie them with everything), and runs without a finite final value
(NaN, no points) rank last. A single best point is never used to rank.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def _final(f: Mapping) -> float | None:
    v = f.get("final_mean")
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    if f.get("nan_to_end"):
        return None
    return float(v)


def tied(a: Mapping, b: Mapping) -> bool:
    """Is the gap between two runs' final means within the noise (2x the larger final std)?"""
    fa, fb = _final(a), _final(b)
    if fa is None or fb is None:
        return False
    spread = [max(float(f.get("final_std") or 0.0), float(f.get("final_noise") or 0.0)) for f in (a, b)]
    noise = 2 * max(spread)
    return abs(fa - fb) <= noise


def rank(features_by_run: dict[str, dict], direction: str, last: set[str] | frozenset = frozenset()) -> list[str]:
    """Run names best first (direction "min" or "max"), ties going to the smoother run; runs in `last`
    (diverged / failed by the caller's verdict) after every other run with a finite value."""
    sign = -1.0 if direction == "max" else 1.0
    finite = {k: f for k, f in features_by_run.items() if _final(f) is not None}
    diverged = [k for k, f in finite.items() if (f.get("divergence") or {}).get("detected") or k in last]
    good = {k: f for k, f in finite.items() if k not in diverged}
    rest = sorted(diverged, key=lambda k: (sign * _final(finite[k]), k))
    rest += sorted(k for k in features_by_run if k not in finite)
    remaining = sorted(good, key=lambda k: (sign * _final(good[k]), k))
    out: list[str] = []
    while remaining:
        best = remaining[0]
        pool = [k for k in remaining if k == best or tied(good[best], good[k])]
        pick = min(pool, key=lambda k: (float(good[k].get("smoothness") or 0.0), int(good[k].get("spike_count") or 0),
                                        sign * _final(good[k]), k))
        out.append(pick)
        remaining.remove(pick)
    return out + rest


def differing_config(configs: dict[str, dict], limit: int = 20) -> tuple[dict[str, dict], int]:
    """{key: {run: value}} for flat config keys whose values differ between runs; and the full count."""
    keys: dict[str, dict] = {}
    for run, cfg in configs.items():
        for k, v in cfg.items():
            keys.setdefault(k, {})[run] = v
    diff = {}
    for k, by_run in keys.items():
        vals = {repr(by_run.get(r)) for r in configs}
        if len(vals) > 1:
            diff[k] = {r: by_run.get(r) for r in configs}
    ordered = sorted(diff, key=lambda k: (-len({repr(v) for v in diff[k].values()}), len(k), k))
    return {k: diff[k] for k in ordered[:limit]}, len(diff)


def at_common_steps(series: dict[str, tuple[np.ndarray, np.ndarray]], points: int = 5) -> dict | None:
    """Values of every run at up to `points` steps inside all runs' step ranges (linear interpolation
    of each run's curve on the step axis)."""
    ranges = [(float(np.min(x)), float(np.max(x))) for x, _ in series.values() if len(x)]
    if not ranges or len(ranges) < len(series):
        return None
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    if hi <= lo:
        return None
    at = np.linspace(lo, hi, points)
    if all(np.all(x == np.round(x)) for x, _ in series.values()):  # integer steps: ask at integer steps
        at = np.clip(np.round(at), lo, hi)
    at = np.unique(at)
    return {"steps": at.tolist(), "method": "linear interpolation on the step axis",
            "values": {run: np.interp(at, x, y).tolist() for run, (x, y) in series.items()}}
