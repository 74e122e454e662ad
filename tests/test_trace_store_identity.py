"""The local trace store's file identity (issue 15): a store replaced under a running server is
opened again (it answered from the deleted file until a restart); a WAL store on a read-only mount
is read (`immutable`); a FIFO in its place is refused at once, not opened."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import call


def _server(db: Path):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    return build_server(AppConfig(traces_db=str(db)))


def _copy(src: str, dst: Path, drop_op: str | None = None, wal: bool = False) -> Path:
    """A consistent copy of a store (SQLite's backup API), optionally without one op's calls; in
    rollback-journal mode unless `wal` (closed cleanly either way: no -wal / -shm left beside it)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst, isolation_level=None)
    try:
        a.backup(b)
        b.execute(f"PRAGMA journal_mode={'WAL' if wal else 'DELETE'}")
        if drop_op:
            b.execute("DELETE FROM calls WHERE op_short = ?", (drop_op,))
    finally:
        a.close()
        b.close()
    return dst


def _calls(server) -> int:
    out = call(server, "trace_stats", {})
    assert not out.is_error, out.text
    return out.json["calls"]


def test_a_replaced_trace_store_is_opened_again(weave_db, tmp_path):
    db = _copy(weave_db["path"], tmp_path / "traces.db")
    server = _server(db)
    assert _calls(server) == 85
    other = _copy(weave_db["path"], tmp_path / "new.db", drop_op="exact_match")
    os.replace(other, db)  # a new file under the same name, as `wandb-lens demo` writes one
    assert _calls(server) == 65
    # rewritten in place (same inode, new size and mtime), by a plain copy
    db.write_bytes(_copy(weave_db["path"], tmp_path / "again.db").read_bytes())
    assert _calls(server) == 85


def test_a_wal_store_on_a_read_only_mount_is_read(weave_db, tmp_path):
    """Read through a bind mount made read-only inside a private mount namespace (`unshare -m`): the
    mount exists only for that child process, so nothing is left mounted even if the test is killed."""
    src, ro = tmp_path / "rw", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    _copy(weave_db["path"], src / "traces.db", wal=True)  # WAL, closed cleanly: no -wal / -shm beside it
    assert not (src / "traces.db-shm").exists()
    probe = ("import sys; from wandb_lens.sources.weave.source import LocalTraceSource; "
             "print(LocalTraceSource(sys.argv[1]).count('local/lens-demo-evals'))")
    script = (f'mount --bind -o ro "{src}" "{ro}" && mount -o remount,ro,bind "{ro}" && '
              f'! touch "{ro}/probe" 2>/dev/null && exec "{sys.executable}" -c "{probe}" "{ro}/traces.db"')
    out = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0 and ("Operation not permitted" in out.stderr or "unshare" in out.stderr
                                or "mount" in out.stderr):
        pytest.skip(f"cannot make a read-only mount here: {out.stderr.strip()[:120]}")
    assert out.returncode == 0 and out.stdout.strip() == "85", (out.returncode, out.stdout, out.stderr[-500:])


def test_a_fifo_in_place_of_the_trace_store_is_refused_at_once(tmp_path):
    fifo = tmp_path / "traces.db"
    os.mkfifo(fifo)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", call(_server(fifo), "trace_stats", {})), daemon=True)
    t.start()
    t.join(20)
    try:
        assert not t.is_alive(), "trace_stats blocked on a FIFO"
        assert box["r"].is_error and "a named pipe, not a regular file" in box["r"].text
    finally:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
