"""`wandb-lens serve --transport http` as a real subprocess on a free loopback port, for the HTTP
security, load and secrets tests. Server stderr goes to a file (a DEBUG log never fills a pipe)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

TOKEN = "lens-test-token-5f0c2a9e71d84b36"
TOKEN_HEADER = "X-Wandb-Lens-Token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra) -> dict:
    """The test process's environment without W&B keys or a lens token, plus `extra` (None drops a name)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("WANDB_API_KEY", "WANDB_SERVICE", "WANDB_LENS_TOKEN", "WANDB_BASE_URL")}
    env["PYTHONUNBUFFERED"] = "1"
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def _limit_fds(n: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


class LensHTTP:
    """Start with `LensHTTP(args, workdir, env=...)`; `url` is the MCP endpoint; `stop()` sends SIGTERM."""

    def __init__(self, args: list[str], workdir: Path, env: dict | None = None, host: str = "127.0.0.1",
                 start_timeout: float = 60.0, max_fds: int | None = None):
        self.port = free_port()
        self.host = host
        self.stderr_path = Path(workdir) / f"server-{self.port}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        env = env if env is not None else clean_env()
        env.setdefault("WANDB_LENS_CACHE_DIR", str(Path(workdir) / "cache"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wandb_lens", "serve", "--transport", "http", "--host", host,
             "--port", str(self.port), *args],
            stdout=subprocess.DEVNULL, stderr=self._stderr, env=env,
            preexec_fn=(lambda: _limit_fds(max_fds)) if max_fds else None)
        self._wait_ready(start_timeout)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.stderr()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server not ready in {timeout} s: {self.stderr()[-2000:]}")
            time.sleep(0.1)

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def peak_rss_kib(self) -> int:
        """VmHWM: the server process's peak resident memory so far, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError("no VmHWM in /proc status")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; a server that does not exit in `timeout` is killed (and the test fails)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        self._stderr.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextlib.asynccontextmanager
async def open_session(url: str, headers: dict | None = None, timeout: float = 60.0, statuses: list | None = None):
    """An initialized SDK ClientSession over streamable HTTP, sending `headers` on every request;
    `statuses` (a list) collects the HTTP status of every response."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def record(response):
        if statuses is not None:
            statuses.append(response.status_code)

    async with httpx2.AsyncClient(headers=headers or {}, timeout=timeout, event_hooks={"response": [record]}) as http:
        async with streamable_http_client(url, http_client=http) as (r, w, *_):
            async with ClientSession(r, w) as session:
                await session.initialize()
                yield session
