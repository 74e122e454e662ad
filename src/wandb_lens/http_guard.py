"""The connection guard in HTTP mode: what a client gets before uvicorn (and the ASGI gate) sees it.

An asyncio protocol wrapped around uvicorn's HTTP protocol. Each accepted connection is first
"pending": the guard buffers its first request head (at most `max_head` bytes) for at most
`header_timeout` seconds, then, as soon as the head is complete,
- `GET /healthz` is answered here (200 `{"ok":true}`, connection closed): a health check never
  holds a connection or reaches the app;
- without the right `X-Wandb-Lens-Token` (when a token is configured) the answer is 401 and the
  connection is closed: the token is checked the moment the headers are complete, before any
  body is read or any app code runs;
- otherwise the connection is handed to uvicorn with the bytes read so far, and from then on
  uvicorn's own keep-alive timeout applies between requests. The ASGI gate (http_mode.Gate)
  checks the token again on every request: the guard only ever refuses earlier, it never admits
  what the gate would refuse.

Caps, per client address and in total, on open connections and on pending ones, are applied by
the listening socket itself (`guarded_listener`): a connection over a cap is closed inside
`accept()`, before asyncio builds a transport for it (~20 us, not ~500 us), so a burst of thousands
of half-open sockets from one client neither exhausts the file descriptors nor fills the accept
queue that other clients wait in. Refusals and
timeouts are counted and logged once per `LOG_INTERVAL_S`, never per connection; so are
repeated log records from asyncio (accept errors) and uvicorn (`log_once_per_interval`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass
from email.utils import formatdate

log = logging.getLogger("wandb_lens.http")

LOG_INTERVAL_S = 10.0
_REASONS = {200: "OK", 401: "Unauthorized", 405: "Method Not Allowed", 408: "Request Timeout",
            431: "Request Header Fields Too Large"}


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0  # seconds for a connection's first request head to arrive whole
    max_head: int = 16 * 1024  # bytes of that head (request line + headers)
    max_open: int = 1024  # connections open at once, in total (lowered to fit the fd limit)
    max_open_per_client: int = 256  # ... from one client address
    max_pending: int = 256  # connections whose first request head is not yet complete and checked
    max_pending_per_client: int = 32

    def fit_fd_limit(self) -> Limits:
        """Raise the soft fd limit to the hard one (at most 65,536) and keep `max_open` well below it."""
        try:
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            want = min(hard if hard != resource.RLIM_INFINITY else 65536, 65536)
            if soft != resource.RLIM_INFINITY and soft < want:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
                soft = want
        except (ImportError, ValueError, OSError):
            return self
        room = max(64, int(soft) - 128)  # files, caches, the trace store and worker threads need some
        if self.max_open <= room:
            return self
        return Limits(self.header_timeout, self.max_head, room, min(self.max_open_per_client, room),
                      min(self.max_pending, room), min(self.max_pending_per_client, room))


class Tally:
    """Connection counts per client, and what was refused since the last log line."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.open: Counter[str] = Counter()
        self.pending: Counter[str] = Counter()
        self.open_total = 0
        self.pending_total = 0
        self.refused: Counter[str] = Counter()  # since the last log line
        self.refused_total: Counter[str] = Counter()  # since the start
        self._next_log = 0.0
        self._flush_handle: asyncio.TimerHandle | None = None

    def admit(self, client: str) -> str | None:
        """Count a new connection as open and pending; or say which cap refuses it."""
        lim = self.limits
        if self.open_total >= lim.max_open:
            return "total connections"
        if self.pending_total >= lim.max_pending:
            return "total connections still sending their headers"
        if self.open[client] >= lim.max_open_per_client:
            return "connections per client"
        if self.pending[client] >= lim.max_pending_per_client:
            return "connections per client still sending their headers"
        self.open[client] += 1
        self.pending[client] += 1
        self.open_total += 1
        self.pending_total += 1
        return None

    def settle(self, client: str) -> None:
        """The connection's first head was complete and accepted: no longer pending."""
        self._drop(self.pending, client)
        self.pending_total -= 1

    def close(self, client: str, pending: bool) -> None:
        self._drop(self.open, client)
        self.open_total -= 1
        if pending:
            self.settle(client)

    @staticmethod
    def _drop(counter: Counter, client: str) -> None:
        counter[client] -= 1
        if counter[client] <= 0:
            del counter[client]

    def note(self, what: str) -> None:
        """Count a refusal; log the counts at most once per LOG_INTERVAL_S."""
        self.refused[what] += 1
        self.refused_total[what] += 1
        now = time.monotonic()
        if now >= self._next_log:
            self.flush()
        elif self._flush_handle is None:
            try:
                self._flush_handle = asyncio.get_running_loop().call_at(
                    asyncio.get_running_loop().time() + (self._next_log - now), self.flush)
            except RuntimeError:
                pass

    def flush(self) -> None:
        self._flush_handle = None
        if not self.refused:
            return
        parts = ", ".join(f"{n:,} {what}" for what, n in self.refused.most_common())
        log.warning("HTTP connections refused or closed in the last %.0f s: %s (open now %d, still "
                    "sending headers %d)", LOG_INTERVAL_S, parts, self.open_total, self.pending_total)
        self.refused.clear()
        self._next_log = time.monotonic() + LOG_INTERVAL_S


