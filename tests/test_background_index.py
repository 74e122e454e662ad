"""A big log's first index runs off the request path: while it runs, listing answers at once with
the run named from its head in state "indexing" and the other runs whole; that run's own call
waits for its index; afterwards the run is listed whole."""

from __future__ import annotations

import shutil
import threading
import time

from wandb_lens.sources.local import source as local_source


def test_listing_does_not_wait_for_a_big_first_index(tmp_path, demo_dir, demo_ids, monkeypatch):
    runs = tmp_path / "wandb"
    logs = {}
    for name in ("baseline-cosine", "overfit-wide-model"):
        src = next((demo_dir / "wandb").glob(f"*-{demo_ids[name]}"))
        shutil.copytree(src, runs / src.name)
        logs[name] = next((runs / src.name).glob("run-*.wandb")).stat().st_size
    big_name, small_name = sorted(logs, key=logs.get, reverse=True)
    big_id = demo_ids[big_name]
    # the bigger log is over the threshold, the other under it
    monkeypatch.setattr(local_source, "BACKGROUND_INDEX_BYTES", (logs[big_name] + logs[small_name]) // 2)
    release = threading.Event()
    real_scan = local_source.LocalRunSource._scan

    def slow_scan(self, path, st):
        if big_id in path.name:
            release.wait(30)  # the big first index takes as long as the test says
        return real_scan(self, path, st)

    monkeypatch.setattr(local_source.LocalRunSource, "_scan", slow_scan)
    src = local_source.LocalRunSource([runs], cache_dir=tmp_path / "cache")
    t = time.perf_counter()
    listed = {r.id: r for r in src.list_runs()}
    assert time.perf_counter() - t < 5
    big = listed[big_id]
    assert big.state == "indexing" and big.name == big_name and big.project == "lens-demo"
    assert big.config and big.summary == {} and "still being indexed" in big.damage[0]
    other = listed[demo_ids[small_name]]
    assert other.state == "finished" and other.summary
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(src.get_run(big_id)))
    waiter.start()
    time.sleep(0.3)
    assert not got  # the run's own call waits for its index
    release.set()
    waiter.join(30)
    assert got and got[0].state == "finished" and got[0].summary
    for _ in range(100):
        again = {r.id: r for r in src.list_runs()}
        if again[big_id].state != "indexing":
            break
        time.sleep(0.1)
    assert again[big_id].state == "finished" and again[big_id].history_rows == got[0].history_rows


def test_head_listing_hides_only_read_and_framing_errors(tmp_path, monkeypatch):
    """A log that cannot be read or is not a log is left to the background pass (None); a bug in the
    reader is not swallowed (it once hid a NameError)."""
    from wandb_lens.sources.local import run_file

    folder = tmp_path / "wandb" / "offline-run-20260101_000000-abc"
    folder.mkdir(parents=True)
    log = folder / "run-abc.wandb"
    log.write_bytes(b"not a wandb log" * 100)
    src = local_source.LocalRunSource([tmp_path / "wandb"], cache_dir=tmp_path / "cache")
    assert src._head_info(log) is None
    assert src._head_info(folder / "run-gone.wandb") is None  # vanished meanwhile: OSError

    def broken(*a, **k):
        raise NameError("read_head")

    monkeypatch.setattr(run_file, "scan", broken)
    log.write_bytes(b":W&B\xe1\xbe\x00" + b"\0" * 100)
    try:
        src._head_info(log)
    except NameError:
        pass
    else:
        raise AssertionError("a reader bug was swallowed")


def test_listing_never_waits_for_a_history_decode(tmp_path, demo_dir, demo_ids, monkeypatch):
    """A run's history being decoded (held here until the listing is done) holds up neither the
    listing nor that run's own index: the listing answers with the run whole."""
    src = local_source.LocalRunSource([demo_dir / "wandb"], cache_dir=tmp_path / "cache")
    run = src.get_run(demo_ids["baseline-cosine"])
    started, release = threading.Event(), threading.Event()
    real = local_source.LocalRunSource._load_history

    def held(self, path, st, mem, *job):
        started.set()
        release.wait(30)
        return real(self, path, st, mem, *job)

    monkeypatch.setattr(local_source.LocalRunSource, "_load_history", held)
    decoding = threading.Thread(target=lambda: src.history(run))
    decoding.start()
    try:
        assert started.wait(10)
        fresh = local_source.LocalRunSource([demo_dir / "wandb"], cache_dir=tmp_path / "cache")  # a second server
        for lister in (src, fresh):
            t = time.perf_counter()
            listed = {r.id: r for r in lister.list_runs()}
            assert time.perf_counter() - t < 5 and decoding.is_alive()
            assert listed[run.id].state == "finished" and listed[run.id].summary == run.summary
    finally:
        release.set()
        decoding.join(30)
