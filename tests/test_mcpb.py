"""The MCP Bundle (make mcpb): manifest in sync with the server, validated and packed by the official
MCPB CLI (pinned, installed by scripts/npm_tools.py), and its server answering tools/list when started
the way the manifest says, from the unpacked bundle.

The bundle's server runs with `uv run` (server.type "uv": the host installs the dependencies from the
bundled pyproject.toml). Its virtualenv lives in a folder kept under ~/.cache/wandb-lens-test, keyed
by pyproject.toml, so only a dependency change pays the install; each run copies the freshly
unpacked bundle over it first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import build_mcpb  # noqa: E402
import npm_tools  # noqa: E402
import snapshot_tools_list as snap  # noqa: E402


def _mcpb_available() -> None:
    try:
        npm_tools.tool("mcpb")
    except npm_tools.NpmToolsUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    _mcpb_available()
    return build_mcpb.build(tmp_path_factory.mktemp("mcpb") / "wandb-lens.mcpb")


def test_manifest_lists_what_the_server_serves():
    """tools, prompts and version in mcpb/manifest.json are the server's own (`make snapshot` syncs them)."""
    manifest = json.loads(build_mcpb.MANIFEST.read_text())
    assert manifest == build_mcpb.synced_manifest(), "mcpb/manifest.json is out of date: run `make snapshot`"
    pinned = json.loads(snap.SNAPSHOT.read_text())
    assert [t["name"] for t in manifest["tools"]] == [t["name"] for t in pinned["tools"]]
    assert manifest["user_config"]["wandb_api_key"]["sensitive"] is True
    assert manifest["user_config"]["runs_dirs"]["type"] == "directory"


def test_official_cli_validates_manifest_and_packed_bundle(bundle, tmp_path):
    build_mcpb.mcpb("validate", str(build_mcpb.MANIFEST))
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
    assert {"manifest.json", "icon.png", "server/main.py", "pyproject.toml", "src/wandb_lens/server.py"} <= names
    assert not any("__pycache__" in n or n.startswith(".venv") for n in names)
    unpacked = tmp_path / "unpacked"
    build_mcpb.mcpb("unpack", str(bundle), str(unpacked))
    build_mcpb.mcpb("validate", str(unpacked / "manifest.json"))  # the packed manifest, icon checked too
    info = build_mcpb.mcpb("info", str(bundle)).stdout
    assert "wandb-lens" in info


def _persistent_bundle_dir() -> Path:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wandb-lens-test"
    return base / f"mcpb-run-{digest}"


def _uv() -> str:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not uv:
        pytest.fail("uv not found: it is in the test extras (pip install -e '.[test]')")
    return uv


def test_bundle_server_starts_from_the_unpacked_bundle(bundle, tmp_path):
    """Start the server as the manifest's mcp_config says (uv run in the bundle folder, the user's
    picks substituted), and read tools/list from it over stdio."""
    unpacked = tmp_path / "unpacked"
    build_mcpb.mcpb("unpack", str(bundle), str(unpacked))
    home = _persistent_bundle_dir()  # keeps .venv and uv.lock between runs
    for stale in home.parent.glob("mcpb-run-*"):  # folders of earlier pyproject.toml versions
        if stale != home:
            shutil.rmtree(stale, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    for entry in home.iterdir():
        if entry.name not in (".venv", "uv.lock"):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(unpacked, home, dirs_exist_ok=True)

    manifest = json.loads((home / "manifest.json").read_text())
    runs = tmp_path / "wandb"
    runs.mkdir()
    picks = {"runs_dirs": str(runs), "traces_db": "", "cache_dir": str(tmp_path / "cache"), "wandb_api_key": ""}

    def fill(text: str) -> str:
        text = text.replace("${__dirname}", str(home))
        for key, value in picks.items():
            text = text.replace("${user_config.%s}" % key, value)
        return text

    cfg = manifest["server"]["mcp_config"]
    assert cfg["command"] == "uv"
    command = [_uv(), *[fill(a) for a in cfg["args"]]]
    env = snap.clean_env(str(tmp_path / "cache"))
    env.update({k: fill(v) for k, v in cfg["env"].items()})
    env["UV_LINK_MODE"] = "hardlink"  # the uv cache and this folder share ~/.cache: no copies
    result = snap.wire_tools_list(command, env=env, timeout_s=900)
    names = [t["name"] for t in result["tools"]]
    assert names == [t["name"] for t in manifest["tools"]]