def _response(status: int, body: dict) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\ndate: {formatdate(usegmt=True)}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(data)}\r\nconnection: close\r\n")
    return head.encode("latin-1") + b"\r\n" + data


def _head_end(buf: bytearray) -> int:
    """Index just past the blank line ending the request head, or -1."""
    ends = [i + n for i, n in ((buf.find(b"\r\n\r\n"), 4), (buf.find(b"\n\n"), 2)) if i >= 0]
    return min(ends) if ends else -1


def _parse_head(head: bytes) -> tuple[bytes, bytes, dict[bytes, bytes]]:
    """(method, path, headers with lower-cased names) of a request head; first value of each name."""
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    parts = lines[0].split()
    method = parts[0] if parts else b""
    target = parts[1] if len(parts) > 1 else b""
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    return method, target.split(b"?", 1)[0], headers


def guarded_protocol(inner_cls, *, token: str | None, token_header: str, health_path: str, tally: Tally):
    """An asyncio protocol class for uvicorn's `http=`: the guard above, wrapping `inner_cls`."""
    token_b = token.encode("latin-1") if token is not None else None
    header_b = token_header.lower().encode("latin-1")
    health_b = health_path.encode("latin-1")
    limits = tally.limits
    auth_body = {"error": f"missing or wrong {token_header} header"}

    class Guarded(asyncio.Protocol):
        def __init__(self, config, server_state, app_state, _loop=None):
            self._args = (config, server_state, app_state, _loop)
            self._inner = None
            self._transport = None
            self._client = ""
            self._state = "new"  # pending -> passed | closed
            self._buf = bytearray()
            self._timer: asyncio.TimerHandle | None = None

        # -- before the hand-over ------------------------------------------------------------
        def connection_made(self, transport):
            self._transport = transport  # admitted (counted) by the listener's accept()
            peer = transport.get_extra_info("peername")
            self._client = _client_of(peer)
            self._state = "pending"
            self._timer = asyncio.get_running_loop().call_later(limits.header_timeout, self._too_slow)

        def _too_slow(self):
            self._timer = None
            if self._state == "pending":
                tally.note("headers not complete in time")
                self._answer(408, {"error": "request headers not complete in time"})

        def _answer(self, status: int, body: dict):
            t = self._transport
            try:
                t.write(_response(status, body))
            except Exception:  # noqa: BLE001 - a socket already gone
                pass
            t.close()

        def data_received(self, data):
            if self._state == "passed":
                return self._inner.data_received(data)
            if self._state != "pending":
                return
            self._buf += data
            end = _head_end(self._buf)
            if end < 0:
                if len(self._buf) > limits.max_head:
                    tally.note("request heads too large")
                    self._finish_pending(431, {"error": "request head too large"})
                return
            if end > limits.max_head:
                tally.note("request heads too large")
                return self._finish_pending(431, {"error": "request head too large"})
            method, path, headers = _parse_head(bytes(self._buf[:end]))
            if path == health_b:
                if method == b"GET":
                    return self._finish_pending(200, {"ok": True})
                return self._finish_pending(405, {"error": "method not allowed"})
            if token_b is not None and not hmac.compare_digest(headers.get(header_b, b""), token_b):
                tally.note("requests without the right token")
                return self._finish_pending(401, auth_body)
            self._hand_over()

        def _finish_pending(self, status: int, body: dict):
            self._cancel_timer()
            self._answer(status, body)

        def _hand_over(self):
            self._cancel_timer()
            config, server_state, app_state, loop = self._args
            self._inner = inner_cls(config=config, server_state=server_state, app_state=app_state, _loop=loop)
            self._state = "passed"
            tally.settle(self._client)
            buf, self._buf = bytes(self._buf), bytearray()
            self._inner.connection_made(self._transport)
            self._inner.data_received(buf)

        def _cancel_timer(self):
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        # -- always ----------------------------------------------------------------------------
        def connection_lost(self, exc):
            self._cancel_timer()
            if self._state == "passed":
                tally.close(self._client, pending=False)
                self._inner.connection_lost(exc)
            elif self._state == "pending":
                tally.close(self._client, pending=True)
            self._state = "gone"

        def eof_received(self):
            if self._state == "passed":
                return self._inner.eof_received()
            return None  # close

        def pause_writing(self):
            if self._state == "passed":
                self._inner.pause_writing()

        def resume_writing(self):
            if self._state == "passed":
                self._inner.resume_writing()

    return Guarded


