"""A run's history as sparse columns: every key keeps the rows at which it was logged.

Keys logged in different `log()` calls (train loss every step, validation every N steps) are
never joined by row position: each column holds its own row indices, and `steps[row]` gives the
`_step` of a row. Pairing two series is done on their step values (see `series`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NUMERIC = "numeric"
TEXT = "text"
HISTOGRAM = "histogram"
MEDIA = "media"


@dataclass
class Column:
    kind: str
    rows: np.ndarray  # int64 row indices, increasing
    values: np.ndarray | list  # float64 for numeric; list of str for text; [] for media
    bins: list | None = None  # histogram: list of edge arrays; values holds count arrays


@dataclass
class History:
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    columns: dict[str, Column] = field(default_factory=dict)
    damage: list[str] = field(default_factory=list)  # rows the decoder had to leave out

    @property
    def n_rows(self) -> int:
        return int(self.steps.shape[0])

    def keys(self, kind: str | None = None) -> list[str]:
        return [k for k, c in self.columns.items() if kind is None or c.kind == kind]

    def numeric(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(`_step` values, values) of a numeric key, in logging order."""
        col = self.columns[key]
        return self.steps[col.rows], np.asarray(col.values, dtype=np.float64)

    def series(self, key: str, step_key: str = "_step") -> tuple[np.ndarray, np.ndarray]:
        """x and y of `key` on the axis `step_key`: rows where both were logged.

        With `_step`, every row has an x. With a custom step metric, only rows where that
        metric was logged together with `key` count, as W&B plots them.
        """
        col = self.columns[key]
        y = np.asarray(col.values, dtype=np.float64)
        if step_key == "_step":
            return self.steps[col.rows].astype(np.float64), y
        scol = self.columns[step_key]
        common, ia, ib = np.intersect1d(col.rows, scol.rows, assume_unique=True, return_indices=True)
        return np.asarray(scol.values, dtype=np.float64)[ib], y[ia]

    def append(self, other: History) -> History:
        """A new History with `other`'s rows after this one's."""
        offset = self.n_rows
        cols = dict(self.columns)
        for key, col in other.columns.items():
            mine = cols.get(key)
            rows = col.rows + offset
            if mine is None:
                cols[key] = Column(col.kind, rows, col.values, col.bins)
                continue
            if mine.kind != col.kind:
                # a key that changed type mid-run: keep the numeric reading when there is one
                if mine.kind == NUMERIC or col.kind != NUMERIC:
                    continue
                cols[key] = Column(col.kind, rows, col.values, col.bins)
                continue
            if col.kind == NUMERIC:
                vals = np.concatenate([mine.values, col.values])
            else:
                vals = list(mine.values) + list(col.values)
            bins = None if col.bins is None else list(mine.bins or []) + list(col.bins)
            cols[key] = Column(col.kind, np.concatenate([mine.rows, rows]), vals, bins)
        return History(np.concatenate([self.steps, other.steps]), cols, self.damage + other.damage)


def to_arrow(history: History):
    """A wide Arrow table (one row per history row, nulls where a key was not logged)."""
    import json

    import pyarrow as pa

    n = history.n_rows
    arrays = [pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(np.ascontiguousarray(history.steps, dtype=np.int64))])]
    names = ["_step"]
    kinds = {}
    for key, col in history.columns.items():
        if key == "_step":
            continue
        present = np.zeros(n, dtype=bool)
        present[col.rows] = True
        kinds[key] = col.kind
        if col.kind == NUMERIC:
            full = np.zeros(n, dtype=np.float64)
            full[col.rows] = col.values
            # from buffers: pa.array(..., mask=) imports pandas (~0.7 s per process)
            arrays.append(pa.Array.from_buffers(pa.float64(), n, [pa.py_buffer(np.packbits(present, bitorder="little")),
                                                                  pa.py_buffer(full)], null_count=n - int(present.sum())))
        elif col.kind == HISTOGRAM:
            counts: list = [None] * n
            edges: list = [None] * n
            for r, c, b in zip(col.rows.tolist(), col.values, col.bins or []):
                counts[r] = np.asarray(c, dtype=np.float64)
                edges[r] = np.asarray(b, dtype=np.float64)
            arrays.append(
                pa.StructArray.from_arrays(
                    [pa.array(counts, type=pa.list_(pa.float64())), pa.array(edges, type=pa.list_(pa.float64()))],
                    names=["values", "bins"],
                    mask=pa.array(~present),
                )
            )
        else:
            full_text: list = [None] * n
            for r, v in zip(col.rows.tolist(), col.values):
                full_text[r] = v
            arrays.append(pa.array(full_text, type=pa.string()))
        names.append(key)
    table = pa.Table.from_arrays(arrays, names=names)
    meta = dict(table.schema.metadata or {})
    meta[b"wandb_lens_kinds"] = json.dumps(kinds).encode()
    # the columns' order as decoded (`_step` is stored first): warm answers list keys as cold ones do
    meta[b"wandb_lens_order"] = json.dumps(list(history.columns)).encode()
    if history.damage:
        meta[b"wandb_lens_damage"] = json.dumps(history.damage).encode()
    return table.replace_schema_metadata(meta)


