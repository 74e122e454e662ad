"""Artifacts from W&B through the GraphQL `wandb.Api` sends (wandb.sdk.artifacts._generated):
a run's logged (RunOutputArtifacts) and used (RunInputArtifacts) versions, a project's collections
(ProjectArtifactCollections) with their versions (ProjectArtifacts: totalCount, `version` per
membership, aliases per collection), each version's producer (ArtifactCreatedBy) and consumers
(ArtifactUsedBy). Registries are the org entity's `wandb-registry-<name>` projects (FetchRegistries;
the org from FetchOrgInfoFromEntity); their collections come from RegistryCollections, versions as
in any project.

W&B numbers versions itself (v0, v1, ... per collection) and keeps aliases per collection; both are
shown as W&B states them. An artifact whose files are gone (deleted, or past its TTL) keeps its
metadata here: `files_on_disk` says which.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ...errors import LensError, suggest

REGISTRY_PREFIX = "wandb-registry-"
MAX_COLLECTIONS = 500  # names read for a listing / the closest-name list
MAX_VERSIONS = 100  # versions read for one collection (the newest are shown)
_LINEAGE = ThreadPoolExecutor(max_workers=8, thread_name_prefix="wandb-lens-artifacts")


@dataclass
class Version:
    id: str
    name: str  # the collection it is listed in
    version: str
    type: str
    size: int | None
    files: int | None
    aliases: list[str]
    digest: str
    metadata: dict
    files_state: str
    where: str  # entity/project of the collection
    produced_by: str | None = None
    used_by: list[str] = field(default_factory=list)


@dataclass
class Collection:
    name: str
    type: str
    versions: int
    latest: Version | None


def _gql(s, query: str, variables: dict) -> dict:
    return s.api._service_api.execute_graphql(query, variables) or {}


def _files_state(node: dict, now: float | None = None) -> str:
    state = (node.get("state") or "").upper()
    if state == "DELETED":
        return "gone: deleted in W&B (metadata kept)"
    ttl = node.get("ttlDurationSeconds")
    created = _ts(node.get("createdAt"))
    if isinstance(ttl, (int, float)) and ttl > 0 and created is not None and created + ttl < (now or time.time()):
        return "gone: TTL expired (metadata kept)"
    return "stored in W&B" if state in ("COMMITTED", "") else f"not committed ({state.lower()})"


def _ts(text) -> float | None:
    from .meta import parse_time

    return parse_time(text) if text else None


def _where(proj: dict | None) -> str:
    proj = proj or {}
    return f"{(proj.get('entity') or {}).get('name', '')}/{proj.get('name', '')}"


def _version(node: dict, collection: str | None = None, edge_version: str | None = None,
             where: str | None = None) -> Version:
    """One version as listed in `collection` of `where` (entity/project; default: its source sequence)."""
    seq = node.get("artifactSequence") or {}
    name = collection or seq.get("name") or "?"
    where = where or _where(seq.get("project"))
    aliases = sorted({a.get("alias") for a in node.get("aliases") or [] if a.get("alias")
                      and (a.get("artifactCollection") or {}).get("name") == name
                      and _where((a.get("artifactCollection") or {}).get("project")) == where},
                     key=lambda a: (a != "latest", a))
    try:
        meta = json.loads(node["metadata"]) if isinstance(node.get("metadata"), str) else node.get("metadata") or {}
    except ValueError:
        meta = {"_unreadable": str(node.get("metadata"))[:80]}
    return Version(
        id=node.get("id") or "", name=name, version=edge_version or f"v{node.get('versionIndex')}",
        type=(node.get("artifactType") or {}).get("name") or "", size=node.get("size"), files=node.get("fileCount"),
        aliases=aliases, digest=node.get("digest") or "", metadata=meta if isinstance(meta, dict) else {"value": meta},
        files_state=_files_state(node), where=where)


def _run_label(node: dict | None, home: str) -> str | None:
    """A producer / consumer run as `id`, or `entity/project/id` when it lives elsewhere."""
    if not node or node.get("__typename", "Run") != "Run":
        return None
    where = _where(node.get("project"))
    return node.get("name") if where == home else f"{where}/{node.get('name')}"


def _lineage(s, versions: list[Version], home: str, producers: bool = True, users: bool = True) -> None:
    from wandb.sdk.artifacts._generated import ARTIFACT_CREATED_BY_GQL, ARTIFACT_USED_BY_GQL

    def one(v: Version):
        if producers:
            d = _gql(s, ARTIFACT_CREATED_BY_GQL, {"id": v.id}).get("artifact") or {}
            v.produced_by = _run_label(d.get("createdBy"), home)
        if users:
            d = _gql(s, ARTIFACT_USED_BY_GQL, {"id": v.id}).get("artifact") or {}
            v.used_by = sorted(filter(None, (_run_label(e.get("node"), home)
                                             for e in (d.get("usedBy") or {}).get("edges") or [])))

    for _ in _LINEAGE.map(one, [v for v in versions if v.id]):
        pass


# ----- a run's artifacts ---------------------------------------------------------------------------
def run_artifacts(src, info, limit: int) -> dict:
    """{'logged': ([Version], total), 'used': ([Version], total)} of one run."""
    from wandb.sdk.artifacts._generated import RUN_INPUT_ARTIFACTS_GQL, RUN_OUTPUT_ARTIFACTS_GQL

    s = src._session()
    home = f"{info.entity}/{info.project}"

    def go():
        out = {}
        for key, query in (("logged", RUN_OUTPUT_ARTIFACTS_GQL), ("used", RUN_INPUT_ARTIFACTS_GQL)):
            d = _gql(s, query, {"entity": info.entity, "project": info.project, "run": info.id, "perPage": limit})
            conn = (((d.get("project") or {}).get("run") or {}).get("artifacts")) or {}
            items = [_version(e["node"]) for e in conn.get("edges") or [] if e.get("node")]
            out[key] = (items, int(conn.get("totalCount") or len(items)))
        _lineage(s, out["used"][0], home, users=False)
        return out

    return src._guard(go, f"reading the artifacts of {home}/{info.id}", s.key)


# ----- a project's (or registry's) collections ----------------------------------------------------
def _org(s) -> tuple[str, str]:
    """(organization name, org entity name) of the session's entity."""
    from wandb.sdk.artifacts._generated import FETCH_ORG_INFO_FROM_ENTITY_GQL

    ent = _gql(s, FETCH_ORG_INFO_FROM_ENTITY_GQL, {"entity": s.entity}).get("entity") or {}
    org = ent.get("organization") or next(iter((ent.get("user") or {}).get("organizations") or []), None)
    if not org or not (org.get("orgEntity") or {}).get("name"):
        raise LensError(f"No W&B organization found for entity {s.entity}: registries need one.")
    return org["name"], org["orgEntity"]["name"]


