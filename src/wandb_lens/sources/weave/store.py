"""The local Weave trace store: one SQLite file holding calls, objects, tables and files.

The write path (`call_start`, `call_end`, `obj_create`, ...) takes the trace server's request
dicts, the same ones weave's client sends over HTTP, and stores them the way the W&B trace
server does; `wandb_lens.weave_local` puts weave's `WeaveClient` on top of it. The server side
(`query.py`) reads the same file. No weave import here: digests are computed by the caller
(weave's own digest functions) and passed in.

Beside the raw JSON, each call row keeps a few derived columns so that counting queries stay
cheap: the op's short name, epoch start/end, latency, the error count of its status roll-up and
its token totals.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from typing import Any

from .. import bounded_json

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    project_id TEXT NOT NULL, id TEXT PRIMARY KEY, trace_id TEXT, parent_id TEXT,
    thread_id TEXT, turn_id TEXT, op_name TEXT, op_short TEXT, display_name TEXT,
    started_at TEXT, started_ts REAL, ended_at TEXT, ended_ts REAL, exception TEXT,
    attributes TEXT, inputs TEXT, output TEXT, summary TEXT,
    wb_user_id TEXT, wb_run_id TEXT, wb_run_step INTEGER, wb_run_step_end INTEGER, deleted_at TEXT,
    latency_ms INTEGER, n_err INTEGER, tok_in INTEGER, tok_out INTEGER, tok_total INTEGER
);
CREATE INDEX IF NOT EXISTS calls_op ON calls (project_id, op_short, started_ts);
CREATE INDEX IF NOT EXISTS calls_parent_op ON calls (project_id, parent_id, op_short);
CREATE INDEX IF NOT EXISTS calls_trace ON calls (trace_id);
CREATE INDEX IF NOT EXISTS calls_started ON calls (project_id, started_ts);
CREATE TABLE IF NOT EXISTS objects (
    project_id TEXT NOT NULL, object_id TEXT NOT NULL, digest TEXT NOT NULL, kind TEXT,
    base_object_class TEXT, leaf_object_class TEXT, val TEXT, created_at TEXT,
    version_index INTEGER, PRIMARY KEY (project_id, object_id, digest)
);
CREATE TABLE IF NOT EXISTS tables (project_id TEXT NOT NULL, digest TEXT NOT NULL, row_digests TEXT,
    PRIMARY KEY (project_id, digest));
CREATE TABLE IF NOT EXISTS table_rows (project_id TEXT NOT NULL, digest TEXT NOT NULL, val TEXT,
    PRIMARY KEY (project_id, digest));
CREATE TABLE IF NOT EXISTS files (project_id TEXT NOT NULL, digest TEXT NOT NULL, name TEXT, content BLOB,
    PRIMARY KEY (project_id, digest));
CREATE TABLE IF NOT EXISTS feedback (id TEXT PRIMARY KEY, project_id TEXT, weave_ref TEXT,
    feedback_type TEXT, payload TEXT, created_at TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


def now_iso() -> str:
    return to_iso(dt.datetime.now(dt.timezone.utc))


def parse_time(value: Any) -> dt.datetime | None:
    """A datetime or an ISO string (with 'Z' or an offset; naive = UTC) -> aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        t = value
    elif isinstance(value, (int, float)):
        t = dt.datetime.fromtimestamp(float(value), dt.timezone.utc)
    else:
        t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def to_iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def latency_ms(started: dt.datetime, ended: dt.datetime) -> int:
    """Whole milliseconds between two times, as the W&B trace server computes them."""
    d = ended - started
    return (d.days * 86400 + d.seconds) * 1000 + d.microseconds // 1000


def op_short_name(op_name: str | None) -> str | None:
    """'weave:///e/p/op/Evaluation.evaluate:abc' -> 'Evaluation.evaluate'; plain names as they are."""
    if not op_name:
        return op_name
    if op_name.startswith("weave:///") or op_name.startswith("weave-trace-internal:///"):
        tail = op_name.split("/op/", 1)[-1] if "/op/" in op_name else op_name.rsplit("/", 1)[-1]
        return tail.split(":", 1)[0]
    return op_name


