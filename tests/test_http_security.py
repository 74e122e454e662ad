"""HTTP mode security, against a real `wandb-lens serve --transport http` subprocess.

- DNS rebinding: the SDK turns Host/Origin checks on only when the bind host is a loopback string;
  bound to all interfaces, a page on evil.example resolving to this machine could call the tools
  (the conformance suite's `dns-rebinding-protection` scenario covers the loopback bind).
- A shared token (`X-Wandb-Lens-Token`) is required to bind a non-loopback address and, once set,
  on every request but `GET /healthz`; a W&B key (`Authorization: Bearer`) never replaces it.
- Request bodies over 1 MiB are refused with 413; `/healthz` says `{"ok":true}` and nothing else;
  SIGTERM lets the call in flight finish and exits 0.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import anyio
import httpx
import pytest

from lens_http import TOKEN, TOKEN_HEADER, LensHTTP, clean_env, free_port, open_session

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def lan_server(demo_dir, tmp_path_factory):
    """Bound to all interfaces with a token (from the environment) and an extra allowed host name."""
    tmp = tmp_path_factory.mktemp("http-security")
    srv = LensHTTP(["--allow-host", "lens.example.internal", "--runs-dir", str(demo_dir / "wandb")], tmp,
                   env=clean_env(WANDB_LENS_TOKEN=TOKEN), host="0.0.0.0")
    yield srv
    srv.stop()


def _post(port: int, host: str | None = None, origin: str | None = None, token: str | None = TOKEN,
          body: dict | bytes = INIT, extra: dict | None = None) -> httpx.Response:
    headers = dict(HEADERS)
    if host:
        headers["Host"] = host
    if origin:
        headers["Origin"] = origin
    if token is not None:
        headers[TOKEN_HEADER] = token
    headers.update(extra or {})
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"http://127.0.0.1:{port}/mcp", content=content, headers=headers, timeout=10)


# --- refusing to start ----------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "lens.example.internal"])
def test_non_loopback_bind_without_token_refuses_to_start(host, tmp_path):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "wandb_lens", "serve", "--transport", "http", "--host", host,
                           "--port", str(free_port()), "--runs-dir", str(tmp_path)],
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "without a shared token" in proc.stderr and "WANDB_LENS_TOKEN" in proc.stderr and TOKEN_HEADER in proc.stderr
    assert proc.stdout == ""
    assert time.monotonic() - t0 < 30  # refused before loading any data


def test_weak_token_refuses_to_start(tmp_path):
    for weak in ("short-token", "sixteen chars ok"):  # too short; whitespace can't survive a header
        proc = subprocess.run([sys.executable, "-m", "wandb_lens", "serve", "--transport", "http", "--host", "0.0.0.0",
                               "--port", str(free_port()), "--auth-token", weak, "--runs-dir", str(tmp_path)],
                              env=clean_env(), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "at least 16 visible ASCII characters" in proc.stderr
        assert weak not in proc.stderr


def test_loopback_with_token_flag_requires_it(demo_dir, tmp_path):
    """--auth-token on a loopback bind: the token is required there too."""
    srv = LensHTTP(["--auth-token", TOKEN, "--runs-dir", str(demo_dir / "wandb")], tmp_path)
    try:
        assert _post(srv.port, token=None).status_code == 401
        assert _post(srv.port).status_code == 200
    finally:
        assert srv.stop() == 0


# --- DNS rebinding (Host / Origin) ------------------------------------------------------------------

def test_all_interfaces_bind_rejects_foreign_host_header(lan_server):
    assert _post(lan_server.port, "evil.example:80", origin="http://evil.example").status_code == 421


def test_all_interfaces_bind_rejects_foreign_origin(lan_server):
    port = lan_server.port
    assert _post(port, f"127.0.0.1:{port}", origin="http://evil.example").status_code == 403


def test_all_interfaces_bind_accepts_loopback_and_allowed_hosts(lan_server):
    port = lan_server.port
    assert _post(port, f"127.0.0.1:{port}", origin=f"http://127.0.0.1:{port}").status_code == 200
    assert _post(port, f"localhost:{port}").status_code == 200
    assert _post(port, f"lens.example.internal:{port}", origin=f"https://lens.example.internal:{port}").status_code == 200


# --- the shared token ---------------------------------------------------------------------------------

def test_requests_without_the_right_token_are_refused(lan_server):
    port = lan_server.port
    wrong_same_length = TOKEN[:-1] + ("x" if TOKEN[-1] != "x" else "y")
    for token in (None, "", "nope", wrong_same_length, TOKEN + "x", TOKEN.upper()):
        r = _post(port, token=token)
        assert r.status_code == 401, token
        assert r.json() == {"error": f"missing or wrong {TOKEN_HEADER} header"}
        assert "mcp-session-id" not in r.headers


def test_every_method_and_path_needs_the_token(lan_server):
    base = lan_server.base
    assert httpx.get(f"{base}/mcp", headers={"Accept": "text/event-stream"}, timeout=10).status_code == 401
    assert httpx.delete(f"{base}/mcp", headers={"mcp-session-id": "x"}, timeout=10).status_code == 401
    assert httpx.get(f"{base}/anything", timeout=10).status_code == 401  # no route probing without it
    assert httpx.get(f"{base}/anything", headers={TOKEN_HEADER: TOKEN}, timeout=10).status_code == 404


def test_a_wandb_key_does_not_replace_the_token(lan_server):
    """Per-request W&B keys (`Authorization: Bearer`) pass the same gate: no token, no entry."""
    port = lan_server.port
    key = "wandb-user-key-0123456789abcdef0123"
    assert _post(port, token=None, extra={"Authorization": f"Bearer {key}"}).status_code == 401
    assert _post(port, token="wrong-token-0123456789", extra={"Authorization": f"Bearer {key}"}).status_code == 401
    assert _post(port, token=None, extra={"Authorization": f"Bearer {TOKEN}"}).status_code == 401  # wrong header
    assert _post(port, extra={"Authorization": f"Bearer {key}"}).status_code == 200


def test_sdk_client_with_token_works_and_without_is_refused(lan_server):
    statuses = []

    async def go(headers):
        with anyio.fail_after(60):
            async with open_session(lan_server.url, headers, statuses=statuses) as s:
                return await s.call_tool("describe_run", {"run": "lens-demo/overfit-wide-model"})

    r = anyio.run(go, {TOKEN_HEADER: TOKEN, "Authorization": "Bearer some-wandb-key-0123456789"})
    assert not r.is_error and json.loads(r.content[0].text)["name"] == "overfit-wide-model"
    assert set(statuses) <= {200, 202}
    statuses.clear()
    with pytest.raises(BaseException) as err:
        anyio.run(go, {"Authorization": f"Bearer {TOKEN}"})
    assert "MCPError" in repr(err.value)  # the SDK's "Server returned an error response"
    assert statuses == [401]  # refused at initialize: no session was ever opened


# --- /healthz, request size -------------------------------------------------------------------------

def test_healthz_needs_no_token_and_reveals_nothing(lan_server):
    r = httpx.get(f"{lan_server.base}/healthz", timeout=10)
    assert r.status_code == 200 and r.content == b'{"ok":true}'
    assert "server" not in r.headers  # no "uvicorn" banner
    assert set(r.headers) <= {"date", "content-length", "content-type", "connection"}  # answered and closed by the guard
    assert httpx.post(f"{lan_server.base}/healthz", timeout=10).status_code == 405


def test_oversized_body_is_refused_and_the_server_keeps_serving(lan_server):
    port = lan_server.port
    big = json.dumps({**INIT, "params": {**INIT["params"], "pad": "x" * (2 * MIB)}}).encode()
    assert _post(port, body=big).status_code == 413

    def chunks():  # no Content-Length: the limit holds on the streamed bytes too
        for _ in range(40):
            yield b"x" * 65536

    r = httpx.post(f"http://127.0.0.1:{port}/mcp", content=chunks(), headers={**HEADERS, TOKEN_HEADER: TOKEN}, timeout=10)
    assert r.status_code == 413
    near = json.dumps({**INIT, "params": {**INIT["params"], "pad": "x" * (MIB - 4096)}}).encode()
    assert _post(port, body=near).status_code == 200  # just under 1 MiB is a normal request
    assert _post(port).status_code == 200


# --- graceful shutdown -------------------------------------------------------------------------------

def test_sigterm_finishes_the_call_in_flight_and_exits_0(demo_dir, tmp_path):
    srv = LensHTTP(["--runs-dir", str(demo_dir / "wandb")], tmp_path, env=clean_env(WANDB_LENS_TOKEN=TOKEN))
    out = {}

    async def go():
        with anyio.fail_after(60):
            async with open_session(srv.url, {TOKEN_HEADER: TOKEN}) as s:
                await s.call_tool("list_projects", {})

                async def in_flight():  # a cold plot: history decoded, matplotlib imported, PNG drawn
                    try:
                        out["result"] = await s.call_tool("plot_overview", {"run": "lens-demo/spiky-bad-batches"})
                    except Exception as exc:  # a clean failure is acceptable; a hang is not
                        out["error"] = exc

                async with anyio.create_task_group() as tg:
                    tg.start_soon(in_flight)
                    await anyio.sleep(0.2)
                    t0 = time.monotonic()
                    srv.proc.send_signal(signal.SIGTERM)
                    while srv.proc.poll() is None and time.monotonic() - t0 < 20:
                        await anyio.sleep(0.05)
                    out["exit_s"] = time.monotonic() - t0

    try:
        anyio.run(go)
    finally:
        srv.kill()
    assert srv.proc.returncode == 0, srv.stderr()[-2000:]
    assert out["exit_s"] < 8
    assert "error" not in out, out.get("error")
    panels = json.loads(out["result"].content[1].text if out["result"].content[0].type == "image"
                        else out["result"].content[0].text)
    assert panels["name"] == "spiky-bad-batches"
    # after the stop nothing listens any more
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{srv.base}/healthz", timeout=2)
