"""Artifacts and registries for tests/fake_wandb.py, answering the GraphQL wandb 0.31 sends
(wandb.sdk.artifacts._generated): ProjectArtifactCollections, ProjectArtifacts, RunOutputArtifacts,
RunInputArtifacts, ArtifactCreatedBy, ArtifactUsedBy, FetchOrgInfoFromEntity, FetchRegistries,
RegistryCollections. W&B's rules kept: versions numbered per collection (a registry collection numbers
its linked versions itself), `latest` on the newest version, a user alias on one version per collection."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

ORG, ORG_ENTITY = "lens-org", "lens-org-entity"
OPS = ("ProjectArtifactCollections", "ProjectArtifacts", "RunOutputArtifacts", "RunInputArtifacts",
       "ArtifactCreatedBy", "ArtifactUsedBy", "FetchOrgInfoFromEntity", "FetchRegistries", "RegistryCollections")


@dataclass
class FakeArtifact:
    id: str
    entity: str
    project: str
    name: str
    type: str
    index: int
    digest: str
    size: int
    files: int
    metadata: dict
    producer: str | None  # run id in entity/project
    created_at: float
    state: str = "COMMITTED"
    ttl: int | None = None
    users: list = field(default_factory=list)  # [(entity, project, run id)]


@dataclass
class Collection:
    entity: str
    project: str
    name: str
    type: str
    members: list = field(default_factory=list)  # [FakeArtifact], version = position
    aliases: dict = field(default_factory=dict)  # alias -> FakeArtifact


class ArtifactStore:
    def __init__(self):
        self.arts: dict[str, FakeArtifact] = {}
        self.colls: dict[tuple, Collection] = {}  # (entity, project, name)
        self.registries: list[str] = []

    def _coll(self, entity, project, name, type_) -> Collection:
        return self.colls.setdefault((entity, project, name), Collection(entity, project, name, type_))

    def add(self, entity, project, name, type_, producer, digest, size, files=1, metadata=None, aliases=(),
            state="COMMITTED", ttl=None, created_at=1.7e9) -> FakeArtifact:
        c = self._coll(entity, project, name, type_)
        same = next((a for a in c.members if a.digest == digest), None)
        art = same or FakeArtifact(_gid("Artifact", f"{entity}/{project}/{name}/{len(c.members)}"), entity, project,
                                   name, type_, len(c.members), digest, size, files, dict(metadata or {}), producer,
                                   created_at, state, ttl)
        if same is None:
            c.members.append(art)
            self.arts[art.id] = art
        for a in aliases:
            c.aliases[a] = art
        return art

    def use(self, art: FakeArtifact, entity, project, run_id) -> None:
        art.users.append((entity, project, run_id))

    def add_registry(self, name: str) -> str:
        self.registries.append("wandb-registry-" + name)
        return "wandb-registry-" + name

    def link(self, art: FakeArtifact, registry: str, collection: str, aliases=()) -> None:
        c = self._coll(ORG_ENTITY, registry, collection, art.type)
        if art not in c.members:
            c.members.append(art)
        for a in aliases:
            c.aliases[a] = art

    # ----- GraphQL -----------------------------------------------------------------------------
    def project_known(self, entity, project) -> bool:
        return any((e, p) == (entity, project) for e, p, _ in self.colls)

    def node(self, art: FakeArtifact) -> dict:
        aliases = []
        for c in self.colls.values():
            if art not in c.members:
                continue
            names = [a for a, x in c.aliases.items() if x is art] + (["latest"] if c.members[-1] is art else [])
            aliases += [{"__typename": "ArtifactAlias", "id": _gid("Alias", f"{c.name}:{a}"), "alias": a,
                         "artifactCollection": {"__typename": "ArtifactSequence", "name": c.name,
                                                "project": _proj(c.entity, c.project)}} for a in names]
        return {"__typename": "Artifact", "id": art.id, "versionIndex": art.index,
                "artifactSequence": {"__typename": "ArtifactSequence", "name": art.name,
                                     "project": _proj(art.entity, art.project)},
                "artifactType": {"name": art.type}, "description": None, "metadata": json.dumps(art.metadata),
                "ttlDurationSeconds": art.ttl, "ttlIsInherited": art.ttl is None, "tags": [], "historyStep": None,
                "state": art.state, "size": art.size, "digest": art.digest, "digestAlgorithm": "MANIFEST_MD5",
                "commitHash": art.digest[:12], "fileCount": art.files, "createdAt": _iso(art.created_at),
                "updatedAt": None, "aliases": aliases}

    def coll_node(self, c: Collection) -> dict:
        return {"__typename": "ArtifactSequence" if c.entity != ORG_ENTITY else "ArtifactPortfolio",
                "id": _gid("ArtifactCollection", f"{c.entity}/{c.project}/{c.name}"), "name": c.name,
                "description": None, "createdAt": _iso(1.7e9), "updatedAt": None,
                "project": _proj(c.entity, c.project), "type": {"name": c.type}, "tags": {"edges": []}}

    def resolve(self, fake, op: str, v: dict) -> dict:
        if op == "FetchOrgInfoFromEntity":
            return {"entity": {"organization": {"name": ORG, "orgEntity": {"name": ORG_ENTITY}}, "user": None}}
        if op == "FetchRegistries":
            if v.get("organization") != ORG:
                return {"organization": None}
            edges = [{"node": {"__typename": "Project", "id": _gid("Project", r), "internalId": "1", "name": r,
                               "entity": {"name": ORG_ENTITY, "organization": {"name": ORG}}, "description": None,
                               "createdAt": _iso(1.7e9), "updatedAt": None, "access": "ORGANIZATION",
                               "allowAllArtifactTypes": True, "artifactTypes": {"edges": []}}} for r in self.registries]
            return {"organization": {"orgEntity": {"projects": {"pageInfo": _page(None, False), "edges": edges}}}}
        if op == "RegistryCollections":
            want = json.loads(v.get("registryFilter") or "{}").get("name")
            colls = [c for c in self.colls.values() if c.entity == ORG_ENTITY and (want is None or c.project == want)]
            return {"organization": {"orgEntity": {"name": ORG_ENTITY, "artifactCollections": _conn(
                [self.coll_node(c) for c in colls], v)}}}
        if op in ("ArtifactCreatedBy", "ArtifactUsedBy"):
            art = self.arts.get(v.get("id"))
            if art is None:
                return {"artifact": None}
            if op == "ArtifactCreatedBy":
                return {"artifact": {"createdBy": _run(art.entity, art.project, art.producer) if art.producer else None}}
            return {"artifact": {"usedBy": {"edges": [{"node": _run(*u)} for u in art.users]}}}
        entity, project = v.get("entity"), v.get("project")
        known = fake.project_exists(entity, project) or self.project_known(entity, project)
        if op == "ProjectArtifactCollections":
            if not known:
                return {"project": None}
            colls = [c for c in self.colls.values() if (c.entity, c.project) == (entity, project)]
            return {"project": {"artifactCollections": _conn([self.coll_node(c) for c in colls], v)}}
        if op == "ProjectArtifacts":
            c = self.colls.get((entity, project, v.get("collection")))
            if not known:
                return {"project": None}
            if c is None or c.type != v.get("type"):
                return {"project": {"artifactType": {"artifactCollection": None}}}
            newest = list(enumerate(c.members))[::-1]
            start, n = int(v.get("cursor") or 0), int(v.get("perPage") or 50)
            page = newest[start:start + n]
            return {"project": {"artifactType": {"artifactCollection": {"__typename": "ArtifactSequence", "artifacts": {
                "totalCount": len(newest), "pageInfo": _page(str(start + len(page)), start + len(page) < len(newest)),
                "edges": [{"version": f"v{i}", "node": self.node(a)} for i, a in page]}}}}}
        if op in ("RunOutputArtifacts", "RunInputArtifacts"):
            run = fake.find(entity, project, v.get("run"))
            if run is None:
                return {"project": {"run": None}}
            if op == "RunOutputArtifacts":
                arts = [a for a in self.arts.values() if (a.entity, a.project, a.producer) == (entity, project, run.id)]
            else:
                arts = [a for a in self.arts.values() if (entity, project, run.id) in a.users]
            n = int(v.get("perPage") or 50)
            return {"project": {"run": {"artifacts": {"totalCount": len(arts), "pageInfo": _page(None, len(arts) > n),
                                                      "edges": [{"node": self.node(a)} for a in arts[:n]]}}}}
        raise KeyError(op)


def _conn(nodes: list, v: dict) -> dict:
    start, n = int(v.get("cursor") or 0), int(v.get("perPage") or 50)
    page = nodes[start:start + n]
    return {"totalCount": len(nodes), "pageInfo": _page(str(start + len(page)), start + len(page) < len(nodes)),
            "edges": [{"node": x} for x in page]}


def _page(cursor, more: bool) -> dict:
    return {"__typename": "PageInfo", "endCursor": cursor, "hasNextPage": more}


def _proj(entity: str, project: str) -> dict:
    return {"id": _gid("Project", f"{entity}/{project}"), "internalId": "1", "name": project, "entity": {"name": entity}}


def _run(entity: str, project: str, run_id: str) -> dict:
    return {"__typename": "Run", "id": _gid("Run", f"{project}:{run_id}"), "name": run_id,
            "project": _proj(entity, project)}


def _gid(kind: str, text: str) -> str:
    return base64.b64encode(f"{kind}:{text}".encode()).decode()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