def _values(arr, dtype) -> np.ndarray:
    """A fixed-width Arrow array's values buffer as numpy (null slots hold whatever was written).
    Not `Array.to_numpy`: it imports pandas (~0.7 s per process)."""
    import pyarrow as pa

    if len(arr) == 0:
        return np.zeros(0, dtype=dtype)
    want = pa.from_numpy_dtype(np.dtype(dtype))
    if arr.type != want:
        arr = arr.cast(want)
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * np.dtype(dtype).itemsize)


def _valid(arr) -> np.ndarray:
    """Which slots of an Arrow array hold a value (its validity bitmap, unpacked)."""
    n = len(arr)
    bitmap = arr.buffers()[0]
    if arr.null_count == 0 or bitmap is None:
        return np.ones(n, dtype=bool)
    if arr.null_count == n:
        return np.zeros(n, dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[arr.offset:arr.offset + n].astype(bool)


def from_arrow(table) -> History:
    import json

    kinds = json.loads((table.schema.metadata or {}).get(b"wandb_lens_kinds", b"{}"))
    steps = _values(table.column("_step").combine_chunks(), np.int64).astype(np.int64)
    cols: dict[str, Column] = {"_step": Column(NUMERIC, np.arange(len(steps)), steps.astype(np.float64))}
    for key in table.column_names:
        if key == "_step":
            continue
        arr = table.column(key).combine_chunks()
        valid = _valid(arr)
        rows = np.flatnonzero(valid)
        kind = kinds.get(key, NUMERIC)
        if kind == NUMERIC:
            vals = _values(arr, np.float64)[rows].astype(np.float64)
            cols[key] = Column(kind, rows, vals)
        elif kind == HISTOGRAM:
            sub = arr.filter(arr.is_valid())
            counts = [np.asarray(v, dtype=np.float64) for v in sub.field("values").to_pylist()]
            edges = [np.asarray(v, dtype=np.float64) for v in sub.field("bins").to_pylist()]
            cols[key] = Column(kind, rows, counts, edges)
        else:
            cols[key] = Column(kind, rows, arr.filter(arr.is_valid()).to_pylist())
    damage = json.loads((table.schema.metadata or {}).get(b"wandb_lens_damage", b"[]"))
    order = json.loads((table.schema.metadata or {}).get(b"wandb_lens_order", b"[]"))
    if sorted(order) == sorted(cols):
        cols = {k: cols[k] for k in order}
    return History(steps, cols, damage)


def read_cached(path, meta_key: bytes):
    """(Arrow table, our metadata dict) of a parquet cache file, or None when missing or unreadable.

    `ParquetFile(...).read()`, not `pq.read_table`: the latter imports pyarrow.dataset (~0.4 s).
    """
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path).read()
        return table, json.loads(table.schema.metadata[meta_key])
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
        return None


def write_cached(history: History, path, meta_key: bytes, meta: dict) -> None:
    """Write `history` with `meta` atomically (a temp file, then rename); raises OSError."""
    import json
    import os
    import threading

    import pyarrow.parquet as pq

    table = to_arrow(history)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), meta_key: json.dumps(meta).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


SYSTEM_PREFIX = "system/"


def place_events(hist: History, events: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Column]:
    """Timed samples (system metrics: {key: (unix times, values)}) as columns on the history's rows:
    each sample at the last row logged at or before it (the first row for earlier samples), the
    latest sample when several fall on one row. Empty without a numeric `_timestamp` column."""
    ts_col = hist.columns.get("_timestamp")
    if ts_col is None or ts_col.kind != NUMERIC or not len(ts_col.rows):
        return {}
    ts = np.maximum.accumulate(np.nan_to_num(np.asarray(ts_col.values, dtype=np.float64), nan=-np.inf))
    out: dict[str, Column] = {}
    for key, (t, v) in events.items():
        if not len(t):
            continue
        at = np.clip(np.searchsorted(ts, np.asarray(t, dtype=np.float64), side="right") - 1, 0, len(ts) - 1)
        rows = ts_col.rows[at]
        last = np.r_[rows[1:] != rows[:-1], True]  # rows are nondecreasing: keep each row's last sample
        out[key] = Column(NUMERIC, rows[last].astype(np.int64), np.asarray(v, dtype=np.float64)[last])
    return out


def with_columns(hist: History, extra: dict[str, Column]) -> History:
    """The same rows with `extra` columns added (existing keys win)."""
    if not extra:
        return hist
    cols = dict(hist.columns)
    for k, c in extra.items():
        cols.setdefault(k, c)
    out = History(hist.steps, cols, list(hist.damage))
    if hasattr(hist, "_meta"):
        out._meta = hist._meta
    return out
