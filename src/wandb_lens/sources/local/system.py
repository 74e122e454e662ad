"""System metrics from the run log's `stats` records, named as W&B names them: `system/` + the
sampler's key (`system/cpu`, `system/memory_percent`, `system/gpu.0.gpu`, `system/proc.memory.rssMB`;
wandb before the Go core wrote `system/memory` for host memory). The cloud source reads the same
names from W&B's system stream.

They join the run's History as columns placed on its rows by time (`history.place_events`), so
every tool reading history sees them; `series` keeps the raw timed samples for system_health.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from ..history import SYSTEM_PREFIX, History, place_events, with_columns
from . import records

_merged: dict = {}
_lock = threading.Lock()


def series(path: Path, roots) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{system/<key>: (unix times, values)}, numeric samples only, in time order."""
    raw: dict[str, tuple[list, list]] = {}
    for rec in records.read(path, ("stats",), roots)["stats"]:
        t = rec.timestamp.seconds + rec.timestamp.nanos / 1e9
        for item in rec.item:
            try:
                v = float(json.loads(item.value_json))
            except (ValueError, TypeError, OverflowError):
                continue
            slot = raw.setdefault(SYSTEM_PREFIX + item.key, ([], []))
            slot[0].append(t)
            slot[1].append(v)
    out = {}
    for k, (t, v) in raw.items():
        ta, va = np.asarray(t, dtype=np.float64), np.asarray(v, dtype=np.float64)
        order = np.argsort(ta, kind="stable")
        out[k] = (ta[order], va[order])
    return out


def with_system(hist: History, path: Path, roots) -> History:
    """`hist` plus its run's system metrics as columns (memoised per History object and log size)."""
    from ..safe_open import check_regular, file_identity

    ident = (id(hist), str(path), file_identity(check_regular(path, roots)))
    with _lock:
        hit = _merged.get(ident)
    if hit is not None and hit[0] is hist:
        return hit[1]
    merged = with_columns(hist, place_events(hist, series(path, roots)))
    with _lock:
        _merged[ident] = (hist, merged)
        while len(_merged) > 16:
            _merged.pop(next(iter(_merged)))
    return merged
