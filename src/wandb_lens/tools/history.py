"""get_history: values of chosen keys at given steps, or over a step range down-sampled to a row budget."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import LensError, suggest
from ..sources.history import HISTOGRAM, MEDIA, NUMERIC, TEXT
from . import _base

MAX_KEYS = 10
MAX_STEPS = 100
DEFAULT_ROWS = 40
MAX_ROWS = 1000
HIDDEN = ("_runtime", "_timestamp")


def _check_keys(info, keys: list[str], step_key: str, kinds: dict[str, str]) -> None:
    keys = list(dict.fromkeys(keys))
    if not keys:
        raise LensError("keys: name at least one history key (describe_run lists them).")
    if len(keys) > MAX_KEYS:
        raise LensError(f"keys: at most {MAX_KEYS} keys per call (got {len(keys)}).")
    pool = [k for k, kind in kinds.items() if kind == NUMERIC and k not in HIDDEN]
    for key in [*keys, step_key]:
        kind = kinds.get(key)
        what = "step_key" if key == step_key and key not in keys else "key"
        if kind is None:
            if info.state == "running" and not kinds:
                raise LensError(f"Run {info.ref} is still being written and has logged no history yet.")
            still = " (the run is still being written: it may log it later)" if info.state == "running" else ""
            raise LensError(suggest(what, key, pool, where=f" in run {info.ref}") + still)
        if kind in (HISTOGRAM, MEDIA, TEXT):
            raise LensError(f"{key!r} in run {info.ref} holds {kind} values, not numbers"
                            f"{' (plot_grad_histograms draws histograms)' if kind == HISTOGRAM else ''}.")


def _series(hist, key: str, step_key: str, info) -> tuple[np.ndarray, np.ndarray]:
    x, y = hist.series(key, step_key)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x)
    x, y = x[ok], y[ok]
    if x.size > 1 and np.any(x[1:] < x[:-1]):
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
    if not x.size and hist.columns[key].rows.size:
        own = _declared_axis(info, key)
        hint = f" It is declared on {own!r} (define_metric)." if own else ""
        raise LensError(f"{key!r} is never logged together with step_key {step_key!r} in run {info.ref}, so it has "
                        f"no value on that axis.{hint} Try step_key='{own or '_step'}'.")
    return x, y


def _declared_axis(info, key: str) -> str | None:
    import fnmatch

    for m in info.metrics or []:
        if m.get("step_metric") and (m["name"] == key or (m.get("glob") and fnmatch.fnmatchcase(key, m["name"]))):
            return m["step_metric"]
    return None


def get_history(app, run: str, keys: list[str], steps: list[float] | None = None, start: float | None = None,
                end: float | None = None, max_rows: int = DEFAULT_ROWS, step_key: str | None = None) -> dict:
    from ..analysis.history_query import at_steps, axis_range, window

    info = app.runs.get_run(run)
    keys = list(dict.fromkeys(keys))
    axis = step_key or "_step"
    cloud_kinds = app.runs.index_kinds(info) if hasattr(app.runs, "index_kinds") else None
    if cloud_kinds is not None:  # W&B cloud: keys checked on its keys index, only these keys fetched
        _check_keys(info, keys, axis, cloud_kinds)
        hist = app.runs.history(info, keys=list(dict.fromkeys([*keys, axis])))
    else:
        hist = app.runs.history(info)
        _check_keys(info, keys, axis, {k: hist.kind(k) for k in hist.columns})
    if steps is not None and (start is not None or end is not None):
        raise LensError("Pass either steps (values at those steps) or range ([start, end]), not both.")
    if not 1 <= max_rows <= MAX_ROWS:
        raise LensError(f"max_rows must be 1..{MAX_ROWS} (got {max_rows}).")
    series = {k: _series(hist, k, axis, info) for k in dict.fromkeys(keys)}
    span = axis_range(series)
    out: dict[str, Any] = {"run": info.ref, "step_key": axis}
    if span is None:
        raise LensError(f"Run {info.ref} has no points of {', '.join(keys)} on {axis!r}.")
    declared = {k: a for k in series if (a := _declared_axis(info, k)) and a != axis}
    if declared:
        out["declared_axes"] = declared  # keys W&B plots against their own step metric
    lo, hi = span
    if steps is not None:
        if not steps or len(steps) > MAX_STEPS:
            raise LensError(f"steps: give 1..{MAX_STEPS} steps (got {len(steps)}).")
        outside = [s for s in steps if s < lo or s > hi]
        if outside:
            raise LensError(f"step {_num(outside[0])} is outside the run: {', '.join(keys)} on {axis!r} span "
                            f"{_num(lo)}..{_num(hi)}{_so_far(info)}.")
        rows, nearest = at_steps(series, [float(s) for s in steps])
        out["columns"] = [axis, *series]
        out["rows"] = rows
        if nearest:
            out["nearest"] = nearest[:MAX_STEPS]
            out["note"] = "no point at some asked steps: the nearest point's value, its step in 'nearest'"
    else:
        a = lo if start is None else float(start)
        b = hi if end is None else float(end)
        if b < lo or a > hi:
            raise LensError(f"steps {_num(a)}..{_num(b)} are outside the run: {', '.join(keys)} on {axis!r} span "
                            f"{_num(lo)}..{_num(hi)}{_so_far(info)}.")
        if a > b:
            raise LensError(f"start ({_num(a)}) is after end ({_num(b)}).")
        rows, counts = window(series, a, b, max_rows)
        out["range"] = [a, b]
        out["columns"] = [axis, *series]
        out["rows"] = rows
        out["points"] = {k: c["points"] for k, c in counts.items()}
        cut = any(c["kept"] < c["points"] for c in counts.values())
        out["truncated"] = cut
        if cut:
            out["note"] = (f"down-sampled to {len(rows)} rows: per key its min and max in each equal step "
                           "bucket, plus the range's ends (spikes kept); null: no point of that key at that step")
    if info.state == "running":
        out["state"] = f"running: what was logged so far (up to {axis} {_num(hi)})"
    elif info.state not in ("finished", "failed"):
        out["state"] = info.state
    return out


def _so_far(info) -> str:
    return " so far (the run is still being written)" if info.state == "running" else ""


def _num(x: float):
    return int(x) if float(x).is_integer() else x


def register(server, app) -> None:
    def get_history_tool(run: str, keys: list[str], steps: list[float] | None = None, range: list[float] | None = None,
                         max_rows: int = DEFAULT_ROWS, step_key: str | None = None) -> dict:
        if range is not None and len(range) != 2:
            raise LensError(f"range: give [start, end] (got {len(range)} numbers).")
        start, end = range if range is not None else (None, None)
        return get_history(app, run, keys, steps, start, end, max_rows, step_key)

    _base.add(server, get_history_tool,
              "Key values at steps (exact, else nearest, stated) or over a step range cut to max_rows "
              "(min/max per bucket kept).", name="get_history")
