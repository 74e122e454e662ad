"""A loopback fake of the W&B backend, speaking the GraphQL that wandb 0.31 really sends.

`wandb.Api` (and the wandb-core service it drives) is pointed at it with WANDB_BASE_URL, so the
real client code runs end to end; only the network peer is fake. It serves runs built from the
local reader (the demo runs), counts requests by GraphQL operation, and can inject faults:
HTTP 500s, slowness, deleted runs, rejected filters.

Operations served: Viewer / GetViewer / GetDefaultEntity (auth), GetProjects, Runs (filters,
order, cursor paging, runCount), Run, RunHistoryKeys, RunSampledHistory, RunFullHistory
(history / events = system metrics), RunParquetHistory (+ GET of the parquet export),
HistoryPage (wandb-core's scan without the export), RunFiles, GetSweep / GetSweeps, and the
artifact / registry queries of tests/fake_wandb_artifacts.py (`fake.artifacts`).
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

GOOD_KEY = "a" * 40
OTHER_KEY = "b" * 40  # a second user, for the multi-user tests


@dataclass
class FakeRun:
    id: str
    project: str
    entity: str
    display_name: str
    state: str
    created_at: float
    config: dict
    summary: dict
    tags: list = field(default_factory=list)
    group: str = ""
    job_type: str = ""
    notes: str = ""
    metrics: list = field(default_factory=list)  # define_metric records, as the local reader gives them
    rows: list = field(default_factory=list)  # history rows, W&B style: {"_step": 0, "loss": 0.5, ...}
    system: list = field(default_factory=list)  # system-metric events: {"system.cpu": 3.0, "_timestamp": ..}
    heartbeat_at: float | None = None
    owner_key: str = GOOD_KEY
    sweep: str = ""  # the sweep id (W&B's sweepName)
    files: dict = field(default_factory=dict)  # run files served by RunFiles + download: {"output.log": bytes}

    @property
    def created_iso(self) -> str:
        return datetime.fromtimestamp(self.created_at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def client_env(mp, netrc_dir) -> None:
    """The environment a test's wandb client runs in: the good key, no netrc, no default entity/project."""
    mp.setenv("WANDB_API_KEY", GOOD_KEY)
    mp.setenv("NETRC", str(netrc_dir / "netrc"))
    mp.delenv("WANDB_ENTITY", raising=False)
    mp.delenv("WANDB_PROJECT", raising=False)


def rows_from_history(hist) -> list[dict]:
    """A local `History` as W&B's row documents (histograms as `{"_type": "histogram", ...}`)."""
    from wandb_lens.sources.history import HISTOGRAM, MEDIA, NUMERIC

    rows: list[dict] = [{} for _ in range(hist.n_rows)]
    for key, col in hist.columns.items():
        if col.kind == NUMERIC:
            vals = np.asarray(col.values, dtype=np.float64)
            is_int = key == "_step"
            for r, v in zip(col.rows.tolist(), vals.tolist()):
                rows[r][key] = int(v) if is_int else v
        elif col.kind == HISTOGRAM:
            for r, c, b in zip(col.rows.tolist(), col.values, col.bins or []):
                rows[r][key] = {"_type": "histogram", "values": [float(x) for x in c], "bins": [float(x) for x in b]}
        elif col.kind == MEDIA:
            for r, v in zip(col.rows.tolist(), col.values):
                rows[r][key] = {"_type": v or "image-file", "path": f"media/{key}.png"}
        else:
            for r, v in zip(col.rows.tolist(), col.values):
                rows[r][key] = v
    return rows


def runs_from_local(runs_dir: str, entity: str = "lens-team", cache_dir: str | None = None) -> list[FakeRun]:
    from wandb_lens.sources.local.source import LocalRunSource

    src = LocalRunSource([runs_dir], cache_dir)
    out = []
    for info in src.list_runs():
        hist = src.history(info)
        files = {}
        text = src.console(info) if (Path(info.path).parent / "files" / "output.log").is_file() else None
        if text is not None:
            with text:
                files["output.log"] = text.read(0, text.size)
        rows = rows_from_history(hist)
        summary = dict(info.summary)
        if rows:
            summary.setdefault("_step", rows[-1].get("_step"))
        if info.runtime_s is not None:
            summary["_runtime"] = info.runtime_s
        out.append(FakeRun(
            id=info.id, project=info.project, entity=entity, display_name=info.name, state=info.state,
            created_at=info.created_at or 0.0, config=dict(info.config), summary=summary, tags=list(info.tags),
            group=info.group, job_type=info.job_type, notes=info.notes, metrics=list(info.metrics), rows=rows,
            heartbeat_at=(info.created_at or 0) + (info.runtime_s or 0), sweep=info.sweep_id, files=files,
        ))
    return out


