"""The server as clients really meet it: a stdio subprocess and streamable HTTP on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import anyio
import pytest


def _env(cache) -> dict:
    return {**os.environ, "WANDB_LENS_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}


def _serve_cmd(demo_dir, *extra) -> list[str]:
    return [sys.executable, "-m", "wandb_lens", "serve", "--runs-dir", str(demo_dir / "wandb"), *extra]


def test_stdio_client_session(demo_dir, tmp_path):
    from mcp import Client, StdioServerParameters

    cmd = _serve_cmd(demo_dir)
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=_env(tmp_path))

    async def go():
        async with Client(params) as c:
            tools = (await c.list_tools()).tools
            q = await c.call_tool("query_runs", {"project": "lens-demo", "filters": {"state": "crashed"}})
            d = await c.call_tool("describe_run", {"run": "lens-demo/overfit-wide-model"})
            return tools, q, d

    tools, q, d = anyio.run(go)
    assert {"list_projects", "query_runs", "describe_run"} <= {t.name for t in tools}
    out = json.loads(q.content[0].text)
    assert out["total"] == 1 and out["runs"][0]["name"] == "killed-mid-run"
    desc = json.loads(d.content[0].text)
    assert desc["history"]["keys"]["train_loss"]["n"] == 1500 and desc["history"]["keys"]["val_loss"]["n"] == 60


def test_stdio_stdout_carries_only_protocol(demo_dir, tmp_path):
    """Every line the server writes to stdout is a JSON-RPC message; logs go to stderr."""
    proc = subprocess.Popen(_serve_cmd(demo_dir), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**_env(tmp_path), "WANDB_LENS_LOG": "DEBUG"})
    msgs = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "describe_run", "arguments": {"run": "lr-too-high"}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "describe_run", "arguments": {"run": "nope"}}},
    ]
    import threading

    watchdog = threading.Timer(60, proc.kill)  # never hang the suite
    watchdog.start()
    parsed = []
    try:
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in msgs).encode())
        proc.stdin.flush()
        while {1, 2, 3, 4} - {p.get("id") for p in parsed}:
            line = proc.stdout.readline()
            if not line:
                break
            if line.strip():
                parsed.append(json.loads(line))  # raises on any stray print
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
    assert all(p.get("jsonrpc") == "2.0" for p in parsed)
    by_id = {p.get("id"): p for p in parsed}
    assert {1, 2, 3, 4} <= set(by_id)
    assert by_id[4]["result"]["isError"] is True
    assert json.loads(by_id[3]["result"]["content"][0]["text"])["state"] == "failed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server(demo_dir, tmp_path):
    port = _free_port()
    proc = subprocess.Popen(_serve_cmd(demo_dir, "--transport", "http", "--port", str(port)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(tmp_path))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode())
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(10)


def test_streamable_http_session(http_server):
    from mcp import Client

    async def go():
        async with Client(http_server) as c:
            tools = (await c.list_tools()).tools
            r = await c.call_tool("list_projects", {})
            q = await c.call_tool("query_runs", {"limit": 2})
            return tools, r, q

    tools, r, q = anyio.run(go)
    assert "describe_run" in {t.name for t in tools}
    assert json.loads(r.content[0].text)["projects"][0]["runs"] == 8
    page = json.loads(q.content[0].text)
    assert page["returned"] == 2 and page["total"] == 8 and page["truncated"] is True
