"""Trace sources: what the Weave tools read. A local SQLite store or the W&B trace server (HTTP).

Both speak the trace server's request language (calls filter + `$expr` query, see
`query.py`) and return calls as the trace server's JSON (dicts, `summary.weave` derived).
Counting goes through `count` / `status_counts` / `op_counts`, never through pulling calls.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from typing import Protocol

from ...errors import LensError, suggest
from . import query as tq

EVALUATE_OP = "Evaluation.evaluate"
PREDICT_OP = "Evaluation.predict_and_score"


def op_ref(project_id: str, name: str) -> str:
    """The op_names filter entry matching every version of op `name`."""
    return f"weave:///{project_id}/op/{name}:*"


class TraceSource(Protocol):
    kind: str

    def describe_location(self) -> str: ...

    def projects(self) -> list[str]: ...

    def calls(self, project_id: str, filter=None, query=None, columns=None, sort_by=None,
              limit: int | None = None, offset: int = 0, include_costs: bool = False) -> list[dict]: ...

    def count(self, project_id: str, filter=None, query=None) -> int: ...

    def status_counts(self, project_id: str, filter=None, query=None) -> dict[str, int]: ...

    def op_counts(self, project_id: str, filter=None, query=None) -> dict[str, dict]: ...

    def usage(self, project_id: str, filter=None, query=None) -> tuple[dict, bool]: ...

    def latencies(self, project_id: str, filter=None, query=None, ops=None) -> tuple[dict[str, list], bool]: ...

    def read_call(self, project_id: str, call_id: str) -> dict | None: ...

    def read_refs(self, refs: list[str]) -> list: ...


def resolve_project(source: TraceSource, project: str | None) -> str:
    """'proj' or 'entity/proj' (or None when the source holds one project) -> the project id."""
    known = source.projects()
    if project:
        if project in known:
            return project
        by_name = [p for p in known if p.split("/", 1)[-1] == project]
        if len(by_name) == 1:
            return by_name[0]
        if source.kind == "cloud" and "/" in project:
            return project
        if not known:
            raise LensError(f"Project {project!r} has no Weave traces in {source.describe_location()}.")
        raise LensError(suggest("Weave project", project, known))
    if len(known) == 1:
        return known[0]
    if not known:
        if source.kind == "cloud":
            raise LensError("No W&B project configured for Weave traces: pass project='entity/project' "
                            "(or set WANDB_ENTITY and WANDB_PROJECT).")
        raise LensError(f"No Weave traces in {source.describe_location()}: the trace store is empty.")
    raise LensError(f"Several Weave projects; pass project= one of: {', '.join(sorted(known))}.")


class LocalTraceSource:
    """Reads the SQLite file `wandb_lens.weave_local` writes. Opened read-only, lazily, and opened again
    when the file's identity (inode, size, mtime) changes; `immutable` on a read-only mount."""

    kind = "local"

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self._conn: sqlite3.Connection | None = None
        self._store = None
        self._ident: tuple | None = None  # file identity when opened (safe_open.file_identity)
        self._lock = threading.Lock()

    def describe_location(self) -> str:
        return f"the trace store {self.path}"

    def _db(self) -> sqlite3.Connection:
        ident = self._identity()
        if self._conn is not None and ident != self._ident:
            self._conn.close()  # replaced or rewritten (e.g. by `wandb-lens demo`): never answer from the old file
            self._conn = self._store = None
        if self._conn is None:
            from .store import TraceStore

            try:
                store = TraceStore(self.path, readonly=True, timeout=2.0)
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            self._check(store.conn)
            self._store, self._conn, self._ident = store, store.conn, ident
        return self._conn

    def _identity(self) -> tuple:
        """The store file's (device, inode, size, mtime): a regular file, checked without opening it."""
        from ..safe_open import UnsafeFile, check_regular, file_identity

        try:
            return file_identity(check_regular(self.path))
        except UnsafeFile as exc:
            if exc.reason == "no longer exists":
                raise LensError(f"No trace store at {self.path}: record evaluations with "
                                "wandb_lens.weave_local.init_local(project, db_path) or check --traces-db.") from None
            raise LensError(f"Cannot read the trace store {self.path}: {exc.reason}.") from None

    def _check(self, conn) -> None:
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc) from None
        except UnicodeDecodeError:  # a damaged schema text: SQLite's own error message is not UTF-8
            conn.close()
            raise
        if "calls" not in tables:
            conn.close()
            raise LensError(f"{self.path} is an SQLite file but not a wandb-lens trace store (no calls table).")

    def _error(self, exc: Exception) -> LensError:
        msg = str(exc)
        if "locked" in msg or "busy" in msg:
            return LensError(f"The trace store {self.path} is locked by another process (SQLite: {msg}); "
                             "retry when the writer is done.")
        if "not a database" in msg or "malformed" in msg or "corrupt" in msg:
            return LensError(f"The trace store {self.path} is corrupted or not an SQLite file (SQLite: {msg}).")
        return LensError(f"Cannot read the trace store {self.path} (SQLite: {msg}).")

    def _run(self, fn, *args, **kw):
        try:
            with self._lock:
                return fn(self._db(), *args, **kw)
        except tq.QueryError as exc:
            raise LensError(f"Bad trace query: {exc}") from None
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # a damaged page SQLite itself did not notice
            raise LensError(f"The trace store {self.path} holds damaged data ({type(exc).__name__}: "
                            f"{str(exc)[:120]}); check it with `sqlite3 {self.path} 'PRAGMA integrity_check'` "
                            "and re-record or restore it.") from None

    def projects(self) -> list[str]:
        return self._run(lambda c: [r[0] for r in c.execute("SELECT DISTINCT project_id FROM calls")])

    def calls(self, project_id, filter=None, query=None, columns=None, sort_by=None, limit=None, offset=0,
              include_costs=False) -> list[dict]:
        return self._run(tq.query_calls, project_id, filter, query, columns, sort_by, limit, offset)

    def count(self, project_id, filter=None, query=None) -> int:
        return self._run(tq.count_calls, project_id, filter, query)

    def status_counts(self, project_id, filter=None, query=None) -> dict[str, int]:
        return self._run(tq.status_counts, project_id, filter, query)

    def op_counts(self, project_id, filter=None, query=None) -> dict[str, dict]:
        return self._run(tq.op_counts, project_id, filter, query)

    def usage(self, project_id, filter=None, query=None) -> tuple[dict, bool]:
        return self._run(tq.usage_by_model, project_id, filter, query), False

    def latencies(self, project_id, filter=None, query=None, ops=None) -> tuple[dict[str, list], bool]:
        """Per op: latencies in ms of its newest 2000 matching ended calls; sampled when an op has more."""
        return self._run(tq.latency_by_op, project_id, filter, query, ops)

    def read_call(self, project_id, call_id) -> dict | None:
        found = self.calls(project_id, filter={"call_ids": [call_id]}, limit=1)
        return found[0] if found else None

    def find_call(self, call_id: str) -> dict | None:
        """A call by id in any project of the store."""
        def go(conn):
            r = conn.execute("SELECT project_id FROM calls WHERE id=?", (call_id,)).fetchone()
            return r[0] if r else None
        project_id = self._run(go)
        return self.read_call(project_id, call_id) if project_id else None

    def writer_gone(self, started_at) -> bool | None:
        """Whether the process that recorded a call started at `started_at` is gone: the last writer
        registered before it (wandb_lens.weave_local notes each) ran on this host and no longer runs.
        None when unknown (no writer noted, another host)."""
        import socket

        from .store import parse_time

        t = parse_time(started_at)

        def go(conn):
            return conn.execute("SELECT key, value FROM meta WHERE key LIKE 'writer:%'").fetchall()
        best = None
        for key, since in self._run(go):
            s = parse_time(since)
            if t is not None and s is not None and s <= t and (best is None or s > best[1]):
                best = (key, s)
        if best is None:
            return None
        _, host, pid = best[0].rsplit(":", 2) if best[0].count(":") >= 2 else (None, None, None)
        if host != socket.gethostname() or not str(pid).isdigit():
            return None
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:  # exists, owned by someone else
            return False
        return False

    def obj_version(self, ref: str) -> int | None:
        """An object ref's version index (v0, v1, ...) in the store."""
        from .refs import parse_ref

        try:
            r = parse_ref(ref)
        except ValueError:
            return None
        obj = self._run(lambda c: self._store.obj_read(r.project_id, r.name, r.digest))
        return obj.get("version_index") if obj else None

    def read_refs(self, refs: list[str]) -> list:
        """Each ref's value, or None when it does not resolve."""
        from .refs import RefResolver

        def go(conn):
            resolver = RefResolver(self._store)
            out = []
            for uri in refs:
                try:
                    out.append(resolver.resolve(uri))
                except (KeyError, ValueError, IndexError):
                    out.append(None)
            return out
        return self._run(go)
