"""The run log's records beyond history, summary and metadata: system metrics (`stats`), console
(`output_raw`, old `output`, `output_logger`) and artifacts (`artifact`, `use_artifact`).

One pass over the framed records picks them out by their payload's field number, read from the
first bytes (the other records are never parsed), so this is a separate, cheap read that leaves the history scan
alone. Results are kept in memory per file (path, size, mtime).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from .wandb_file import Framing, check_header

FIELDS = {"output": 4, "stats": 7, "artifact": 8, "output_raw": 13, "use_artifact": 25, "output_logger": 27}
_SKIP = {1, 16, 19, 200}  # num, control, uuid, _info: wandb-core may write them before the payload


def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if not c & 0x80:
            return v, i
        shift += 7


def payload_field(rec: bytes) -> int:
    """The field number of the record's payload (`record_type` oneof), skipping num / control /
    uuid / _info in whatever order they were written; -1 when unreadable."""
    i, n = 0, len(rec)
    try:
        while i < n:
            tag, i = _varint(rec, i)
            field, wire = tag >> 3, tag & 7
            if field not in _SKIP:
                return field
            if wire == 0:
                _, i = _varint(rec, i)
            elif wire == 2:
                length, i = _varint(rec, i)
                i += length
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            else:
                return -1
    except IndexError:
        return -1
    return -1
CONSOLE = ("output_raw", "output", "output_logger")

_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()


def read(path: Path, kinds: tuple[str, ...], roots) -> dict[str, list]:
    """{kind: [parsed record payload, ...]} for `kinds`, in log order (the file opened by safe_open)."""
    from ..safe_open import check_regular, file_identity

    if Path(path).suffix != ".wandb":  # an old-layout run (legacy.py): no transaction log
        return {k: [] for k in kinds}
    key = (str(path), file_identity(check_regular(path, roots)), kinds)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    out = _read(path, kinds, roots)
    with _lock:
        _cache[key] = out
        while len(_cache) > 64:
            _cache.popitem(last=False)
    return out


def _read(path: Path, kinds: tuple[str, ...], roots) -> dict[str, list]:
    from wandb.proto import wandb_internal_pb2 as pb  # heavy: imports wandb

    wanted = {FIELDS[k]: k for k in kinds}
    out: dict[str, list] = {k: [] for k in kinds}
    from ..safe_open import open_regular

    with open_regular(path, roots) as f:
        data = f.map()
    if not data:
        return out
    try:
        check_header(data)
        parse = pb.Record.FromString
        for rec in Framing(data, start=7).records():
            kind = wanted.get(payload_field(rec))
            if kind is None:
                continue
            try:
                record = parse(rec)
            except Exception:  # passed its CRC but is not a Record: skipped like the scan does
                continue
            if record.WhichOneof("record_type") == kind:
                out[kind].append(getattr(record, kind))
    finally:
        data.close()
    return out


def console_fragments(path: Path, roots) -> list[str]:
    """The console text the log recorded, in order (fragments; newlines are often their own record).
    `output_raw` (wandb-core) or else `output` (older writers), with `output_logger` lines
    (`run.write_logs`, captured loggers) after them (they carry no time)."""
    recs = read(path, CONSOLE, roots)
    main = recs["output_raw"] or recs["output"]
    extra = recs["output_logger"]
    if not extra:
        return [r.line for r in main]
    if not main or not all(_ts(r) for r in extra):  # OutputLoggerRecord (0.31) carries no time
        return [r.line for r in main] + [r.line for r in extra]
    merged = [(_ts(r), i, r.line) for i, r in enumerate(main)]
    merged += [(_ts(r), len(merged) + i, r.line) for i, r in enumerate(extra)]
    merged.sort()
    return [line for _, _, line in merged]


def _ts(record) -> float:
    if "timestamp" in record.DESCRIPTOR.fields_by_name and record.HasField("timestamp"):
        return record.timestamp.seconds + record.timestamp.nanos / 1e9
    return 0.0
