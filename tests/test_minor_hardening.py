"""Smaller findings of the issue-15 pass: a run still being written is not "killed"; warm and cold
caches list keys in the same order; SIGTERM ends an HTTP server whose worker is stuck on a read."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx

from conftest import call
from test_reader_damage import _server
from lens_http import clean_env, free_port


def test_a_run_being_written_is_not_called_killed(tmp_path, demo_dir, demo_ids):
    from test_fuzz_readers import chunk_spans

    runs = tmp_path / "wandb"
    src = next((demo_dir / "wandb").glob(f"*-{demo_ids['baseline-cosine']}"))
    shutil.copytree(src, runs / src.name)
    shutil.rmtree(runs / src.name / "logs")  # no writer pid to ask: the file's age decides
    log = next((runs / src.name).glob("run-*.wandb"))
    data = log.read_bytes()
    start, length, _ = next(c for c in chunk_spans(data) if c[0] >= len(data) // 2 and c[1] > 4)
    log.write_bytes(data[: start + 7 + length // 2])  # the writer is in the middle of a record
    live = call(_server(runs, tmp_path / "c1"), "describe_run", {"run": demo_ids["baseline-cosine"]}).json
    assert live["state"] == "running"
    assert "writer killed" not in str(live.get("damage")), live.get("damage")
    listed = call(_server(runs, tmp_path / "c1"), "query_runs", {}).json["runs"]
    assert not listed[0].get("damaged"), listed[0]
    os.utime(log, (time.time() - 3600, time.time() - 3600))  # an hour without a byte: the writer is gone
    dead = call(_server(runs, tmp_path / "c2"), "describe_run", {"run": demo_ids["baseline-cosine"]}).json
    assert dead["state"] == "crashed" and "log ends mid-record (writer killed)" in dead["damage"]


def test_warm_and_cold_caches_answer_with_the_same_key_order(tmp_path, demo_dir, demo_ids):
    cache = tmp_path / "cache"
    runs = demo_dir / "wandb"
    for name in ("plateau-tiny-lr", "custom-step-axis"):
        cold = call(_server(runs, cache), "describe_run", {"run": demo_ids[name]}).text
        warm = call(_server(runs, cache), "describe_run", {"run": demo_ids[name]}).text
        assert list(_keys(cold)) == list(_keys(warm)) and cold == warm, name


def _keys(text: str) -> list:
    import json

    return list(json.loads(text)["history"]["keys"])


_STUCK = """
import sys, threading
from wandb_lens.sources.local import source
def stuck(self, *a, **k):  # a read that never returns (a hung network file system, a device)
    threading.Event().wait()
source.LocalRunSource.list_runs = stuck
from wandb_lens.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_ends_the_http_server_when_a_worker_is_stuck_on_a_read(tmp_path, demo_dir):
    script = tmp_path / "stuck_server.py"
    script.write_text(_STUCK)
    port = free_port()
    err = open(tmp_path / "stderr", "wb")
    proc = subprocess.Popen([sys.executable, str(script), "serve", "--transport", "http", "--port", str(port),
                             "--runs-dir", str(demo_dir / "wandb")], stderr=err, stdout=subprocess.DEVNULL,
                            env=clean_env(WANDB_LENS_CACHE_DIR=str(tmp_path / "cache")))
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.1)
        h = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        sid = httpx.post(f"{base}/mcp", json=init, headers=h, timeout=10).headers["mcp-session-id"]
        h = {**h, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
        httpx.post(f"{base}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=h, timeout=10)
        stuck = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                 "params": {"name": "list_projects", "arguments": {}}}
        threading.Thread(target=lambda: _quietly(httpx.post, f"{base}/mcp", json=stuck, headers=h, timeout=60),
                         daemon=True).start()
        time.sleep(1.0)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)  # before the watchdog: never (asyncio waited for the stuck thread)
        took = time.monotonic() - t0
        assert proc.returncode == 0 and took < 20, (proc.returncode, took)
        assert "worker thread is stuck" in (tmp_path / "stderr").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        err.close()


def _quietly(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except httpx.HTTPError:
        pass