def long_run(entity: str, project: str, run_id: str, steps: int, created_at: float = 1.7e9) -> FakeRun:
    """A synthetic finished run: loss every step, val_loss every 100, lr every step, a spike at 3/4."""
    rng = np.random.default_rng(7)
    s = np.arange(steps)
    loss = 2.0 * np.exp(-s / (steps / 5)) + 0.05 * rng.random(steps)
    loss[int(steps * 0.75)] += 5.0
    rows = []
    for i in range(steps):
        if i % 100 == 99:  # validation in its own log() call: a row without the train keys
            rows.append({"_step": i, "val_loss": float(loss[i] + 0.1), "_runtime": i * 0.01,
                         "_timestamp": created_at + i * 0.01})
        else:
            rows.append({"_step": i, "loss": float(loss[i]), "lr": 1e-3 * (1 - i / steps), "_runtime": i * 0.01,
                         "_timestamp": created_at + i * 0.01})
    last_val = next(r["val_loss"] for r in reversed(rows) if "val_loss" in r)
    last_train = next(r for r in reversed(rows) if "loss" in r)
    summary = {"loss": last_train["loss"], "lr": last_train["lr"], "val_loss": last_val, "_step": steps - 1,
               "_runtime": steps * 0.01}
    system = [{"system.cpu": float(10 + i % 7), "system.memory": 40.0 + i, "_runtime": i * 15.0,
               "_timestamp": created_at + i * 15.0} for i in range(40)]
    return FakeRun(id=run_id, project=project, entity=entity, display_name=run_id, state="finished",
                   created_at=created_at, config={"lr": 1e-3, "steps": steps}, summary=summary, rows=rows,
                   system=system, heartbeat_at=created_at + steps * 0.01)


