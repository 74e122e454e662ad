"""Disk cache of cloud runs' history: parquet per run, per user, only for runs that are over.

Layout: `<cache_dir>/cloud/<user>/<entity>/<project>/<run_id>.parquet`, where `<user>` is a hash
of (base URL, API key): one user's cached data is never found under another user's key, and the
key itself is never written anywhere. A file holds the keys fetched so far (columns) and the run's
fingerprint when they were fetched (last step, history line count, heartbeat, state); it is used
only while the fingerprint is unchanged and the run is not running. Writes go to a temporary file
renamed into place (atomic on POSIX), under an flock, so two processes sharing the folder never
see a half-written file; the folder is kept under a size bound by dropping the least recently
used files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

from ..history import History, from_arrow, read_cached, write_cached

log = logging.getLogger("wandb_lens.cloud")
VERSION = 1
DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB


def user_namespace(base_url: str, api_key: str) -> str:
    return hashlib.sha256(f"{base_url.rstrip('/')}\n{api_key}".encode()).hexdigest()[:24]


def _safe(part: str) -> str:
    """A path component from an entity / project / run name (never `..` or a separator)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in part)
    if cleaned in ("", ".", ".."):
        cleaned = "_" + hashlib.sha1(part.encode()).hexdigest()[:8]
    return cleaned[:120]


class HistoryCache:
    def __init__(self, root: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root = Path(root) / "cloud"
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def path(self, ns: str, entity: str, project: str, run_id: str) -> Path:
        return self.root / ns / _safe(entity) / _safe(project) / f"{_safe(run_id)}.parquet"

    def load(self, ns: str, entity: str, project: str, run_id: str, fingerprint: dict) -> tuple[History, list[str]] | None:
        """(history, keys fetched) when a cached file matches the run's fingerprint."""
        path = self.path(ns, entity, project, run_id)
        hit = read_cached(path, b"wandb_lens_cloud")
        if hit is None:
            return None
        table, meta = hit
        if meta.get("v") != VERSION or meta.get("fingerprint") != fingerprint:
            return None
        try:
            os.utime(path)  # recently used: kept longest by the size bound
        except OSError:
            pass
        return from_arrow(table), list(meta.get("keys") or [])

    def save(self, ns: str, entity: str, project: str, run_id: str, fingerprint: dict, hist: History,
             keys: list[str]) -> None:
        path = self.path(ns, entity, project, run_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            meta = {"v": VERSION, "fingerprint": fingerprint, "keys": sorted(set(keys))}
            with _flock(path.with_suffix(".lock")):
                write_cached(hist, path, b"wandb_lens_cloud", meta)
        except OSError as exc:  # a read-only or full cache must not stop the answer
            log.warning("could not write cloud history cache: %s", exc)
            return
        self._trim()

    def _trim(self) -> None:
        with self._lock:
            files = []
            total = 0
            for p in self.root.rglob("*.parquet"):
                try:
                    st = p.stat()
                except OSError:
                    continue
                files.append((st.st_mtime, st.st_size, p))
                total += st.st_size
            if total <= self.max_bytes:
                return
            for _, size, p in sorted(files):
                try:
                    p.unlink()
                    total -= size
                except OSError:
                    pass
                if total <= self.max_bytes * 0.8:
                    break


class _flock:
    def __init__(self, path: Path):
        self.path = path
        self.fh = None

    def __enter__(self):
        try:
            import fcntl

            self.fh = open(self.path, "a+")
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX)
        except (ImportError, OSError):
            self.fh = None
        return self

    def __exit__(self, *exc):
        if self.fh is not None:
            try:
                import fcntl

                fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
            finally:
                self.fh.close()
        return False
