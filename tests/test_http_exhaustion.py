"""Connection exhaustion without a token (issue 15): the guard in front of uvicorn (http_guard.py).

A real server subprocess on loopback (token on), its file descriptors limited to 1,024 (a common
default; the attack below exhausted them before the guard). An attacker holds many half-open connections from
127.0.0.2 (another client address on the loopback network): each sends part of a request head and
stalls. Meanwhile another client (127.0.0.1) must get `/healthz` and a whole MCP session with a
tools/call answered, and the server's stderr must stay small. `make test` holds 1,500 connections;
`make load` 5,000 (WANDB_LENS_HALF_OPEN=5000). Both are bounded in count and time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import selectors
import socket
import time

import anyio
import httpx
import pytest

from lens_http import TOKEN, TOKEN_HEADER, LensHTTP, clean_env, open_session
from wandb_lens.http_guard import Limits, OncePerInterval, Tally, guarded_listener, guarded_protocol

ATTACKER = "127.0.0.2"
HALF_OPEN = int(os.environ.get("WANDB_LENS_HALF_OPEN", "1500"))


@pytest.fixture(scope="module")
def guarded_server(demo_dir, tmp_path_factory):
    srv = LensHTTP(["--runs-dir", str(demo_dir / "wandb")], tmp_path_factory.mktemp("exhaustion"),
                   env=clean_env(WANDB_LENS_TOKEN=TOKEN), max_fds=1024)
    yield srv
    srv.stop()


def _raise_fd_limit(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            pytest.skip(f"needs {n} file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def _half_open(port: int, n: int, deadline_s: float = 60.0) -> list[socket.socket]:
    """n connections from ATTACKER to the port, each having sent part of a request head (no token)."""
    _raise_fd_limit(n + 512)
    socks, sel = [], selectors.DefaultSelector()
    t_end = time.monotonic() + deadline_s
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.bind((ATTACKER, 0))
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE)
    waiting = len(socks)
    while waiting and time.monotonic() < t_end:
        for key, _ in sel.select(timeout=1):
            sel.unregister(key.fileobj)
            waiting -= 1
            try:
                key.fileobj.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n")
            except OSError:
                pass  # refused by the guard already: that is the point
    sel.close()
    return socks


async def _timed_session(url: str) -> dict:
    t0 = time.monotonic()
    with anyio.fail_after(60):
        async with open_session(url, {TOKEN_HEADER: TOKEN}, timeout=30) as s:
            t1 = time.monotonic()
            out = await s.call_tool("list_projects", {})
            t2 = time.monotonic()
    return {"initialize_s": t1 - t0, "call_s": t2 - t1, "text": out.content[0].text, "error": out.is_error}


def test_half_open_connections_from_one_client_do_not_starve_others(guarded_server):
    srv = guarded_server
    anyio.run(_timed_session, srv.url)  # warm: imports and the run index
    quiet = anyio.run(_timed_session, srv.url)  # the same session without the attack, for comparison
    before = srv.stderr_path.stat().st_size
    socks = _half_open(srv.port, HALF_OPEN)
    try:
        time.sleep(0.5)  # let the server accept (and refuse) what it will
        t0 = time.monotonic()
        health = httpx.get(f"{srv.base}/healthz", timeout=10)
        health_s = time.monotonic() - t0
        session = anyio.run(_timed_session, srv.url)
        assert health.status_code == 200 and health.content == b'{"ok":true}'
        assert not session["error"] and "lens-demo" in session["text"]
        # the target is 1 s (make load, recorded in RELIABILITY.md); a loaded CI machine gets slack
        assert health_s < 10 and session["call_s"] < 10, (health_s, session)
        print(f"\n{HALF_OPEN} half-open: healthz {health_s * 1000:.0f} ms, initialize "
              f"{session['initialize_s'] * 1000:.0f} ms, tools/call {session['call_s'] * 1000:.0f} ms "
              f"(without: initialize {quiet['initialize_s'] * 1000:.0f} ms, "
              f"tools/call {quiet['call_s'] * 1000:.0f} ms)")
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    grown = srv.stderr_path.stat().st_size - before
    assert grown < 1_000_000, grown
    log = srv.stderr()
    assert "over the cap on connections per client still sending their headers" in log
    assert log.count("HTTP connections refused or closed") <= 3  # once per 10 s, not per connection
    # the attacker's slots are free again: the same address may connect and is answered
    with socket.create_connection(("127.0.0.1", srv.port), source_address=(ATTACKER, 0), timeout=5) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.1 200")


def test_token_is_checked_as_soon_as_the_headers_are_complete(guarded_server):
    """A request announcing a 100 MB body without the token is refused before any body byte is sent."""
    with socket.create_connection(("127.0.0.1", guarded_server.port), timeout=5) as c:
        c.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n")
        answer = c.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert answer.endswith(b'{"error":"missing or wrong X-Wandb-Lens-Token header"}')


# ----- the guard in-process (small limits, no uvicorn) ------------------------------------------

class _Echo(asyncio.Protocol):
    """Stands in for uvicorn's protocol behind the guard: answers each complete head with 204."""

    def __init__(self, config, server_state, app_state, _loop=None):
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")


