"""HTTP mode: streamable HTTP behind a shared token, a body-size cap, `/healthz`, graceful SIGTERM.

Two headers, two jobs:
- `X-Wandb-Lens-Token: <token>` is the server's shared token (`--auth-token` / `WANDB_LENS_TOKEN`).
  With a token configured, every request except `GET /healthz` must carry it (compared in constant
  time); without one the answer is 401 before anything else runs (no session, no body read).
- `Authorization: Bearer <W&B key>` stays the per-request W&B key of the cloud source (tools/_base.py).
  It is checked only after the token: a W&B key never opens the server by itself.

A token is required to bind anything but a loopback address; `check_bind` says why when it is missing.
Before uvicorn sees a connection, http_guard caps connections (per client, in total, still sending
headers), times out a first request head that does not arrive whole, answers `/healthz` itself and
refuses a request without the token as soon as its headers are complete.
Host/Origin validation (DNS rebinding) is the SDK's, configured in cli._transport_security.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import signal

TOKEN_HEADER = "X-Wandb-Lens-Token"
TOKEN_ENV = "WANDB_LENS_TOKEN"
MIN_TOKEN_LEN = 16
MAX_BODY_BYTES = 1024 * 1024  # JSON-RPC requests are small; the SDK's default is 4 MiB
GRACEFUL_SHUTDOWN_S = 5.0  # in-flight requests get this long after SIGTERM; open SSE streams are then closed
HEALTH_PATH = "/healthz"
KEEP_ALIVE_S = 5.0  # an idle connection between requests is closed after this long (uvicorn)
_HEADER_KEY = TOKEN_HEADER.lower().encode("latin-1")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`; anything else (0.0.0.0, ::, a name, a LAN address) is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> str | None:
    """Why the server must not start with this bind and token, or None when it may."""
    if token is not None:
        if len(token) < MIN_TOKEN_LEN or not all(0x21 <= ord(c) <= 0x7E for c in token):
            return (f"the auth token must be at least {MIN_TOKEN_LEN} visible ASCII characters (no spaces); "
                    "make one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
        return None
    if not is_loopback(host):
        return (f"refusing to serve HTTP on non-loopback address {host!r} without a shared token: set "
                f"{TOKEN_ENV} (or --auth-token) and have clients send it as the `{TOKEN_HEADER}` header; "
                "or bind 127.0.0.1")
    return None


class Gate:
    """ASGI middleware in front of the SDK app: the shared token on every HTTP request but
    `GET /healthz`, and the bookkeeping for a graceful stop (requests in flight; 503 once draining)."""

    def __init__(self, app, token: str | None):
        self.app = app
        self._token = token.encode("latin-1") if token is not None else None
        self.inflight = 0  # requests other than GET (the long-lived SSE stream) being answered
        self.draining = False

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan" or (scope["type"] == "http" and scope["path"] == HEALTH_PATH):
            return await self.app(scope, receive, send)
        if self._token is not None:
            given = b""
            for name, value in scope.get("headers", []):
                if name == _HEADER_KEY:
                    given = value.strip()
                    break
            # compare_digest's time does not depend on where the bytes differ (only the length may show)
            if not hmac.compare_digest(given, self._token):
                return await _refuse(scope, send, 401, f"missing or wrong {TOKEN_HEADER} header")
        if scope["type"] != "http" or scope["method"] == "GET":
            return await self.app(scope, receive, send)
        if self.draining:
            return await _refuse(scope, send, 503, "shutting down")
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1


async def _refuse(scope, send, status: int, message: str):
    if scope["type"] != "http":  # websocket or anything else: nothing is served there
        return await send({"type": "websocket.close", "code": 1008})
    body = json.dumps({"error": message}, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _healthz(request):
    from starlette.responses import JSONResponse

    return JSONResponse({"ok": True})


def build_app(server, *, host: str, token: str | None, transport_security, max_body: int = MAX_BODY_BYTES) -> Gate:
    """The ASGI app served in HTTP mode: the SDK's streamable HTTP app plus /healthz, behind the gate."""
    server.custom_route(HEALTH_PATH, methods=["GET"], include_in_schema=False)(_healthz)
    app = server.streamable_http_app(host=host, transport_security=transport_security, max_request_body_size=max_body)
    return Gate(app, token)


def serve(server, *, host: str, port: int, token: str | None, transport_security) -> None:
    """Run uvicorn until SIGTERM/SIGINT. On SIGTERM: stop accepting, let requests in flight finish
    (at most GRACEFUL_SHUTDOWN_S), then end the idle SSE streams and exit with status 0."""
    import asyncio
    import time

    import anyio
    import uvicorn
    from sse_starlette.sse import AppStatus

    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from .http_guard import Limits, Tally, guarded_listener, guarded_protocol, log_once_per_interval

    gate = build_app(server, host=host, token=token, transport_security=transport_security)
    tally = Tally(Limits().fit_fd_limit())
    protocol = guarded_protocol(AutoHTTPProtocol, token=token, token_header=TOKEN_HEADER, health_path=HEALTH_PATH,
                                tally=tally)
    config = uvicorn.Config(gate, host=host, port=port, log_level=server.settings.log_level.lower(),
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, server_header=False,
                            http=protocol, ws="none", timeout_keep_alive=KEEP_ALIVE_S)
    log_once_per_interval("asyncio", "uvicorn.error")  # accept errors, per-request warnings: not per connection

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None):
            _exit_watchdog(GRACEFUL_SHUTDOWN_S + 5.0)  # a worker stuck on a read must not keep us alive
            for srv in self.servers:  # no new connections while the calls in flight finish
                srv.close()
            gate.draining = True
            deadline = time.monotonic() + GRACEFUL_SHUTDOWN_S
            while gate.inflight and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            AppStatus.should_exit = True  # now end the SSE streams (clients' idle GET streams)
            await super().shutdown(sockets)

    async def run():
        # sse-starlette would end every SSE stream at the signal, in-flight tool calls included
        AppStatus.disable_automatic_graceful_drain()
        # uvicorn re-raises the signal after its graceful shutdown with the handler it found
        # installed: make that one a no-op so the process exits 0 rather than dying of the signal
        signal.signal(signal.SIGTERM, lambda *_: None)
        # our own listening socket: its accept() drops connections over the caps (http_guard)
        await Server(config).serve(sockets=[guarded_listener(config.bind_socket(), tally)])

    anyio.run(run)


def _exit_watchdog(after_s: float) -> None:
    """End the process `after_s` seconds from now if it has not ended by itself: a tool call stuck in
    a worker thread (a hung network file system, a device) can be neither cancelled nor joined, and
    would otherwise keep a stopping server alive forever (asyncio waits for its executor threads)."""
    import os
    import threading

    def fire():
        import logging
        import sys

        logging.getLogger("wandb_lens.http").warning(
            "still running %.0f s after the stop signal (a worker thread is stuck): exiting now", after_s)
        sys.stderr.flush()
        os._exit(0)

    timer = threading.Timer(after_s, fire)
    timer.daemon = True
    timer.start()
