"""Exact history from W&B cloud, one key at a time, outer-joined on the step.

`run.history(keys=[a, b])` and a scan over several keys return only the rows holding every key,
so train loss (every step) and validation loss (every N steps, its own `log()` call) come back
empty or thinned. Here each key is fetched on its own (with `_step`), then the keys are joined on
the step: no key is lost. W&B gives each history row its own `_step`, so the step identifies a row.

Fetching a key: wandb 0.31's scan (`HistoryScan`: wandb-core reads the run's parquet history
export, plus the live tail as JSON). If it fails part-way, the classic GraphQL `history` pages
continue from the step after the last row received, so no row is duplicated or lost.
System metrics (`stream="system"`) come from the `events` field, renamed `system.x` -> `system/x`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import numpy as np

from .. import bounded_json
from ..history import HISTOGRAM, MEDIA, NUMERIC, TEXT, Column, History

log = logging.getLogger("wandb_lens.cloud")

PAGE_ROWS = 10_000
FALLBACK_PAGE = 1_000
SYSTEM_SAMPLES = 10_000

HISTORY_PAGE_GQL = """
query HistoryPage($entity: String!, $project: String!, $run: String!, $minStep: Int64!, $maxStep: Int64!, $pageSize: Int!) {
    project(name: $project, entityName: $entity) {
        run(name: $run) { history(minStep: $minStep, maxStep: $maxStep, samples: $pageSize) }
    }
}
"""


def _value(v):
    """A history value as W&B returns it: numbers, strings, or media / histogram objects."""
    if isinstance(v, str) and v.startswith('{"_type"'):
        return bounded_json.loads(v)
    return v


def scan_key(wrun, service_api, key: str, last_step: int, use_graphql: Callable | None = None) -> list[tuple[int, object]]:
    """(step, value) of every row where `key` was logged, exactly, in step order."""
    from wandb.apis.public.history import HistoryScan

    got: list[tuple[int, object]] = []
    try:
        scan = HistoryScan(run=wrun, service_api=service_api, min_step=0, max_step=last_step + 1, keys=[key],
                           page_size=PAGE_ROWS, use_cache=True)
        for row in scan:
            v = row.get(key)
            if v is None or "_step" not in row:
                continue
            step = int(row["_step"])
            if got and step <= got[-1][0]:
                continue
            got.append((step, _value(v)))
        return got
    except Exception as exc:  # the parquet path failed: page the rest with the GraphQL history field
        if use_graphql is None:
            raise
        start = got[-1][0] + 1 if got else 0
        log.info("parquet scan of %s failed at step %d (%s); paging the GraphQL history", key, start,
                 type(exc).__name__)
        got.extend(page_key(use_graphql, key, start, last_step))
        return got


def page_key(graphql: Callable, key: str, start: int, last_step: int) -> list[tuple[int, object]]:
    """The classic scan: `history(minStep, maxStep, samples)` pages of whole rows, filtered to `key`."""
    out: list[tuple[int, object]] = []
    lo = start
    while lo <= last_step:
        hi = min(lo + FALLBACK_PAGE, last_step + 1)
        data = graphql(HISTORY_PAGE_GQL, {"minStep": lo, "maxStep": hi, "pageSize": FALLBACK_PAGE})
        run = ((data or {}).get("project") or {}).get("run")
        if run is None:
            raise LookupError("run disappeared while paging its history")
        for line in run.get("history") or []:
            row = bounded_json.loads(line, fallback_to_text=False) if isinstance(line, str) else line
            if key in row and row[key] is not None and "_step" in row:
                step = int(row["_step"])
                if not out or step > out[-1][0]:
                    out.append((step, _value(row[key])))
        lo = hi
    return out


def system_events(wrun, samples: int = SYSTEM_SAMPLES) -> dict[str, list[tuple[float, object]]]:
    """System metrics as {system/<name>: [(timestamp, value)]} (W&B samples this stream server-side)."""
    rows = wrun.history(stream="system", pandas=False, samples=samples) or []
    out: dict[str, list] = {}
    for row in rows:
        ts = row.get("_timestamp")
        if ts is None:
            continue
        for k, v in row.items():
            if k.startswith("system.") and v is not None:
                out.setdefault("system/" + k[len("system."):], []).append((float(ts), v))
    return out


def column_of(values: list) -> tuple[str, list | np.ndarray, list | None, np.ndarray]:
    """(kind, values, bins, keep-mask) for one key's values, read as the local reader reads them."""
    n = len(values)
    nums = [isinstance(v, (int, float)) for v in values]
    if all(nums):
        return NUMERIC, np.asarray(values, dtype=np.float64), None, np.ones(n, bool)
    hist = [isinstance(v, dict) and v.get("_type") == "histogram" for v in values]
    if any(hist) and sum(hist) * 2 >= n:
        keep = np.asarray(hist)
        vals = [np.asarray(v.get("values") or [], dtype=np.float64) for v, h in zip(values, hist) if h]
        bins = [np.asarray(v.get("bins") or [], dtype=np.float64) for v, h in zip(values, hist) if h]
        return HISTOGRAM, vals, bins, keep
    if sum(nums) * 2 >= n and any(nums):
        keep = np.asarray(nums)
        return NUMERIC, np.asarray([v for v, k in zip(values, nums) if k], dtype=np.float64), None, keep
    media = [isinstance(v, dict) and isinstance(v.get("_type"), str) for v in values]
    if any(media) and sum(media) * 2 >= n:
        keep = np.asarray(media)
        return MEDIA, [v["_type"] for v, m in zip(values, media) if m], None, keep
    text = [v if isinstance(v, str) else json.dumps(v) for v in values]
    return TEXT, text, None, np.ones(n, bool)


