"""A cold decode of a big log on two cores: the file is split at a 32 KiB block boundary, the
second half is decoded by a worker process (`python -m` this module, its answer pickled on a
pipe) while this one decodes the first, and the two Histories are joined (rows of the second
after the first).

A record that spans the boundary belongs to the half it starts in (`Framing(start, stop)`: the
first half reads past `stop` to finish it, the second skips its tail). The worker re-opens the
file and checks it is the same file (device, inode) and still long enough; if it is not, or the
worker dies or cannot start, the second half is decoded here instead: the answer is always whole.
The worker is a new interpreter (never a fork of a threaded server, never a re-run of the
caller's main module); its stdout is a pipe to this process, never the stdio protocol stream; a
cancelled decode kills it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from ..history import History
from .wandb_file import BLOCK, HEADER, Framing

log = logging.getLogger("wandb_lens.local")

MIN_BYTES = 64 << 20  # smaller logs decode in about a second: not worth a second process


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


def _worker_main(argv: list[str]) -> int:
    """`python -m wandb_lens.sources.local.parallel_decode PATH DEV INO START`: the pickled
    (History, end_offset, truncated, damage) of [START, end) on stdout."""
    import mmap
    import pickle
    import sys

    from ..safe_open import open_regular

    path, dev, ino, start = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    with open_regular(path) as f:  # never blocks (a FIFO swapped in is refused), regular files only
        st = f.stat
        if (st.st_dev, st.st_ino) != (dev, ino) or st.st_size <= start:
            print("the log changed since the decode started", file=sys.stderr)
            return 3
        with mmap.mmap(f.fd, 0, access=mmap.ACCESS_READ) as data:
            r = decode_range(data, start, None)
    # plain values only: this module runs as __main__ here, so its classes would not unpickle there
    answer = (r.history, r.end_offset, r.truncated, r.damage)
    sys.stdout.buffer.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


def split_point(size: int) -> int | None:
    """The block boundary nearest the middle of a log of `size` bytes, or None for a small log."""
    if size < MIN_BYTES or workers() < 2:
        return None
    mid = (size // 2) // BLOCK * BLOCK
    return mid if HEADER.size < mid < size else None


def decode_split(data, path, st, mid: int, label: str, total_mb: float) -> RangeResult:
    """The whole log's history, its second half decoded by a worker process."""
    import pickle
    import subprocess
    import sys

    proc = None
    try:
        proc = subprocess.Popen([sys.executable, "-m", __name__, str(path), str(st.st_dev), str(st.st_ino), str(mid)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError as exc:  # no process could be started: all of it here
        log.warning("parallel decode unavailable (%s): decoding on one core", exc)
    second = None
    try:
        first = decode_range(data, HEADER.size, mid, label, total_mb)
        if proc is not None:
            out, _ = proc.communicate()
            if proc.returncode == 0:
                try:
                    second = RangeResult(*pickle.loads(out))
                except Exception as exc:
                    log.warning("decode worker answer unreadable (%s)", exc)
            else:  # the worker died or the file changed: decode the rest here
                log.warning("decode worker ended with %s: decoding the second half here", proc.returncode)
    finally:
        if proc is not None and proc.poll() is None:  # cancelled or failed here: the worker goes too
            proc.kill()
            proc.wait()
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


if __name__ == "__main__":
    import sys

    raise SystemExit(_worker_main(sys.argv[1:]))
