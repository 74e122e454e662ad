"""Is a cached decode of a run log still the same file's? Content identity, not only size and mtime.

A cache built from the first `upto` bytes of a log (the index JSON, the history parquet) stores
`prefix_fingerprint(data, upto)`: a hash of the log's header block (its first 32 KiB, or fewer)
and of the 4 KiB ending at `upto`. Before the cache is reused (as a whole when the file is
unchanged, or as the prefix of a file that grew) the same bytes of the current file must hash
the same. A log replaced by another one (larger, smaller, same size, a restart in between) is
then decoded afresh, never spliced onto the old file's rows. Costs two small reads.
"""

from __future__ import annotations

import hashlib

HEAD_BYTES = 32768  # the first block: the file header and the run's first records
TAIL_BYTES = 4096   # just before the cached prefix's end: where a splice would join


def prefix_fingerprint(data, upto: int) -> str:
    """Hex digest of `data[:min(upto, 32 KiB)]` and `data[upto-4 KiB:upto]` (`data`: bytes, mmap,
    or anything with `read(n, offset)` such as `safe_open.SafeFile`); '' when data is shorter than upto."""
    upto = int(upto)
    if upto < 0 or _size(data) < upto:
        return ""
    h = hashlib.blake2b(digest_size=16)
    h.update(upto.to_bytes(8, "little"))
    h.update(_slice(data, 0, min(upto, HEAD_BYTES)))
    start = max(0, upto - TAIL_BYTES)
    h.update(_slice(data, start, upto - start))
    return h.hexdigest()


def same_prefix(data, upto: int, fingerprint: str | None) -> bool:
    """Does `data` still begin with the bytes a cache fingerprinted? False when nothing was stored."""
    return bool(fingerprint) and prefix_fingerprint(data, upto) == fingerprint


def _size(data) -> int:
    size = getattr(data, "size", None)
    if isinstance(size, int):  # SafeFile
        return size
    return len(data)


def _slice(data, offset: int, n: int) -> bytes:
    if hasattr(data, "read") and not hasattr(data, "__getitem__"):
        return data.read(n, offset)
    return bytes(data[offset : offset + n])
