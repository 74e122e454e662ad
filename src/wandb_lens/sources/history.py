"""A run's history as sparse columns: every key keeps the rows at which it was logged.

Keys logged in different `log()` calls (train loss every step, validation every N steps) are
never joined by row position: each column holds its own row indices, and `steps[row]` gives the
`_step` of a row. Pairing two series is done on their step values (see `series`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
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


class LazyColumns(Mapping):
    """Columns decoded when asked for, one at a time: a tool that needs 3 keys of a 50-key run
    reads 3 columns (from the parquet cache: `open_cached`). The names and kinds are known without
    reading any; the last few decoded columns are kept (`keep`), so code that walks every column
    (`items()`) holds one or a few at a time, never all of them. `eager` columns are held as given."""

    def __init__(self, kinds: dict[str, str], load: Callable[[str], Column], eager: dict[str, Column] | None = None,
                 keep: int = 6):
        self._kinds = dict(kinds)
        self._load = load
        self._eager = dict(eager or {})
        for k, c in self._eager.items():
            self._kinds.setdefault(k, c.kind)
        self._keep = keep
        self._recent: OrderedDict[str, Column] = OrderedDict()
        self._lock = threading.Lock()

    def kind(self, key: str) -> str:
        return self._kinds[key]

    def __getitem__(self, key: str) -> Column:
        col = self._eager.get(key)
        if col is not None:
            return col
        if key not in self._kinds:
            raise KeyError(key)
        with self._lock:
            col = self._recent.get(key)
            if col is not None:
                self._recent.move_to_end(key)
                return col
        col = self._load(key)
        with self._lock:
            self._recent[key] = col
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
        return col

    def __contains__(self, key) -> bool:
        return key in self._kinds

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def with_extra(self, extra: dict[str, Column]) -> LazyColumns:
        """The same lazy columns plus `extra` (existing keys win), sharing the loader."""
        out = LazyColumns(self._kinds, self._load, self._eager, self._keep)
        for k, c in extra.items():
            if k not in out._kinds:
                out._eager[k] = c
                out._kinds[k] = c.kind
        out._recent, out._lock = self._recent, self._lock  # one set of decoded columns for both views
        return out


@dataclass
class History:
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    columns: Mapping[str, Column] = field(default_factory=dict)  # a dict, or LazyColumns
    damage: list[str] = field(default_factory=list)  # rows the decoder had to leave out

    @property
    def n_rows(self) -> int:
        return int(self.steps.shape[0])

    def kind(self, key: str) -> str:
        """The kind of column `key` (KeyError when not logged), without decoding a lazy column."""
        cols = self.columns
        return cols.kind(key) if isinstance(cols, LazyColumns) else cols[key].kind

    def keys(self, kind: str | None = None) -> list[str]:
        return [k for k in self.columns if kind is None or self.kind(k) == kind]

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

    def facts(self, key: str) -> dict:
        """What the step-axis rule needs of a numeric column (analysis.step_axis.key_facts), computed
        once per History and kept: a lazy column is read for it and dropped."""
        memo = self.__dict__.setdefault("_facts", {})
        if key not in memo:
            from ..analysis.step_axis import key_facts

            memo[key] = key_facts(np.asarray(self.columns[key].values, dtype=np.float64))
        return memo[key]

    def all_facts(self, keys: list[str]) -> dict[str, dict]:
        """`facts` of each of `keys`. A history opened from the cache keeps them beside its file
        (`open_cached`), so a later process finds the step keys without reading every column."""
        out = {k: self.facts(k) for k in keys}
        saver = getattr(self, "_save_facts", None)
        if saver is not None:
            saver(self.__dict__.get("_facts", {}))
        return out

    def append(self, other: History) -> History:
        """A new History with `other`'s rows after this one's (lazily joined when either is lazy)."""
        offset = self.n_rows
        steps = np.concatenate([self.steps, other.steps])
        damage = self.damage + other.damage
        if isinstance(self.columns, LazyColumns) or isinstance(other.columns, LazyColumns):
            kinds = {k: self.kind(k) for k in self.columns}
            for k in other.columns:
                kinds[k] = _joined_kind(kinds.get(k), other.kind(k))

            def load(key: str) -> Column:
                mine = self.columns[key] if key in self.columns else None
                theirs = other.columns[key] if key in other.columns else None
                return _join(mine, theirs, offset)

            return History(steps, LazyColumns(kinds, load), damage)
        cols = dict(self.columns)
        for key, col in other.columns.items():
            cols[key] = _join(cols.get(key), col, offset)
        return History(steps, cols, damage)


def _joined_kind(mine: str | None, theirs: str) -> str:
    """A key that changed type mid-run keeps the numeric reading when there is one."""
    if mine is None or mine == theirs:
        return theirs
    return mine if mine == NUMERIC or theirs != NUMERIC else theirs


def _join(mine: Column | None, col: Column | None, offset: int) -> Column:
    """One key's column over two runs of rows (`col`'s rows numbered on from `offset`)."""
    if col is None:
        return mine
    rows = col.rows + offset
    if mine is None:
        return Column(col.kind, rows, col.values, col.bins)
    if mine.kind != col.kind:
        if mine.kind == NUMERIC or col.kind != NUMERIC:
            return mine
        return Column(col.kind, rows, col.values, col.bins)
    if col.kind == NUMERIC:
        vals = np.concatenate([mine.values, col.values])
    else:
        vals = list(mine.values) + list(col.values)
    bins = None if col.bins is None else list(mine.bins or []) + list(col.bins)
    return Column(col.kind, np.concatenate([mine.rows, rows]), vals, bins)


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


def _column_from_arrow(arr, kind: str) -> Column:
    """One stored column (nulls where the key was not logged) as a sparse Column."""
    if kind == NUMERIC and arr.null_count == 0:  # logged on every row (the common case): one copy
        return Column(kind, np.arange(len(arr), dtype=np.int64), _values(arr, np.float64).copy())
    valid = _valid(arr)
    rows = np.flatnonzero(valid)
    if kind == NUMERIC:
        return Column(kind, rows, _values(arr, np.float64)[rows])
    if kind == HISTOGRAM:
        sub = arr.filter(arr.is_valid())
        counts = [np.asarray(v, dtype=np.float64) for v in sub.field("values").to_pylist()]
        edges = [np.asarray(v, dtype=np.float64) for v in sub.field("bins").to_pylist()]
        return Column(kind, rows, counts, edges)
    return Column(kind, rows, arr.filter(arr.is_valid()).to_pylist())


def _ordered(names: list[str], schema_meta) -> list[str]:
    import json

    order = json.loads((schema_meta or {}).get(b"wandb_lens_order", b"[]"))
    return order if sorted(order) == sorted(names) else names


def from_arrow(table) -> History:
    """A whole Arrow table as a History with every column decoded (see `open_cached` for lazy)."""
    import json

    meta = table.schema.metadata or {}
    kinds = json.loads(meta.get(b"wandb_lens_kinds", b"{}"))
    steps = _values(table.column("_step").combine_chunks(), np.int64).astype(np.int64)
    cols: dict[str, Column] = {"_step": Column(NUMERIC, np.arange(len(steps)), steps.astype(np.float64))}
    for key in table.column_names:
        if key != "_step":
            cols[key] = _column_from_arrow(table.column(key).combine_chunks(), kinds.get(key, NUMERIC))
    order = _ordered(list(cols), meta)
    damage = json.loads(meta.get(b"wandb_lens_damage", b"[]"))
    return History(steps, {k: cols[k] for k in order}, damage)


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


def open_cached(path, meta_key: bytes) -> tuple[History, dict] | None:
    """(History with lazy columns, our metadata dict) of a parquet cache file, or None when missing
    or unreadable. Only the step column is read here; each other column is read from the file when
    a tool asks for it (`LazyColumns`). The file is memory-mapped and kept open, so a cache file
    replaced later (a grown run written anew) still reads as it was when opened."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(pa.memory_map(str(path)))
        schema = pf.schema_arrow
        smeta = schema.metadata or {}
        meta = json.loads(smeta[meta_key])
        stored = json.loads(smeta.get(b"wandb_lens_kinds", b"{}"))
        steps = _values(pf.reader.read_column(schema.get_field_index("_step")).combine_chunks(), np.int64)
        steps = steps.astype(np.int64)
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
        return None
    names = [n for n in schema.names if n != "_step"]
    kinds = {k: stored.get(k, NUMERIC) for k in _ordered(["_step", *names], smeta)}
    lock = threading.Lock()

    def load(key: str) -> Column:
        with lock:  # one reader, one column at a time
            arr = pf.reader.read_column(schema.get_field_index(key)).combine_chunks()
        return _column_from_arrow(arr, kinds[key])

    step_col = Column(NUMERIC, np.arange(len(steps)), steps.astype(np.float64))
    damage = json.loads(smeta.get(b"wandb_lens_damage", b"[]"))
    hist = History(steps, LazyColumns(kinds, load, {"_step": step_col}), damage)
    _keep_facts(hist, path, meta)
    return hist, meta