async def _guarded(limits: Limits, token: str | None = None):
    tally = Tally(limits)
    proto = guarded_protocol(_Echo, token=token, token_header=TOKEN_HEADER, health_path="/healthz", tally=tally)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    listener = guarded_listener(sock, tally)
    server = await asyncio.get_running_loop().create_server(
        lambda: proto(config=None, server_state=None, app_state=None), sock=listener)
    return server, listener.getsockname()[1], tally


async def _exchange(port: int, data: bytes, source: str = "127.0.0.1", wait: float = 3.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(4096), wait)
    finally:
        writer.close()


def test_a_request_head_that_never_completes_is_closed_after_the_header_timeout():
    async def go():
        server, port, tally = await _guarded(Limits(header_timeout=0.3))
        async with server:
            t0 = time.monotonic()
            answer = await _exchange(port, b"GET /mcp HTTP/1.1\r\nHost: x\r\n")  # never finished
            took = time.monotonic() - t0
            assert answer.startswith(b"HTTP/1.1 408") and 0.25 < took < 2.5, (answer, took)
            # one byte at a time is no way around it: the timeout counts from the accept
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            t0 = time.monotonic()

            async def trickle():
                try:
                    for b in b"GET /mcp HTTP/1.1\r\nHost: x\r\n" * 10:
                        writer.write(bytes([b]))
                        await writer.drain()
                        await asyncio.sleep(0.02)
                except ConnectionError:
                    pass

            task = asyncio.create_task(trickle())
            answer = await asyncio.wait_for(reader.read(4096), 3)
            writer.close()
            task.cancel()
            assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - t0 < 2.5
            await asyncio.sleep(0.05)
            assert tally.open_total == 0 and tally.pending_total == 0

    asyncio.run(go())


def test_caps_per_client_and_on_pending_connections():
    async def go():
        server, port, tally = await _guarded(Limits(header_timeout=5, max_pending_per_client=3, max_pending=5,
                                                     max_open_per_client=4, max_open=10))
        async with server:
            stalled = [await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0)) for _ in range(3)]
            await asyncio.sleep(0.1)
            assert await _exchange(port, b"", source=ATTACKER) == b""  # a 4th pending one: closed at accept
            # another client is still served (a whole head is handed to the app behind the guard)
            assert (await _exchange(port, b"GET /mcp HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(b"HTTP/1.1 204")
            assert (await _exchange(port, b"GET /healthz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200")
            for _, w in stalled:
                w.close()
            await asyncio.sleep(0.1)
            assert tally.pending_total == 0
            assert tally.refused_total["over the cap on connections per client still sending their headers"] == 1

    asyncio.run(go())


def test_unauthenticated_heads_are_refused_and_oversized_heads_cut():
    async def go():
        server, port, _ = await _guarded(Limits(header_timeout=5, max_head=1024), token=TOKEN)
        async with server:
            assert (await _exchange(port, b"POST /mcp HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(b"HTTP/1.1 401")
            wrong = f"POST /mcp HTTP/1.1\r\n{TOKEN_HEADER}: {TOKEN[:-1]}x\r\n\r\n".encode()
            assert (await _exchange(port, wrong)).startswith(b"HTTP/1.1 401")
            right = f"POST /mcp HTTP/1.1\r\n{TOKEN_HEADER.lower()}: {TOKEN}\r\n\r\n".encode()
            assert (await _exchange(port, right)).startswith(b"HTTP/1.1 204")
            big = b"GET /mcp HTTP/1.1\r\nX-Pad: " + b"a" * 2000
            assert (await _exchange(port, big)).startswith(b"HTTP/1.1 431")
            assert (await _exchange(port, b"POST /healthz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")

    asyncio.run(go())


def test_accept_errors_are_logged_once_per_interval(caplog):
    """asyncio logs each failed accept (EMFILE) with a traceback; 10,000 of them make one record."""
    flt = OncePerInterval(interval=60)
    logger = logging.getLogger("asyncio")
    logger.addFilter(flt)
    try:
        loop = asyncio.new_event_loop()
        sock = socket.socket()
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            for _ in range(10_000):
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(24, "Too many open files"), "socket": sock})
        sock.close()
        loop.close()
    finally:
        logger.removeFilter(flt)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1 and "out of system resource" in records[0].getMessage()
