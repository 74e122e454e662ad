"""System metrics from the run log's `stats` records, named as W&B names them: `system/` + the
sampler's key (`system/cpu`, `system/memory_percent`, `system/gpu.0.gpu`, `system/proc.memory.rssMB`;
wandb before the Go core wrote `system/memory` for host memory). The cloud source reads the same
names from W&B's system stream.

They join the run's History as columns placed on its rows by time (`history.place_events`), so
every tool reading history sees them; `series` keeps the raw timed samples for system_health.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from ..history import SYSTEM_PREFIX, History, place_events, with_columns
from . import records

_merged: dict = {}
_lock = threading.Lock()


def series(path: Path, roots, cache_dir: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{system/<key>: (unix times, values)}, numeric samples only, in time order. With `cache_dir`,
    kept on disk (.npz named by the log's identity), so a new process does not re-read the log."""
    from ..safe_open import check_regular, file_identity

    if cache_dir is None or path.suffix != ".wandb":  # old layout: wandb-events.jsonl, cheap to read
        return _series(path, roots)
    npz = _npz_path(path, file_identity(check_regular(path, roots)), cache_dir)
    try:
        with np.load(npz, allow_pickle=False) as z:
            keys = [str(k) for k in z["keys"]]
            return {k: (z[f"t{i}"], z[f"v{i}"]) for i, k in enumerate(keys)}
    except (OSError, KeyError, ValueError):
        pass
    out = _series(path, roots)
    _save(npz, out)
    return out


def _npz_path(path: Path, identity: tuple, cache_dir: Path) -> Path:
    import hashlib

    ident = f"{path}|{identity}"
    return Path(cache_dir) / "system" / (hashlib.sha1(ident.encode()).hexdigest()[:24] + ".npz")


def seed(path: Path, identity: tuple, cache_dir: Path, stats: list[bytes]) -> None:
    """Cache the series of the log whose identity (`safe_open.file_identity`) is `identity` from
    its `stats` records (undecoded), found by the history decode's own scan: `series` then reads
    the cache instead of a second pass over the log."""
    from wandb.proto import wandb_internal_pb2 as pb

    parsed = []
    for rec in stats:
        try:
            record = pb.Record.FromString(rec)
        except Exception:  # passed its CRC but is not a Record: skipped like records.read does
            continue
        if record.WhichOneof("record_type") == "stats":
            parsed.append(record.stats)
    _save(_npz_path(path, identity, cache_dir), _from_records(parsed))


def _save(npz: Path, out: dict) -> None:
    try:
        npz.parent.mkdir(parents=True, exist_ok=True)
        tmp = npz.with_suffix(f".{threading.get_ident()}.tmp.npz")
        arrays = {"keys": np.asarray(list(out), dtype=str)}
        for i, (t, v) in enumerate(out.values()):
            arrays[f"t{i}"], arrays[f"v{i}"] = t, v
        np.savez(tmp, **arrays)
        os.replace(tmp, npz)
    except OSError:  # a read-only cache must not stop the answer
        pass


def _series(path: Path, roots) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if path.suffix != ".wandb":
        from .legacy import events

        return _sorted(events(path.parent, roots))
    return _from_records(records.read(path, ("stats",), roots)["stats"])


def _from_records(stats: list) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    raw: dict[str, tuple[list, list]] = {}
    for rec in stats:
        t = rec.timestamp.seconds + rec.timestamp.nanos / 1e9
        for item in rec.item:
            try:
                v = float(json.loads(item.value_json))
            except (ValueError, TypeError, OverflowError):
                continue
            slot = raw.setdefault(SYSTEM_PREFIX + item.key, ([], []))
            slot[0].append(t)
            slot[1].append(v)
    return _sorted(raw)


def _sorted(raw: dict[str, tuple[list, list]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for k, (t, v) in raw.items():
        ta, va = np.asarray(t, dtype=np.float64), np.asarray(v, dtype=np.float64)
        order = np.argsort(ta, kind="stable")
        out[k] = (ta[order], va[order])
    return out


def with_system(hist: History, path: Path, roots, cache_dir: Path | None = None) -> History:
    """`hist` plus its run's system metrics as columns (memoised per History object and log size)."""
    from ..safe_open import check_regular, file_identity

    ident = (id(hist), str(path), file_identity(check_regular(path, roots)))
    with _lock:
        hit = _merged.get(ident)
    if hit is not None and hit[0] is hist:
        return hit[1]
    merged = with_columns(hist, place_events(hist, series(path, roots, cache_dir)))
    with _lock:
        _merged[ident] = (hist, merged)
        while len(_merged) > 16:
            _merged.pop(next(iter(_merged)))
    return merged
