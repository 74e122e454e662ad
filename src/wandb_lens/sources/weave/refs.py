"""Weave refs (`weave:///entity/project/object/Name:digest/attr/rows/id/<row>`) against the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

PREFIX = "weave:///"


@dataclass
class Ref:
    entity: str
    project: str
    kind: str  # object | op | table | call
    name: str
    digest: str
    extra: list[tuple[str, str]] = field(default_factory=list)

    @property
    def project_id(self) -> str:
        return f"{self.entity}/{self.project}"


def is_ref(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def parse_ref(uri: str) -> Ref:
    if not is_ref(uri):
        raise ValueError(f"not a weave ref: {uri[:80]!r}")
    parts = uri[len(PREFIX):].split("/")
    if len(parts) < 4:
        raise ValueError(f"incomplete weave ref: {uri[:80]!r}")
    entity, project, kind, head = parts[0], parts[1], parts[2], parts[3]
    if kind == "table":
        name, digest = "", head
    else:
        name, _, digest = head.rpartition(":")
        if not name:
            name, digest = head, "latest"
    rest = parts[4:]
    extra = [(rest[i], unquote(rest[i + 1])) for i in range(0, len(rest) - 1, 2)]
    return Ref(entity, project, kind, unquote(name), digest, extra)


def short_ref(uri) -> str:
    """'weave:///e/p/object/Dataset:abc.../attr/rows/id/xyz' -> 'Dataset:abc12345'."""
    if not is_ref(uri):
        return str(uri)
    try:
        r = parse_ref(uri)
    except ValueError:
        return uri[:80]
    base = f"{r.name}:{r.digest[:8]}" if r.kind != "table" else f"table:{r.digest[:8]}"
    return base + "".join(f"/{e}/{v[:8] if e == 'id' else v}" for e, v in r.extra)


class RefResolver:
    """Resolves refs with a TraceStore (object, op, table and table-row refs; attr/key/index/id paths)."""

    def __init__(self, store):
        self.store = store

    def resolve(self, uri: str):
        r = parse_ref(uri)
        if r.kind == "table":
            cur = self._table(r.project_id, r.digest)
        elif r.kind in ("object", "op"):
            obj = self.store.obj_read(r.project_id, r.name, r.digest)
            if obj is None:
                raise KeyError(uri)
            cur = obj["val"]
        else:
            raise KeyError(uri)
        for edge, val in r.extra:
            cur = self._step(r.project_id, cur, edge, val, uri)
        return cur

    def _table(self, project_id: str, digest: str) -> list:
        digests = self.store.table_row_digests(project_id, digest)
        if digests is None:
            raise KeyError(digest)
        rows = self.store.table_rows(project_id, digests)
        return [rows.get(d) for d in digests]

    def _step(self, project_id, cur, edge, val, uri):
        if is_ref(cur):
            target = parse_ref(cur)
            if target.kind == "table" and edge in ("id", "index"):
                digests = self.store.table_row_digests(target.project_id, target.digest) or []
                row_digest = val if edge == "id" else digests[int(val)]
                if edge == "id" and val not in digests:
                    raise KeyError(uri)
                return self.store.table_rows(target.project_id, [row_digest]).get(row_digest)
            cur = self.resolve(cur)
        if edge in ("attr", "key") and isinstance(cur, dict) and val in cur:
            return cur[val]
        if edge == "index" and isinstance(cur, list):
            return cur[int(val)]
        raise KeyError(uri)
