"""Cache validity by content identity (issue 15): a run log replaced by another, larger one is read
afresh (index and history), in the same process and after a restart; never spliced onto the cached
prefix of the file it replaced. A log that only grew still continues from where the cache stopped."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import call
from test_reader_damage import _server
from wandb_lens.sources.local.fingerprint import prefix_fingerprint, same_prefix


def _log(demo_dir: Path, demo_ids: dict, name: str) -> Path:
    return next(next((demo_dir / "wandb").glob(f"*-{demo_ids[name]}")).glob("run-*.wandb"))


def test_prefix_fingerprint_sees_a_replaced_prefix():
    a = b"x" * 50_000 + b"tail-a" + b"y" * 100
    b = b"x" * 50_000 + b"tail-b" + b"y" * 100
    fp = prefix_fingerprint(a, 50_006)
    assert same_prefix(a + b"grown", 50_006, fp)  # the same log, grown
    assert not same_prefix(b, 50_006, fp)  # same header block, another file where the splice would join
    assert not same_prefix(a[:40_000], 50_006, fp)  # shrunk
    assert not same_prefix(a, 50_006, None) and prefix_fingerprint(b"", 0) != ""


def test_run_log_replaced_by_a_larger_one_is_decoded_afresh(tmp_path, demo_dir, demo_ids):
    small = _log(demo_dir, demo_ids, "still-improving")    # 300 steps
    large = _log(demo_dir, demo_ids, "baseline-cosine")    # 800 steps, a larger file
    assert large.stat().st_size > small.stat().st_size
    runs, cache = tmp_path / "wandb", tmp_path / "cache"
    folder = runs / small.parent.name
    folder.mkdir(parents=True)
    target = folder / small.name
    shutil.copy(small, target)
    server = _server(runs, cache)
    before = call(server, "describe_run", {"run": demo_ids["still-improving"]}).json
    assert before["history"]["keys"]["train/loss"]["n"] == 300
    # replaced in place (same path, same inode) by a larger log: the cache must not see "growth"
    with open(target, "r+b") as fh:
        fh.write(large.read_bytes())
    after = call(server, "query_runs", {}).json["runs"]
    assert [r["id"] for r in after] == [demo_ids["baseline-cosine"]]
    desc = call(server, "describe_run", {"run": demo_ids["baseline-cosine"]}).json
    assert desc["config"]["steps"] == 800
    assert desc["history"]["keys"]["train/loss"]["n"] == 800, desc["history"]["keys"]["train/loss"]
    # after a restart on the same cache, with the file swapped back and forth once more
    shutil.copy(small, target)
    call(_server(runs, cache), "describe_run", {"run": demo_ids["still-improving"]})
    with open(target, "r+b") as fh:
        fh.write(large.read_bytes())
    fresh = _server(runs, cache)
    desc = call(fresh, "describe_run", {"run": demo_ids["baseline-cosine"]}).json
    assert desc["config"]["steps"] == 800 and desc["history"]["rows"] == 840
    assert desc["history"]["keys"]["train/loss"]["n"] == 800


def test_a_log_that_only_grew_continues_from_the_cache(tmp_path, demo_dir, demo_ids):
    """The fingerprint must not defeat incremental reads: a grown log reuses its cached prefix."""
    from wandb_lens.sources.local.source import LocalRunSource

    full = _log(demo_dir, demo_ids, "baseline-cosine").read_bytes()
    runs = tmp_path / "wandb" / "offline-run-x"
    runs.mkdir(parents=True)
    target = runs / f"run-{demo_ids['baseline-cosine']}.wandb"
    cut = 65536 + 7  # past two blocks; a clean record boundary is found by the scan
    target.write_bytes(full[:cut])
    src = LocalRunSource([tmp_path / "wandb"], cache_dir=tmp_path / "cache")
    run = src.list_runs()[0]
    first = src.history(run).n_rows
    end = src._scans[str(target)][2].end_offset
    with open(target, "ab") as fh:
        fh.write(full[cut:])
    calls = []
    from wandb_lens.sources.local import run_file

    real = run_file.scan
    def spy(data, previous=None, **kw):
        calls.append(previous and previous.end_offset)
        return real(data, previous, **kw)

    run_file.scan = spy
    try:
        run = LocalRunSource([tmp_path / "wandb"], cache_dir=tmp_path / "cache").list_runs()[0]
    finally:
        run_file.scan = real
    assert calls == [end]  # continued from the cached end, after a restart
    assert run.history_rows == 840 and first < 840
    os.unlink(target)
