"""Opening a user's file safely: a regular file, inside a configured root, without ever blocking.

Every reader of user data (run logs, debug logs, trace stores) opens through `open_regular`:

- the path is resolved (every component, symlinks followed) and must lie inside one of `roots`;
- the file is `stat`ed before it is opened and `fstat`ed after, and must be a regular file both
  times (a FIFO, socket, device or directory named like a run log is refused, never read);
- it is opened `O_NONBLOCK | O_NOCTTY | O_CLOEXEC` (a FIFO swapped in between the two checks
  cannot hang the open) and, on Linux, the kernel's own name for the opened descriptor
  (`/proc/self/fd/N`) is checked against the roots again, so a symlink swapped in between the
  check and the open cannot lead outside.

Refusals raise `UnsafeFile` (an `OSError`, so `except OSError` handlers keep working) whose
`reason` is a short phrase fit for a user ("a named pipe, not a regular file", "outside the
runs directory"); it never names where an escaping symlink points.

    with open_regular(path, roots) as f:      # f.stat is the fstat of what was opened
        data = f.map()                        # mmap (b"" for an empty file), or f.read(n)
"""

from __future__ import annotations

import mmap
import os
import stat as stat_mod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_KINDS = (
    (stat_mod.S_ISDIR, "a directory"),
    (stat_mod.S_ISFIFO, "a named pipe"),
    (stat_mod.S_ISSOCK, "a socket"),
    (stat_mod.S_ISCHR, "a character device"),
    (stat_mod.S_ISBLK, "a block device"),
)


class UnsafeFile(OSError):
    """A file that must not be read: not regular, outside the roots, or unreadable."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


def kind_of(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file" if not stat_mod.S_ISREG(mode) else "a regular file"


def _under(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def resolve_inside(path: str | os.PathLike, roots: Iterable[str | os.PathLike] | None) -> Path:
    """The fully resolved path, if it lies inside one of `roots` (themselves resolved); else UnsafeFile.

    `roots=None` skips the containment check (a file the user named explicitly, e.g. --trace-db).
    """
    real = os.path.realpath(path)
    if roots is not None:
        real_roots = [os.path.realpath(r) for r in roots]
        if not any(_under(real, r) for r in real_roots):
            raise UnsafeFile(path, "outside the configured folders (through a symlink)")
    return Path(real)


def file_identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """(device, inode, size, mtime_ns): changes when a file is replaced, grown or rewritten."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class SafeFile:
    """An open regular file: `fd`, its `stat` (fstat after opening) and its resolved `path`."""

    fd: int
    stat: os.stat_result
    path: Path

    @property
    def size(self) -> int:
        return self.stat.st_size

    @property
    def identity(self) -> tuple[int, int, int, int]:
        return file_identity(self.stat)

    def map(self):
        """The whole file as a read-only mmap (`b""` when empty); close it before the file."""
        if self.stat.st_size == 0:
            return b""
        return mmap.mmap(self.fd, 0, access=mmap.ACCESS_READ)

    def read(self, n: int = -1, offset: int = 0) -> bytes:
        """Up to `n` bytes from `offset` (all of the file from there when n < 0)."""
        if n < 0:
            n = max(0, self.stat.st_size - offset)
        chunks: list[bytes] = []
        while n > 0:
            chunk = os.pread(self.fd, min(n, 1 << 24), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SafeFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def check_regular(path: str | os.PathLike, roots: Iterable[str | os.PathLike] | None = None) -> os.stat_result:
    """The stat of a regular file inside `roots`, without opening it; else UnsafeFile."""
    real = resolve_inside(path, roots)
    try:
        st = os.stat(real)
    except OSError as exc:
        raise UnsafeFile(path, _why(exc)) from None
    if not stat_mod.S_ISREG(st.st_mode):
        raise UnsafeFile(path, f"{kind_of(st.st_mode)}, not a regular file")
    return st


def open_regular(path: str | os.PathLike, roots: Iterable[str | os.PathLike] | None = None) -> SafeFile:
    """Open a regular file inside `roots` for reading, never blocking; else UnsafeFile (see module)."""
    roots = None if roots is None else list(roots)
    check_regular(path, roots)
    real = resolve_inside(path, roots)
    try:
        fd = os.open(real, _FLAGS | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise UnsafeFile(path, _why(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            raise UnsafeFile(path, f"{kind_of(st.st_mode)}, not a regular file")
        if roots is not None:
            try:
                opened = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                opened = None  # no procfs: the resolved-path check above stands
            if opened is not None and opened.startswith("/") and not any(
                _under(opened, os.path.realpath(r)) for r in roots
            ):
                raise UnsafeFile(path, "outside the configured folders (through a symlink)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # regular files never block; plain reads from here on
        return SafeFile(fd, st, real)
    except BaseException:
        os.close(fd)
        raise


def read_head(path: str | os.PathLike, n: int, roots: Iterable[str | os.PathLike] | None = None) -> bytes:
    """The first `n` bytes of a regular file inside `roots` (e.g. a debug log's head)."""
    with open_regular(path, roots) as f:
        return f.read(n)


def _why(exc: OSError) -> str:
    import errno

    return {
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOENT: "no longer exists",
        errno.ELOOP: "a symlink loop",
        errno.EISDIR: "a directory, not a regular file",
        errno.ENXIO: "a socket or device, not a regular file",
    }.get(exc.errno, exc.strerror or type(exc).__name__)