class FakeWandb:
    """Start with `FakeWandb(runs).start()`; `url` is the base URL; `counts` counts operations."""

    def __init__(self, runs: list[FakeRun], keys: dict[str, str] | None = None):
        self.runs = list(runs)
        self.keys = keys or {GOOD_KEY: "alice", OTHER_KEY: "bob"}  # api key -> username
        self.counts: Counter = Counter()
        self.log: list[tuple[str, dict]] = []
        self.auth_seen: list[str] = []
        self.lock = threading.Lock()
        self.fail: dict[str, tuple[int, int]] = {}  # op -> (status, times); op "*" = every op
        self.delay: dict[str, float] = {}  # op -> seconds
        self.deleted: set[str] = set()
        self.reject_filters = False
        self.parquet = True  # serve the parquet export (else wandb-core pages through history)
        self.ranges = True  # honour HTTP Range on run file downloads (else send the whole file)
        self.file_url = ""  # run file URLs start here instead of the fake's own /files/run/ (hostile servers)
        self.sweeps: dict[tuple, dict] = {}  # (entity, project, sweep id) -> the sweep's fields (add_sweep)
        from fake_wandb_artifacts import ArtifactStore

        self.artifacts = ArtifactStore()
        self.server: ThreadingHTTPServer | None = None

    # ----- lifecycle ------------------------------------------------------------------------
    def start(self) -> FakeWandb:
        fake = self

        class Handler(_Handler):
            owner = fake

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that gave up (timeout tests): quiet
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.log.clear()
            self.fail.clear()
            self.delay.clear()
            self.deleted.clear()
            self.reject_filters = False
            self.parquet = True
            self.ranges = True
            self.file_url = ""

    def history_requests(self) -> int:
        return sum(self.counts[op] for op in HISTORY_OPS)

    # ----- data ------------------------------------------------------------------------------
    def find(self, entity: str, project: str, run_id: str | None = None):
        with self.lock:
            runs = [r for r in self.runs if r.entity == entity and r.project == project and r.id not in self.deleted]
        if run_id is None:
            return runs
        return next((r for r in runs if r.id == run_id), None)

    def project_exists(self, entity: str, project: str) -> bool:
        return any(r.entity == entity and r.project == project for r in self.runs)

    def add_sweep(self, entity: str, project: str, sweep_id: str, config: dict, state: str = "FINISHED",
                  created_at: float = 1.7e9) -> None:
        """A sweep as W&B stores it: its config as YAML text; method and run counts beside it."""
        import yaml

        with self.lock:
            runs = sum(1 for r in self.runs if (r.entity, r.project, r.sweep) == (entity, project, sweep_id))
            self.sweeps[(entity, project, sweep_id)] = {
                "__typename": "Sweep", "id": base64.b64encode(f"Sweep:{sweep_id}".encode()).decode(),
                "name": sweep_id, "displayName": config.get("name"), "method": config.get("method"), "state": state,
                "description": None, "bestLoss": None, "config": yaml.safe_dump(config),
                "createdAt": datetime.fromtimestamp(created_at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                "updatedAt": None, "runCount": runs, "runCountExpected": config.get("run_cap")}

    def add_run(self, run: FakeRun) -> None:
        with self.lock:
            self.runs.append(run)


HISTORY_OPS = ("RunSampledHistory", "RunFullHistory", "RunParquetHistory", "HistoryPage", "SampledHistoryPage",
               "parquet-download")


def _op_name(doc: dict) -> str:
    name = doc.get("operationName")
    if name:
        return name
    m = re.search(r"\b(query|mutation)\s+(\w+)", doc.get("query") or "")
    return m.group(2) if m else "anonymous"


class _GraphQLError(Exception):
    def __init__(self, message: str, status: int = 200):
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    owner: FakeWandb
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _key(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            try:
                user, _, key = base64.b64decode(auth[6:]).decode().partition(":")
                return key
            except ValueError:
                return None
        if auth.startswith("Bearer "):
            return auth[7:]
        return None

    def _run_file(self, fake: FakeWandb) -> bool:
        """GET /files/run/<entity>/<project>/<run>/<name>: a run file, Range honoured unless fake.ranges
        is off; needs the run owner's key (as W&B's file URLs do). Logs the bytes sent."""
        m = re.match(r"^/files/run/([^/]+)/([^/]+)/([^/]+)/([^/?]+)", self.path)
        if not m:
            return False
        run = fake.find(m.group(1), m.group(2), m.group(3))
        data = run.files.get(m.group(4)) if run is not None and _visible(run, self._key() or "") else None
        rng = re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range") or "")
        with fake.lock:
            fake.counts["file-download"] += 1
        if data is None:
            self._send(404, b"not found", "text/plain")
            return True
        if not rng or not fake.ranges:
            with fake.lock:
                fake.log.append(("GET", {"path": self.path, "range": self.headers.get("Range"), "sent": len(data)}))
            self._send(200, data, "text/plain")
            return True
        lo, hi = rng.group(1), rng.group(2)
        start = max(0, len(data) - int(hi)) if lo == "" else int(lo)
        end = len(data) - 1 if lo == "" or not hi else min(len(data) - 1, int(hi))
        part = data[start:end + 1]
        with fake.lock:
            fake.log.append(("GET", {"path": self.path, "range": self.headers.get("Range"), "sent": len(part)}))
        self.send_response(206)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        self.wfile.write(part)
        return True

    def do_GET(self):
        fake = self.owner
        if self._run_file(fake):
            return
        m = re.match(r"^/files/parquet/([^/]+)/([^/]+)/([^/]+)\.parquet", self.path)
        if not m:
            return self._send(404, b"not found", "text/plain")
        with fake.lock:
            fake.counts["parquet-download"] += 1
            fake.log.append(("GET", {"path": self.path, "range": self.headers.get("Range")}))
        run = fake.find(m.group(1), m.group(2), m.group(3))
        if run is None:
            return self._send(404, b"not found", "text/plain")
        data = _parquet_bytes(run)
        rng = re.match(r"bytes=(\d*)-(\d*)", self.headers.get("Range") or "")
        if not rng:
            return self._send(200, data, "application/octet-stream")
        lo, hi = rng.group(1), rng.group(2)
        if lo == "":  # suffix: the last N bytes
            start, end = max(0, len(data) - int(hi)), len(data) - 1
        else:
            start, end = int(lo), min(len(data) - 1, int(hi) if hi else len(data) - 1)
        part = data[start:end + 1]
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        self.wfile.write(part)

    def do_HEAD(self):
        fake = self.owner
        m = re.match(r"^/files/parquet/([^/]+)/([^/]+)/([^/]+)\.parquet", self.path)
        run = fake.find(m.group(1), m.group(2), m.group(3)) if m else None
        if run is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(_parquet_bytes(run))))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_POST(self):
        fake = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if not self.path.startswith("/graphql"):
            return self._send(200, b"{}")  # telemetry (/sdk/otel/...): accepted, not counted
        try:
            doc = json.loads(body)
        except ValueError:
            return self._send(400, b'{"errors":[{"message":"bad json"}]}')
        op = _op_name(doc)
        variables = doc.get("variables") or {}
        key = self._key()
        with fake.lock:
            fake.counts[op] += 1
            fake.log.append((op, variables))
            if key:
                fake.auth_seen.append(key)
            delay = fake.delay.get(op, fake.delay.get("*", 0.0))
            fail = fake.fail.get(op) or fake.fail.get("*")
            if fail and fail[1] > 0:
                which = op if op in fake.fail else "*"
                fake.fail[which] = (fail[0], fail[1] - 1)
        if delay:
            time.sleep(delay)
        if fail and fail[1] > 0:
            return self._send(fail[0], json.dumps({"errors": [{"message": f"injected {fail[0]}"}]}).encode())
        user = fake.keys.get(key or "")
        if user is None:
            return self._send(401, b'{"errors":[{"message":"user is not logged in"}]}')
        try:
            data = _resolve(fake, op, doc.get("query") or "", variables, user, key)
        except _GraphQLError as exc:
            return self._send(exc.status, json.dumps({"errors": [{"message": str(exc)}], "data": None}).encode())
        self._send(200, json.dumps({"data": data}, default=_json_default).encode())


