"""Artifacts from run logs: `artifact` records (logged; `use_after_commit` = logged by use_artifact)
and `use_artifact` records (used), with the manifest's file count and size.

Versions: W&B numbers an artifact's versions (v0, v1, ...) per collection at upload, one per new
digest. Offline logs carry no version, so it is inferred here: runs in creation order, records in
log order, a new digest in a collection is the next version. `latest` is the last version; a user
alias belongs to the last version logged with it.

Files: an artifact's manifest names where each file was staged; only staging inside the configured
roots is checked (the default staging folder, ~/.local/share/wandb/artifacts/staging, is not).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from . import records

MAX_SCAN_S = 10.0  # a project-wide listing reads each run log once; it stops (and says so) after this


@dataclass
class Logged:
    name: str
    type: str
    digest: str
    aliases: list[str]
    size: int
    files: int
    metadata: dict
    description: str
    run_id: str
    used_too: bool  # logged through use_artifact (a draft used by this run)
    staged: list[str] = field(default_factory=list)  # local paths of the manifest entries
    version: str = ""


@dataclass
class Used:
    name: str  # as recorded: "name:v0", "name:alias" or "entity/project/name:v0"
    type: str
    run_id: str


def from_run(path, roots, run_id: str) -> tuple[list[Logged], list[Used]]:
    recs = records.read(path, ("artifact", "use_artifact"), roots)
    logged = []
    for a in recs["artifact"]:
        try:
            meta = json.loads(a.metadata) if a.metadata else {}
        except ValueError:
            meta = {"_unreadable": a.metadata[:80]}
        contents = list(a.manifest.contents)
        logged.append(Logged(
            name=a.name, type=a.type, digest=a.digest, aliases=[x for x in a.aliases if x != "latest"],
            size=sum(int(c.size) for c in contents), files=len(contents), metadata=meta if isinstance(meta, dict)
            else {"value": meta}, description=a.description, run_id=run_id, used_too=bool(a.use_after_commit),
            staged=[c.local_path for c in contents if c.local_path]))
    used = [Used(name=u.name, type=u.type, run_id=run_id) for u in recs["use_artifact"]]
    used += [Used(name=x.name, type=x.type, run_id=run_id) for x in logged if x.used_too]
    return logged, used


def files_state(item: Logged, roots) -> str:
    """'n of m staged files on disk' for staging inside the roots; else why it was not checked."""
    from ..safe_open import UnsafeFile, check_regular

    inside = []
    for p in item.staged:
        real = os.path.realpath(p)
        if any(real == str(r) or real.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots):
            inside.append(p)
    if not item.staged:
        return "no staged paths recorded"
    if not inside:
        return "not checked: staged outside the configured folders"
    present = 0
    for p in inside:
        try:
            check_regular(p, roots)
            present += 1
        except (UnsafeFile, OSError):
            pass
    return f"{present} of {len(inside)} staged files on disk"


@dataclass
class Catalog:
    versions: dict  # collection name -> [Logged] in version order
    used: dict  # collection name -> [Used]
    by_run: dict  # run id -> (logged, used)
    runs_read: int
    runs_total: int


def catalog(runs, read_run) -> Catalog:
    """Every run's artifacts (oldest run first, at most MAX_SCAN_S of reading), versions inferred;
    `read_run(run) -> (logged, used)`."""
    versions: dict[str, list[Logged]] = {}
    used: dict[str, list[Used]] = {}
    by_run: dict = {}
    started = time.monotonic()
    for run in sorted(runs, key=lambda r: (r.created_at or 0, r.id)):
        if time.monotonic() - started > MAX_SCAN_S:
            break
        logged, uses = read_run(run)
        by_run[run.id] = (logged, uses)
        for item in logged:
            seq = versions.setdefault(item.name, [])
            same = next((v for v in seq if v.digest == item.digest), None)
            if same is None:
                item.version = f"v{len(seq)}"
                seq.append(item)
            else:
                same.aliases = sorted(set(same.aliases) | set(item.aliases))
                item.version = same.version
        for u in uses:
            used.setdefault(collection_of(u.name), []).append(u)
    for seq in versions.values():  # a user alias belongs to the last version logged with it
        owner: dict[str, Logged] = {}
        for v in seq:
            for a in v.aliases:
                owner[a] = v
        for v in seq:
            v.aliases = sorted(a for a in v.aliases if owner[a] is v)
        seq[-1].aliases = ["latest", *seq[-1].aliases]
    return Catalog(versions, used, by_run, len(by_run), len(runs))


def collection_of(ref: str) -> str:
    """'entity/project/name:v0' -> 'name'."""
    return ref.rsplit("/", 1)[-1].split(":")[0]


def resolve(cat: Catalog, ref: str) -> Logged | None:
    """The version a use_artifact reference names ('name:v1', 'name:latest', 'name:<alias>')."""
    seq = cat.versions.get(collection_of(ref))
    if not seq:
        return None
    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
    for v in seq:
        if v.version == tag or tag in v.aliases:
            return v
    return None
