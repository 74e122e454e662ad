"""Hostile run folders (issue 15): FIFOs, devices, directories and escaping symlinks named like run logs.

Every reader opens user files through `sources.safe_open.open_regular`: a regular file only, opened
without blocking, its whole resolved path inside a configured root. The MCP tests put a real demo run
beside each hostile entry; the good run must keep answering, the hostile one must never be read.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

from conftest import call
from test_reader_damage import _copy_run, _server
from wandb_lens.sources.safe_open import UnsafeFile, check_regular, open_regular, read_head


def _bounded(fn, timeout: float = 20.0):
    """Run fn in a thread; fail (not hang) when it has not returned within `timeout` s."""
    box: dict = {}

    def go():
        try:
            box["value"] = fn()
        except BaseException as exc:  # reported below
            box["error"] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{fn} still blocked after {timeout} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def _unblock_fifo(path: Path) -> None:
    """Release any reader stuck on the FIFO's open (a failed test must not hang the session)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


# ----- the primitive ----------------------------------------------------------------------------

def test_open_regular_refuses_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "run-x.wandb"
    os.mkfifo(fifo)
    try:
        with pytest.raises(UnsafeFile) as err:
            _bounded(lambda: open_regular(fifo, [tmp_path]), timeout=5)
        assert err.value.reason == "a named pipe, not a regular file"
        assert isinstance(err.value, OSError)
    finally:
        _unblock_fifo(fifo)


def test_open_regular_refuses_directory_socket_and_device(tmp_path):
    (tmp_path / "dir.wandb").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s.wandb"))
    (tmp_path / "null.wandb").symlink_to("/dev/null")  # a device, and outside the root
    try:
        for name, reason in (("dir.wandb", "a directory, not a regular file"),
                             ("s.wandb", "a socket, not a regular file")):
            with pytest.raises(UnsafeFile) as err:
                open_regular(tmp_path / name, [tmp_path])
            assert err.value.reason == reason
        with pytest.raises(UnsafeFile, match="outside the configured folders"):
            open_regular(tmp_path / "null.wandb", [tmp_path])
        with pytest.raises(UnsafeFile, match="a character device"):
            open_regular(tmp_path / "null.wandb", None)  # no roots: still only regular files
    finally:
        sock.close()


def test_open_regular_refuses_every_escaping_component(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (outside / "run-a").mkdir(parents=True)
    (outside / "run-a" / "run-a.wandb").write_bytes(b"secret")
    (root / "deep").mkdir(parents=True)
    (root / "deep" / "run-a").symlink_to(outside / "run-a")  # a middle component escapes
    (root / "inner").mkdir()
    (root / "inner" / "log").write_bytes(b"inside")
    (root / "alias").symlink_to(root / "inner")  # a symlink that stays inside is fine
    with pytest.raises(UnsafeFile) as err:
        open_regular(root / "deep" / "run-a" / "run-a.wandb", [root])
    assert str(outside) not in err.value.reason
    assert read_head(root / "alias" / "log", 100, [root]) == b"inside"
    with open_regular(root / "inner" / "log", [root]) as f:
        assert f.read() == b"inside" and f.size == 6 and f.identity[2] == 6
        assert f.map()[:] == b"inside"
    with pytest.raises(UnsafeFile, match="no longer exists"):
        check_regular(root / "gone", [root])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_open_regular_says_permission_denied(tmp_path):
    p = tmp_path / "run-x.wandb"
    p.write_bytes(b"x")
    p.chmod(0)
    with pytest.raises(UnsafeFile) as err:
        open_regular(p, [tmp_path])
    assert err.value.reason == "permission denied"


# ----- through MCP ------------------------------------------------------------------------------

@pytest.fixture
def folder_with_good_run(tmp_path, demo_dir, demo_ids):
    runs = tmp_path / "wandb"
    runs.mkdir()
    good = _copy_run(demo_dir, demo_ids, "baseline-cosine", runs)
    return runs, good, tmp_path / "cache"


def test_fifo_named_like_a_run_log_hangs_nothing(folder_with_good_run, demo_ids):
    runs, good, cache = folder_with_good_run
    folder = runs / "offline-run-20240101_000000-fifo0001"
    folder.mkdir()
    fifo = folder / "run-fifo0001.wandb"
    os.mkfifo(fifo)
    try:
        server = _server(runs, cache)
        listed = _bounded(lambda: call(server, "query_runs", {}))
        assert not listed.is_error, listed.text
        by_id = {r["id"]: r for r in listed.json["runs"]}
        assert demo_ids["baseline-cosine"] in by_id
        assert "fifo0001" in by_id  # listed, flagged, never read
        desc = _bounded(lambda: call(server, "describe_run", {"run": "fifo0001"}))
        assert "named pipe" in desc.text
        good_desc = _bounded(lambda: call(server, "describe_run", {"run": demo_ids["baseline-cosine"]}))
        assert not good_desc.is_error and good_desc.json["history"]["rows"] == 840
        diag = _bounded(lambda: call(server, "diagnose_run", {"run": demo_ids["baseline-cosine"]}))
        assert not diag.is_error, diag.text
    finally:
        _unblock_fifo(fifo)


def test_symlinked_run_folder_outside_the_root_is_never_read(tmp_path, demo_dir, demo_ids):
    """A run folder deep in the root, and a symlink at the top with the same folder name leading to
    another run's folder outside the root: the deep run's history is its own, the outside one unread."""
    runs, outside = tmp_path / "wandb", tmp_path / "outside"
    runs.mkdir()
    outside.mkdir()
    own = _copy_run(demo_dir, demo_ids, "still-improving", runs / "project-a")
    other = _copy_run(demo_dir, demo_ids, "baseline-cosine", outside)
    # the outside folder holds the other run's log under the deep run's folder and file names
    fake = outside / own.parent.name
    fake.mkdir()
    shutil.copy(other, fake / own.name)
    (runs / own.parent.name).symlink_to(fake)
    (runs / "escape").symlink_to(other.parent)  # a symlinked run folder: never listed
    server = _server(runs, tmp_path / "cache")
    listed = call(server, "query_runs", {}).json
    ids = [r["id"] for r in listed["runs"]]
    assert ids == [demo_ids["still-improving"]]
    desc = call(server, "describe_run", {"run": demo_ids["still-improving"]}).json
    assert desc["config"]["steps"] == 300
    # the history read is the run's own (300 steps), not the 800 of the file behind the symlink
    assert desc["history"]["keys"]["train/loss"]["n"] == 300, desc["history"]
    plot = call(server, "curve_features", {"run": demo_ids["still-improving"], "metrics": ["train/loss"]})
    assert not plot.is_error, plot.text
    assert demo_ids["baseline-cosine"] not in plot.text


def test_run_log_swapped_for_a_symlink_outside_is_refused(folder_with_good_run, tmp_path, demo_ids):
    """Listed once, then its log is replaced by a symlink leading outside: its history is refused
    (not read from the outside file) and the next listing drops it."""
    from wandb_lens.errors import LensError
    from wandb_lens.sources.local.source import LocalRunSource

    runs, good, cache = folder_with_good_run
    src = LocalRunSource([runs], cache_dir=cache)
    run = src.get_run(demo_ids["baseline-cosine"])
    secret = tmp_path / "secret.wandb"
    shutil.copy(good, secret)
    good.unlink()
    os.symlink(secret, good)
    with pytest.raises(LensError, match="outside the configured folders") as err:
        src.history(run)
    assert str(secret) not in str(err.value)
    src._listing = None
    assert src.list_runs() == []  # discovery never follows a symlinked log