def build(per_key: dict[str, list[tuple[int, object]]], base: History | None = None) -> History:
    """Outer-join keys on the step; `base` (a cached History) keeps its columns."""
    step_sets = [np.asarray([s for s, _ in pairs], dtype=np.int64) for pairs in per_key.values()]
    if base is not None:
        step_sets.append(base.steps)
    steps = np.unique(np.concatenate(step_sets)) if step_sets else np.zeros(0, dtype=np.int64)
    cols: dict[str, Column] = {"_step": Column(NUMERIC, np.arange(len(steps), dtype=np.int64), steps.astype(np.float64))}
    if base is not None:
        for key, col in base.columns.items():
            if key == "_step":
                continue
            rows = np.searchsorted(steps, base.steps[col.rows])
            cols[key] = Column(col.kind, rows.astype(np.int64), col.values, col.bins)
    for key, pairs in per_key.items():
        if not pairs:
            continue
        ksteps = np.asarray([s for s, _ in pairs], dtype=np.int64)
        kind, vals, bins, keep = column_of([v for _, v in pairs])
        rows = np.searchsorted(steps, ksteps[keep]).astype(np.int64)
        cols[key] = Column(kind, rows, vals, bins)
    return History(steps, cols)


def place_system(hist: History, events: dict[str, list[tuple[float, object]]]) -> dict[str, list[tuple[int, object]]]:
    """System events on the history's step axis: each at the last step logged at or before it."""
    ts_col = hist.columns.get("_timestamp")
    if ts_col is None or ts_col.kind != NUMERIC or not len(ts_col.rows):
        return {}
    ts = np.asarray(ts_col.values, dtype=np.float64)
    st = hist.steps[ts_col.rows]
    out: dict[str, list[tuple[int, object]]] = {}
    for key, pairs in events.items():
        placed: dict[int, object] = {}
        for t, v in pairs:
            i = int(np.searchsorted(ts, t, side="right")) - 1
            placed[int(st[max(i, 0)])] = v  # one value per step: the latest event
        out[key] = sorted(placed.items())
    return out


def subset(hist: History, keys: list[str]) -> History:
    """Only `keys` (plus `_step`), rows kept as they are."""
    cols = {k: c for k, c in hist.columns.items() if k in keys or k == "_step"}
    return History(hist.steps, cols)


