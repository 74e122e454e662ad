"""The run index of a whole log without touching its history: the fast way to what `run_file.scan` finds.

Reading only the head and the tail of a log is not enough for an exact index: wandb writes the run
record and config at the head and (wandb 0.10-0.17) the whole summary at the tail, but a config
update, a define_metric, a renamed run or new tags may come at any point in between, and wandb-core
(0.19+) writes the summary only as deltas, one or two per history row, with no final summary record
(checked on the runs each version writes, tests/test_wandb_versions.py). So this pass visits every
chunk header and checks every CRC, as the scan does, but in one tight loop: a history record is
only counted (its tag byte peeked, its payload never copied), summary deltas are merged a batch at
a time, and only the few other records (run, config, metric, telemetry, exit, ...) are decoded.

Where the log is not clean, `walk` returns None with the reason and the caller runs the full scan,
which describes the damage: a bad CRC, a chunk crossing its block, a continuation without its first
chunk, a cut tail, or no summary record at all (killed runs of wandb < 0.19: the summary is derived
from the last history values, which needs every history record). On a clean log the result is
what `run_file.scan` gives (tests/test_index_walk.py compares them on every kind of log we have).
"""

from __future__ import annotations

import struct
import zlib

from .run_file import _HISTORY_TAG, _SUMMARY_TAG, RunScan, _apply_last_row, _apply_record, _damage, _record_tag
from .wandb_file import BLOCK, FIRST, FULL, HEADER, LAST, MIDDLE, check_header

WALK = "walk"  # RunScan.index_method of an index built here
_CHUNK = struct.Struct("<IHB").unpack_from
_TYPE_CRC = tuple(zlib.crc32(bytes([t])) for t in range(256))
_EXTRAS = (0x82, 0x9A, 0xC2)  # control / uuid / _info before the payload: the slow tag reader
_BATCH = 4 << 20


class _NotClean(Exception):
    pass


def walk(data, label: str = "") -> tuple[RunScan | None, str]:
    """(the index of the whole log, "") or (None, why the full scan must read it)."""
    check_header(data)
    try:
        return _walk(data, label), ""
    except _NotClean as exc:
        return None, str(exc)


def _report(pos: int, total_mb: float, label: str) -> int:
    from ... import progress

    progress.report(pos / 1e6, total_mb, f"{label or 'reading'}: {pos / 1e6:,.0f} of {total_mb:,.0f} MB")
    return pos + (8 << 20)


def _walk(data, label: str) -> RunScan:
    from ... import progress
    from wandb.proto import wandb_internal_pb2 as pb

    from .summary_merge import SummaryMerge

    parse = pb.Record.FromString
    state = RunScan(index_method=WALK)
    merge = SummaryMerge()
    size = len(data)
    pos = end_offset = HEADER.size
    unpack, crc32, type_crc = _CHUNK, zlib.crc32, _TYPE_CRC
    pending: list[bytes] = []
    pending_bytes = 0
    history_rows = 0
    last_history: bytes | None = None
    parts: list[bytes] | None = None
    total_mb = size / 1e6
    listening = progress.active() and total_mb > 8
    next_report = 8 << 20
    while pos < size:
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            if parts is None:
                end_offset = min(pos, size)
            continue
        if size - pos < 7:
            raise _NotClean("cut tail")
        crc, length, ctype = unpack(data, pos)
        if ctype == 0 and length == 0:
            pos += left
            if parts is None:
                end_offset = min(pos, size)
            continue
        body = pos + 7
        end = body + length
        if end > size or length > left - 7:
            raise _NotClean("damaged framing" if length > left - 7 else "cut tail")
        rec = data[body:end]  # a copy: cheaper than a memoryview slice at these sizes, and mmap-safe
        if crc32(rec, type_crc[ctype]) != crc:
            raise _NotClean("damaged framing")
        pos = end
        if ctype == FULL:
            if parts is not None:
                raise _NotClean("damaged framing")
            end_offset = pos
            first = rec[0] if length else -1
            if first == 0x08:  # the record number, a varint: the payload's tag follows it
                i = 1
                while i < length and rec[i] & 0x80:
                    i += 1
                i += 1
                tag = rec[i] if i < length else -1
            else:
                tag = first
            if tag in _EXTRAS:
                tag = _record_tag(rec)
            if tag == _HISTORY_TAG:
                history_rows += 1
                last_history = rec
                if listening and pos > next_report:
                    next_report = _report(pos, total_mb, label)
                continue
        elif ctype == FIRST:
            if parts is not None:
                raise _NotClean("damaged framing")
            parts = [rec]
            continue
        elif ctype == MIDDLE and parts is not None:
            parts.append(rec)
            continue
        elif ctype == LAST and parts is not None:
            parts.append(rec)
            rec = b"".join(parts)
            parts = None
            end_offset = pos
            tag = _record_tag(rec)
            if tag == _HISTORY_TAG:
                history_rows += 1
                last_history = rec
                continue
        else:
            raise _NotClean("damaged framing")
        if tag == _SUMMARY_TAG:
            pending.append(rec)
            pending_bytes += len(rec)
            if pending_bytes >= _BATCH:
                merge.extend(pending)
                pending, pending_bytes = [], 0
            if listening and pos > next_report:
                next_report = _report(pos, total_mb, label)
            continue
        try:
            _apply_record(state, parse(rec))
        except Exception as exc:  # as in run_file.scan: a record that passed its CRC but is not a Record
            _damage(state, f"undecodable record ({type(exc).__name__})")
    if parts is not None:
        raise _NotClean("cut tail")
    merge.extend(pending)
    if history_rows and not merge.n_records:
        raise _NotClean("no summary record: derived from the history")
    state.history_rows = history_rows
    state.summary_records = merge.n_records
    merge.apply(state.summary)
    if last_history is not None:
        try:
            _apply_last_row(state, parse(last_history).history)
        except Exception as exc:
            _damage(state, f"undecodable history record ({type(exc).__name__})")
    state.end_offset = end_offset
    return state