def registries(src) -> list[str]:
    """The registries this key sees, as project names (`wandb-registry-<name>`)."""
    s = src._session()
    return src._guard(lambda: _registry_names(s), "listing registries", s.key)


def _registry_names(s) -> list[str]:
    from wandb.sdk.artifacts._generated import FETCH_REGISTRIES_GQL

    org, _ = _org(s)
    d = _gql(s, FETCH_REGISTRIES_GQL, {"organization": org, "perPage": 100})
    edges = ((((d.get("organization") or {}).get("orgEntity") or {}).get("projects") or {}).get("edges") or [])
    return sorted(e["node"]["name"] for e in edges if (e.get("node") or {}).get("name", "").startswith(
        REGISTRY_PREFIX))


def _collections(s, entity: str, project: str) -> tuple[list[tuple[str, str]], int, str] | None:
    """([(name, type)], total, entity) of a project's or registry's collections; None: no such project."""
    from wandb.sdk.artifacts._generated import PROJECT_ARTIFACT_COLLECTIONS_GQL, REGISTRY_COLLECTIONS_GQL

    out: list[tuple[str, str]] = []
    cursor, total = None, 0
    registry = project.startswith(REGISTRY_PREFIX)
    if registry:
        org, entity = _org(s)
    while len(out) < MAX_COLLECTIONS:
        if registry:
            d = _gql(s, REGISTRY_COLLECTIONS_GQL, {"organization": org, "registryFilter": json.dumps({"name": project}),
                                                   "cursor": cursor, "perPage": 100})
            conn = ((d.get("organization") or {}).get("orgEntity") or {}).get("artifactCollections")
        else:
            d = _gql(s, PROJECT_ARTIFACT_COLLECTIONS_GQL, {"entity": entity, "project": project, "cursor": cursor,
                                                           "perPage": 100})
            if d.get("project") is None:
                return None
            conn = d["project"].get("artifactCollections")
        conn = conn or {}
        total = int(conn.get("totalCount") or 0)
        out += [(e["node"]["name"], ((e["node"].get("type") or {}).get("name") or ""))
                for e in conn.get("edges") or [] if (e.get("node") or {}).get("name")]
        info = conn.get("pageInfo") or {}
        if not info.get("hasNextPage") or not info.get("endCursor"):
            break
        cursor = info["endCursor"]
    if registry and not out and project not in _registry_names(s):
        return None
    return out, max(total, len(out)), entity