def downsample(hist: History, samples: int) -> History:
    """At most ~`samples` rows per numeric key, keeping each bucket's min and max (spikes survive)."""
    if samples <= 0 or hist.n_rows <= samples:
        return hist
    keep = {0, hist.n_rows - 1}
    buckets = max(1, samples // 2)
    for key, col in hist.columns.items():
        if key == "_step":
            continue
        rows = col.rows
        if col.kind != NUMERIC or len(rows) <= samples:
            keep.update(rows.tolist() if len(rows) <= samples else rows[np.linspace(0, len(rows) - 1, samples).astype(int)].tolist())
            continue
        vals = np.asarray(col.values, dtype=np.float64)
        edges = np.linspace(0, len(rows), buckets + 1).astype(int)
        for a, b in zip(edges[:-1], edges[1:]):
            if b <= a:
                continue
            seg = vals[a:b]
            bad = ~np.isfinite(seg)
            if bad.any():  # a NaN / inf is the most extreme thing in its bucket
                keep.add(int(rows[a + int(np.flatnonzero(bad)[0])]))
            if (~bad).any():
                fin = np.where(bad, np.nan, seg)
                keep.add(int(rows[a + int(np.nanargmin(fin))]))
                keep.add(int(rows[a + int(np.nanargmax(fin))]))
        keep.update((int(rows[0]), int(rows[-1])))
    chosen = np.asarray(sorted(keep), dtype=np.int64)
    new_index = -np.ones(hist.n_rows, dtype=np.int64)
    new_index[chosen] = np.arange(len(chosen))
    cols = {}
    for key, col in hist.columns.items():
        mask = new_index[col.rows] >= 0
        idx = np.flatnonzero(mask)
        if col.kind == NUMERIC:
            vals = np.asarray(col.values)[idx]
        else:
            vals = [col.values[i] for i in idx]
        bins = [col.bins[i] for i in idx] if col.bins is not None else None
        cols[key] = Column(col.kind, new_index[col.rows[idx]], vals, bins)
    return History(hist.steps[chosen], cols)


class LazyColumn(Column):
    """A column whose data is fetched the first time its rows / values are read."""

    def __init__(self, kind: str, load: Callable[[], Column]):  # noqa: D107 - no dataclass init on purpose
        self._guess = kind
        self._load_fn = load
        self._col: Column | None = None

    def _get(self) -> Column:
        if self._col is None:
            self._col = self._load_fn()
        return self._col

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self._col.kind if self._col is not None else self._guess

    @property
    def rows(self) -> np.ndarray:  # type: ignore[override]
        return self._get().rows

    @property
    def values(self):  # type: ignore[override]
        return self._get().values

    @property
    def bins(self):  # type: ignore[override]
        return self._get().bins

    def __repr__(self) -> str:
        return f"LazyColumn({self.kind}, loaded={self._col is not None})"


def placed_column(steps: np.ndarray, pairs: list[tuple[int, object]]) -> Column:
    """One key's (step, value) pairs as a column on a fixed step axis (steps not on it are dropped)."""
    if not pairs:
        return Column(NUMERIC, np.zeros(0, dtype=np.int64), np.zeros(0))
    ksteps = np.asarray([s for s, _ in pairs], dtype=np.int64)
    kind, vals, bins, keep = column_of([v for _, v in pairs])
    ksteps = ksteps[keep]
    on_axis = np.isin(ksteps, steps)
    if not on_axis.all():
        idx = np.flatnonzero(on_axis)
        ksteps = ksteps[idx]
        vals = np.asarray(vals)[idx] if kind == NUMERIC else [vals[i] for i in idx]
        bins = [bins[i] for i in idx] if bins is not None else None
    return Column(kind, np.searchsorted(steps, ksteps).astype(np.int64), vals, bins)


def values_list(col) -> list:
    if col.kind == NUMERIC:
        return np.asarray(col.values, dtype=np.float64).tolist()
    if col.kind == MEDIA:
        return [{"_type": v} for v in col.values]
    return list(col.values)


def rebase(col, from_steps: np.ndarray, to_steps: np.ndarray):
    st = from_steps[col.rows]
    keep = np.flatnonzero(np.isin(st, to_steps))
    return Column(col.kind, np.searchsorted(to_steps, st[keep]).astype(np.int64), [col.values[i] for i in keep],
                  [col.bins[i] for i in keep] if col.bins is not None else None)
