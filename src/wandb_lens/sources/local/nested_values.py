"""History values that are whole JSON objects: wandb before wandb-core wrote `wandb.log({"val":
{"loss": x}})` as one item `val` = '{"loss": x}' (and a histogram as one object with `_type`),
where wandb-core writes nested keys. W&B shows both as `val.loss`; so do we: such a column is
split into one column per leaf, before histograms are grouped."""

from __future__ import annotations

import numpy as np

MAX_DEPTH = 8


def _leaves(value: dict, prefix: str, out: list, depth: int = 0) -> None:
    for k, v in value.items():
        name = f"{prefix}.{k}"
        if isinstance(v, dict) and v and depth < MAX_DEPTH:
            _leaves(v, name, out, depth + 1)
        else:
            out.append((name, v))


def split_object_columns(columns: dict, text_kind: str, make_column) -> None:
    for key in [k for k, c in columns.items() if c.kind == text_kind]:
        col = columns[key]
        if not col.values or not all(isinstance(v, dict) and v for v in col.values):
            continue
        parts: dict[str, tuple[list, list]] = {}
        for row, value in zip(col.rows.tolist(), col.values):
            leaves: list = []
            _leaves(value, key, leaves)
            for name, leaf in leaves:
                slot = parts.setdefault(name, ([], []))
                slot[0].append(row)
                slot[1].append(leaf)
        del columns[key]
        for name, (rows, values) in parts.items():
            if name not in columns:
                columns[name] = make_column(np.asarray(rows, dtype=np.int64), values)
