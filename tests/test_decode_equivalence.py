"""The fast reader (numpy item walk, batched summary merge) gives exactly what the previous reader
gave (`tests/reference_reader.py`, a frozen copy): same columns in the same order, same rows, same
values (NaN included), same histograms and texts, same final summary.

Inputs: every demo run (wandb offline), a wandb offline run with sparse keys, NaN / Infinity,
histograms, text, bools, nested keys and an explicit summary, the same run cut mid-record, and
records built with wandb's record classes for what `run.log` cannot write (steps out of order,
keys given by `key` instead of `nested_key`, an item without a value, a damaged record, a summary
removal, a key that changes type between decode batches).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reference_reader
from wandb_lens.sources.local import history_decode, run_file
from wandb_lens.sources.local.wandb_file import Framing

_WRITER = r"""
import math, sys, numpy as np, wandb
run = wandb.init(project="equiv", name="mixed", dir=sys.argv[1], mode="offline",
                 settings=wandb.Settings(console="off", silent=True, x_disable_stats=True))
rng = np.random.default_rng(1)
for i in range(600):
    row = {"loss": float(rng.normal()) if i % 97 else float("nan"), "i": i}
    if i % 7 == 0:
        row["val/acc"] = 1.0 / (i + 1)
    if i % 50 == 0:
        row["grads"] = wandb.Histogram(rng.normal(size=100))
        row["note"] = f"step {i}"
        row["flag"] = bool(i % 100)
        row["deep"] = {"a": {"b": i * 0.5}}
    if i == 300:
        row["loss"] = float("inf")
        row["mixed"] = "text"
    if i in (100, 200, 400):
        row["mixed"] = i
    run.log(row)
