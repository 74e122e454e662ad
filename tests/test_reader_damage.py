"""Damaged, growing and missing run data: clear messages or flagged partial results, never a crash.

Each case copies a real demo run (written by wandb offline), damages it, and asks through an
MCP client. The other runs in the folder must keep working.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import time
import zlib
from pathlib import Path

import pytest

from conftest import call


def _server(runs_dir: Path, cache: Path):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    return build_server(AppConfig(runs_dirs=[str(runs_dir)], cache_dir=str(cache)))


def _copy_run(demo_dir: Path, demo_ids: dict, name: str, dest: Path) -> Path:
    src = next((demo_dir / "wandb").glob(f"*-{demo_ids[name]}"))
    target = dest / src.name
    shutil.copytree(src, target)
    return next(target.glob("run-*.wandb"))


@pytest.fixture
def two_runs(tmp_path, demo_dir, demo_ids):
    runs = tmp_path / "wandb"
    runs.mkdir()
    damaged = _copy_run(demo_dir, demo_ids, "baseline-cosine", runs)
    _copy_run(demo_dir, demo_ids, "overfit-wide-model", runs)
    return runs, damaged, tmp_path / "cache"


def _rows(server, run):
    return call(server, "describe_run", {"run": run}).json


def test_truncated_mid_record_reads_what_is_whole(two_runs):
    runs, path, cache = two_runs
    data = path.read_bytes()
    from test_fuzz_readers import chunk_spans

    # cut in the middle of the chunk at about 2/3 of the file (a fixed byte offset could land on a
    # record's end, which is a clean stop, not a truncation)
    start, length, _ = next(c for c in chunk_spans(data) if c[0] >= len(data) * 2 // 3 and c[1] > 4)
    path.write_bytes(data[: start + 7 + length // 2])
    # the writer is gone: its log (naming its pid) removed, the file last written an hour ago
    shutil.rmtree(path.parent / "logs")
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    server = _server(runs, cache)
    d = _rows(server, "baseline-cosine")
    assert d["state"] == "crashed"
    assert any("mid-record" in x for x in d["damage"])
    n = d["history"]["keys"]["train/loss"]["n"]
    assert 300 < n < 800  # a clean prefix of the 800 logged points
    other = _rows(server, "overfit-wide-model")
    assert other["history"]["keys"]["train_loss"]["n"] == 1500 and "damage" not in other


def test_bad_crc_skips_the_block_and_says_so(two_runs):
    runs, path, cache = two_runs
    data = bytearray(path.read_bytes())
    pos = 32768 + 200  # inside the second block
    data[pos] ^= 0xFF
    path.write_bytes(bytes(data))
    d = _rows(_server(runs, cache), "baseline-cosine")
    assert any("bad CRC" in x or "length" in x for x in d["damage"])
    n = d["history"]["keys"]["train/loss"]["n"]
    assert 600 < n < 800  # one 32 KiB block lost, the rest recovered


def test_random_bytes_with_valid_header_is_reported_not_fatal(two_runs):
    runs, path, cache = two_runs
    rnd = os.urandom(100_000)
    path.write_bytes(struct.pack("<4sHB", b":W&B", 0xBEE1, 0) + rnd)
    server = _server(runs, cache)
    listing = call(server, "query_runs", {}).json
    assert listing["total"] == 2
    assert call(server, "describe_run", {"run": "overfit-wide-model"}).is_error is False


def test_not_a_wandb_file_is_listed_as_unreadable(two_runs):
    runs, path, cache = two_runs
    path.write_bytes(b"this is not a run file at all")
    server = _server(runs, cache)
    out = call(server, "query_runs", {}).json
    assert out["total"] == 2
    bad = [r for r in out["runs"] if r.get("state") == "unreadable"]
    assert len(bad) == 1 and "not a run log" in bad[0]["reason"] and "NotAWandbFile" not in json.dumps(out)
    # its folder does not name a project: it joins the project of the runs beside it
    assert call(server, "query_runs", {"project": "lens-demo"}).json["total"] == 2
    d = call(server, "describe_run", {"run": f"lens-demo/{bad[0]['id']}"})
    assert not d.is_error and d.json["state"] == "unreadable" and d.json["history"]["rows"] == 0


def test_inflated_length_field_does_not_allocate_or_crash(two_runs):
    runs, path, cache = two_runs
    data = bytearray(path.read_bytes())
    # first chunk header after the 7-byte file header: set its length to 0xFFFF
    crc, length, ctype = struct.unpack_from("<IHB", data, 7)
    struct.pack_into("<IHB", data, 7, crc, 0xFFFF, ctype)
    path.write_bytes(bytes(data))
    d = _rows(_server(runs, cache), "overfit-wide-model")
    assert d["history"]["keys"]["train_loss"]["n"] == 1500
    r = call(_server(runs, cache), "describe_run", {"run": "baseline-cosine"})
    # the run record sat in the damaged first block: the run may only be found by its folder id
    assert r.is_error or "damage" in r.json


def test_growing_run_is_decoded_incrementally(tmp_path, demo_dir, demo_ids):
    runs = tmp_path / "wandb"
    runs.mkdir()
    path = _copy_run(demo_dir, demo_ids, "baseline-cosine", runs)
    full = path.read_bytes()
    # find a record boundary about halfway by reading the framing
    from wandb_lens.sources.local.wandb_file import Framing

    f = Framing(full[: len(full) // 2])
    for _ in f.records():
        pass
    path.write_bytes(full[: f.end_offset])
    server = _server(runs, tmp_path / "cache")
    first = _rows(server, "baseline-cosine")
    n1 = first["history"]["keys"]["train/loss"]["n"]
    assert first["state"] == "running"  # no exit record, written just now
    with open(path, "ab") as fh:
        fh.write(full[f.end_offset:])
    time.sleep(0.01)
    second = _rows(server, "baseline-cosine")
    assert second["history"]["keys"]["train/loss"]["n"] == 800 > n1
    assert second["history"]["keys"]["val/loss"]["n"] == 40
    assert second["state"] == "finished"
    # a fresh server reads the same from the parquet cache
    third = _rows(_server(runs, tmp_path / "cache"), "baseline-cosine")
    assert third["history"] == second["history"]


def test_missing_directory_and_empty_folder(tmp_path):
    r = call(_server(tmp_path / "nope", tmp_path / "c"), "list_projects", {})
    assert r.is_error and "Runs directory not found" in r.text and "--runs-dir" in r.text
    empty = tmp_path / "empty"
    empty.mkdir()
    out = call(_server(empty, tmp_path / "c"), "list_projects", {}).json
    assert out["total"] == 0 and "No W&B runs found" in out["note"]
    out = call(_server(empty, tmp_path / "c"), "query_runs", {}).json
    assert out["total"] == 0 and out["runs"] == []


def test_framing_reassembles_split_records_and_checks_crc():
    """A record larger than a block is split FIRST/MIDDLE/LAST; the reader joins it back."""
    from wandb_lens.sources.local.wandb_file import BLOCK, Framing

    def chunk(kind: int, body: bytes) -> bytes:
        crc = zlib.crc32(body, zlib.crc32(bytes([kind])))
        return struct.pack("<IHB", crc, len(body), kind) + body

    header = struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
    big = os.urandom(70_000)
    first_room = BLOCK - len(header) - 7
    data = header + chunk(2, big[:first_room])
    second = BLOCK - 7
    data += chunk(3, big[first_room: first_room + second])
    data += chunk(4, big[first_room + second:])
    data += chunk(1, b"small")
    f = Framing(data)
    assert list(f.records()) == [big, b"small"]
    assert f.damage == [] and not f.truncated and f.end_offset == len(data)
    f2 = Framing(data[:-3])
    assert list(f2.records()) == [big] and f2.truncated