def _versions(s, entity: str, project: str, ctype: str, name: str, want: int) -> tuple[list[Version], int]:
    """Up to `want` versions of one collection (newest first) and how many it holds."""
    from wandb.sdk.artifacts._generated import PROJECT_ARTIFACTS_GQL

    out: list[Version] = []
    cursor, total = None, 0
    while len(out) < want:
        d = _gql(s, PROJECT_ARTIFACTS_GQL, {"entity": entity, "project": project, "type": ctype, "collection": name,
                                            "cursor": cursor, "perPage": min(50, want)})
        conn = ((((d.get("project") or {}).get("artifactType") or {}).get("artifactCollection") or {})
                .get("artifacts")) or {}
        total = int(conn.get("totalCount") or 0)
        out += [_version(e["node"], name, e.get("version"), f"{entity}/{project}") for e in conn.get("edges") or [] if e.get("node")]
        info = conn.get("pageInfo") or {}
        if not info.get("hasNextPage") or not info.get("endCursor"):
            break
        cursor = info["endCursor"]
    out.sort(key=lambda v: -_index(v.version))
    return out, max(total, len(out))


def _index(version: str) -> int:
    try:
        return int(version.lstrip("v"))
    except ValueError:
        return -1


def project_collections(src, project: str, limit: int) -> dict:
    """{'rows': [Collection] (first `limit`, lineage of each latest version), 'total', 'entity'}."""
    s = src._session()

    def go():
        found = _collections(s, s.entity, project)
        if found is None:
            return None
        names, total, entity = found
        def one(pair):
            cname, ctype = pair
            seen, n = _versions(s, entity, project, ctype, cname, 10)
            if n > len(seen) and not any("latest" in v.aliases for v in seen):  # W&B did not list newest first
                seen, n = _versions(s, entity, project, ctype, cname, MAX_VERSIONS)
            latest = next((v for v in seen if "latest" in v.aliases), seen[0] if seen else None)
            return Collection(cname, ctype, n, latest)

        rows = list(_LINEAGE.map(one, names[:limit]))
        _lineage(s, [c.latest for c in rows if c.latest], f"{entity}/{project}")
        return {"rows": rows, "total": total, "entity": entity}

    out = src._guard(go, f"listing the artifacts of {s.entity}/{project}", s.key)
    if out is None:
        raise _unknown_project(src, project)
    return out


def collection_versions(src, project: str, name: str, limit: int) -> dict:
    """{'type', 'versions': newest `limit` [Version] with lineage, 'total', 'entity'}; closest names when unknown."""
    s = src._session()
    cname = name.rsplit("/", 1)[-1].split(":")[0]

    def go():
        found = _collections(s, s.entity, project)
        if found is None:
            return None
        names, _, entity = found
        ctype = next((t for n, t in names if n == cname), None)
        if ctype is None:
            return {"unknown": [n for n, _ in names]}
        versions, total = _versions(s, entity, project, ctype, cname, min(MAX_VERSIONS, max(limit, 50)))
        shown = versions[:limit]
        _lineage(s, shown, f"{entity}/{project}")
        out = {"type": ctype, "versions": shown, "total": total, "entity": entity}
        if total > len(versions) and not any("latest" in v.aliases for v in versions):
            out["note"] = f"the newest of the {len(versions)} versions read; W&B did not list its latest among them"
        return out

    out = src._guard(go, f"reading artifact {cname} of {s.entity}/{project}", s.key)
    if out is None:
        raise _unknown_project(src, project)
    if "unknown" in out:
        if not out["unknown"]:
            raise LensError(f"No artifact {cname!r} in {project!r}: it has no artifact collections.")
        raise LensError(suggest("artifact", cname, out["unknown"], where=f" in project {project!r}"))
    return out


def _unknown_project(src, project: str) -> LensError:
    s = src._session()
    names = list(src.projects())
    try:
        names += registries(src)
    except LensError:
        pass
    return LensError(suggest("project", project, names) + f" (entity {s.entity})")
