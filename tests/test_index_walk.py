"""The index walk (history never read) gives exactly the full scan's index, or hands the log to the scan.

Compared field by field on every kind of log we have: the demo runs, the extras runs (console,
system metrics, artifacts, a sweep group), the runs each wandb version writes (finished, failed,
killed), resumed runs (tests/test_run_folders.py calls `assert_same_index`), logs cut at many
points and logs with a damaged byte; and end to end, the listing and a filtered query through an
MCP client with the walk and with the scan only.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from conftest import call
from wandb_lens.sources.local import index_walk, run_file
from wandb_lens.sources.local.wandb_file import BLOCK


def _doc(scan) -> str:
    d = scan.to_json()
    d.pop("index_method")
    return json.dumps(d, sort_keys=True, default=repr)


def assert_same_index(data: bytes, where: str = "") -> str:
    """The walk's index equals the scan's, or the walk declined; returns the walk's reason ('' = walked)."""
    walked, why = index_walk.walk(data)
    scanned, _ = run_file.scan(data)
    if walked is None:
        assert why, where
        return why
    assert walked.index_method == index_walk.WALK
    assert _doc(walked) == _doc(scanned), where
    return ""


def _logs(folder: Path) -> list[Path]:
    return sorted(folder.glob("**/run-*.wandb"))


def _cuts(size: int) -> list[int]:
    points = {size - 1, size - 3, size - 7, size // 2, size // 3, 7, 8, 100}
    for b in range(BLOCK, size, BLOCK):
        points |= {b - 1, b, b + 7, b + 50}
    return sorted(p for p in points if 7 <= p < size)


def test_demo_and_extras_logs_walk_to_the_scans_index(demo_dir, extras_dir):
    logs = _logs(demo_dir) + _logs(extras_dir)
    assert len(logs) >= 10
    reasons = [assert_same_index(p.read_bytes(), str(p)) for p in logs]
    assert reasons.count("") >= len(logs) - 2, reasons  # the demo logs are clean and hold their summary


def test_cut_and_damaged_logs(demo_dir):
    log = max(_logs(demo_dir), key=lambda p: p.stat().st_size)
    data = log.read_bytes()
    assert len(data) > 2 * BLOCK
    reasons = {assert_same_index(data[:n], f"cut at {n}") for n in _cuts(len(data))}
    assert "cut tail" in reasons  # cut mid-chunk: the scan reads it and says it is truncated
    for at in (len(data) // 2, BLOCK + 3, len(data) - 20):
        bad = bytearray(data)
        bad[at] ^= 0x55
        assert assert_same_index(bytes(bad), f"flipped byte {at}") in ("damaged framing", "cut tail")


def test_every_wandb_versions_logs(tmp_path):
    import wandb_versions as WV

    seen = {}
    for version in WV.VERSIONS:
        try:
            folder = WV.runs_folder(version)
        except WV.Unavailable as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(str(exc))
            continue
        for log in _logs(folder):
            data = log.read_bytes()
            seen[f"{version}/{log.parent.name}"] = assert_same_index(data, str(log))
            for n in (len(data) // 2, len(data) - 5):
                assert_same_index(data[:n], f"{log} cut at {n}")
    if not seen:
        pytest.skip("no wandb version's runs could be built here")
    # finished and failed runs are walked; a killed run is left to the scan: its log is cut mid-record
    # (wandb-core), or holds no summary record (older versions: derived from the history)
    assert list(seen.values()).count("") >= 2 * len(seen) // 3 - 1, seen
    assert set(seen.values()) <= {"", "cut tail", "no summary record: derived from the history"}, seen


def test_listing_and_query_through_mcp_equal_with_and_without_the_walk(demo_dir, extras_dir, tmp_path, monkeypatch):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    roots = [str(demo_dir / "wandb"), str(extras_dir / "wandb")]
    query = {"filters": {"state": {"$in": ["finished", "failed"]}}, "order": "-summary._step", "limit": 50,
             "config_keys": ["lr"]}

    def answers(cache: Path) -> tuple:
        server = build_server(AppConfig(runs_dirs=roots, cache_dir=str(cache)))
        listed = call(server, "list_projects").json
        queried = call(server, "query_runs", query).json
        runs = [call(server, "describe_run", {"run": r["id"]}).json for r in queried["runs"][:4]]
        return listed, queried, runs

    walked = answers(tmp_path / "walk")
    methods = {json.loads(p.read_text())["scan"]["index_method"] for p in (tmp_path / "walk" / "index").glob("*.json")}
    assert methods <= {index_walk.WALK, "scan: cut tail"} and index_walk.WALK in methods  # a demo run is killed
    monkeypatch.setattr(index_walk, "walk", lambda data, label="": (None, "test: scan only"))
    scanned = answers(tmp_path / "scan")
    methods = {json.loads(p.read_text())["scan"]["index_method"] for p in (tmp_path / "scan" / "index").glob("*.json")}
    assert methods == {"scan: test: scan only"}
    assert walked[1]["total"] >= 5
    assert json.dumps(walked, sort_keys=True) == json.dumps(scanned, sort_keys=True)


def _listing(src) -> str:
    return json.dumps(sorted((r.__dict__ for r in src.list_runs()), key=lambda d: d["path"]), sort_keys=True, default=repr)


def test_a_helper_process_indexes_half_of_a_cold_listing(demo_dir, extras_dir, tmp_path, monkeypatch):
    """The cold listing's helper (index_pool) takes files from the end; the answer is the one-process
    listing's; a helper that dies leaves the listing to index the rest itself."""
    from wandb_lens.sources.local import index_pool
    from wandb_lens.sources.local.source import LocalRunSource

    roots = [demo_dir / "wandb", extras_dir / "wandb"]
    monkeypatch.setattr(index_pool, "MIN_FILES", 2)
    monkeypatch.setenv("WANDB_LENS_DECODE_WORKERS", "2")
    helpers = []
    real_start = index_pool.start

    def start(*args):
        helpers.append(real_start(*args))
        return helpers[-1]

    monkeypatch.setattr(index_pool, "start", start)
    alone = LocalRunSource(roots, cache_dir=tmp_path / "alone")
    monkeypatch.setattr(index_pool, "MIN_FILES", 10**9)
    expected = _listing(alone)
    monkeypatch.setattr(index_pool, "MIN_FILES", 2)
    real_scan = LocalRunSource._scan

    def slow_scan(self, path, st):  # this process only: it waits for the helper's first index (~1 s to start)
        helper = helpers[-1]
        with helper._cond:
            helper._cond.wait_for(lambda: helper.done or not helper.alive, timeout=60)
        return real_scan(self, path, st)

    monkeypatch.setattr(LocalRunSource, "_scan", slow_scan)
    assert _listing(LocalRunSource(roots, cache_dir=tmp_path / "pair")) == expected
    assert helpers and helpers[-1].done and not helpers[-1].alive and helpers[-1].proc.returncode is not None
    monkeypatch.setattr(LocalRunSource, "_scan", real_scan)
    monkeypatch.setattr(index_pool, "command", lambda: [sys.executable, "-c", "raise SystemExit(3)"])
    assert _listing(LocalRunSource(roots, cache_dir=tmp_path / "dead")) == expected
    assert not helpers[-1].done and helpers[-1].proc.returncode == 3
