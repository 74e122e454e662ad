"""Decoding history records into sparse columns: items found with numpy for a batch of records
at a time (`item_walk`), numbers parsed in one Arrow cast, other columns with one json.loads per
column, histograms folded into one column per key.

Records come undecoded from `run_file.scan(..., want_history=True)`; a record that passed its CRC but
does not decode is left out and reported as damage on the History.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .. import bounded_json
from ..history import HISTOGRAM, MEDIA, NUMERIC, TEXT, Column, History
from .nested_values import split_object_columns


BATCH_BYTES = 4 << 20  # records decoded together: big enough for numpy, small enough for the CPU cache


def decode_history(records: list[bytes]) -> History:
    """Columns from undecoded history records (all at once; see `HistoryBuilder` for a stream)."""
    builder = HistoryBuilder()
    builder.add_all(records)
    return builder.finish()


class HistoryBuilder:
    """Builds a History from history records fed in order, a batch at a time, so the records
    themselves never need to be held all at once.

    Items are found for a whole batch at once (`item_walk`); a column of plain numbers is parsed in
    one Arrow cast, any other column with one json.loads per column. Records the walk cannot read
    are parsed with protobuf; records protobuf cannot parse either are left out (counted as damage).
    """

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()  # a batch is added whole, or not yet, when `snapshot` looks
        self.n_records = 0
        self.steps: list[np.ndarray] = []
        self.dropped: list[np.ndarray] = []
        self.parts: dict[str, list] = {}  # key -> [(record indices, floats | None, texts | None)]
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def add(self, record: bytes) -> None:
        self._pending.append(record)
        self._pending_bytes += len(record)
        if self._pending_bytes >= BATCH_BYTES:
            self.flush()

    def add_all(self, records: list[bytes]) -> None:
        for rec in records:
            self.add(rec)

    def flush(self) -> None:
        if self._pending:
            with self._lock:
                self._batch(self._pending)
            self._pending = []
            self._pending_bytes = 0

    def snapshot(self) -> History:
        """The rows of the batches added so far, as a History (another thread may be adding more:
        the budget's partial answer). The builder goes on as before."""
        with self._lock:
            steps, dropped = list(self.steps), list(self.dropped)
            parts = {k: list(v) for k, v in self.parts.items()}
        return _assemble(steps, dropped, parts)

    def _batch(self, records: list[bytes]) -> None:
        from . import item_walk

        base = self.n_records
        n = len(records)
        self.n_records += n
        items = item_walk.walk(records, 0x12, history=True)
        names: dict[str, int] = {}
        span_kid = np.asarray([_kid(names, _span_key(span)) for span in items.spans] or [0], dtype=np.int64)
        bad_span = span_kid < 0
        if bad_span.any():  # a key the walk found but protobuf cannot read: its records go the slow way
            items.bad[items.rec[bad_span[items.key]]] = True
        good = ~items.bad[items.rec]
        f_rec, f_kid = items.rec[good], span_kid[items.key[good]]
        n_fast = f_rec.shape[0]
        try:
            f_num, f_isnum = item_walk.numbers(items, np.flatnonzero(good))
        except ValueError:  # a value that starts like a number but is not one: the columns read texts
            f_num, f_isnum = None, np.zeros(n_fast, dtype=bool)
        f_vs, f_vl = items.v_start[good], items.v_len[good]
        step_nums = items.step_num.copy()
        dropped = np.zeros(n, dtype=bool)
        s_rec: list[int] = []
        s_kid: list[int] = []
        s_txt: list[str] = []
        slow = np.flatnonzero(items.bad)
        if slow.size:
            from wandb.proto import wandb_internal_pb2 as pb

            parse = pb.Record.FromString
            for i in slow.tolist():
                try:
                    h = parse(records[i]).history
                except Exception:  # passed its CRC yet is not a HistoryRecord: the row is left out
                    dropped[i] = True
                    continue
                step_nums[i] = h.step.num
                for item in h.item:
                    nk = item.nested_key
                    s_rec.append(i)
                    s_kid.append(_kid(names, nk[0] if len(nk) == 1 else (".".join(nk) if nk else item.key)))
                    s_txt.append(item.value_json)
        self.steps.append(step_nums)
        self.dropped.append(dropped)
        # every item in logging order (fast ones, then slow ones, stably sorted by record), by key
        rec_all = np.concatenate([f_rec, np.asarray(s_rec, dtype=np.int64)])
        kid_all = np.concatenate([f_kid, np.asarray(s_kid, dtype=np.int64)])
        order = np.argsort(rec_all, kind="stable") if s_rec else np.arange(rec_all.shape[0])
        kid_sorted = kid_all[order]
        by_key = np.argsort(kid_sorted.astype(np.int16) if len(names) < 1 << 15 else kid_sorted, kind="stable")
        bounds = np.flatnonzero(np.diff(kid_sorted[by_key])) + 1
        groups = np.split(by_key, bounds) if by_key.size else []
        groups.sort(key=lambda g: g[0])  # columns in order of first appearance
        key_names = list(names)
        for g in groups:
            src = order[g]  # indices into the fast + slow items, in logging order
            key = key_names[int(kid_all[src[0]])]
            recs = rec_all[src] + base
            if src.max() < n_fast and f_isnum[src].all():
                part = (recs, f_num[src], None)
            else:
                part = (recs, None, [_text(items.buf, f_vs, f_vl, s_txt, n_fast, int(j)) for j in src.tolist()])
            self.parts.setdefault(key, []).append(part)

    def finish(self) -> History:
        self.flush()
        with self._lock:
            parts, self.parts = self.parts, {}
            return _assemble(self.steps, self.dropped, parts)


def _assemble(steps_parts: list, dropped_parts: list, by_key: dict[str, list]) -> History:
    """A History from a builder's batches (reads its arguments, never changes them)."""
    dropped_mask = np.concatenate(dropped_parts) if dropped_parts else np.zeros(0, dtype=bool)
    step_nums = np.concatenate(steps_parts) if steps_parts else np.zeros(0, dtype=np.int64)
    row_of = np.cumsum(~dropped_mask) - 1
    columns: dict[str, Column] = {}
    for key, parts in by_key.items():
        row_idx = row_of[np.concatenate([p[0] for p in parts])]
        if all(p[2] is None for p in parts):
            columns[key] = Column(NUMERIC, row_idx, np.concatenate([p[1] for p in parts]))
        elif all(p[1] is None for p in parts):
            columns[key] = _text_column(row_idx, [t for p in parts for t in p[2]])
        else:  # numbers in some batches, texts in others: one column, read as before
            try:
                columns[key] = Column(NUMERIC, row_idx, np.concatenate(
                    [p[1] if p[2] is None else np.array(p[2], dtype=np.float64) for p in parts]))
                continue
            except ValueError:
                pass
            values: list = []
            for _, nums, txts in parts:
                values.extend(_json_number(x) for x in nums.tolist()) if txts is None else values.extend(_loads_list(txts))
            columns[key] = _column(row_idx, values)
    live = ~dropped_mask
    steps = step_nums[live].astype(np.int64)
    n_rows = int(live.sum())
    step_col = columns.get("_step")
    if step_col is not None and step_col.kind == NUMERIC:
        ok = np.isfinite(step_col.values) & (np.abs(step_col.values) < 2**62)
        steps[step_col.rows[ok]] = step_col.values[ok].astype(np.int64)
    columns["_step"] = Column(NUMERIC, np.arange(n_rows, dtype=np.int64), steps.astype(np.float64))
    split_object_columns(columns, TEXT, _column)  # wandb < 0.18 wrote nested dicts as one value
    _group_histograms(columns)
    _stringify_text(columns)
    dropped = int(dropped_mask.sum())
    damage = [f"{dropped} history record(s) passed their CRC but could not be decoded: left out"] if dropped else []
    return History(steps, columns, damage)


def _kid(names: dict[str, int], key: str | None) -> int:
    return -1 if key is None else names.setdefault(key, len(names))


def _json_number(x: float):
    """A float as json.loads would have given it from the text wandb-core writes ('5' for 5.0)."""
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def _loads_list(texts: list[str]) -> list:
    if any(bounded_json.may_be_deep(t) for t in texts):  # one value nested too deep: cut alone (bounded_json)
        return [_loads_safe(t) for t in texts]
    try:
        return json.loads("[" + ",".join(texts) + "]")
    except (ValueError, RecursionError):
        return [_loads_safe(t) for t in texts]


def _text(buf: bytes, vs: np.ndarray, vl: np.ndarray, slow: list[str], n_fast: int, j: int) -> str:
    if j < n_fast:
        start = int(vs[j])
        return buf[start:start + int(vl[j])].decode("utf-8", "replace")
    return slow[j - n_fast]


_SPAN_KEYS: dict[bytes, str | None] = {}


def _span_key(span: bytes) -> str | None:
    """The column name of an encoded item key (the item's bytes before its value), or None."""
    key = _SPAN_KEYS.get(span, "")
    if key == "":
        from wandb.proto import wandb_internal_pb2 as pb

        try:
            item = pb.HistoryItem.FromString(span)
            nk = item.nested_key
            key = nk[0] if len(nk) == 1 else (".".join(nk) if nk else item.key)
        except Exception:
            key = None
        if len(_SPAN_KEYS) < 100_000:
            _SPAN_KEYS[span] = key
    return key


def _text_column(row_idx: np.ndarray, texts: list[str]) -> Column:
    try:  # plain numbers (NaN and Infinity included) parse straight into an array
        return Column(NUMERIC, row_idx, np.array(texts, dtype=np.float64))
    except ValueError:
        pass
    return _column(row_idx, _loads_list(texts))  # one value not JSON (damaged): read one by one


def _loads_safe(text: str) -> Any:
    return bounded_json.loads(text)


def _column(rows: np.ndarray, values: list) -> Column:
    try:
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim == 1:
            return Column(NUMERIC, rows, arr)
    except (TypeError, ValueError):
        pass
    if all(isinstance(v, (int, float, bool)) or v is None for v in values):
        return Column(NUMERIC, rows, np.asarray([np.nan if v is None else v for v in values], dtype=np.float64))
    # mixed: keep numeric entries as numbers when they are the majority
    nums = [(r, float(v)) for r, v in zip(rows.tolist(), values) if isinstance(v, (int, float, bool))]
    if nums and len(nums) * 2 >= len(values):
        return Column(NUMERIC, np.asarray([r for r, _ in nums], dtype=np.int64), np.asarray([v for _, v in nums]))
    return Column(TEXT, rows, values)  # raw JSON values; made strings after histograms are found


def _group_histograms(columns: dict[str, Column]) -> None:
    """Fold `<key>._type/values/bins` item triples into one histogram column per key."""
    for type_key in [k for k in columns if k.endswith("._type")]:
        prefix = type_key[: -len("._type")]
        type_col = columns[type_key]
        kinds = {v for v in type_col.values if isinstance(v, str)} if type_col.kind == TEXT else set()
        if kinds == {"histogram"} and f"{prefix}.values" in columns and f"{prefix}.bins" in columns:
            vals = columns.pop(f"{prefix}.values")
            bins = columns.pop(f"{prefix}.bins")
            columns.pop(type_key)
            common, ia, ib = np.intersect1d(vals.rows, bins.rows, return_indices=True)
            v_list = _as_arrays(vals, ia)
            b_list = _as_arrays(bins, ib)
            columns[prefix] = Column(HISTOGRAM, common, v_list, b_list)
        elif kinds:
            # images, tables, audio...: W&B media objects. Keep where they were logged, not the files.
            for sub in [k for k in columns if k.startswith(prefix + ".")]:
                columns.pop(sub)
            columns[prefix] = Column(MEDIA, type_col.rows, [str(next(iter(kinds)))] * len(type_col.rows))


def _as_arrays(col: Column, idx: np.ndarray) -> list:
    if col.kind == TEXT:
        return [_floats(col.values[i]) for i in idx]
    return [np.asarray([col.values[i]], dtype=np.float64) for i in idx]


def _stringify_text(columns: dict[str, Column]) -> None:
    for col in columns.values():
        if col.kind == TEXT:
            col.values = [v if isinstance(v, str) else json.dumps(v) for v in col.values]


def _floats(value) -> np.ndarray:
    """A histogram's values or bins as floats; a damaged entry (not numbers) reads as empty."""
    try:
        return np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError, OverflowError):
        return np.zeros(0, dtype=np.float64)
