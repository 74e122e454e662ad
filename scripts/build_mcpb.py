"""`make mcpb`: the MCP Bundle (dist/wandb-lens-<version>.mcpb) for one-click install in Claude Desktop.

1. Sync mcpb/manifest.json with the server itself: its version, and the tools and prompts the
   server lists (names, descriptions; each prompt's text with `${arguments.x}` placeholders).
   `--check` only compares (exit 1 when out of date); `--sync` only writes it (`make snapshot` does,
   since a tool change changes both).
2. Stage the bundle: manifest.json, icon.png, server/main.py, pyproject.toml, README.md, LICENSE and
   src/wandb_lens. server.type is "uv": the host installs Python and the dependencies declared in
   pyproject.toml with uv (compiled wheels such as numpy and pyarrow for the user's own platform),
   so nothing platform-specific ships in the bundle.
3. `mcpb validate` the staged manifest and `mcpb pack` it, with the pinned MCPB CLI
   (scripts/npm_tools.py installs it into ~/.cache, outside the repo).

Standard library plus wandb_lens (for step 1) only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "mcpb" / "manifest.json"
STAGED_FILES = {  # bundle path -> repo path
    "manifest.json": "mcpb/manifest.json",
    "icon.png": "mcpb/icon.png",
    "server/main.py": "mcpb/server/main.py",
    "pyproject.toml": "pyproject.toml",
    "README.md": "README.md",
    "LICENSE": "LICENSE",
}
sys.path.insert(0, str(ROOT / "scripts"))


def server_listing() -> tuple[str, list[dict], list[dict]]:
    """(version, tools, prompts) as the server lists them, for the manifest."""
    from wandb_lens import __version__, prompts
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    with tempfile.TemporaryDirectory() as tmp:
        server = build_server(AppConfig(runs_dirs=[tmp], cache_dir=tmp, source="local"))
        tools = asyncio.run(server.list_tools())
        listed = asyncio.run(server.list_prompts())
    texts = {fn.__name__: fn for fn, _ in prompts.PROMPTS}
    out_prompts = []
    for p in listed:
        names = [a.name for a in p.arguments or []]
        text = texts[p.name](**{n: "${arguments.%s}" % n for n in names})
        out_prompts.append({"name": p.name, "description": p.description, "arguments": names, "text": text})
    return __version__, [{"name": t.name, "description": t.description} for t in tools], out_prompts


def synced_manifest() -> dict:
    manifest = json.loads(MANIFEST.read_text())
    version, tools, prompt_list = server_listing()
    return {**manifest, "version": version, "tools": tools, "prompts": prompt_list}


def write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def stage(dest: Path) -> Path:
    """Copy the bundle's files into `dest` (created); returns it."""
    dest.mkdir(parents=True, exist_ok=True)
    for inside, source in STAGED_FILES.items():
        (dest / inside).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / source, dest / inside)
    shutil.copytree(ROOT / "src" / "wandb_lens", dest / "src" / "wandb_lens",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def mcpb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the pinned MCPB CLI; raises with its output on failure."""
    import npm_tools

    proc = subprocess.run([npm_tools.tool("mcpb"), *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"mcpb {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def build(out: Path) -> Path:
    """Stage, validate and pack the bundle into `out` (a .mcpb path); returns it."""
    with tempfile.TemporaryDirectory(prefix="wandb-lens-mcpb-") as tmp:
        staged = stage(Path(tmp) / "wandb-lens")
        mcpb("validate", str(staged / "manifest.json"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        mcpb("pack", str(staged), str(out))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check that mcpb/manifest.json is in sync")
    ap.add_argument("--sync", action="store_true", help="only sync mcpb/manifest.json (no Node needed)")
    ap.add_argument("--out", type=Path, help="bundle path (default dist/wandb-lens-<version>.mcpb)")
    args = ap.parse_args()
    current = json.loads(MANIFEST.read_text())
    wanted = synced_manifest()
    if args.check:
        if current != wanted:
            print("mcpb/manifest.json is out of date with the server: run `make snapshot`", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        write_json(MANIFEST, wanted)
        print(f"updated {MANIFEST.relative_to(ROOT)} (version, tools, prompts)")
    if args.sync:
        return 0
    out = args.out or ROOT / "dist" / f"wandb-lens-{wanted['version']}.mcpb"
    build(out)
    print(f"built {out} ({out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
