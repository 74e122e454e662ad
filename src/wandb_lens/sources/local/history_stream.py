"""A cold decode of a big log streamed to the parquet cache: the rows are spilled a chunk at a
time as the scan goes (both halves of a split decode, `parallel_decode`), then written as one
parquet file (`history_writer.write_parts`), so no process holds the whole history and peak
memory does not grow with the run. The answer is read back from the file just written.

The spill folder lives next to the cache file and is removed whatever happens; the cache file
appears whole (renamed into place) or not at all. A cache that cannot be written (read-only,
full disk) still gives the answer: from the spilled chunks, or, when not even those could be
written, from the in-memory decode the caller falls back to (None here).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from ..history import History
from ..history_writer import Spill, read_parts, write_parts
from . import parallel_decode
from .wandb_file import HEADER

log = logging.getLogger("wandb_lens.local")

MIN_BYTES = 64 << 20  # smaller logs decode in memory at once (a second or so): see source._load_history


class Prefix:
    """Where the rows decoded so far from the start of the log are (the first half's builder and
    spilled chunks), so a call whose budget runs out can answer from them (`snapshot`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.builder = None
        self.spill = None

    def follow(self, builder, spill) -> None:
        self.builder, self.spill = builder, spill

    def snapshot(self) -> History | None:
        """The rows so far (spilled chunks, then the chunk being built), or None when none can be read."""
        from ..history_writer import read_parts

        with self.lock:
            parts = list(self.spill.parts) if self.spill is not None else []
            try:
                done = read_parts(parts) if parts else None
            except Exception:  # the decode ended meanwhile and its spill folder is gone: wait on
                return None
            current = self.builder.snapshot() if self.builder is not None else None
        if done is None or current is None:
            return done or current
        return done.append(current)


def decode_to_cache(log_file, path: Path, st, pq_path: Path, meta_key: bytes, label: str, total_mb: float,
                    make_meta: Callable[[int, bool], dict], prefix: Prefix | None = None,
                    system_cache: Path | None = None):
    """(History, RangeResult) of the whole log, its cache written on the way; None when not even a
    spill folder could be made (the caller decodes in memory). `make_meta(end_offset, damaged)`
    gives the metadata stored with the cache. With `system_cache` the run's system metrics found
    by the same scan are cached there too (`system.seed`): no second pass over the log for them."""
    spill_dir = pq_path.parent / f".{pq_path.stem}.{os.getpid()}.{threading.get_ident()}.spill"
    try:
        try:
            first = Spill(spill_dir, "a")
        except OSError as exc:
            log.warning("could not write history cache %s: %s", pq_path, exc)
            return None
        mid = parallel_decode.split_point(st.st_size)
        if mid is not None:
            result = parallel_decode.decode_split(log_file, path, st, mid, label, total_mb, spill_dir, prefix)
        else:
            result = parallel_decode.decode_range(log_file, HEADER.size, None, label, total_mb, first, share=1.0,
                                                  prefix=prefix)
        meta = make_meta(result.end_offset, bool(result.damage))
        if system_cache is not None and not result.cut:  # the system metrics from this same scan
            from ..safe_open import file_identity
            from . import system

            system.seed(path, file_identity(st), system_cache, result.stats)
        try:
            write_parts(result.parts, pq_path, meta_key, meta)
        except OSError as exc:  # a full disk must not stop the answer
            log.warning("could not write history cache %s: %s", pq_path, exc)
            return _attach(read_parts(result.parts), meta), result
        return _attach(_read_back(pq_path, meta_key, result), meta), result
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)


def _read_back(pq_path: Path, meta_key: bytes, result) -> History:
    from ..history import open_cached

    hit = open_cached(pq_path, meta_key)  # lazy: the columns a tool asks for are read, one at a time
    return hit[0] if hit is not None else read_parts(result.parts)


def _attach(hist: History, meta: dict) -> History:
    hist._meta = meta
    return hist


def append_to_cache(pq_path: Path, meta_key: bytes, old_meta: dict, new: History, meta: dict) -> History | None:
    """The cache of a grown run rewritten as its cached rows (read a row group at a time) then
    `new`, never the whole history in memory; the History over the new file (lazy), or None when
    the cache file is not the one `old_meta` describes or cannot be written (the caller then
    joins in memory as before)."""
    from ..history import open_cached
    from ..history_writer import cached_part

    hit = cached_part(pq_path, meta_key)
    if hit is None or any(hit[1].get(k) != old_meta.get(k) for k in ("path", "size", "end_offset", "fp")):
        return None
    spill_dir = pq_path.parent / f".{pq_path.stem}.{os.getpid()}.{threading.get_ident()}.spill"
    try:
        spill = Spill(spill_dir, "n")
        spill.add(new)
        write_parts([hit[0], *spill.parts], pq_path, meta_key, meta)
    except OSError as exc:
        log.warning("could not write history cache %s: %s", pq_path, exc)
        return None
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
    lazy = open_cached(pq_path, meta_key)
    return _attach(lazy[0], meta) if lazy is not None else None