def usage_tokens(summary: dict | None) -> tuple[int | None, int | None, int | None]:
    """(input, output, total) tokens summed over the models of `summary.usage`."""
    usage = (summary or {}).get("usage")
    if not isinstance(usage, dict) or not usage:
        return None, None, None
    tin = tout = tot = 0
    for u in usage.values():
        if not isinstance(u, dict):
            continue
        i = _num(u.get("input_tokens", u.get("prompt_tokens")))
        o = _num(u.get("output_tokens", u.get("completion_tokens")))
        t = _num(u.get("total_tokens"))
        tin += i
        tout += o
        tot += t if t else i + o
    return tin, tout, tot


def _num(v) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0


def error_count(summary: dict | None) -> int:
    """`summary.status_counts["error"]` (keys may be TraceStatus enums before serialisation)."""
    counts = (summary or {}).get("status_counts")
    if not isinstance(counts, dict):
        return 0
    for k, v in counts.items():
        if str(getattr(k, "value", k)) == "error":
            return _num(v)
    return 0


def _dump(v: Any) -> str | None:
    return None if v is None else json.dumps(v, default=str, separators=(",", ":"))


def casefold(value) -> str | None:
    """Unicode case folding for case-insensitive matches (SQLite's LOWER/LIKE fold ASCII only)."""
    return None if value is None else str(value).casefold()


def add_functions(conn: sqlite3.Connection) -> None:
    conn.create_function("casefold", 1, casefold, deterministic=True)


def _open_readonly(path: str, timeout: float) -> tuple[sqlite3.Connection, bool]:
    """A read-only connection; on a read-only mount (a WAL store whose -shm cannot be created) the
    file is opened `immutable=1`: no locks, no -shm (nothing can write there anyway)."""
    from urllib.parse import quote

    base = f"file:{quote(path)}?mode=ro"
    conn = sqlite3.connect(base, uri=True, timeout=timeout, check_same_thread=False)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn, False
    except sqlite3.OperationalError as exc:
        msg = str(exc)
        if "unable to open" not in msg and "readonly" not in msg and "disk I/O" not in msg:
            return conn, False  # locked, damaged, ...: the caller reports it on first use
        conn.close()
    return sqlite3.connect(base + "&immutable=1", uri=True, timeout=timeout, check_same_thread=False), True


