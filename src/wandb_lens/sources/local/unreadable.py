"""A run whose log cannot be read: still one run, in state "unreadable", with a plain reason.

The project comes from what the folder says besides the log (files/wandb-metadata.json, or
logs/debug.log), so the run is listed where its owner looks for it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..base import RunInfo
from ..safe_open import UnsafeFile, read_head
from .wandb_file import NotAWandbFile

UNKNOWN_PROJECT = "uncategorized"  # W&B's own name for runs without a project
_PROJECT = re.compile(rb"""['"]?project['"]?\s*[:=]\s*['"]?([A-Za-z0-9_.\-]{1,128})""")
_VERSION = re.compile(rb"Current SDK version is ([0-9][0-9a-z.+\-]*)")


def reason(exc: BaseException, size: int) -> str:
    if isinstance(exc, UnsafeFile):
        return f"the run log cannot be read: {exc.reason}"
    if isinstance(exc, NotAWandbFile):
        if size == 0:
            return ("the run log is empty (0 bytes): the process ended before wandb wrote anything to it "
                    "(wandb-core buffers about 32 KiB before its first write)")
        if size < 7:
            return f"the run log is cut short ({size} bytes, less than its 7-byte header)"
        if "version" in str(exc):
            return f"the run log is in a format version this reader does not know ({exc})"
        return "the file does not start with the W&B run-log header: it is not a run log, or was overwritten"
    if isinstance(exc, PermissionError):
        return "the run log cannot be opened: permission denied"
    if isinstance(exc, OSError):
        return f"the run log cannot be read: {exc.strerror or 'I/O error'}"
    return "the run log's records could not be decoded"


def _head(path: Path, roots, n: int = 65536) -> bytes:
    try:
        return read_head(path, n, roots)
    except OSError:
        return b""


def folder_facts(folder: Path, roots=None) -> dict:
    """project / wandb version from the files beside the log."""
    facts: dict = {}
    try:
        meta = json.loads(_head(folder / "files" / "wandb-metadata.json", roots, 1 << 20) or b"{}")
    except ValueError:
        meta = {}
    if isinstance(meta, dict) and isinstance(meta.get("project"), str):
        facts["project"] = meta["project"]
    log = _head(folder / "logs" / "debug.log", roots)
    if "project" not in facts:
        m = _PROJECT.search(log)
        if m:
            facts["project"] = m.group(1).decode()
    m = _VERSION.search(log)
    if m:
        facts["wandb_version"] = m.group(1).decode()
    return facts


def unreadable_info(path: Path, st: os.stat_result | None, exc: BaseException, roots=None) -> RunInfo:
    folder = path.parent
    facts = folder_facts(folder, roots)
    run_id = path.stem[4:] if path.name.startswith("run-") else folder.name.rsplit("-", 1)[-1]
    return RunInfo(
        id=run_id, project=facts.get("project") or UNKNOWN_PROJECT, path=str(path), name=run_id, state="unreadable",
        damage=[reason(exc, st.st_size if st else -1)], location=folder.name,
        wandb_version=facts.get("wandb_version", ""), created_at=st.st_mtime if st else None,
    )


def adopt_neighbour_project(runs: list[RunInfo]) -> None:
    """An unreadable run whose folder does not name its project joins the project of the readable
    runs beside it (same parent folder), when they all share one: a wandb/ folder usually holds one
    project, and that is where its owner looks for it."""
    lost = [r for r in runs if r.state == "unreadable" and r.project == UNKNOWN_PROJECT and r.path]
    if not lost:
        return
    by_parent: dict[str, set[str]] = {}
    for r in runs:
        if r.state != "unreadable" and r.path:
            by_parent.setdefault(str(Path(r.path).parent.parent), set()).add(r.project)
    for r in lost:
        projects = by_parent.get(str(Path(r.path).parent.parent), set())
        if len(projects) == 1:
            r.project = next(iter(projects))
