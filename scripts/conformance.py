"""`make conformance`: the official MCP conformance suite against `wandb-lens serve --transport http`.

Writes the demo runs into a temporary folder, serves them on a free loopback port, waits until the
server answers an `initialize`, runs the scenarios (concurrently, each its own session) with
`@modelcontextprotocol/conformance` (installed by scripts/npm_tools.py) and stops the server
whatever happens. A scenario passes only
with at least one SUCCESS check and no FAILURE or WARNING (the suite itself exits 0 on warnings).
Exit 0 when all pass, 1 otherwise, also when node/npm are missing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import npm_tools  # noqa: E402

SCENARIOS = [
    "server-initialize",
    "ping",
    "tools-list",
    "resources-list",
    "prompts-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
]
READY_TIMEOUT_S = 60
SCENARIO_TIMEOUT_S = 120


def lens_command() -> list[str]:
    exe = Path(sys.executable).with_name("wandb-lens")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "wandb_lens"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, server: subprocess.Popen, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until the server answers an MCP initialize over HTTP (or dies, or the time is up)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "ready-probe", "version": "0"}}})
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode} before answering")
        req = urllib.request.Request(url, data=body.encode(), method="POST", headers={
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                if b"serverInfo" in resp.read():
                    return
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer at {url} within {timeout_s:.0f} s ({last})")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # its own session (start_new_session): the server and only it
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def run_scenario(conformance: str, url: str, scenario: str, out: Path) -> tuple[bool, str, str]:
    """-> (passed, one-line summary, full output of the suite)."""
    results = out / scenario
    out.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run([conformance, "server", "--url", url, "--scenario", scenario, "-o", str(results)],
                              capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S, cwd=out,
                              env={**os.environ, "NO_COLOR": "1"})
    except subprocess.TimeoutExpired as exc:
        return False, f"timed out after {SCENARIO_TIMEOUT_S} s", f"{exc.stdout or ''}{exc.stderr or ''}"
    output = proc.stdout + proc.stderr
    checks = []
    for path in sorted(results.glob("*/checks.json")):
        checks += json.loads(path.read_text())
    counts: dict[str, int] = {}
    for c in checks:
        counts[c.get("status", "?")] = counts.get(c.get("status", "?"), 0) + 1
    bad = [c for c in checks if c.get("status") in ("FAILURE", "WARNING")]
    passed = proc.returncode == 0 and counts.get("SUCCESS", 0) > 0 and not bad
    summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or f"no checks (exit {proc.returncode})"
    for c in bad:
        summary += f"\n    {c['status']} {c.get('id')}: {c.get('errorMessage') or c.get('description')}"
    return passed, summary, output


def main() -> int:
    try:
        conformance = npm_tools.tool("conformance")
    except npm_tools.NpmToolsUnavailable as exc:
        print(f"conformance: FAILED, cannot run the MCP conformance suite: {exc}", file=sys.stderr)
        return 1
    # make/CI may stop us with SIGTERM: turn it into an exception so `finally` stops the server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wandb-lens-conformance-") as tmp:
        tmp = Path(tmp)
        demo = subprocess.run([*lens_command(), "demo", "--out", str(tmp / "demo")],
                              capture_output=True, text=True, timeout=300)
        if demo.returncode != 0:
            print(f"conformance: FAILED, `wandb-lens demo` exited {demo.returncode}:\n{demo.stderr}", file=sys.stderr)
            return 1
        port = free_port()
        url = f"http://127.0.0.1:{port}/mcp"
        log_path = tmp / "server.log"
        failed: list[str] = []
        with open(log_path, "w") as log:
            server = subprocess.Popen(
                [*lens_command(), "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port),
                 "--runs-dir", str(tmp / "demo" / "wandb"), "--cache-dir", str(tmp / "cache")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                wait_ready(url, server)
                print(f"# wandb-lens serving the demo runs at {url} "
                      f"(ready after {time.monotonic() - t0:.0f} s); conformance suite "
                      f"{npm_tools.PACKAGES['@modelcontextprotocol/conformance']}")
                with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:  # independent sessions
                    runs = pool.map(lambda s: run_scenario(conformance, url, s, tmp / "results"), SCENARIOS)
                for scenario, (passed, summary, output) in zip(SCENARIOS, runs):
                    print(f"{'PASS' if passed else 'FAIL'} {scenario}: {summary}")
                    if not passed:
                        failed.append(scenario)
                        print(output.strip(), file=sys.stderr)
            except RuntimeError as exc:
                failed.append("server start-up")
                print(f"conformance: {exc}", file=sys.stderr)
            finally:
                stop(server)
        if failed:
            print(f"--- server log ({log_path.name}, last 4000 chars) ---\n{log_path.read_text()[-4000:]}",
                  file=sys.stderr)
    if failed:
        print(f"conformance: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"conformance: all {len(SCENARIOS)} scenarios passed in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