class TraceStore:
    """The SQLite file. Thread-safe: one connection, one lock (weave's client writes from a pool)."""

    def __init__(self, path: str, readonly: bool = False, timeout: float = 10.0):
        self.path = os.path.abspath(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._depth = 0
        self.immutable = False
        if readonly:
            self.conn, self.immutable = _open_readonly(self.path, timeout)
            add_functions(self.conn)
        else:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False)
            add_functions(self.conn)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.conn.commit()

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def register_writer(self) -> None:
        """Note this process as a writer (host, pid, since when): readers tell an evaluation whose
        recorder was killed ("interrupted") from one still running."""
        import socket

        self._exec("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                   (f"writer:{socket.gethostname()}:{os.getpid()}", now_iso()))

    @contextmanager
    def batch(self):
        """Group many writes into one transaction (used for bulk generation)."""
        with self._lock:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.conn.commit()

    def _exec(self, sql: str, args=()) -> sqlite3.Cursor:
        with self._lock:
            cur = self.conn.execute(sql, args)
            if self._depth == 0:
                self.conn.commit()
            return cur

    # ---- calls ------------------------------------------------------------------------------
    def call_start(self, start: dict) -> None:
        """Upsert a call's start; the end may have arrived first (weave sends from a thread pool)."""
        t = parse_time(start.get("started_at")) or dt.datetime.now(dt.timezone.utc)
        op_name = start.get("op_name")
        inputs = start.get("inputs") or {}
        row = (
            start["project_id"], start["id"], start.get("trace_id"), start.get("parent_id"),
            start.get("thread_id"), start.get("turn_id"), op_name, op_short_name(op_name),
            start.get("display_name") or None, to_iso(t), t.timestamp(), _dump(start.get("attributes") or {}),
            _dump(inputs), start.get("wb_user_id"), start.get("wb_run_id"), start.get("wb_run_step"),
        )
        with self._lock:
            self._exec(
                """INSERT INTO calls (project_id, id, trace_id, parent_id, thread_id, turn_id, op_name, op_short,
                display_name, started_at, started_ts, attributes, inputs, wb_user_id, wb_run_id, wb_run_step)
                VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                ON CONFLICT(id) DO UPDATE SET project_id=excluded.project_id, trace_id=excluded.trace_id,
                parent_id=excluded.parent_id, thread_id=excluded.thread_id, turn_id=excluded.turn_id,
                op_name=excluded.op_name, op_short=excluded.op_short,
                display_name=COALESCE(calls.display_name, excluded.display_name),
                started_at=excluded.started_at, started_ts=excluded.started_ts, attributes=excluded.attributes,
                inputs=excluded.inputs, wb_user_id=excluded.wb_user_id, wb_run_id=excluded.wb_run_id,
                wb_run_step=excluded.wb_run_step""",
                row,
            )
            self._fix_latency(start["id"])

    def call_end(self, end: dict) -> None:
        t = parse_time(end.get("ended_at")) or dt.datetime.now(dt.timezone.utc)
        summary = dict(end.get("summary") or {})
        summary.pop("weave", None)  # derived on read, never stored
        tin, tout, tot = usage_tokens(summary)
        started = parse_time(end.get("started_at"))
        row = (
            end["project_id"], end["id"], end.get("trace_id"), to_iso(t), t.timestamp(), end.get("exception"),
            _dump(end.get("output")), _dump(summary), end.get("wb_run_step_end"),
            error_count(summary), tin, tout, tot,
            to_iso(started) if started else None, started.timestamp() if started else None,
        )
        with self._lock:
            self._exec(
                """INSERT INTO calls (project_id, id, trace_id, ended_at, ended_ts, exception, output, summary,
                wb_run_step_end, n_err, tok_in, tok_out, tok_total, started_at, started_ts)
                VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                ON CONFLICT(id) DO UPDATE SET ended_at=excluded.ended_at, ended_ts=excluded.ended_ts,
                exception=excluded.exception, output=excluded.output, summary=excluded.summary,
                wb_run_step_end=excluded.wb_run_step_end, n_err=excluded.n_err, tok_in=excluded.tok_in,
                tok_out=excluded.tok_out, tok_total=excluded.tok_total,
                started_at=COALESCE(calls.started_at, excluded.started_at),
                started_ts=COALESCE(calls.started_ts, excluded.started_ts)""",
                row,
            )
            self._fix_latency(end["id"])

    def _fix_latency(self, call_id: str) -> None:
        r = self.conn.execute("SELECT started_at, ended_at FROM calls WHERE id=?", (call_id,)).fetchone()
        if r and r[0] and r[1]:
            self._exec("UPDATE calls SET latency_ms=? WHERE id=?",
                       (latency_ms(parse_time(r[0]), parse_time(r[1])), call_id))

    def call_update(self, req: dict) -> None:
        if req.get("display_name") is not None:
            self._exec("UPDATE calls SET display_name=? WHERE id=? AND project_id=?",
                       (req["display_name"], req["call_id"], req["project_id"]))

    # ---- objects, tables, files -------------------------------------------------------------
    def obj_create(self, project_id: str, object_id: str, digest: str, val: Any, kind: str,
                   base_object_class: str | None = None, leaf_object_class: str | None = None) -> None:
        with self._lock:
            if self.conn.execute("SELECT 1 FROM objects WHERE project_id=? AND object_id=? AND digest=?",
                                 (project_id, object_id, digest)).fetchone():
                return
            n = self.conn.execute("SELECT COUNT(*) FROM objects WHERE project_id=? AND object_id=?",
                                  (project_id, object_id)).fetchone()[0]
            self._exec("INSERT INTO objects VALUES (?,?,?,?,?,?,?,?,?)",
                       (project_id, object_id, digest, kind, base_object_class, leaf_object_class,
                        _dump(val), now_iso(), n))

    def obj_read(self, project_id: str, object_id: str, digest: str) -> dict | None:
        if digest == "latest":
            where, args = "ORDER BY version_index DESC LIMIT 1", (project_id, object_id)
            sql = f"SELECT * FROM objects WHERE project_id=? AND object_id=? {where}"
        elif digest.startswith("v") and digest[1:].isdigit():
            sql = "SELECT * FROM objects WHERE project_id=? AND object_id=? AND version_index=?"
            args = (project_id, object_id, int(digest[1:]))
        else:
            sql, args = "SELECT * FROM objects WHERE project_id=? AND object_id=? AND digest=?", (project_id, object_id, digest)
        with self._lock:
            cur = self.conn.execute(sql, args)
            r = cur.fetchone()
            if not r:
                return None
            d = dict(zip([c[0] for c in cur.description], r))
            latest = self.conn.execute("SELECT MAX(version_index) FROM objects WHERE project_id=? AND object_id=?",
                                       (project_id, object_id)).fetchone()[0]
        d["val"] = bounded_json.loads(d["val"], fallback_to_text=False) if d["val"] is not None else None
        d["is_latest"] = int(d["version_index"] == latest)
        return d

    def objs_of_kind(self, project_id: str, kind: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self.conn.execute(
                "SELECT DISTINCT object_id FROM objects WHERE project_id=? AND kind=?", (project_id, kind))]

    def table_create(self, project_id: str, digest: str, rows: list[tuple[str, Any]]) -> None:
        with self._lock:
            self._depth += 1
            try:
                for rd, val in rows:
                    self._exec("INSERT OR IGNORE INTO table_rows VALUES (?,?,?)", (project_id, rd, _dump(val)))
                self._exec("INSERT OR IGNORE INTO tables VALUES (?,?,?)",
                           (project_id, digest, json.dumps([rd for rd, _ in rows])))
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.conn.commit()

    def table_from_digests(self, project_id: str, digest: str, row_digests: list[str]) -> None:
        self._exec("INSERT OR IGNORE INTO tables VALUES (?,?,?)", (project_id, digest, json.dumps(row_digests)))

    def table_row_digests(self, project_id: str, digest: str) -> list[str] | None:
        with self._lock:
            r = self.conn.execute("SELECT row_digests FROM tables WHERE project_id=? AND digest=?",
                                  (project_id, digest)).fetchone()
        return bounded_json.loads(r[0], fallback_to_text=False) if r else None

    def table_rows(self, project_id: str, row_digests: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with self._lock:
            for i in range(0, len(row_digests), 500):
                chunk = row_digests[i: i + 500]
                q = ",".join("?" * len(chunk))
                for d, v in self.conn.execute(
                        f"SELECT digest, val FROM table_rows WHERE project_id=? AND digest IN ({q})",
                        (project_id, *chunk)):
                    out[d] = bounded_json.loads(v, fallback_to_text=False)
        return out

    def file_create(self, project_id: str, digest: str, name: str, content: bytes) -> None:
        self._exec("INSERT OR IGNORE INTO files VALUES (?,?,?,?)", (project_id, digest, name, content))

    def file_read(self, project_id: str, digest: str) -> bytes | None:
        with self._lock:
            r = self.conn.execute("SELECT content FROM files WHERE project_id=? AND digest=?",
                                  (project_id, digest)).fetchone()
        return r[0] if r else None

    def feedback_create(self, fid: str, project_id: str, weave_ref: str, feedback_type: str, payload: Any) -> None:
        self._exec("INSERT OR REPLACE INTO feedback VALUES (?,?,?,?,?,?)",
                   (fid, project_id, weave_ref, feedback_type, _dump(payload), now_iso()))
