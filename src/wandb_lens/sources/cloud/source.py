"""W&B cloud (or dedicated / on-prem) runs through `wandb.Api`, behind the same interface as local runs.

- One `wandb.Api` per (base URL, API key), created lazily; `import wandb` happens on first use.
  The key is the server's (WANDB_API_KEY / netrc) or, in HTTP mode, the request's own
  (`Authorization: Bearer <key>`, see `request_key`). Nothing keyed by the key itself is kept:
  sessions and caches are keyed by a hash of it, and it never appears in an error message.
- query_runs: filters and order go to the server (filters.py); one `runs` page request answers
  `limit <= 50` and carries the total (`runCount`) in the same response.
- get_run: one `run` request (config, summary, history keys index) each call, so a deleted or
  changed run is seen at once.
- history: exact, per key, outer-joined on the step (history.py); finished runs' history is
  cached on disk (cache.py), so asking again does not go back to the network.
- Every call is bounded: wandb-core retries a failing request at most RETRIES times and gives up
  after `timeout` seconds; each call also runs under a deadline here, so a down or slow W&B is a
  clear tool error, never a hang.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from ... import progress
from ...errors import LensError, suggest
from . import history as CH
from ..base import RunInfo, no_such_run, parse_ref
from .cache import HistoryCache, user_namespace
from .errors import RETRIES, scrub, explain
from .filters import to_wandb_filters, to_wandb_order
from .meta import index_answer, kind_of, metric_defs, parse_time
from ..history import HISTOGRAM, NUMERIC, History

log = logging.getLogger("wandb_lens.cloud")

DEFAULT_TIMEOUT = 20.0
MAX_PAGE = 1000
MAX_SESSIONS = 64
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="wandb-lens-cloud")
# per-key history fetches run inside a _POOL task: on the same pool, 16 concurrent history reads
# would each wait for inner tasks that can never start. They get their own pool.
_KEY_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="wandb-lens-cloud-key")

request_key: contextvars.ContextVar[str | None] = contextvars.ContextVar("wandb_lens_request_key", default=None)


def configured_key(base_url: str | None = None) -> str | None:
    """WANDB_API_KEY, else the netrc entry for the W&B host (what `wandb login` writes)."""
    key = os.environ.get("WANDB_API_KEY")
    if key:
        return key.strip()
    try:
        import netrc
        from urllib.parse import urlparse

        host = urlparse(base_url or os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or ""
        path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
        auth = netrc.netrc(path).authenticators(host)
        return auth[2] if auth and auth[2] else None
    except (OSError, ValueError, ImportError, netrc.NetrcParseError):
        return None


class _Session:
    def __init__(self, api, ns: str, entity: str, key: str):
        self.api = api
        self.ns = ns
        self.entity = entity
        self.key = key
        self.wruns: OrderedDict[tuple, Any] = OrderedDict()  # (entity, project, id) -> wandb Run


class CloudRunSource:
    kind = "cloud"

    def __init__(self, entity: str | None = None, project: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, cache_dir: str | os.PathLike | None = None,
                 timeout: float | None = None, cache_max_bytes: int | None = None):
        from ..local.source import default_cache_dir

        self.entity = entity or os.environ.get("WANDB_ENTITY") or None
        self.project = project or os.environ.get("WANDB_PROJECT") or None
        self.base_url = (base_url or os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").rstrip("/")
        self._key = api_key
        self.timeout = float(timeout or os.environ.get("WANDB_LENS_TIMEOUT") or DEFAULT_TIMEOUT)
        mb = cache_max_bytes or int(float(os.environ.get("WANDB_LENS_CLOUD_CACHE_MB", 2048)) * (1 << 20))
        self.cache = HistoryCache(cache_dir or default_cache_dir(), mb)
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()
        self._mem: OrderedDict[tuple, tuple[dict, History, set]] = OrderedDict()

    # ----- sessions, deadlines, errors -----------------------------------------------------
    def describe_location(self) -> str:
        where = f"{self.base_url}"
        if self.entity:
            where += f" entity {self.entity}"
        return where

    def _api_key(self) -> str:
        key = request_key.get() or self._key or configured_key(self.base_url)
        if not key:
            raise LensError("No W&B API key: set WANDB_API_KEY (or run `wandb login`), or in HTTP mode send "
                            "`Authorization: Bearer <key>`. To read local runs instead, use --source local.")
        return key

    def _session(self) -> _Session:
        key = self._api_key()
        ns = user_namespace(self.base_url, key)
        with self._lock:
            s = self._sessions.get(ns)
            if s is not None:
                self._sessions.move_to_end(ns)
                return s

        def login():
            import wandb

            _bound_retries(self.timeout)
            overrides = {"base_url": self.base_url}
            if self.entity:
                overrides["entity"] = self.entity
            api = wandb.Api(overrides=overrides, timeout=max(1, int(math.ceil(self.timeout))), api_key=key)
            entity = self.entity or api.default_entity
            if not entity:
                raise LensError("W&B did not say which entity this key belongs to: set --entity or WANDB_ENTITY.")
            return _Session(api, ns, entity, key)

        s = self._guard(login, "logging in", key)
        with self._lock:
            self._sessions[ns] = s
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return s

    def _guard(self, fn, what: str, key: str | None = None, deadline: float | None = None):
        """Run `fn` with a hard deadline; turn every failure into a LensError without the key."""
        key = key or request_key.get() or self._key
        fut = _POOL.submit(contextvars.copy_context().run, fn)
        limit = deadline or (self.timeout * (RETRIES + 1) + 5)
        try:
            return fut.result(timeout=limit)
        except FutureTimeout:
            raise LensError(f"W&B at {self.base_url} did not answer within {limit:.0f} s ({what}); it may be down "
                            "or slow. Retry later, check WANDB_BASE_URL, or raise WANDB_LENS_TIMEOUT.") from None
        except LensError as exc:
            raise LensError(scrub(str(exc), key)) from None
        except Exception as exc:
            raise LensError(self._explain(exc, what, key)) from None

    def _explain(self, exc: BaseException, what: str, key: str | None) -> str:
        return explain(exc, what, key, self.base_url, self.timeout)

    # ----- projects and runs -------------------------------------------------------------------
    def projects(self) -> list[str]:
        return [p["project"] for p in self.project_rows()]

    def project_rows(self) -> list[dict]:
        s = self._session()

        def go():
            from wandb.apis import public

            return [{"project": p.name, "entity": s.entity, "created_at": str(getattr(p, "created_at", "") or "")}
                    for p in public.Projects(s.api._service_api, s.entity, per_page=200)]

        return self._guard(go, f"listing projects of {s.entity}", s.key)

    def list_runs(self, project: str | None = None) -> list[RunInfo]:
        """The newest runs of `project` (at most one page of 200): W&B projects can hold millions."""
        return self.query(project, None, None, 200, 0)[1]

    def query(self, project: str | None, filters: dict | None, order: str | None, limit: int,
              offset: int) -> tuple[int, list[RunInfo], list[RunInfo]]:
        """(total matching, the page, runs to choose default columns from) with server-side filters."""
        s = self._session()
        project = self._project(project, s)
        wfilters = to_wandb_filters(filters or {})
        worder = to_wandb_order(order)

        def go():
            from wandb.apis import public

            runs = public.Runs(s.api._service_api, s.entity, project, filters=wfilters, order=worder,
                               per_page=min(offset + limit, MAX_PAGE), lazy=False, api_key=None)
            while len(runs.objects) < offset + limit:
                if not runs._load_page():
                    break
            return int(runs._length or 0), list(runs.objects[offset:offset + limit])

        try:
            total, page = self._guard(go, f"querying runs of {s.entity}/{project}", s.key)
        except LensError as exc:
            raise self._project_error(exc, s, project) from None
        infos = [self._info(s, w) for w in page]
        return total, infos, infos

    def console(self, run: RunInfo):
        """The run's output.log on W&B, read by HTTP Range from the end (sources/cloud/files.py), or None."""
        from .files import console

        return console(self, run)

    def sweep(self, project: str | None, sweep_id: str) -> dict:
        """The sweep's own record (method, state, metric and goal, run counts): sources/cloud/sweeps.py."""
        from .sweeps import sweep_info

        return sweep_info(self, project, sweep_id)

    def _project(self, project: str | None, s: _Session) -> str:
        project = project or self.project
        if project:
            return project
        names = self.projects()
        raise LensError("Which W&B project? Pass project (or start with --project / WANDB_PROJECT). "
                        f"Projects of {s.entity} ({len(names)}): {', '.join(names[:20])}.")

    def _project_error(self, exc: LensError, s: _Session, project: str) -> LensError:
        text = str(exc)
        if "could not find project" in text.lower():
            try:
                names = self.projects()
            except LensError:
                names = []
            return LensError(suggest("project", project, names) + f" (entity {s.entity})")
        if "invalid filters" in text.lower() or "filter" in text.lower() and "400" in text:
            return LensError(f"W&B rejected the filters: {text}. Simplify them (state, tags, config.<key>, "
                             "summary.<key> with $eq/$lt/$in ...).")
        return exc

    def get_run(self, ref: str) -> RunInfo:
        entity, project, run_id = parse_ref(ref)
        s = self._session()
        entity = entity or s.entity
        project = self._project(project, s)

        def go():
            from wandb.apis import public
            from wandb.apis.public.runs import RunNotFoundError

            try:
                return public.Run(s.api._service_api, entity, project, run_id, lazy=False)
            except (RunNotFoundError, ValueError):
                return None
            except Exception as exc:
                if "could not find run" in str(exc).lower():
                    return None
                raise

        wrun = self._guard(go, f"reading run {entity}/{project}/{run_id}", s.key)
        if wrun is None:
            return self._by_name(s, entity, project, run_id)
        return self._info(s, wrun)

    def _by_name(self, s: _Session, entity: str, project: str, name: str) -> RunInfo:
        """A run given by display name (as local runs can be), or a clear 'no run' error."""
        try:
            total, hits, _ = self.query(project, {"name": name}, None, 5, 0) if entity == s.entity else (0, [], [])
        except LensError as exc:
            if "Unknown project" in str(exc):
                raise
            total, hits = 0, []
        if total == 1:
            return self.get_run(f"{entity}/{project}/{hits[0].id}")
        if total > 1:
            refs = ", ".join(f"{h.project}/{h.id}" for h in hits)
            raise LensError(f"Run reference {name!r} is ambiguous: {total} runs are named so: {refs}. Use project/run_id.")
        try:
            _, recent, _ = self.query(project, None, None, 50, 0) if entity == s.entity else (0, [], [])
        except LensError:
            recent = []
        if entity != s.entity:
            return _raise(f"No run {name!r} in {entity}/{project}: the entity or project may not exist, or this "
                          "key may not see it (or the run was deleted).")
        text = no_such_run(name, f" in project {project!r}", recent)
        return _raise(text + " (It may have been deleted; runs listed are the 50 newest.)")

    def _info(self, s: _Session, wrun) -> RunInfo:
        a = wrun._attrs
        summary = dict(a.get("summaryMetrics") or {})
        hk = a.get("historyKeys") or {}
        created = parse_time(a.get("createdAt"))
        heartbeat = parse_time(a.get("heartbeatAt"))
        runtime = summary.get("_runtime")
        if not isinstance(runtime, (int, float)):
            runtime = (heartbeat - created) if created and heartbeat else None
        raw = getattr(wrun, "rawconfig", None) or {}
        info = RunInfo(
            id=a.get("name") or wrun.id, project=wrun.project, entity=wrun.entity, name=a.get("displayName") or "",
            group=a.get("group") or "", sweep_id=a.get("sweepName") or "", job_type=a.get("jobType") or "", tags=list(a.get("tags") or []),
            notes=a.get("notes") or a.get("description") or "", created_at=created,
            runtime_s=float(runtime) if runtime is not None else None, state=a.get("state") or "unknown",
            config=dict(a.get("config") or {}), summary={k: v for k, v in summary.items() if not k.startswith("_")},
            metrics=metric_defs(raw.get("_wandb")), history_rows=int(a.get("historyLineCount") or 0),
            last_step=hk.get("lastStep") if isinstance(hk.get("lastStep"), int) else None,
            location=f"{wrun.entity}/{wrun.project}",
        )
        info._cloud = {"ns": s.ns, "keys": hk.get("keys") or {}, "heartbeat": a.get("heartbeatAt") or ""}
        with self._lock:
            s.wruns[(info.entity, info.project, info.id)] = wrun
            while len(s.wruns) > 256:
                s.wruns.popitem(last=False)
        return info

    # ----- history -----------------------------------------------------------------------------
    def _fingerprint(self, info: RunInfo) -> dict:
        meta = getattr(info, "_cloud", {})
        return {"last_step": info.last_step, "lines": info.history_rows, "heartbeat": meta.get("heartbeat", ""),
                "state": info.state}

    def index_kinds(self, info: RunInfo) -> dict[str, str]:
        """key -> kind, from W&B's history keys index (no history download)."""
        out = {}
        for key, k in (getattr(info, "_cloud", {}).get("keys") or {}).items():
            out[key] = kind_of(k)
        return out

    def history(self, run: RunInfo, keys: list[str] | None = None, samples: int | None = None) -> History:
        """Exact history; `keys=None` loads the scalar keys now and the others when first read."""
        s = self._session()
        if getattr(run, "_cloud", {}).get("ns") != s.ns:  # a RunInfo of another user / source
            run = self.get_run(f"{run.entity}/{run.project}/{run.id}")
        wrun = s.wruns.get((run.entity, run.project, run.id))
        if wrun is None:
            run = self.get_run(f"{run.entity}/{run.project}/{run.id}")
            wrun = s.wruns[(run.entity, run.project, run.id)]
        kinds = self.index_kinds(run)
        system = [k for k in (keys or []) if k.startswith("system/")]
        plain = [k for k in (keys or []) if not k.startswith("system/")]
        if keys is None:
            eager = ["_step"] + [k for k, kind in kinds.items() if kind == NUMERIC and k not in (
                "_step", "_runtime", "_timestamp")]
        else:
            eager = ["_step"] + [k for k in plain if k != "_step"] + (["_timestamp"] if system else [])
        base = self._ensure(s, wrun, run, eager)
        if keys is not None:
            hist = CH.subset(base, eager)
            if system:
                hist = self._with_system(s, wrun, run, hist, system)
            return CH.downsample(hist, samples) if samples else hist
        lazy_keys = [k for k in kinds if k not in base.columns]
        cols = dict(base.columns)
        for k in lazy_keys:
            cols[k] = CH.LazyColumn(kinds[k], self._loader(s, wrun, run, k, base.steps))
        hist = History(base.steps, cols)
        return CH.downsample(hist, samples) if samples else hist

    def _loader(self, s: _Session, wrun, run: RunInfo, key: str, steps: np.ndarray):
        def load():
            base = self._ensure(s, wrun, run, ["_step", key])
            col = base.columns.get(key)
            if col is None:
                return CH.placed_column(steps, [])
            pairs = list(zip(base.steps[col.rows].tolist(), CH.values_list(col)))
            return CH.placed_column(steps, pairs) if col.kind != HISTOGRAM else CH.rebase(col, base.steps, steps)
        return load

    def _ensure(self, s: _Session, wrun, run: RunInfo, keys: list[str]) -> History:
        """The run's history holding at least `keys`: memory, then disk, then the network."""
        fp = self._fingerprint(run)
        ident = (s.ns, run.entity, run.project, run.id)
        finished = run.state not in ("running", "pending", "preempting")
        with self._lock:
            mem = self._mem.get(ident)
        base, have = None, set()
        if mem is not None and mem[0] == fp and finished:
            base, have = mem[1], set(mem[2])
        elif finished:
            hit = self.cache.load(s.ns, run.entity, run.project, run.id, fp)
            if hit is not None:
                base, have = hit[0], set(hit[1])
        known = set(self.index_kinds(run)) | {"_step"}
        missing = [k for k in dict.fromkeys(keys) if k not in have and (k in known or not known)]
        if missing:
            last = run.last_step if run.last_step is not None else -1
            graphql = _graphql(wrun)

            fetched, count_lock = [0], threading.Lock()
            what = f"history of {run.entity}/{run.project}/{run.id}"

            def fetch(key):
                out = key, CH.scan_key(wrun, wrun._service_api, key, last, graphql)
                with count_lock:
                    fetched[0] += 1
                    n = fetched[0]
                progress.report(n, len(missing), f"fetched {what}: {n} of {len(missing)} keys")
                return out

            progress.report(0, len(missing), f"fetching {what}: {len(missing)} keys")

            def go():
                return dict(_KEY_POOL.map(lambda k: contextvars.copy_context().run(fetch, k), missing))

            per_key = self._guard(go, f"reading the history of {run.entity}/{run.project}/{run.id}", s.key,
                                  deadline=self.timeout * (RETRIES + 1) * max(2, len(missing)) + 30)
            base = CH.build(per_key, base)
            have |= set(missing)
            if finished:
                self.cache.save(s.ns, run.entity, run.project, run.id, fp, base, sorted(have))
        if base is None:
            base = CH.build({})
        with self._lock:
            self._mem[ident] = (fp, base, set(have))
            self._mem.move_to_end(ident)
            while len(self._mem) > 8:
                self._mem.popitem(last=False)
        return base

    def _with_system(self, s: _Session, wrun, run: RunInfo, hist: History, keys: list[str]) -> History:
        events = self._guard(lambda: CH.system_events(wrun), f"reading system metrics of {run.id}", s.key)
        placed = CH.place_system(hist, {k: v for k, v in events.items() if k in keys})
        out = CH.build(placed, hist)
        return CH.subset(out, [k for k in hist.columns if k != "_timestamp"] + list(placed))

    # ----- describe without downloading history ---------------------------------------------------
    def key_index(self, run: RunInfo) -> dict | None:
        """describe_run's history part from W&B's history keys index, or None when the history is cached.

        The index gives per key its count, type and last value, and whether W&B saw it never
        decrease; min / max / step ranges need the history itself, so they are omitted here.
        """
        s = self._session()
        fp = self._fingerprint(run)
        if run.state not in ("running", "pending", "preempting"):
            ident = (s.ns, run.entity, run.project, run.id)
            with self._lock:
                mem = self._mem.get(ident)
            have = set(mem[2]) if mem is not None and mem[0] == fp else None
            if have is None:
                hit = self.cache.load(s.ns, run.entity, run.project, run.id, fp)
                have = set(hit[1]) if hit else set()
            if set(self.index_kinds(run)) <= have:
                return None
        return index_answer(run)


def _raise(text: str):
    raise LensError(text)


def _bound_retries(timeout: float) -> None:
    """wandb-core retries GraphQL for a long time by default: bound it (unless the user set it)."""
    from wandb.sdk import wandb_setup

    st = wandb_setup.singleton().settings
    if st.x_graphql_retry_max is None:
        st.x_graphql_retry_max = RETRIES
    if st.x_graphql_retry_wait_min_seconds is None:
        st.x_graphql_retry_wait_min_seconds = 0.2
    if st.x_graphql_retry_wait_max_seconds is None:
        st.x_graphql_retry_wait_max_seconds = 2.0
    if st.x_graphql_timeout_seconds is None:
        st.x_graphql_timeout_seconds = max(1.0, timeout / (RETRIES + 1))


def _graphql(wrun):
    def call(query: str, variables: dict):
        v = {"entity": wrun.entity, "project": wrun.project, "run": wrun.id}
        v.update(variables)
        return wrun._service_api.execute_graphql(query, v)
    return call
