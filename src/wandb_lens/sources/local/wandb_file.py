"""Framing of the `.wandb` transaction log: CRC-checked chunks in 32 KiB blocks.

The file starts with a 7-byte header (`:W&B`, magic 0xBEE1, version 0), then 32 KiB blocks
counted from the start of the file. Each chunk has a 7-byte header (crc32, length, type);
FULL records stand alone, FIRST + MIDDLE* + LAST are reassembled. A block tail shorter than a
chunk header is padding; a zero header skips to the next block.

The reader never raises on damaged data: it stops cleanly at a truncated tail, skips a block
with a bad CRC or an impossible length, and describes what happened in `damage`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

MAGIC = b":W&B"
FILE_MAGIC = 0xBEE1
HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in range(256)}


class NotAWandbFile(ValueError):
    """The file does not start with the `.wandb` header."""


def check_header(data: bytes) -> None:
    if len(data) < HEADER.size:
        raise NotAWandbFile(f"file is {len(data)} bytes, shorter than the 7-byte .wandb header")
    ident, magic, version = HEADER.unpack_from(data, 0)
    if ident != MAGIC or magic != FILE_MAGIC:
        raise NotAWandbFile("missing the ':W&B' header: not a .wandb run file")
    if version != 0:
        raise NotAWandbFile(f"unsupported .wandb format version {version}")


@dataclass
class Framing:
    """Iterates whole records from `data`, starting at byte `start` (a chunk boundary).

    For a split decode, `start` may be any block boundary: continuation chunks of a record begun
    in the previous range are skipped there (that range's reader finishes the record), and with
    `stop` set no record that begins at or after `stop` is read.
    """

    data: bytes
    start: int = HEADER.size
    stop: int | None = None
    end_offset: int = 0  # byte just after the last whole record: where to resume
    damage: list[str] = field(default_factory=list)
    truncated: bool = False
    base: int = 0  # `data` starts at this byte of the file (a block boundary): for damage positions
    resync: bool | None = None  # skip continuation chunks at `start` (default: at a block boundary)

    def records(self) -> Iterator[bytes]:
        data = self.data
        size = len(data)
        pos = self.start
        self.end_offset = pos
        unpack = CHUNK.unpack_from
        crc32 = zlib.crc32
        type_crc = _TYPE_CRC
        parts: list[bytes] | None = None
        stop = size if self.stop is None else min(self.stop, size)
        resync = self.resync
        if resync is None:  # may start inside a record: skip its tail
            resync = pos + self.base > HEADER.size and pos % BLOCK == 0
        while pos < size:
            if parts is None and pos >= stop:
                return
            left = BLOCK - pos % BLOCK
            if left < 7:
                pos += left
                if parts is None:
                    self.end_offset = min(pos, size)
                continue
            if size - pos < 7:
                self.truncated = True
                return
            crc, length, ctype = unpack(data, pos)
            if ctype == 0 and length == 0:
                pos += left
                if parts is None:
                    self.end_offset = min(pos, size)
                continue
            body = pos + 7
            if length > left - 7:
                self._corrupt(pos, f"chunk length {length} crosses its block")
                parts = None
                pos += left
                continue
            if body + length > size:
                self.truncated = True
                return
            chunk = data[body : body + length]
            if crc32(chunk, type_crc[ctype]) != crc:
                self._corrupt(pos, "bad CRC")
                parts = None
                pos += left
                continue
            pos = body + length
            if resync:
                if ctype in (MIDDLE, LAST):
                    self.end_offset = pos
                    continue
                resync = False
            if ctype == FULL:
                if parts is not None:
                    self._corrupt(pos, "record interrupted before its last chunk")
                    parts = None
                self.end_offset = pos
                yield chunk
            elif ctype == FIRST:
                if parts is not None:
                    self._corrupt(pos, "record interrupted before its last chunk")
                parts = [chunk]
            elif ctype == MIDDLE and parts is not None:
                parts.append(chunk)
            elif ctype == LAST and parts is not None:
                parts.append(chunk)
                self.end_offset = pos
                yield b"".join(parts)
                parts = None
            elif ctype in (MIDDLE, LAST):
                self._corrupt(pos, "continuation chunk without a first chunk")
            else:
                self._corrupt(pos, f"unknown chunk type {ctype}")
                parts = None
        if parts is not None:  # the file ends between a record's first and last chunks
            self.truncated = True

    def _corrupt(self, pos: int, why: str) -> None:
        if len(self.damage) < 20:
            self.damage.append(f"{why} at byte {pos + self.base}")


class WindowedFraming:
    """`Framing` over a file read in windows (`read(n, offset)`, a pread), up to `size` bytes: the
    log is never mapped, so a file cut while it is read ends the decode where the bytes end (a
    mapping would kill the process with SIGBUS) and only one window is resident at a time.
    Same attributes as Framing (`end_offset`, `truncated`, `damage` as file positions); `shrank`
    is set when the file ended before `size`."""

    WINDOW = 32 << 20

    def __init__(self, read, size: int, start: int = HEADER.size, stop: int | None = None):
        self.read, self.size, self.start, self.stop = read, size, start, stop
        self.truncated = False
        self.shrank = False
        self.damage: list[str] = []
        self._base = start
        self._fr: Framing | None = None
        self._end = start

    @property
    def end_offset(self) -> int:
        return self._base + self._fr.end_offset if self._fr is not None else self._end

    def records(self) -> Iterator[bytes]:
        pos, window, first = self.start, self.WINDOW, True
        while self.stop is None or pos < self.stop:
            base = pos // BLOCK * BLOCK
            end = min(self.size, base + window)
            if end <= pos:
                break
            buf = self.read(end - base, base)
            fr = Framing(buf, start=pos - base, stop=None if self.stop is None else self.stop - base,
                         base=base, resync=None if first else False)
            self._base, self._fr = base, fr
            yield from fr.records()
            self._end = base + fr.end_offset
            self._fr = None
            self.damage.extend(d for d in fr.damage if d not in self.damage and len(self.damage) < 20)
            if len(buf) < end - base:  # the file is shorter than when the decode began
                self.shrank = self.truncated = True
                return
            if end >= self.size:
                self.truncated = fr.truncated
                return
            if not fr.truncated and self.stop is not None and end >= self.stop:
                return  # every record that begins before `stop` was read
            if self._end == pos:  # one record larger than the window: a larger window
                window *= 2
            pos, first = self._end, False
