"""Pinned third-party MCP tools (Node): the conformance suite, the Inspector CLI and the MCPB CLI.

Installed with npm into a cache folder outside the repo, one folder per pinned set
(`${WANDB_LENS_NPM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/wandb-lens-npm}/<hash>`), so a repeated
run costs nothing and a version bump installs beside the old one. A file lock makes concurrent
callers (parallel test runs, `make conformance`) wait for one install.

`python scripts/npm_tools.py` installs them and prints the bin folder; exit 1 (with the reason)
when node or npm is missing, too old, or the install fails. Standard library only.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = {
    "@modelcontextprotocol/conformance": "0.1.13",  # newest release that runs on Node 20
    "@modelcontextprotocol/inspector-cli": "0.16.8",
    "@anthropic-ai/mcpb": "2.1.2",  # validates and packs the MCP Bundle (make mcpb, tests/test_mcpb.py)
}
MIN_NODE_MAJOR = 20
INSTALL_TIMEOUT_S = 600


class NpmToolsUnavailable(RuntimeError):
    """node/npm missing or too old, or the npm install failed; the message says which and what to do."""


def cache_root() -> Path:
    if os.environ.get("WANDB_LENS_NPM_CACHE"):
        return Path(os.environ["WANDB_LENS_NPM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wandb-lens-npm"


def install_dir() -> Path:
    digest = hashlib.sha256(json.dumps(PACKAGES, sort_keys=True).encode()).hexdigest()[:12]
    return cache_root() / digest


def check_node() -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    missing = [name for name, path in (("node", node), ("npm", npm)) if not path]
    if missing:
        raise NpmToolsUnavailable(
            f"{' and '.join(missing)} not found on PATH: the MCP conformance suite and Inspector CLI need "
            f"Node.js >= {MIN_NODE_MAJOR} with npm (https://nodejs.org, or your OS package manager)."
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        raise NpmToolsUnavailable(f"could not read the Node.js version from {node} --version: {version!r}") from None
    if major < MIN_NODE_MAJOR:
        raise NpmToolsUnavailable(f"Node.js {version} at {node} is too old: need >= {MIN_NODE_MAJOR}.")


def _installed(where: Path) -> bool:
    if not (where / ".installed").exists():
        return False
    for name, version in PACKAGES.items():
        manifest = where / "node_modules" / name / "package.json"
        try:
            if json.loads(manifest.read_text()).get("version") != version:
                return False
        except (OSError, ValueError):
            return False
    return True


def ensure() -> Path:
    """Install the pinned packages if needed; return their `node_modules/.bin` folder."""
    check_node()
    where = install_dir()
    where.mkdir(parents=True, exist_ok=True)
    with open(where / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not _installed(where):
            (where / ".installed").unlink(missing_ok=True)
            (where / "package.json").write_text(json.dumps(
                {"name": "wandb-lens-npm-tools", "private": True, "dependencies": PACKAGES}, indent=2) + "\n")
            cmd = [shutil.which("npm") or "npm", "install", "--no-audit", "--no-fund", "--ignore-scripts",
                   "--no-update-notifier", "--loglevel=error"]
            print(f"# npm install {' '.join(f'{k}@{v}' for k, v in PACKAGES.items())} into {where}", file=sys.stderr)
            try:
                proc = subprocess.run(cmd, cwd=where, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise NpmToolsUnavailable(f"npm install timed out after {INSTALL_TIMEOUT_S} s in {where}") from None
            if proc.returncode != 0 or not _installed_files(where):
                raise NpmToolsUnavailable(
                    f"npm install failed (exit {proc.returncode}) in {where}; is the npm registry reachable?\n"
                    f"{(proc.stdout + proc.stderr).strip()[-3000:]}"
                )
            (where / ".installed").touch()
    return where / "node_modules" / ".bin"


def _installed_files(where: Path) -> bool:
    return all((where / "node_modules" / name / "package.json").exists() for name in PACKAGES)


def tool(name: str) -> str:
    """Absolute path of one installed command (`conformance`, `mcp-inspector-cli`, `mcpb`)."""
    path = ensure() / name
    if not path.exists():
        raise NpmToolsUnavailable(f"{path} is missing after npm install")
    return str(path)


def main() -> int:
    try:
        print(ensure())
    except NpmToolsUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
