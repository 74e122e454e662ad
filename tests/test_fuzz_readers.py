"""Fuzzing the two readers of on-disk data: the `.wandb` run log and the SQLite Weave trace store.

Inputs are real files (the demo runs written by wandb offline, the demo store written by weave),
mutated: every truncation at (and inside) every chunk of a run, bit flips, inflated chunk length
fields, random bytes behind a valid header, records re-framed with valid CRCs around damaged
protobuf (a huge length-delimited field included); for the store: truncation at every page, flipped
bits in pages, a dropped table, garbage pages. The readers never raise, never take more than
READ_LIMIT_S per read, never allocate much beyond the file's size, and say the data is damaged
while returning what they could recover; through MCP the server keeps answering.

`make test` runs the short version (WANDB_LENS_FUZZ_EXAMPLES unset: a few dozen examples per
property); `make fuzz` raises the count (see the Makefile).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile import _CRASH, Session

EXAMPLES = int(os.environ.get("WANDB_LENS_FUZZ_EXAMPLES", "25"))
READ_LIMIT_S = 5.0
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


# ----- helpers --------------------------------------------------------------------------------------
def _read_measured(data: bytes):
    """`_read` under tracemalloc: (scan, history, peak bytes allocated)."""
    tracemalloc.start()
    try:
        scan, hist = _read(data)
        return scan, hist, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _read(data: bytes):
    """The full local read of one file (what listing and history do): scan, then decode the history."""
    from wandb_lens.sources.local import run_file
    from wandb_lens.sources.local.history_decode import decode_history
    from wandb_lens.sources.local.wandb_file import NotAWandbFile

    t0 = time.monotonic()
    try:
        scan, records = run_file.scan(data, want_history=True)
    except NotAWandbFile:
        return None, None
    hist = decode_history(records)
    took = time.monotonic() - t0
    assert took < READ_LIMIT_S, f"read took {took:.1f} s"
    return scan, hist


def chunk_spans(data: bytes) -> list[tuple[int, int, int]]:
    """(start, length, type) of every chunk of an undamaged file, walking the framing."""
    from wandb_lens.sources.local.wandb_file import BLOCK, CHUNK

    out, pos = [], 7
    while pos < len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        if len(data) - pos < 7:
            break
        _crc, length, ctype = CHUNK.unpack_from(data, pos)
        if ctype == 0 and length == 0:
            pos += left
            continue
        out.append((pos, length, ctype))
        pos += 7 + length
    return out


def frame(records: list[bytes]) -> bytes:
    """Records written the way wandb writes them: 32 KiB blocks, FULL or FIRST/MIDDLE/LAST chunks."""
    from wandb_lens.sources.local.wandb_file import BLOCK

    out = bytearray(struct.pack("<4sHB", b":W&B", 0xBEE1, 0))

    def chunk(kind: int, body: bytes) -> None:
        out.extend(struct.pack("<IHB", zlib.crc32(body, zlib.crc32(bytes([kind]))), len(body), kind) + body)

    for rec in records:
        rest, first = rec, True
        while True:
            left = BLOCK - len(out) % BLOCK
            if left < 7:
                out.extend(b"\0" * left)
                continue
            room = left - 7
            piece, rest = rest[:room], rest[room:]
            kind = (1 if not rest else 2) if first else (4 if not rest else 3)
            chunk(kind, piece)
            first = False
            if not rest:
                break
    return bytes(out)


@pytest.fixture(scope="module")
def small_run(demo_dir, demo_ids) -> bytes:
    """The smallest demo run log (still-improving: 300 steps, about 130 KB, ~960 chunks)."""
    files = sorted((demo_dir / "wandb").glob("*/run-*.wandb"), key=lambda p: p.stat().st_size)
    return files[0].read_bytes()


@pytest.fixture(scope="module")
def big_run(demo_dir, demo_ids) -> bytes:
    """spiky-bad-batches: several 32 KiB blocks, histograms, records split across blocks."""
    return next((demo_dir / "wandb").glob(f"*-{demo_ids['spiky-bad-batches']}/run-*.wandb")).read_bytes()


@pytest.fixture(scope="module")
def records_of(big_run):
    from wandb_lens.sources.local.wandb_file import Framing

    return list(Framing(big_run).records())


# ----- .wandb: truncations ----------------------------------------------------------------------------
def test_every_truncation_at_and_inside_every_chunk(small_run):
    from wandb_lens.sources.local.wandb_file import Framing

    full = Framing(small_run)
    all_records = list(full.records())
    assert not full.damage and not full.truncated
    spans = chunk_spans(small_run)
    assert len(spans) > 200
    pending = False  # a record's first chunk seen and not its last
    done = 0  # whole records before this chunk
    full_scan, full_hist = _read(small_run)
    prev_rows = 0
    for start, length, ctype in spans:
        # cut right before the chunk: every earlier whole record, and flagged iff a record is open
        f = Framing(small_run[:start])
        got = list(f.records())
        assert got == all_records[:done], start
        assert f.truncated == pending and not f.damage, (start, f.truncated, pending)
        # cut inside the chunk (its header or its body): flagged, same records
        for cut in {start + 3, start + 7 + length // 2}:
            g = Framing(small_run[:cut])
            assert list(g.records()) == all_records[:done] and g.truncated and not g.damage, cut
        scan, hist = _read(small_run[:start])
        assert prev_rows <= scan.history_rows <= full_scan.history_rows and hist.n_rows == scan.history_rows
        prev_rows = scan.history_rows
        if ctype == 2:
            pending = True
        elif ctype in (1, 4):
            pending = False
            done += 1
    assert done == len(all_records)


def test_truncation_inside_a_record_split_across_blocks(big_run, records_of):
    """A record whose FIRST chunk closes a 32 KiB block, cut right at that block boundary: the reader
    used to end cleanly (not flagged) with the first chunks pending."""
    from wandb_lens.sources.local.wandb_file import BLOCK, Framing

    firsts = [s for s, _length, t in chunk_spans(big_run) if t == 2]
    assert firsts, "the demo run has no record split across blocks"
    for start in firsts:
        boundary = (start // BLOCK + 1) * BLOCK
        f = Framing(big_run[:boundary])
        list(f.records())
        assert f.truncated and f.end_offset <= start


def test_truncated_run_through_mcp_is_flagged(tmp_path, demo_dir, demo_ids):
    path, server = _one_run_server(tmp_path, demo_dir, demo_ids, "still-improving")
    data = path.read_bytes()
    start, length, _ = chunk_spans(data)[len(chunk_spans(data)) // 2]
    path.write_bytes(data[: start + 7 + length // 2])
    # written long ago: a log this fresh with no live writer known would read as a run still being
    # written, whose half-written last record is not damage
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    s = Session(server)
    try:
        d = s.call("describe_run", {"run": "still-improving"}).json
        assert "log ends mid-record (writer killed)" in d["damage"]
        assert 0 < d["history"]["keys"]["train/loss"]["n"] < 300
    finally:
        s.close()


# ----- .wandb: hypothesis mutations --------------------------------------------------------------------
@FUZZ
@given(st.data())
def test_bit_flips_never_crash_and_are_reported(big_run, data):
    flips = data.draw(st.lists(st.tuples(st.integers(7, len(big_run) - 1), st.integers(0, 7)), min_size=1, max_size=8))
    buf = bytearray(big_run)
    for pos, bit in flips:
        buf[pos] ^= 1 << bit
    scan, hist = _read(bytes(buf))
    full, _ = _read(big_run)
    assert hist.n_rows <= full.history_rows + 1
    if bytes(buf) != big_run:
        # a flipped bit breaks its chunk's CRC (reported); only a flip in a block's <7-byte tail is harmless
        assert scan.damage or scan.truncated or scan.history_rows == full.history_rows


@FUZZ
@given(st.data())
def test_inflated_length_fields_are_checked_against_the_block_and_file(big_run, data):
    spans = chunk_spans(big_run)
    start, length, ctype = data.draw(st.sampled_from(spans))
    new = data.draw(st.integers(length + 1, 0xFFFF))
    buf = bytearray(big_run)
    struct.pack_into("<H", buf, start + 4, new)
    scan, hist, peak = _read_measured(bytes(buf))
    assert peak < 40 * len(big_run) + (64 << 20)
    assert scan.damage or scan.truncated


@FUZZ
@given(st.binary(min_size=0, max_size=200_000))
def test_random_bytes_behind_a_valid_header(rest):
    scan, hist = _read(struct.pack("<4sHB", b":W&B", 0xBEE1, 0) + rest)
    # no chunk of random bytes passes its CRC: nothing is recovered, and nothing is made up
    assert scan is not None and scan.history_rows == hist.n_rows == 0
    assert scan.config == {} and scan.summary == {} and scan.exit_code is None


@FUZZ
@given(st.data())
def test_damaged_protobuf_inside_valid_frames(records_of, data):
    """CRCs are right, the records are not: truncated, overwritten, spliced, or carrying a
    length-delimited field that claims gigabytes."""
    recs = list(records_of)
    n = data.draw(st.integers(1, 6))
    for _ in range(n):
        i = data.draw(st.integers(0, len(recs) - 1))
        rec = recs[i]
        how = data.draw(st.sampled_from(["cut", "overwrite", "huge-length", "splice", "empty", "varint"]))
        if how == "cut":
            rec = rec[: data.draw(st.integers(0, max(0, len(rec) - 1)))]
        elif how == "overwrite":
            pos = data.draw(st.integers(0, max(0, len(rec) - 1)))
            rec = rec[:pos] + data.draw(st.binary(min_size=1, max_size=16)) + rec[pos + 1:]
        elif how == "huge-length":  # field 2 (history), length 2**31 - 1, then a few bytes
            rec = rec[:2] + b"\x12\xff\xff\xff\xff\x07" + rec[2:40]
        elif how == "splice":
            rec = rec + recs[data.draw(st.integers(0, len(recs) - 1))][::-1][:500]
        elif how == "empty":
            rec = b""
        else:  # an unterminated varint
            rec = b"\x08" + b"\xff" * 12
        recs[i] = rec
    scan, hist, peak = _read_measured(frame(recs))
    assert peak < (256 << 20)
    assert hist.n_rows <= scan.history_rows


def test_huge_length_delimited_field_is_refused_without_allocating(records_of):
    from wandb_lens.sources.local import run_file

    hist_rec = next(r for r in records_of if run_file._record_tag(r) == run_file._HISTORY_TAG)
    bomb = b"\x12\xff\xff\xff\xff\x07" + hist_rec[2:60]  # history field claiming 2 GiB
    t0 = time.monotonic()
    scan, hist, peak = _read_measured(frame([*records_of[:20], bomb, *records_of[20:40]]))
    assert time.monotonic() - t0 < 2 and peak < (64 << 20)
    good = sum(run_file._record_tag(r) == run_file._HISTORY_TAG for r in records_of[:40])
    assert hist.n_rows == good and hist.damage == [
        "1 history record(s) passed their CRC but could not be decoded: left out"]


def test_nonsense_values_in_a_valid_record_are_damage_not_a_crash(records_of):
    """History/summary items that are not JSON, NaN steps, a histogram '_type' that is an object,
    config keys nested 1,000 deep: decoded around, never raised."""
    from wandb.proto import wandb_internal_pb2 as pb

    from wandb_lens.sources.local import run_file

    def history(items: dict, num: int) -> bytes:
        r = pb.Record()
        r.history.step.num = num
        for k, v in items.items():
            it = r.history.item.add()
            it.key = k
            it.value_json = v
        return r.SerializeToString()

    cfg = pb.Record()
    item = cfg.config.update.add()
    item.nested_key.extend([f"k{i}" for i in range(1000)])
    item.value_json = "1"
    odd = [history({"_step": "NaN", "loss": "not json {", "h._type": '{"a": 1}', "h.values": "[1,2]",
                    "h.bins": "[0,1,2]"}, 0),
           history({"_step": "1e400", "loss": "0.5", "h._type": '"histogram"', "h.values": '["x"]',
                    "h.bins": '{"no": 1}'}, 1),
           history({"_step": "2", "loss": "0.25"}, 2), cfg.SerializeToString()]
    scan, hist = _read(frame([*records_of[:10], *odd]))
    assert hist.n_rows == scan.history_rows >= 3
    steps, values = hist.numeric("loss")
    assert 0.25 in values.tolist()
    import json

    json.dumps(scan.to_json(), default=str)  # the index cache can still be written (nesting capped)
    assert run_file.MAX_NESTING == 16


def test_fuzzed_runs_through_mcp_keep_the_server_answering(tmp_path, demo_dir, demo_ids, big_run):
    """Damaged copies side by side with a good run: listing works, the damaged ones say so."""
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    root = tmp_path / "wandb"
    root.mkdir()
    good = next((demo_dir / "wandb").glob(f"*-{demo_ids['baseline-cosine']}"))
    shutil.copytree(good, root / good.name)
    variants = {
        "flipped": lambda b: bytes(x ^ (0x55 if 40_000 <= i < 40_064 else 0) for i, x in enumerate(b)),
        "inflated": lambda b: b[:7] + struct.pack("<IHB", 0, 0xFFFF, 1) + b[14:],
        "random": lambda b: b[:7] + os.urandom(50_000),
        "cut": lambda b: b[: len(b) // 2 + 3],
    }
    for i, (name, mutate) in enumerate(variants.items()):
        folder = root / f"offline-run-20990101_00000{i}-fuzz{i:04d}"
        folder.mkdir()
        (folder / f"run-fuzz{i:04d}.wandb").write_bytes(mutate(big_run))
    server = build_server(AppConfig(runs_dirs=[str(root)], cache_dir=str(tmp_path / "cache")))
    s = Session(server)
    try:
        listing = s.call("query_runs", {"limit": 50}).json
        ids = {r["id"] for r in listing["runs"]}
        # the flipped and cut copies keep the big run's own run record: one run id in two folders is a
        # resumed run to W&B, listed once; the two whose head was destroyed are listed by their file names
        assert len(ids) == listing["total"] == len(variants) and {"fuzz0001", "fuzz0002"} <= ids
        damaged = [r for r in listing["runs"] if r.get("damaged")]
        assert len(damaged) >= 3  # a cut at half may land on a record end
        for name in [f"offline-run-20990101_00000{i}-fuzz{i:04d}" for i in range(len(variants))]:
            res = s.call("describe_run", {"run": name})  # each folder stays addressable by its name
            assert "Traceback" not in res.text and not _CRASH.search(res.text), res.text[:300]
        for r in listing["runs"]:
            for tool in ("describe_run", "diagnose_run", "curve_features", "plot_overview"):
                t0 = time.monotonic()
                res = s.call(tool, {"run": r["id"]})
                assert time.monotonic() - t0 < READ_LIMIT_S * 2
                assert "Traceback" not in res.text and not _CRASH.search(res.text), res.text[:300]
        assert s.call("describe_run", {"run": "baseline-cosine"}).json["history"]["keys"]["train/loss"]["n"] == 800
    finally:
        s.close()


def _one_run_server(tmp_path: Path, demo_dir, demo_ids, name: str):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    root = tmp_path / "wandb"
    src = next((demo_dir / "wandb").glob(f"*-{demo_ids[name]}"))
    shutil.copytree(src, root / src.name)
    shutil.rmtree(root / src.name / "logs", ignore_errors=True)  # the writer is gone
    path = next((root / src.name).glob("run-*.wandb"))
    return path, build_server(AppConfig(runs_dirs=[str(root)], cache_dir=str(tmp_path / "cache")))


# ----- the SQLite trace store ------------------------------------------------------------------------
WEAVE_TOOLS = ("eval_health", "eval_efficiency", "trace_stats")


def _store_server(path: Path):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    (path.parent / "no-runs").mkdir(exist_ok=True)
    return build_server(AppConfig(traces_db=str(path), runs_dirs=[str(path.parent / "no-runs")]))


def _ask_store(path: Path, ids: list[str]) -> list:
    """Every Weave tool on the (damaged) store: clean error or JSON, each under READ_LIMIT_S."""
    s = Session(_store_server(path))
    out = []
    try:
        calls = [(t, {}) for t in WEAVE_TOOLS] + [("eval_results", {"eval_id": ids[0]}),
                                                  ("compare_evals", {"eval_ids": ids[:2]}),
                                                  ("get_call", {"call_id": ids[0], "depth": 2})]
        for tool, args in calls:
            t0 = time.monotonic()
            r = s.call(tool, args, limit=30)
            assert time.monotonic() - t0 < READ_LIMIT_S, f"{tool} took {time.monotonic() - t0:.1f} s"
            assert "Traceback" not in r.text and r.text.strip() != f"Error executing tool {tool}"
            assert not _CRASH.search(r.text), f"{tool} crashed on a damaged store: {r.text[:300]}"
            if not r.is_error:
                r.json  # noqa: B018 - valid JSON
            out.append(r)
        assert s.call("list_projects", {}).json["total"] == 0  # the server still answers
    finally:
        s.close()
    return out


@pytest.fixture(scope="module")
def store(weave_db, tmp_path_factory):
    """A checkpointed copy of the demo store (no WAL beside it) and its finished evaluations."""
    base = tmp_path_factory.mktemp("store")
    path = base / "traces.db"
    src = sqlite3.connect(weave_db["path"])
    dst = sqlite3.connect(path)
    src.backup(dst)
    dst.execute("PRAGMA journal_mode=DELETE")
    dst.close()
    src.close()
    rows = sqlite3.connect(path).execute(
        "SELECT id FROM calls WHERE op_short='Evaluation.evaluate' AND ended_at IS NOT NULL ORDER BY id").fetchall()
    return _Store(path, path.read_bytes(), [r[0] for r in rows])


class _Store(dict):
    def __init__(self, path: Path, data: bytes, ids: list[str]):
        super().__init__(path=path, bytes=data, ids=ids)

    def __repr__(self) -> str:  # a failing example prints this, not 240 KB of pages
        return f"<store {self['path']} ({len(self['bytes'])} bytes)>"


def test_store_truncated_at_every_page(store, tmp_path):
    data, page = store["bytes"], 4096
    assert len(data) % page == 0 and len(data) // page >= 10
    for n in range(0, len(data) // page):
        p = tmp_path / f"cut{n}.db"
        p.write_bytes(data[: n * page] + (data[n * page: n * page + 100] if n else b""))
        results = _ask_store(p, store["ids"])
        if n == 0:
            assert all(r.is_error for r in results)


def test_store_with_a_dropped_table_or_garbage_pages(store, tmp_path):
    for table in ("calls", "objects", "table_rows", "tables", "meta"):
        p = tmp_path / f"drop-{table}.db"
        p.write_bytes(store["bytes"])
        con = sqlite3.connect(p)
        con.execute(f"DROP TABLE {table}")
        con.commit()
        con.close()
        results = _ask_store(p, store["ids"])
        if table == "calls":
            assert all(r.is_error and "not a wandb-lens trace store" in r.text for r in results)
    for page in (0, 1, 2, len(store["bytes"]) // 4096 - 1):
        p = tmp_path / f"garbage-{page}.db"
        buf = bytearray(store["bytes"])
        buf[page * 4096:(page + 1) * 4096] = os.urandom(4096)
        p.write_bytes(bytes(buf))
        _ask_store(p, store["ids"])


@FUZZ
@given(st.data())
def test_store_bit_flips(store, tmp_path_factory, data):
    buf = bytearray(store["bytes"])
    for _ in range(data.draw(st.integers(1, 12))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] ^= 1 << data.draw(st.integers(0, 7))
    p = tmp_path_factory.mktemp("flip") / "traces.db"
    p.write_bytes(bytes(buf))
    _ask_store(p, store["ids"])


def test_store_with_text_that_is_not_utf8(store, tmp_path):
    """Found by `make fuzz`: a flipped bit in the schema text (sqlite_master) made SQLite's error
    message invalid UTF-8; Python's sqlite3 raised UnicodeDecodeError (not an sqlite3.Error) and
    every Weave tool crashed with it. Stored values that are not UTF-8 are SQLite errors already."""
    data = store["bytes"].replace(b"CREATE TABLE meta (key TEXT PRIMARY KEY", b"CREATE TABLE meta (key TEXT PRIMARY \xdfEY")
    assert data != store["bytes"]
    p = tmp_path / "schema-not-utf8.db"
    p.write_bytes(data)
    results = _ask_store(p, store["ids"])
    assert all(r.is_error and "holds damaged data (UnicodeDecodeError" in r.text for r in results)
    ids = store["bytes"].replace(b"local/lens-demo-evals", b"lo\xcbal/lens-demo-evals")
    p2 = tmp_path / "values-not-utf8.db"
    p2.write_bytes(ids)
    assert all(r.is_error and "Could not decode to UTF-8" in r.text for r in _ask_store(p2, store["ids"]))


def test_the_undamaged_store_still_answers(store, tmp_path):
    p = tmp_path / "ok.db"
    p.write_bytes(store["bytes"])
    results = _ask_store(p, store["ids"])
    assert not any(r.is_error for r in results)


def test_summary_key_set_after_its_removal_stays():
    """Regression: removals were keyed as tuples and updates as names, so a summary key removed and
    later set again was deleted at the end."""
    from wandb.proto import wandb_internal_pb2 as pb

    from wandb_lens.sources.local import summary_merge

    def rec(update=None, remove=None) -> bytes:
        r = pb.Record()
        if update:
            it = r.summary.update.add()
            it.nested_key.append(update[0])
            it.value_json = update[1]
        if remove:
            r.summary.remove.add().nested_key.append(remove)
        return r.SerializeToString()

    summary: dict = {}
    merge = summary_merge.SummaryMerge()
    for r in [rec(update=("acc", "0.5")), rec(remove="acc"), rec(update=("acc", "0.9")),
              rec(update=("gone", "1")), rec(remove="gone")]:
        merge.add(r)
    merge.apply(summary)
    assert summary == {"acc": 0.9}
