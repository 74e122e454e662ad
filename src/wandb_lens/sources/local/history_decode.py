"""Decoding history records into sparse columns: one protobuf parse per record, one array
conversion per column (never one json.loads per value), histograms folded into one column per key.

Records come undecoded from `run_file.scan(..., want_history=True)`; a record that passed its CRC but
does not decode is left out and reported as damage on the History.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..history import HISTOGRAM, MEDIA, NUMERIC, TEXT, Column, History


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