def _keep_facts(hist: History, path, meta: dict) -> None:
    """Step-axis facts of the cache file's columns, kept beside it (`<file>.facts.json`, valid for
    this very file: its metadata is stored with them) and written when more are known."""
    import json
    import os
    from pathlib import Path

    side = Path(str(path) + ".facts.json")
    try:
        doc = json.loads(side.read_text())
        if doc.get("of") == meta and isinstance(doc.get("facts"), dict):
            hist._facts = {k: v for k, v in doc["facts"].items() if k in hist.columns}
    except (OSError, ValueError, AttributeError):
        pass

    saved = dict(getattr(hist, "_facts", {}))
    own = set(hist.columns)  # the file's columns (system metrics are joined on later, not stored)

    def save(facts: dict) -> None:
        facts = {k: v for k, v in facts.items() if k in own}
        if facts == saved:
            return
        saved.clear()
        saved.update(facts)
        try:
            tmp = side.with_name(f"{side.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps({"of": meta, "facts": facts}))
            os.replace(tmp, side)
        except OSError:  # a read-only cache: computed again next time
            pass

    hist._save_facts = save


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
    if isinstance(hist.columns, LazyColumns):
        cols = hist.columns.with_extra(extra)
    else:
        cols = dict(hist.columns)
        for k, c in extra.items():
            cols.setdefault(k, c)
    out = History(hist.steps, cols, list(hist.damage))
    for attr in ("_meta", "_facts", "_save_facts"):
        if hasattr(hist, attr):
            setattr(out, attr, getattr(hist, attr))
    return out
