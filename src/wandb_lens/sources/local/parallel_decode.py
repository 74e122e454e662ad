"""A cold decode of a big log on two cores: the file is split at a 32 KiB block boundary, the
second half is decoded by a worker process while this one decodes the first, and the two
Histories are joined (rows of the second after the first).

A record that spans the boundary belongs to the half it starts in (`Framing(start, stop)`: the
first half reads past `stop` to finish it, the second skips its tail). The worker re-opens the
file and checks it is the same file (device, inode) and still long enough; if it is not, or the
worker dies or cannot start, the second half is decoded here instead: the answer is always whole.
The worker is a spawned process (never a fork of a threaded server) kept for later decodes; its
stdout is pointed at stderr so it can never write into the stdio protocol stream.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

from ..history import History
from .wandb_file import BLOCK, HEADER, Framing

log = logging.getLogger("wandb_lens.local")

MIN_BYTES = 64 << 20  # smaller logs decode in about a second: not worth a second process
_pool = None
_pool_lock = threading.Lock()


def workers() -> int:
    """Processes a decode may use (WANDB_LENS_DECODE_WORKERS, default: 2 when there are 2 cores)."""
    try:
        return max(1, int(os.environ["WANDB_LENS_DECODE_WORKERS"]))
    except (KeyError, ValueError):
        return min(2, os.cpu_count() or 1)


@dataclass
class RangeResult:
    history: History
    end_offset: int = 0
    truncated: bool = False
    damage: list[str] = field(default_factory=list)


def decode_range(data, start: int, stop: int | None, label: str = "", total: float = 0.0) -> RangeResult:
    """History records whose first chunk lies in [start, stop), decoded."""
    from ... import progress
    from .history_decode import HistoryBuilder
    from .run_file import _HISTORY_TAG, _record_tag

    framing = Framing(data, start=start, stop=stop)
    builder = HistoryBuilder()
    listening = bool(label) and progress.active()
    count = 0
    for rec in framing.records():
        if _record_tag(rec) == _HISTORY_TAG:
            builder.add(rec)
        count += 1
        if listening and not count & 0xFFF:
            # both halves move at about the same speed: this half's share, doubled, is the estimate
            done = min(total, 2 * (framing.end_offset - start) / 1e6)
            progress.report(done, total, f"{label}: {done:,.0f} of {total:,.0f} MB")
    return RangeResult(builder.finish(), framing.end_offset, framing.truncated, list(framing.damage))


def _worker(path: str, dev: int, ino: int, start: int) -> RangeResult:
    import mmap

    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        if (st.st_dev, st.st_ino) != (dev, ino) or st.st_size <= start:
            raise OSError("the log changed since the decode started")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return decode_range(data, start, None)


def _warm() -> None:
    os.dup2(2, 1)  # never write into a stdio server's protocol stream
    import numpy  # noqa: F401
    import pyarrow.compute  # noqa: F401
    from wandb.proto import wandb_internal_pb2  # noqa: F401


def _get_pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_warm)
        return _pool


def _drop_pool(pool) -> None:
    global _pool
    with _pool_lock:
        if _pool is pool:
            _pool = None
    try:
        pool.shutdown(wait=False, cancel_futures=True)
    except Exception:
        pass


def split_point(size: int) -> int | None:
    """The block boundary nearest the middle of a log of `size` bytes, or None for a small log."""
    if size < MIN_BYTES or workers() < 2:
        return None
    mid = (size // 2) // BLOCK * BLOCK
    return mid if HEADER.size < mid < size else None


def decode_split(data, path, st, mid: int, label: str, total_mb: float) -> RangeResult:
    """The whole log's history, its second half decoded by the worker process."""
    pool = fut = None
    try:
        pool = _get_pool()
        fut = pool.submit(_worker, str(path), st.st_dev, st.st_ino, mid)
    except Exception as exc:  # no process could be started: all of it here
        log.warning("parallel decode unavailable (%s): decoding on one core", exc)
    first = decode_range(data, HEADER.size, mid, label, total_mb)
    second = None
    if fut is not None:
        try:
            second = fut.result()
        except Exception as exc:  # the worker died or the file changed: decode the rest here
            log.warning("decode worker failed (%s): decoding the second half here", exc)
            _drop_pool(pool)
    if second is None:
        second = decode_range(data, mid, None)
    hist = first.history.append(second.history)
    hist.damage = _merge_dropped(hist.damage)
    return RangeResult(hist, second.end_offset, second.truncated, first.damage + second.damage)


def _merge_dropped(damage: list[str]) -> list[str]:
    """One 'N history record(s) ... left out' line for both halves."""
    tail = " history record(s) passed their CRC but could not be decoded: left out"
    counts = [int(d.split(" ", 1)[0]) for d in damage if d.endswith(tail)]
    rest = [d for d in damage if not d.endswith(tail)]
    return rest + ([f"{sum(counts)}{tail}"] if counts else [])
