"""system_health: GPU use, memory growth and slow stretches of one run (rules in analysis/system.py)."""

from __future__ import annotations

import numpy as np

from ..analysis import system as S
from ..errors import LensError
from ..sources.history import NUMERIC, SYSTEM_PREFIX
from . import _base


def _rows(hist) -> tuple[np.ndarray, np.ndarray]:
    """(unix time, step) of every history row that has a `_timestamp`, in time order."""
    col = hist.columns.get("_timestamp")
    if col is None or col.kind != NUMERIC or not len(col.rows):
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    t = np.asarray(col.values, dtype=np.float64)
    s = hist.steps[col.rows]
    ok = np.isfinite(t)
    order = np.argsort(t[ok], kind="stable")
    return t[ok][order], s[ok][order]


def _series(app, info, hist) -> dict:
    """Raw timed samples where the source has them (local), else the History's system columns."""
    raw = getattr(app.runs, "system_series", None)
    if raw is not None:
        return raw(info)
    tcol = hist.columns.get("_timestamp")
    if tcol is None:
        return {}
    ts = np.full(hist.n_rows, np.nan)
    ts[tcol.rows] = np.asarray(tcol.values, dtype=np.float64)
    return {k: (ts[c.rows], np.asarray(c.values, dtype=np.float64))
            for k, c in ((k, hist.columns[k]) for k in hist.keys(NUMERIC) if k.startswith(SYSTEM_PREFIX))}


def register(server, app) -> None:
    def system_health(run: str) -> dict:
        info = app.runs.get_run(run)
        keys = None
        if getattr(app.runs, "system_series", None) is None:  # cloud: ask for the system stream
            keys = ["_timestamp"] + [k for k in ("system/cpu", "system/memory", "system/memory_percent",
                                                   "system/proc.memory.rssMB")] + [
                f"system/gpu.{i}.{m}" for i in range(8) for m in ("gpu", "memoryAllocated")]
        hist = app.runs.history(info, keys) if keys else app.runs.history(info)
        series = _series(app, info, hist)
        row_t, row_s = _rows(hist)
        out: dict = {"run": info.ref, "name": info.name, "state": info.state}
        if not series:
            out["system"] = ("none: the run log has no system-metric (stats) records (sampling off with "
                             "x_disable_stats, or the run ended before the first sample)")
        else:
            n = max(len(t) for t, _ in series.values())
            t_all = np.concatenate([t for t, _ in series.values()])
            out["samples"] = {"keys": len(series), "max_per_key": n,
                              "seconds": float(np.nanmax(t_all) - np.nanmin(t_all)) if len(t_all) else 0}
            gpus = sorted({int(m.group(1)) for k in series if (m := S.GPU_UTIL.match(k))})
            out["gpus"] = len(gpus)
            out["while_steps_ran"] = {"cols": ["mean", "max", "samples"], **S.headline(series, row_t)}
        findings = []
        if series:
            findings += S.gpu_use(series, row_t, row_s)
            findings += S.memory_growth(series, row_t, row_s)
        timing = S.slow_steps(row_t, row_s)
        if timing:
            out["step_timing"] = timing
            for seg in timing["slow_stretches"][:1]:
                findings.append({"check": "slow_steps", "steps": seg["steps"], "x_slower": seg["x_slower"]})
        out["verdict"] = sorted({f["check"] for f in findings}) or ["ok"]
        out["findings"] = [f for f in findings if f["check"] != "slow_steps"]
        if not out["findings"]:
            del out["findings"]
        fired = [c for c in out["verdict"] if c in S.RULES]
        if fired:
            out["rules"] = {c: S.RULES[c] for c in fired}
        if not series and not timing:
            raise LensError(f"Run {info.ref} has no system metrics and too few timed history rows to judge "
                            "step timing.")
        return out

    _base.add(server, system_health,
              "One run's system metrics (system/*) and step timing: GPU underused while steps run (input-bound), "
              "memory growing (leak), slow-step stretches, with steps.")
