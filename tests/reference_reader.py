"""The reader as it was before the numpy item walk (frozen copy, for tests only): the history
decode with one protobuf parse per record and the summary merge of every delta item by item.
tests/test_decode_equivalence.py checks that the fast reader gives the same History and summary.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from wandb_lens.sources.local.run_file import _del_nested, _loads, _set_nested
from wandb_lens.sources.history import HISTOGRAM, MEDIA, NUMERIC, TEXT, Column, History


def decode_history(records: list[bytes]) -> History:
    """Columns from undecoded history records: one json.loads per column, not per value."""
    from wandb.proto import wandb_internal_pb2 as pb

    parse = pb.Record.FromString
    raw: dict[str, tuple[list[int], list[str]]] = {}
    step_nums: list[int] = []
    dropped = 0
    row = 0
    for rec in records:
        try:
            h = parse(rec).history
        except Exception:  # passed its CRC yet is not a HistoryRecord: the row is left out
            dropped += 1
            continue
        step_nums.append(h.step.num)
        for item in h.item:
            nk = item.nested_key
            key = nk[0] if len(nk) == 1 else (".".join(nk) if nk else item.key)
            slot = raw.get(key)
            if slot is None:
                slot = raw[key] = ([], [])
            slot[0].append(row)
            slot[1].append(item.value_json)
        row += 1
    steps = np.asarray(step_nums, dtype=np.int64)
    columns: dict[str, Column] = {}
    for key, (rows, texts) in raw.items():
        row_idx = np.asarray(rows, dtype=np.int64)
        try:  # plain numbers (NaN and Infinity included) parse straight into an array
            columns[key] = Column(NUMERIC, row_idx, np.array(texts, dtype=np.float64))
            continue
        except ValueError:
            pass
        try:
            values = json.loads("[" + ",".join(texts) + "]")
        except (ValueError, RecursionError):  # one value is not JSON (damaged): read them one by one
            values = [_loads_safe(t) for t in texts]
        columns[key] = _column(row_idx, values)
    step_col = columns.get("_step")
    if step_col is not None and step_col.kind == NUMERIC:
        ok = np.isfinite(step_col.values) & (np.abs(step_col.values) < 2**62)
        steps[step_col.rows[ok]] = step_col.values[ok].astype(np.int64)
    columns["_step"] = Column(NUMERIC, np.arange(len(step_nums), dtype=np.int64), steps.astype(np.float64))
    _group_histograms(columns)
    _stringify_text(columns)
    damage = [f"{dropped} history record(s) passed their CRC but could not be decoded: left out"] if dropped else []
    return History(steps, columns, damage)


def _loads_safe(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


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


# ----- the summary merge as it was -----

def _submessage(rec: bytes) -> bytes:
    """The bytes of a record's payload field (the part after the `num` varint, tag and length)."""
    i = 0
    if rec[0] == 0x08:
        i = 1
        while rec[i] & 0x80:
            i += 1
        i += 1
    i += 1  # the field's tag byte
    length = shift = 0
    while True:
        b = rec[i]
        i += 1
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return rec[i : i + length]


def _apply_summaries(summary: dict, records: list[bytes], parse) -> None:
    """Apply summary deltas; only the last update of each key matters, so walk backwards.

    Fast path: the SummaryRecord payloads, newest first, are concatenated and parsed as one
    message (protobuf appends repeated fields), so the C parser does the bulk of the work.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    if not records:
        return
    try:
        merged = pb.SummaryRecord.FromString(b"".join(_submessage(r) for r in reversed(records)))
    except Exception:
        merged = None
    if merged is not None and not merged.remove:
        _apply_items(summary, merged.update, set())
        return
    seen: set = set()
    removed: set = set()
    for rec in reversed(records):
        try:
            s = parse(rec).summary
        except Exception:  # passed its CRC yet undecodable: skip it
            continue
        for item in s.remove:
            key = _summary_key(item)
            if key not in seen:
                seen.add(key)
                removed.add(key)
        _apply_items(summary, s.update, seen)
    for key in removed:
        _del_nested(summary, list(key) if isinstance(key, tuple) else [key])


def _summary_key(item):
    """One key for updates and removals alike: the name for a flat key, a tuple for a nested one."""
    nk = item.nested_key
    return nk[0] if len(nk) == 1 else (tuple(nk) if nk else item.key)


def _apply_items(summary: dict, items, seen: set) -> None:
    for item in items:
        key = _summary_key(item)
        if key in seen:
            continue
        seen.add(key)
        path = list(key) if isinstance(key, tuple) else [key]
        if path[0] == "_wandb":
            if path == ["_wandb", "runtime"]:
                summary["_runtime_wandb"] = _loads(item.value_json)
            continue
        _set_nested(summary, path, _loads(item.value_json))
