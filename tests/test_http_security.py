"""DNS-rebinding protection on HTTP binds the SDK does not protect by itself (`--host 0.0.0.0`).

The SDK turns Host/Origin checks on only when the bind host is a loopback string; bound to all
interfaces, a page on evil.example resolving to this machine could call the tools. The conformance
suite's `dns-rebinding-protection` scenario covers the loopback bind (make conformance).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

INIT = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def all_interfaces_server(tmp_path_factory):
    port = _free_port()
    tmp = tmp_path_factory.mktemp("http-security")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wandb_lens", "serve", "--transport", "http", "--host", "0.0.0.0", "--port", str(port),
         "--allow-host", "lens.example.internal", "--runs-dir", str(tmp), "--cache-dir", str(tmp / "cache")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {proc.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _post(port: int, host: str, origin: str | None = None) -> int:
    import httpx

    headers = {"Host": host, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if origin:
        headers["Origin"] = origin
    return httpx.post(f"http://127.0.0.1:{port}/mcp", content=INIT, headers=headers, timeout=10).status_code


def test_all_interfaces_bind_rejects_foreign_host_header(all_interfaces_server):
    assert _post(all_interfaces_server, "evil.example:80", origin="http://evil.example") == 421


def test_all_interfaces_bind_rejects_foreign_origin(all_interfaces_server):
    port = all_interfaces_server
    assert _post(port, f"127.0.0.1:{port}", origin="http://evil.example") == 403


def test_all_interfaces_bind_accepts_loopback_and_allowed_hosts(all_interfaces_server):
    port = all_interfaces_server
    assert _post(port, f"127.0.0.1:{port}", origin=f"http://127.0.0.1:{port}") == 200
    assert _post(port, f"localhost:{port}") == 200
    assert _post(port, f"lens.example.internal:{port}", origin=f"https://lens.example.internal:{port}") == 200