run.summary["best"] = {"loss": 0.1}
run.summary["explicit"] = 3
run.finish()
"""


def _same_history(a, b) -> None:
    assert list(a.columns) == list(b.columns)
    assert np.array_equal(a.steps, b.steps)
    assert a.damage == b.damage
    for key, ca in a.columns.items():
        cb = b.columns[key]
        assert (ca.kind, ca.rows.tolist()) == (cb.kind, cb.rows.tolist()), key
        if ca.kind == "numeric":
            assert np.array_equal(ca.values, cb.values, equal_nan=True), key
        elif ca.kind == "histogram":
            assert all(np.array_equal(x, y) for x, y in zip(ca.values, cb.values)), key
            assert all(np.array_equal(x, y) for x, y in zip(ca.bins, cb.bins)), key
        else:
            assert list(ca.values) == list(cb.values), key


def _check_file(data: bytes) -> None:
    scan, records = run_file.scan(data, want_history=True)
    _same_history(history_decode.decode_history(records), reference_reader.decode_history(records))
    from wandb.proto import wandb_internal_pb2 as pb

    summaries = [r for r in Framing(data).records() if run_file._record_tag(r) == 0x1A]
    old: dict = {}
    reference_reader._apply_summaries(old, summaries, pb.Record.FromString)
    assert json.dumps(scan.summary) == json.dumps(old)


@pytest.fixture(scope="session")
def mixed_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mixed")
    subprocess.run([sys.executable, "-c", _WRITER, str(out)], check=True, capture_output=True,
                   env={**__import__("os").environ, "WANDB_SILENT": "true", "WANDB_MODE": "offline"})
    return next(out.glob("wandb/*/run-*.wandb"))


def test_demo_runs_decode_as_before(demo_dir):
    files = sorted((demo_dir / "wandb").glob("*/run-*.wandb"))
    assert len(files) >= 8
    for path in files:
        _check_file(path.read_bytes())


def test_sparse_nan_histogram_text_run_and_its_cut_tail_decode_as_before(mixed_run):
    data = mixed_run.read_bytes()
    _check_file(data)
    hist = history_decode.decode_history(run_file.scan(data, want_history=True)[1])
    assert hist.columns["grads"].kind == "histogram" and hist.columns["note"].kind == "text"
    assert np.isinf(hist.columns["loss"].values).any() and np.isnan(hist.columns["loss"].values).any()
    for cut in (len(data) // 3 + 5, len(data) - 11):  # mid-record cuts: what is whole reads the same
        _check_file(data[:cut])


def test_explicit_summary_written_after_info_field_is_kept(mixed_run):
    """A summary set from Python (`run.summary[k] = v`) is serialized with its `_info` field first;
    the tag peek used to miss it, so the value never reached the summary."""
    scan, _ = run_file.scan(mixed_run.read_bytes())
    assert scan.summary["explicit"] == 3 and scan.summary["best"] == {"loss": 0.1}


def _rec(num: int, items: list, step: int | None = None, summary: bool = False, remove: list | None = None) -> bytes:
    from wandb.proto import wandb_internal_pb2 as pb

    r = pb.Record(num=num)
    target = r.summary.update if summary else r.history.item
    for key, value in items:
        it = target.add()
        if isinstance(key, tuple):
            it.nested_key.extend(key)
        elif key.startswith("key:"):
            it.key = key[4:]
        else:
            it.nested_key.append(key)
        if value is not None:
            it.value_json = value
    for key in remove or []:
        r.summary.remove.add().nested_key.append(key)
    if step is not None:
        r.history.step.num = step
    return r.SerializeToString()


def test_hand_built_records_decode_as_before(monkeypatch):
    recs = []
    for i, step in enumerate([5, 3, 9, 9, 1, 20]):  # steps out of order, repeated
        items = [("_step", str(step)), ("loss", repr(0.5 / (i + 1))), ("key:old_style", str(i))]
        if i % 2:
            items.append((("a", "b"), "[1, 2]"))
            items.append(("loss", "NaN"))  # the same key twice in one row
        if i == 3:
            items.append(("empty", None))  # an item without value_json
            items.append(("big", "123456789012345678901234567890"))
        recs.append(_rec(i + 1, items, step=step))
    recs.insert(2, b"\x08\x03\x12\x05garbage")  # passes the tag peek, is not a HistoryRecord
    recs.append(_rec(99, [("loss", "Infinity"), ("late", "-Infinity")]))
    _same_history(history_decode.decode_history(recs), reference_reader.decode_history(recs))
    # a key that holds numbers in one decode batch and text in the next
    monkeypatch.setattr(history_decode, "BATCH_BYTES", 1)
    typed = [_rec(i + 1, [("v", "7" if i < 3 else '"seven"'), ("w", "1")]) for i in range(5)]
    typed += [_rec(6, [("v", "8")])]
    _same_history(history_decode.decode_history(typed), reference_reader.decode_history(typed))
    _same_history(history_decode.decode_history(recs), reference_reader.decode_history(recs))


def test_summary_removals_and_nesting_merge_as_before(monkeypatch):
    from wandb.proto import wandb_internal_pb2 as pb

    from wandb_lens.sources.local import summary_merge

    recs = [_rec(1, [("acc", "0.5"), (("best", "loss"), "1.0"), ("_wandb.runtime", "3")], summary=True),
            _rec(2, [("acc", "0.7"), ("acc", "0.1")], summary=True),
            _rec(3, [("gone", "1")], summary=True),
            _rec(4, [("x", "2")], summary=True, remove=["gone"]),
            _rec(5, [(("_wandb", "runtime"), "12"), (("best", "loss"), "0.4")], summary=True),
            _rec(6, [("y", "1")], summary=True, remove=["y"])]
    for batch in (1 << 20, 1):
        monkeypatch.setattr(summary_merge, "BATCH_BYTES", batch)
        merge = summary_merge.SummaryMerge()
        for r in recs:
            merge.add(r)
        new: dict = {}
        merge.apply(new)
        old: dict = {}
        reference_reader._apply_summaries(old, recs, pb.Record.FromString)
        assert json.dumps(new) == json.dumps(old)
        assert new["acc"] == 0.7 and "gone" not in new and "y" not in new and new["_runtime_wandb"] == 12


def test_split_decode_on_two_processes_equals_one_pass(mixed_run, monkeypatch, caplog):
    """The log split at a block boundary, the second half decoded by a worker process, gives the
    one-pass History; with the worker killed the second half is decoded here, same answer."""
    import os

    from wandb_lens.sources.local import parallel_decode
    from wandb_lens.sources.local.wandb_file import BLOCK

    monkeypatch.setattr(parallel_decode, "MIN_BYTES", 0)
    monkeypatch.setenv("WANDB_LENS_DECODE_WORKERS", "2")
    data = mixed_run.read_bytes()
    st = os.stat(mixed_run)
    mid = parallel_decode.split_point(st.st_size)
    assert mid is not None and mid % BLOCK == 0 and 0 < mid < len(data)
    whole = history_decode.decode_history(run_file.scan(data, want_history=True)[1])
    got = parallel_decode.decode_split(data, mixed_run, st, mid, "", 0.0)
    assert "decode worker" not in caplog.text  # the worker's half was used
    _same_history(got.history, whole)
    assert got.end_offset == len(data) and not got.truncated
    # a worker that dies (here: killed as it starts) leaves the second half to this process
    import subprocess

    real_popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda args, **kw: real_popen(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], **kw))
    again = parallel_decode.decode_split(data, mixed_run, st, mid, "", 0.0)
    assert "decode worker ended with -9" in caplog.text
    _same_history(again.history, whole)


@pytest.fixture
def streamed(monkeypatch):
    """Every cold decode streamed to the cache in chunks of ~25 rows, split over two processes."""
    from wandb_lens.sources.local import history_stream, parallel_decode

    monkeypatch.setattr(history_stream, "MIN_BYTES", 0)
    monkeypatch.setattr(parallel_decode, "MIN_BYTES", 0)
    monkeypatch.setattr(parallel_decode, "CHUNK_BYTES", 8192)
    monkeypatch.setenv("WANDB_LENS_DECODE_WORKERS", "2")


def _source_history(run_dir: Path, cache: Path):
    from wandb_lens.sources.local.source import LocalRunSource

    src = LocalRunSource([run_dir], cache_dir=cache)
    (run,) = src.list_runs()
    return src, run, src.history(run)


def _copy_run(log: Path, dest: Path, data: bytes | None = None) -> Path:
    folder = dest / "wandb" / log.parent.name
    folder.mkdir(parents=True)
    out = folder / log.name
    out.write_bytes(log.read_bytes() if data is None else data)
    return out


def test_streamed_decode_writes_the_cache_in_row_groups_and_answers_as_one_pass(mixed_run, streamed, tmp_path, caplog):
    """Chunks spilled by both processes, written as one parquet file (a row group per chunk) under
    the run's schema: the History read back is the one-pass History, also after a restart (the
    cache), and with the worker killed (its half decoded here); no spill or temp file is left."""
    import subprocess

    import pyarrow.parquet as pq

    whole = history_decode.decode_history(run_file.scan(mixed_run.read_bytes(), want_history=True)[1])
    _copy_run(mixed_run, tmp_path / "runs")
    cache = tmp_path / "cache"
    _, _, got = _source_history(tmp_path / "runs", cache)
    assert "decode worker" not in caplog.text
    _same_history(got, whole)
    (cached,) = (cache / "history").glob("*.parquet")
    assert [p.name for p in (cache / "history").iterdir()] == [cached.name]  # no spill folder, no temp file
    meta = pq.ParquetFile(cached)
    assert meta.metadata.num_row_groups > 4 and meta.metadata.num_rows == whole.n_rows
    assert meta.schema_arrow.names[0] == "_step" and set(meta.schema_arrow.names) == set(whole.columns)
    _same_history(_source_history(tmp_path / "runs", cache)[2], whole)  # a new process: from the cache
    real_popen = subprocess.Popen
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess, "Popen", lambda args, **kw: real_popen(
            [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], **kw))
        _same_history(_source_history(tmp_path / "runs", tmp_path / "cache2")[2], whole)
    assert "decode worker ended with -9" in caplog.text


def test_streamed_cache_is_whole_or_absent(mixed_run, streamed, tmp_path, monkeypatch):
    """A parquet write that fails midway leaves no cache file (nor temp or spill files) and the
    answer is still whole (from the spilled chunks); a cache folder that cannot take a spill
    decodes in memory; a log cut mid-record answers what is whole and re-reads when it grows."""
    import pyarrow.parquet as pq

    from wandb_lens.sources import history_writer

    data = mixed_run.read_bytes()
    whole = history_decode.decode_history(run_file.scan(data, want_history=True)[1])
    _copy_run(mixed_run, tmp_path / "runs")
    calls = []
    real = pq.ParquetWriter.write_table

    def failing(self, table, *a, **kw):
        calls.append(table.num_rows)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(self, table, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pq.ParquetWriter, "write_table", failing)
        _same_history(_source_history(tmp_path / "runs", tmp_path / "cache")[2], whole)
    assert len(calls) == 3 and not list((tmp_path / "cache" / "history").iterdir())

    def no_spill(self, folder, prefix):
        raise OSError(30, "Read-only file system")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(history_writer.Spill, "__init__", no_spill)
        _same_history(_source_history(tmp_path / "runs", tmp_path / "cache3")[2], whole)
    # cut mid-record: the whole records answer; the grown log is read again, to its end
    cut = len(data) * 2 // 3 + 5
    log = _copy_run(mixed_run, tmp_path / "cut", data[:cut])
    src, run, part = _source_history(tmp_path / "cut", tmp_path / "cache4")
    _same_history(part, reference_reader.decode_history(run_file.scan(data[:cut], want_history=True)[1]))
    log.write_bytes(data)
    _same_history(src.history(src.get_run(run.id)), whole)


def test_log_growing_during_a_streamed_decode(mixed_run, streamed, tmp_path, monkeypatch):
    """Rows appended while the decode runs are not in that answer (it stops where the file ended
    when it began) and the next call adds them."""
    from wandb_lens.sources import history_writer

    data = mixed_run.read_bytes()
    half = (len(data) // 2) // 32768 * 32768 or len(data) // 2
    scan_half = run_file.scan(data[:half], want_history=True)
    log = _copy_run(mixed_run, tmp_path / "runs", data[:half])
    real_add = history_writer.Spill.add
    grown = []

    def add(self, hist):
        if not grown:
            with open(log, "ab") as fh:  # the run writes on while its first chunk is decoded
                fh.write(data[half:])
            grown.append(1)
        return real_add(self, hist)

    monkeypatch.setattr(history_writer.Spill, "add", add)
    src, run, first = _source_history(tmp_path / "runs", tmp_path / "cache")
    assert grown and first.n_rows == scan_half[0].history_rows
    whole = history_decode.decode_history(run_file.scan(data, want_history=True)[1])
    # the next call decodes the new rows only and appends them to the cache file, never reading it whole
    from wandb_lens.sources.local import history_stream

    appended = []
    real_append = history_stream.append_to_cache
    monkeypatch.setattr(history_stream, "append_to_cache", lambda *a: appended.append(real_append(*a)) or appended[-1])
    _same_history(src.history(src.get_run(run.id)), whole)
    assert appended and appended[0] is not None
    _same_history(_source_history(tmp_path / "runs", tmp_path / "cache")[2], whole)  # a new process: the file


def test_log_cut_during_a_streamed_decode(mixed_run, streamed, tmp_path, monkeypatch):
    """A log cut while it is decoded (read in windows, never mapped: a mapping would die of SIGBUS)
    answers the rows before the cut and says so; the next call, on the cut log, reads it again."""
    from wandb_lens.sources import history_writer
    from wandb_lens.sources.local.wandb_file import BLOCK, WindowedFraming

    monkeypatch.setenv("WANDB_LENS_DECODE_WORKERS", "1")
    monkeypatch.setattr(WindowedFraming, "WINDOW", BLOCK)
    data = mixed_run.read_bytes()
    cut = BLOCK + 7000
    log = _copy_run(mixed_run, tmp_path / "runs")
    real_add = history_writer.Spill.add

    def add(self, hist):
        if len(self.parts) == 0:
            with open(log, "r+b") as fh:  # cut while the first window is decoded
                fh.truncate(cut)
        return real_add(self, hist)

    monkeypatch.setattr(history_writer.Spill, "add", add)
    src, run, got = _source_history(tmp_path / "runs", tmp_path / "cache")
    want = reference_reader.decode_history(run_file.scan(data[:cut], want_history=True)[1])
    assert got.damage and "the log was cut while it was read" in got.damage[-1]
    got.damage = []
    _same_history(got, want)
    monkeypatch.setattr(history_writer.Spill, "add", real_add)
    again = src.history(src.get_run(run.id))
    assert not again.damage
    _same_history(again, want)


def test_streamed_decode_finds_the_system_metrics_in_the_same_scan(extras_dir, streamed, tmp_path, monkeypatch):
    """The decode's own scan keeps the `stats` records (both halves): the system metrics answer
    from them (cached), with no second pass over the log, and equal a separate read of the log."""
    from wandb_lens.sources.local import records, system
    from wandb_lens.sources.local.source import LocalRunSource

    src = LocalRunSource([extras_dir / "wandb"], cache_dir=tmp_path / "cache")
    runs = src.list_runs()
    want = {r.id: system._series(src._path_of(r), src.roots) for r in runs}
    assert sum(bool(v) for v in want.values()) >= 2  # runs with system metrics among them
    records._cache.clear()

    def no_second_pass(*a, **kw):
        raise AssertionError("the log was read again for its system metrics")

    monkeypatch.setattr(records, "read", no_second_pass)
    for run in runs:
        hist = src.history(run)
        got = src.system_series(run)
        assert list(got) == list(want[run.id]), run.name
        for key, (t, v) in want[run.id].items():
            assert np.array_equal(got[key][0], t) and np.array_equal(got[key][1], v, equal_nan=True), key
        assert set(want[run.id]) <= set(hist.columns)
