"""A cold decode of a big log on two cores: the file is split at a 32 KiB block boundary, the
second half is decoded by a worker process (`python -m` this module) while this one decodes the
first. Streamed (`history_stream`), both halves spill their rows in chunks and the worker answers
with the chunks' names; otherwise its History comes pickled on the pipe and the two are joined
(rows of the second after the first).

A record that spans the boundary belongs to the half it starts in (`Framing(start, stop)`: the
first half reads past `stop` to finish it, the second skips its tail). The worker re-opens the
file, checks it is the same file (device, inode), and reads it to the size this process saw (a
log that grows meanwhile is read to the same end; both read with pread, never mapped, so one cut
meanwhile ends the decode where its bytes end and says so). If the worker dies or cannot start,
the second half is decoded here instead. The worker is a new interpreter (never a fork of a
threaded server, never a re-run of the caller's main module); its stdout is a pipe to this
process, never the stdio protocol stream; a cancelled decode kills it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ..history import History
from ..history_writer import merged_damage
from .wandb_file import BLOCK, HEADER, Framing, WindowedFraming

log = logging.getLogger("wandb_lens.local")

_STATS_FIELD = 7  # Record.stats: system metrics (records.FIELDS)
MIN_BYTES = 64 << 20  # smaller logs decode in about a second: not worth a second process
CHUNK_BYTES = 128 << 20  # history records per spilled chunk (~30k rows of 50 metrics, ~15 MB of columns)


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
    parts: list = field(default_factory=list)  # history_writer.Part, when decoded into a Spill
    stats: list = field(default_factory=list)  # undecoded `stats` records (system metrics), for system.seed
    cut: bool = False  # the file ended before the size the decode began with


@dataclass
class LogFile:
    """A log read with pread up to `size` bytes (`WindowedFraming`), never mapped."""

    read: Callable[[int, int], bytes]  # (n, offset) -> bytes
    size: int

    @classmethod
    def of(cls, fd: int, size: int) -> LogFile:
        """Windows read straight from `fd` (one pread each: one copy out of the page cache)."""

        def read(n: int, offset: int) -> bytes:
            data = os.pread(fd, n, offset)
            if len(data) == n or not data:
                return data
            parts = [data]  # a short read before the end: read on
            while n > sum(map(len, parts)):
                more = os.pread(fd, n - sum(map(len, parts)), offset + sum(map(len, parts)))
                if not more:
                    break
                parts.append(more)
            return b"".join(parts)

        return cls(read, size)


def decode_range(data, start: int, stop: int | None, label: str = "", total: float = 0.0,
                 spill=None, share: float = 2.0, prefix=None) -> RangeResult:
    """History records whose first chunk lies in [start, stop), decoded from `data` (bytes, a
    mapping, or a `LogFile`). With `spill` (a `history_writer.Spill`) the rows go there a chunk
    at a time (CHUNK_BYTES of records) and the result's `parts` name them, so memory stays flat
    whatever the log's size. A log cut while it is read answers the rows before the cut and says
    so in the History's damage. `prefix` (a `history_stream.Prefix`) is kept told where the rows
    decoded so far are, for an answer before the decode ends."""
    from ... import progress
    from .history_decode import HistoryBuilder
    from .records import payload_field
    from .run_file import _HISTORY_TAG, _SUMMARY_TAG, _record_tag

    if isinstance(data, LogFile):
        framing = WindowedFraming(data.read, data.size, start=start, stop=stop)
    else:
        framing = Framing(data, start=start, stop=stop)
    builder = HistoryBuilder()
    if prefix is not None:
        prefix.follow(builder, spill)
    listening = bool(label) and progress.active()
    count = 0
    chunk = 0
    stats: list[bytes] = []
    for rec in framing.records():
        tag = _record_tag(rec)
        if tag == _HISTORY_TAG:
            builder.add(rec)
            chunk += len(rec)
            if spill is not None and chunk >= CHUNK_BYTES:
                if prefix is None:
                    spill.add(builder.finish())
                    builder, chunk = HistoryBuilder(), 0
                else:
                    with prefix.lock:  # the chunk moves from the builder to the spill as one step
                        spill.add(builder.finish())
                        builder, chunk = HistoryBuilder(), 0
                        prefix.follow(builder, spill)
        elif tag != _SUMMARY_TAG and payload_field(rec) == _STATS_FIELD:  # system metrics: few records
            stats.append(rec)
        count += 1
        if listening and not count & 0xFFF:
            # both halves move at about the same speed: this half's share, doubled, is the estimate
            done = min(total, share * (framing.end_offset - start) / 1e6)
            progress.report(done, total, f"{label}: {done:,.0f} of {total:,.0f} MB")
    hist = builder.finish()
    damage = list(framing.damage)
    cut = getattr(framing, "shrank", False)
    if cut:
        note = (f"the log was cut while it was read (at byte {framing.end_offset:,} of {data.size:,}): "
                "rows after that point are not in this answer")
        hist.damage.append(note)
        damage.append(note)
    if spill is None:
        return RangeResult(hist, framing.end_offset, framing.truncated, damage, stats=stats, cut=cut)
    spill.add(hist)
    return RangeResult(History(), framing.end_offset, framing.truncated, damage, list(spill.parts), stats, cut)


def _protos_without_wandb_init() -> None:
    """Let `wandb.proto.*_pb2` import without running wandb's package `__init__` (settings,
    pydantic, the SDK: about 1 s of CPU, the largest part of this worker's start-up). Only in the
    worker: a fresh interpreter that parses records and nothing else; wandb's own `proto/__init__`
    is empty, and the pb2 modules import only each other and google.protobuf."""
    import importlib.util
    import sys
    import types

    if "wandb" in sys.modules:
        return
    spec = importlib.util.find_spec("wandb")
    if spec is None or not spec.submodule_search_locations:
        return
    pkg = types.ModuleType("wandb")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["wandb"] = pkg


def _worker_main(argv: list[str]) -> int:
    """`python -m wandb_lens.sources.local.parallel_decode PATH DEV INO START SIZE [SPILL_DIR]`: the
    pickled (History, end_offset, truncated, damage, parts) of [START, SIZE) on stdout; with
    SPILL_DIR the rows are spilled there in chunks (`parts`) and the History is empty."""
    import pickle
    import sys

    from ..safe_open import open_regular

    _protos_without_wandb_init()
    path, dev, ino, start, size = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), int(argv[4])
    spill = None
    if len(argv) > 5:
        from ..history_writer import Spill

        spill = Spill(argv[5], "b")
    with open_regular(path) as f:  # never blocks (a FIFO swapped in is refused), regular files only
        st = f.stat
        if (st.st_dev, st.st_ino) != (dev, ino) or st.st_size <= start:
            print("the log changed since the decode started", file=sys.stderr)
            return 3
        # the bytes the decode began with: a log that grows meanwhile is read to the same end as the
        # first half's process saw; one cut meanwhile ends where its bytes end (`LogFile`)
        r = decode_range(LogFile.of(f.fd, size), start, None, spill=spill)
    # plain values only: this module runs as __main__ here, so its classes would not unpickle there
    answer = (r.history, r.end_offset, r.truncated, r.damage, [p.to_tuple() for p in r.parts], r.stats, r.cut)
    sys.stdout.buffer.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


def split_point(size: int) -> int | None:
    """The block boundary nearest the middle of a log of `size` bytes, or None for a small log."""
    if size < MIN_BYTES or workers() < 2:
        return None
    mid = (size // 2) // BLOCK * BLOCK
    return mid if HEADER.size < mid < size else None


def decode_split(data, path, st, mid: int, label: str, total_mb: float, spill_dir=None, prefix=None) -> RangeResult:
    """The whole log's history, its second half decoded by a worker process. With `spill_dir`
    both halves spill their rows there in chunks (`RangeResult.parts`, in row order). `prefix`
    follows the first half (the rows from the start of the log)."""
    import pickle
    import subprocess
    import sys

    from ..history_writer import Part, Spill

    proc = None
    extra = [str(spill_dir)] if spill_dir is not None else []
    try:
        proc = subprocess.Popen([sys.executable, "-m", __name__, str(path), str(st.st_dev), str(st.st_ino), str(mid),
                                 str(st.st_size), *extra],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError as exc:  # no process could be started: all of it here
        log.warning("parallel decode unavailable (%s): decoding on one core", exc)
    second = None
    try:
        first = decode_range(data, HEADER.size, mid, label, total_mb,
                             Spill(spill_dir, "a") if spill_dir is not None else None, prefix=prefix)
        if proc is not None:
            out, _ = proc.communicate()
            if proc.returncode == 0:
                try:
                    hist, end, truncated, damage, parts, stats, cut = pickle.loads(out)
                    second = RangeResult(hist, end, truncated, damage, [Part(*p) for p in parts], stats, cut)
                except Exception as exc:
                    log.warning("decode worker answer unreadable (%s)", exc)
            else:  # the worker died or the file changed: decode the rest here
                log.warning("decode worker ended with %s: decoding the second half here", proc.returncode)
    finally:
        if proc is not None and proc.poll() is None:  # cancelled or failed here: the worker goes too
            proc.kill()
            proc.wait()
    if second is None:
        second = decode_range(data, mid, None, spill=Spill(spill_dir, "c") if spill_dir is not None else None)
    hist = first.history.append(second.history)
    hist.damage = merged_damage(hist.damage)
    return RangeResult(hist, second.end_offset, second.truncated, first.damage + second.damage,
                       first.parts + second.parts, first.stats + second.stats, first.cut or second.cut)


if __name__ == "__main__":
    import sys

    raise SystemExit(_worker_main(sys.argv[1:]))