def _client_of(peer) -> str:
    return str(peer[0]) if isinstance(peer, tuple) and peer else "local"


_DROP_BATCH = 256  # connections dropped per accept() call before the loop gets a turn


class _GuardedListener(socket.socket):
    """A listening socket whose accept() closes, at once, every connection over the tally's caps;
    the connections it returns are counted as open and pending (the guarded protocol settles them)."""

    tally: Tally

    def accept(self):
        for _ in range(_DROP_BATCH):
            fd, addr = self._accept()  # BlockingIOError when the queue is empty: asyncio waits
            why = self.tally.admit(_client_of(addr))
            if why is None:
                conn = socket.socket(self.family, self.type, self.proto, fileno=fd)
                return conn, addr
            os.close(fd)
            self.tally.note(f"over the cap on {why}")
        raise BlockingIOError  # more waiting: asyncio calls again on the next turn of the loop


def guarded_listener(sock: socket.socket, tally: Tally) -> socket.socket:
    """`sock` (bound, e.g. uvicorn's Config.bind_socket()) as a listener that applies the caps."""
    listener = _GuardedListener(sock.family, sock.type, sock.proto, fileno=sock.detach())
    listener.tally = tally
    return listener


class OncePerInterval(logging.Filter):
    """Lets a log record through once per LOG_INTERVAL_S per (logger, first line); the next one after
    the interval says how many were held back. For asyncio's accept errors and uvicorn's per-request warnings."""

    def __init__(self, interval: float = LOG_INTERVAL_S):
        super().__init__()
        self.interval = interval
        self._seen: dict[tuple[str, str], list] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg).split("\n", 1)[0][:120])
        now = time.monotonic()
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            return False
        held = entry[1] if entry else 0
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = [now, 0]
        if held:
            record.msg = f"{record.msg} ({held:,} more like this in the last {self.interval:.0f} s, not logged)"
        return True


def log_once_per_interval(*names: str) -> OncePerInterval:
    flt = OncePerInterval()
    for name in names:
        logging.getLogger(name).addFilter(flt)
    return flt
