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
    return candidates_from({k: key_facts(v) for k, v in numeric.items()}, metric_defs)


def key_facts(values: np.ndarray) -> dict:
    """What the candidate rule needs of a column: never decreases, points, whole numbers, not constant.
    Each check looks at the first few thousand values before the whole column, so a noisy metric
    (most of a run's keys) is told apart in microseconds, not a pass over 1M values per check."""
    ok = np.isfinite(values)
    all_finite = bool(ok.all())
    finite = values if all_finite else values[ok]
    head = finite[:4096]
    mono = finite.size >= 2 and bool(np.all(np.diff(head) >= 0)) and bool(np.all(np.diff(finite) >= 0))
    integer = all_finite and bool(np.all(head == np.round(head))) and bool(np.all(finite == np.round(finite)))
    varies = finite.size > 0 and (bool(np.any(head != head[0])) or bool(finite.max() != finite.min()))
    return {"mono": mono, "n": int(values.size), "integer": integer, "varies": varies}


def candidates_from(facts: Mapping[str, dict], metric_defs: list[dict]) -> list[dict]:
    """The candidate rule on per-key facts (see `key_facts`): from the data, or from W&B's keys index."""
    out: list[dict] = []
    seen: set[str] = set()
    declared = {d["step_metric"] for d in metric_defs if d.get("step_metric")}
    for key in sorted(declared):
        if key in facts:
            users = [d["name"] for d in metric_defs if d.get("step_metric") == key]
            out.append({"key": key, "why": "declared by define_metric for " + ", ".join(users[:5])})
            seen.add(key)
    for key in KNOWN_STEP_KEYS:
        if key in facts and key not in seen:
            out.append({"key": key, "why": "known step key" + ("" if facts[key]["mono"] else ", but it decreases somewhere")})
            seen.add(key)
    for key, f in facts.items():
        if key in seen or key in _NOT_STEPS or key.startswith("_") or f["n"] < 5:
            continue
        if f["mono"] and f["varies"] and f["integer"]:
            out.append({"key": key, "why": "integer column that never decreases"})
            seen.add(key)
    return out


def disagree(xa: np.ndarray, xb: np.ndarray, tol: float = 0.02) -> bool:
    """Do two step axes place the same points differently (not a proportional relabelling)?

    True when `xb` is not, within `tol` of its range, a linear function of `xa`: a slope, a step or a
    spike location read on one axis would then move on the other.
    """
    ok = np.isfinite(xa) & np.isfinite(xb)
    xa, xb = xa[ok], xb[ok]
    if xa.size < 3:
        return False
    rb = float(xb.max() - xb.min())
    ra = float(xa.max() - xa.min())
    if rb == 0 or ra == 0:
        return rb != ra
    a = xa - xa.mean()
    slope = float((a * (xb - xb.mean())).sum() / (a * a).sum())
    resid = xb - xb.mean() - slope * a
    return bool(np.max(np.abs(resid)) > tol * rb or slope <= 0)


def choose(metric: str, cands: list[dict], metric_defs: list[dict], explicit: str | None = None,
           xs=None) -> dict:
    """The x-axis for `metric`: {"key", "why"} plus "note" when the choice matters.

    `cands` is `candidates(...)`; `xs(key)` returns the metric's x values on axis `key` (rows where
    both were logged) or None. An explicit step key always wins; then the run's define_metric step
    metric; then the known keys in order (`_step` first); then other non-decreasing columns.
    """
    notes: list[str] = []
    n_points = None
    if xs is not None:
        base = xs("_step")
        n_points = None if base is None else base.size
    if explicit:
        key, why = explicit, "asked for"
    else:
        key, why = None, ""
        declared = declared_step_metric(metric, metric_defs)
        if declared:
            x = xs(declared) if xs else None
            if x is None or x.size == 0:
                notes.append(f"define_metric names {declared!r} as the step of {metric!r} but it is not logged "
                             "with it; fell back")
            else:
                key, why = declared, f"define_metric step_metric of {metric!r}"
        if key is None:
            for c in cands:
                k = c["key"]
                x = xs(k) if xs else None
                if xs is not None and (x is None or x.size == 0 or (n_points and x.size < 0.8 * n_points)):
                    continue
                if "decreases" in c["why"] or c["why"].startswith("declared by define_metric"):
                    continue  # declared for other metrics (this one's was tried above): keep the documented order
                key, why = k, c["why"]
                break
        if key is None:
            key, why = "_step", "W&B's row counter (no other step key is logged with this metric)"
    if xs is not None:
        x = xs(key)
        if x is not None and x.size >= 2 and np.any(np.diff(x) < 0):
            notes.append(f"{key!r} decreases {int(np.sum(np.diff(x) < 0))} time(s) for {metric!r}: points were "
                         "ordered by it, so slopes may be meaningless")
        others = []
        for c in cands:
            k = c["key"]
            if k == key:
                continue
            y = xs(k)
            if x is None or y is None or y.size != x.size or y.size < 3:
                continue
            if disagree(x, y):
                others.append(k)
        if others:
            notes.append(f"{', '.join(repr(o) for o in others[:3])} place(s) the points differently from {key!r} "
                         "(not proportional): steps and slopes change with the axis; pass step_key to choose")
    out = {"key": key, "why": why}
    if notes:
        out["note"] = "; ".join(notes)
    return out
