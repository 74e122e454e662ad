"""Install without a clone: server.json for the MCP Registry, and a built wheel in a fresh virtualenv.

server.json is checked against the MCP Registry's server schema, vendored in tests/schemas/ because
the test may not reach static.modelcontextprotocol.io (see tests/schemas/README.md for its URL and
date). The wheel test builds wandb-lens, installs it with uv into a virtualenv kept under
~/.cache/wandb-lens-test (keyed by pyproject.toml, so only a dependency change pays the full install;
each run reinstalls the fresh wheel) and reads tools/list from its `wandb-lens serve` over stdio.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import snapshot_tools_list as snap  # noqa: E402

SCHEMA = ROOT / "tests" / "schemas" / "server.schema.json"


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_server_json_is_valid_for_the_registry():
    import jsonschema

    doc = json.loads((ROOT / "server.json").read_text())
    schema = json.loads(SCHEMA.read_text())
    assert doc["$schema"] == schema["$id"]
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    project = _project()
    pkg = doc["packages"][0]
    assert (pkg["registryType"], pkg["identifier"]) == ("pypi", project["name"])
    assert doc["version"] == pkg["version"] == project["version"]
    # the registry proves PyPI ownership by this line in the package's README (its long description)
    assert f"mcp-name: {doc['name']}" in (ROOT / "README.md").read_text()
    assert {e["name"] for e in pkg["environmentVariables"] if e.get("isSecret")} == {"WANDB_API_KEY"}


def _uv() -> str:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not uv:
        pytest.fail("uv not found: it is in the test extras (pip install -e '.[test]')")
    return uv


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    return proc


def test_built_wheel_in_a_fresh_venv_answers_tools_list(tmp_path):
    uv = _uv()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["UV_LINK_MODE"] = "hardlink"  # the uv cache and the venv share ~/.cache: no copies
    _run([uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(ROOT)], env=env)
    (wheel,) = (tmp_path / "dist").glob("wandb_lens-*.whl")
    assert re.search(rf"wandb_lens-{re.escape(_project()['version'])}-", wheel.name)

    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wandb-lens-test"
    venv = base / f"wheel-venv-{digest}"
    for stale in base.glob("wheel-venv-*"):  # virtualenvs of earlier pyproject.toml versions
        if stale != venv:
            shutil.rmtree(stale, ignore_errors=True)
    python = venv / "bin" / "python"
    if not python.exists():
        _run([uv, "venv", "--python", sys.executable, str(venv)], env=env)
    _run([uv, "pip", "install", "--python", str(python), "--reinstall-package", "wandb-lens", str(wheel)], env=env)

    exe = venv / "bin" / "wandb-lens"
    origin = _run([str(python), "-c", "import wandb_lens; print(wandb_lens.__file__)"], env=env).stdout
    assert str(venv) in origin and str(ROOT / "src") not in origin  # the wheel's copy, not this checkout
    (tmp_path / "wandb").mkdir()
    live = snap.wire_tools_list([str(exe), "serve", "--runs-dir", str(tmp_path / "wandb")],
                                env=snap.clean_env(str(tmp_path / "cache")))
    pinned = json.loads(snap.SNAPSHOT.read_text())
    assert live == pinned  # the installed package serves exactly the pinned tools/list
