"""Choosing the x-axis of a metric.

Order of preference: the run's own `define_metric(..., step_metric=...)` for that metric, then
the well-known step keys, then any other numeric column that never decreases (>= 5 values).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

import numpy as np

KNOWN_STEP_KEYS = (
    "_step", "global_step", "trainer/global_step", "train/step", "step", "epoch", "train/epoch",
    "iteration", "iter",
)
_NOT_STEPS = ("_runtime", "_timestamp")


def declared_step_metric(metric: str, metric_defs: list[dict]) -> str | None:
    """The step metric a run declared for `metric` (exact name first, then globs)."""
    for d in metric_defs:
        if not d.get("glob") and d.get("name") == metric and d.get("step_metric"):
            return d["step_metric"]
    for d in metric_defs:
        if d.get("glob") and d.get("step_metric") and fnmatch.fnmatchcase(metric, d["name"]):
            return d["step_metric"]
    return None


def is_non_decreasing(values: np.ndarray) -> bool:
    v = values[np.isfinite(values)]
    return v.size >= 2 and bool(np.all(np.diff(v) >= 0))


def candidates(numeric: Mapping[str, np.ndarray], metric_defs: list[dict]) -> list[dict]:
    """Step-key candidates with the reason each qualifies, best first.

    `numeric` maps key -> values in logging order.
    """
    out: list[dict] = []
    seen: set[str] = set()
    declared = {d["step_metric"] for d in metric_defs if d.get("step_metric")}
    for key in sorted(declared):
        if key in numeric:
            users = [d["name"] for d in metric_defs if d.get("step_metric") == key]
            out.append({"key": key, "why": "declared by define_metric for " + ", ".join(users[:5])})
            seen.add(key)
    for key in KNOWN_STEP_KEYS:
        if key in numeric and key not in seen:
            mono = is_non_decreasing(numeric[key])
            out.append({"key": key, "why": "known step key" + ("" if mono else ", but it decreases somewhere")})
            seen.add(key)
    for key, values in numeric.items():
        if key in seen or key in _NOT_STEPS or key.startswith("_") or values.size < 5:
            continue
        if not is_non_decreasing(values) or np.nanmax(values) == np.nanmin(values):
            continue
        finite = values[np.isfinite(values)]
        if finite.size == values.size and np.all(finite == np.round(finite)):
            out.append({"key": key, "why": "integer column that never decreases"})
            seen.add(key)
    return out