def _json_default(v):
    return str(v)


def _viewer(user: str) -> dict:
    return {"id": base64.b64encode(f"User:{user}".encode()).decode(), "entity": "lens-team" if user == "alice" else user,
            "username": user, "name": user, "email": f"{user}@example.com", "admin": False, "flags": "{}",
            "deletedAt": None, "apiKeys": {"edges": []}, "teams": {"edges": [{"node": {"name": "lens-team"}}]}}


def _resolve(fake: FakeWandb, op: str, query: str, v: dict, user: str, key: str) -> dict:
    if op in ("Viewer", "GetViewer", "GetDefaultEntity") or re.search(r"^\s*query\s*\{?\s*viewer", query):
        return {"viewer": _viewer(user)}
    if op == "GetProjects":
        entity = v.get("entity")
        names: dict[str, float] = {}
        for r in fake.runs:
            if r.entity == entity and _visible(r, key):
                names[r.project] = min(names.get(r.project, r.created_at), r.created_at)
        edges = [{"node": {"__typename": "Project", "id": base64.b64encode(f"Project:{n}".encode()).decode(),
                           "name": n, "entityName": entity,
                           "createdAt": datetime.fromtimestamp(c, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                           "isBenchmark": False, "user": None}} for n, c in sorted(names.items())]
        return {"models": {"pageInfo": {"__typename": "PageInfo", "endCursor": None, "hasNextPage": False},
                           "edges": edges}}
    from fake_wandb_artifacts import OPS as ARTIFACT_OPS

    if op in ARTIFACT_OPS:
        return fake.artifacts.resolve(fake, op, v)
    entity, project = v.get("entity"), v.get("project")
    if not fake.project_exists(entity, project) or not any(_visible(r, key) for r in fake.runs
                                                            if r.entity == entity and r.project == project):
        return {"project": None}
    if op == "Runs":
        return {"project": _runs_page(fake, entity, project, v, key)}
    if op in ("GetSweep", "GetSweeps"):
        return {"project": _sweeps(fake, op, entity, project, v)}
    run_id = v.get("name") or v.get("run") or v.get("runName")
    run = fake.find(entity, project, run_id)
    if run is None or not _visible(run, key):
        return {"project": {"run": None}}
    if op == "Run":
        return {"project": {"run": {"projectId": "1", **_run_node(run)}}}
    if op == "RunHistoryKeys":
        return {"project": {"run": {"historyKeys": _history_keys(run)}}}
    if op == "RunSampledHistory":
        out = []
        for spec in v.get("specs") or []:
            spec = json.loads(spec)
            out.append(_sampled(run.rows, spec["keys"], int(spec.get("samples", 500))))
        return {"project": {"run": {"sampledHistory": out}}}
    if op == "RunFullHistory":
        node = "events" if "events(" in query else "history"
        rows = run.system if node == "events" else run.rows
        samples = int(v.get("samples") or 500)
        picked = _even(rows, samples)
        return {"project": {"run": {node: [json.dumps(r) for r in picked]}}}
    if op == "RunParquetHistory":
        if not fake.parquet:
            raise _GraphQLError("parquet history is not available for this run")
        if fake.parquet == "live":  # not exported yet: every row comes back as live data
            return {"project": {"run": {"parquetHistory": {"parquetUrls": [], "liveData": run.rows}}}}
        url = f"{fake.url}/files/parquet/{run.entity}/{run.project}/{run.id}.parquet"
        return {"project": {"run": {"parquetHistory": {"parquetUrls": [url], "liveData": []}}}}
    if op == "HistoryPage":
        lo, hi, n = int(v["minStep"]), int(v["maxStep"]), int(v["pageSize"])
        picked = [r for r in run.rows if lo <= r.get("_step", -1) < hi][:n]
        return {"project": {"run": {"history": [json.dumps(r) for r in picked]}}}
    if op == "SampledHistoryPage":
        spec = json.loads(v["spec"])
        return {"project": {"run": {"sampledHistory": [_sampled(run.rows, spec["keys"], int(spec.get("samples", 500)),
                                                                spec.get("minStep"), spec.get("maxStep"))]}}}
    if op == "RunFiles":
        names = v.get("fileNames") or sorted(run.files)
        edges = [{"node": {"id": base64.b64encode(f"File:{run.id}:{n}".encode()).decode(), "name": n,
                           "url": (fake.file_url or f"{fake.url}/files/run/") + f"{run.entity}/{run.project}/{run.id}/{n}",
                           "directUrl": None,
                           "sizeBytes": len(run.files[n]), "mimetype": "text/plain", "updatedAt": run.created_iso,
                           "md5": None}, "cursor": n} for n in names if n in run.files]
        return {"project": {"internalId": "1", "run": {
            "files": {"edges": edges, "pageInfo": {"endCursor": None, "hasNextPage": False}},
            "fileCount": len(run.files)}}}
    raise _GraphQLError(f"fake W&B: unsupported operation {op}")


def _visible(run: FakeRun, key: str) -> bool:
    return run.owner_key == key


def _run_node(run: FakeRun) -> dict:
    config = {k: {"value": val, "desc": None} for k, val in run.config.items()}
    wandb_meta: dict = {"cli_version": "0.31.0"}
    if run.metrics:
        wandb_meta["m"] = _encode_metrics(run.metrics)
    config["_wandb"] = {"value": wandb_meta, "desc": None}
    return {
        "id": base64.b64encode(f"Run:{run.project}:{run.id}".encode()).decode(), "tags": run.tags, "name": run.id,
        "displayName": run.display_name, "sweepName": run.sweep or None, "state": run.state, "config": json.dumps(config),
        "group": run.group or None, "jobType": run.job_type or None, "commit": None, "readOnly": False,
        "createdAt": run.created_iso,
        "heartbeatAt": datetime.fromtimestamp(run.heartbeat_at or run.created_at, tz=timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S"),
        "description": run.notes or None, "notes": run.notes or None, "systemMetrics": "{}",
        "summaryMetrics": json.dumps(run.summary), "historyLineCount": len(run.rows),
        "user": {"name": "alice", "username": "alice"}, "historyKeys": _history_keys(run),
    }


def _encode_metrics(metrics: list[dict]) -> list[dict]:
    """define_metric records as W&B stores them in config._wandb.m (protobuf field numbers)."""
    names = [m["name"] for m in metrics]
    out = []
    for m in metrics:
        entry: dict = {"2" if m.get("glob") else "1": m["name"]}
        if m.get("step_metric"):
            if m["step_metric"] in names:
                entry["5"] = names.index(m["step_metric"]) + 1
            else:
                entry["4"] = m["step_metric"]
        entry["6"] = [3]
        entry["7"] = []
        out.append(entry)
    return out


_HK_CACHE: dict[tuple, dict] = {}


def _history_keys(run: FakeRun) -> dict:
    ck = (run.entity, run.project, run.id, len(run.rows), id(run.rows))
    if ck not in _HK_CACHE:
        _HK_CACHE[ck] = _compute_history_keys(run)
    return _HK_CACHE[ck]


def _compute_history_keys(run: FakeRun) -> dict:
    keys: dict[str, dict] = {}
    for row in run.rows:
        for k, val in row.items():
            t = _type_name(val)
            info = keys.setdefault(k, {"counts": Counter(), "previousValue": None, "monotonic": True})
            info["counts"][t] += 1
            prev = info["previousValue"]
            if t == "number" and isinstance(prev, (int, float)) and not val >= prev:
                info["monotonic"] = False
            info["previousValue"] = val
    out = {}
    for k, info in keys.items():
        out[k] = {"typeCounts": [{"type": t, "count": c} for t, c in info["counts"].items()],
                  "monotonic": info["monotonic"] and set(info["counts"]) == {"number"},
                  "previousValue": _finite(info["previousValue"])}
    last = max((r.get("_step", -1) for r in run.rows), default=-1)
    return {"lastStep": last, "keys": out}


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


def _type_name(val) -> str:
    if isinstance(val, bool):
        return "boolean"
    if isinstance(val, (int, float)):
        return "number"
    if isinstance(val, str):
        return "string"
    if isinstance(val, dict):
        return val.get("_type", "map")
    return "unknown"


def _even(rows: list, n: int) -> list:
    if len(rows) <= n:
        return list(rows)
    idx = np.unique(np.linspace(0, len(rows) - 1, n).round().astype(int))
    return [rows[i] for i in idx]


def _sampled(rows: list, keys: list, samples: int, lo=None, hi=None) -> list:
    """W&B sampledHistory: rows holding every key (the AND semantics), evenly sampled."""
    picked = [{k: r[k] for k in keys if k in r} for r in rows
              if all(k in r for k in keys) and (lo is None or r.get("_step", 0) >= lo)
              and (hi is None or r.get("_step", 0) < hi)]
    return _even(picked, samples)


def _runs_page(fake: FakeWandb, entity: str, project: str, v: dict, key: str) -> dict:
    from wandb_lens.analysis import run_filters as rf

    runs = [r for r in fake.find(entity, project) if _visible(r, key)]
    filters = json.loads(v.get("filters") or "{}")
    if fake.reject_filters:
        raise _GraphQLError("invalid filters: operator not supported", status=400)
    try:
        local = _to_local_filters(filters)
        rf.check(local)
        docs = [(_local_doc(r), r) for r in runs]
        matched = [(d, r) for d, r in docs if rf.matches(d, local)]
    except rf.FilterError as exc:
        raise _GraphQLError(f"invalid filters: {exc}", status=400) from None
    order = v.get("order") or "+created_at"
    field_, desc = order.lstrip("+-"), order.startswith("-")
    local_field = _LOCAL_ORDER.get(field_) or _to_local_field(field_)
    by_id = {id(d): r for d, r in matched}
    ordered = [by_id[id(d)] for d in rf.sort_docs([d for d, _ in matched], ("-" if desc else "+") + local_field)]
    total = len(ordered)
    start = int(v["cursor"]) if v.get("cursor") else 0
    per_page = int(v.get("perPage") or 50)
    page = ordered[start:start + per_page]
    lazy = "LightweightRunFragment" in (v.get("_query") or "")
    edges = [{"node": {"projectId": "1", **_run_node(r)}, "cursor": str(start + i + 1)} for i, r in enumerate(page)]
    if lazy:
        for e in edges:
            for heavy in ("config", "summaryMetrics", "systemMetrics", "historyKeys"):
                e["node"].pop(heavy, None)
    return {"internalId": "1", "runCount": total, "readOnly": False,
            "runs": {"edges": edges, "pageInfo": {"endCursor": str(start + len(page)) if page else None,
                                                  "hasNextPage": start + len(page) < total}}}


_LOCAL_ORDER = {"created_at": "created_at", "createdAt": "created_at", "heartbeat_at": "created_at"}


def _local_doc(run: FakeRun) -> dict:
    return {"__id": run.id, "name": run.display_name, "state": run.state, "group": run.group, "job_type": run.job_type,
            "sweep": run.sweep, "tags": run.tags, "created_at": datetime.fromtimestamp(run.created_at, tz=timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"), "project": run.project, "entity": run.entity, "config": run.config,
            "summary": {k: val for k, val in run.summary.items() if not k.startswith("_")}}


def _to_local_field(f: str) -> str:
    """A W&B server filter field as the fake's document names it."""
    if f == "name":
        return "__id"
    if f in ("display_name", "displayName"):
        return "name"
    if f == "jobType":
        return "job_type"
    if f in ("createdAt", "created_at"):
        return "created_at"
    if f.startswith("config.") and f.endswith(".value"):
        return f[: -len(".value")]
    if f.startswith("summary_metrics."):
        return "summary." + f[len("summary_metrics."):]
    if f in ("state", "tags", "group", "job_type", "sweep"):
        return f
    raise _GraphQLError(f"invalid filters: unknown field {f!r}", status=400)


def _to_local_filters(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, val in node.items():
            if k in ("$and", "$or", "$nor"):
                out[k] = [_to_local_filters(x) for x in val]
            elif k.startswith("$"):
                out[k] = val
            else:
                out[_to_local_field(k)] = val
        return out
    return node


def _sweeps(fake: FakeWandb, op: str, entity: str, project: str, v: dict) -> dict:
    """GetSweep (one sweep by name, None when unknown) and GetSweeps (a page of the project's sweeps)."""
    with fake.lock:
        mine = {sid: node for (e, p, sid), node in fake.sweeps.items() if (e, p) == (entity, project)}
    if op == "GetSweep":
        return {"sweep": mine.get(v.get("name"))}
    names = sorted(mine)
    start = int(v.get("cursor") or 0)
    n = int(v.get("perPage") or 50)
    page = names[start:start + n]
    return {"totalSweeps": len(names), "sweeps": {
        "pageInfo": {"__typename": "PageInfo", "endCursor": str(start + len(page)) if page else None,
                     "hasNextPage": start + len(page) < len(names)},
        "edges": [{"node": mine[sid]} for sid in page]}}


_PARQUET_CACHE: dict[tuple, bytes] = {}


def _parquet_bytes(run: FakeRun) -> bytes:
    key = (run.entity, run.project, run.id, len(run.rows), id(run.rows))
    data = _PARQUET_CACHE.get(key)
    if data is None:
        data = _PARQUET_CACHE[key] = _build_parquet(run)
    return data


def _build_parquet(run: FakeRun) -> bytes:
    """The run's history export: one row per history row, one column per key (JSON for non-numbers)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys: dict[str, str] = {}
    for row in run.rows:
        for k, val in row.items():
            kind = "num" if isinstance(val, (int, float)) and not isinstance(val, bool) else "json"
            if keys.get(k) not in (None, kind):
                kind = "json"
            keys[k] = kind
    cols = {}
    for k, kind in keys.items():
        if k == "_step":
            cols[k] = pa.array([r.get("_step") for r in run.rows], type=pa.int64())
        elif kind == "num":
            cols[k] = pa.array([r.get(k) for r in run.rows], type=pa.float64())
        else:
            cols[k] = pa.array([None if k not in r else json.dumps(r[k]) for r in run.rows], type=pa.string())
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf)
    return buf.getvalue()


def nan_safe(x):
    return None if isinstance(x, float) and math.isnan(x) else x
