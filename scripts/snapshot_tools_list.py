"""`make snapshot`: rewrite tests/snapshots/tools_list.json from the server's real tools/list answer.

The answer is taken from the wire: `wandb-lens serve` runs as a stdio subprocess over an empty
runs folder (with no WANDB_*/WEAVE_* variables, so the machine does not change it), and the
`result` of the JSON-RPC tools/list response is saved as the server wrote it (pretty-printed for
review). Its compact size (`json.dumps(result, separators=(",", ":"))`) is what an agent pays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "snapshots" / "tools_list.json"


def lens_command() -> list[str]:
    exe = Path(sys.executable).with_name("wandb-lens")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "wandb_lens"]


def clean_env(cache_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WEAVE_"))}
    return {**env, "WANDB_SILENT": "true", "WANDB_MODE": "offline", "WANDB_LENS_CACHE_DIR": cache_dir}


def wire_tools_list(command: list[str], env: dict[str, str] | None = None, timeout_s: float = 120) -> dict:
    """initialize, initialized, tools/list over stdio; returns the tools/list `result` as sent."""
    msgs = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "snapshot", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True)
    watchdog = threading.Timer(timeout_s, proc.kill)
    watchdog.start()
    try:
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in msgs))
        proc.stdin.flush()
        for line in proc.stdout:
            if not line.strip():
                continue
            msg = json.loads(line)
            if msg.get("id") == 2:
                if "result" not in msg:
                    raise RuntimeError(f"tools/list answered with an error: {msg}")
                return msg["result"]
        raise RuntimeError(f"the server closed stdout before answering tools/list:\n{proc.stderr.read()[-3000:]}")
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()


def compact_size(result: dict) -> int:
    return len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode())


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="wandb-lens-snapshot-") as tmp:
        (Path(tmp) / "wandb").mkdir()
        result = wire_tools_list([*lens_command(), "serve", "--runs-dir", str(Path(tmp) / "wandb")],
                                 env=clean_env(str(Path(tmp) / "cache")))
    SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    SNAPSHOT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    tools = result.get("tools", [])
    print(f"wrote {SNAPSHOT.relative_to(ROOT)}: {len(tools)} tools, {compact_size(result):,} bytes compact")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
