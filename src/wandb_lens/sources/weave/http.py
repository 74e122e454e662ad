"""W&B cloud: the Weave trace server's HTTP API, read only.

Routes used: POST /calls/stream_query (JSON lines), /calls/query_stats (counts), /call/read,
/refs/read_batch, /objs/query (op names), /obj/read (versions). `WF_TRACE_SERVER_URL` (default W&B's) and the W&B API
key sent as HTTP basic auth `api:<key>`: in HTTP mode the request's own key (`Authorization: Bearer`,
see sources.cloud.request_key), else `WANDB_API_KEY`, else ~/.netrc. The key never appears in an
error message or a log line.
"""

from __future__ import annotations

import base64
import logging
import os

from ... import progress
from ...errors import LensError
from .. import bounded_json
from ..cloud.source import configured_key

log = logging.getLogger("wandb_lens.trace_http")
DEFAULT_URL = "https://trace.wandb.ai"
STATUSES = ("success", "error", "running", "descendant_error")
USAGE_CAP = 2000  # root calls whose summaries are summed for token totals
MAX_OPS = 40
LATENCY_SAMPLE = 500  # newest calls per op whose latencies give the percentiles


def _and(query: dict | None, expr: dict) -> dict:
    if not query:
        return {"$expr": expr}
    return {"$expr": {"$and": [query["$expr"], expr]}}


class CloudTraceSource:
    kind = "cloud"

    def __init__(self, entity: str | None = None, project: str | None = None, url: str | None = None,
                 api_key: str | None = None, timeout: float = 30.0):
        self.url = (url or os.environ.get("WF_TRACE_SERVER_URL") or DEFAULT_URL).rstrip("/")
        self.entity = entity or os.environ.get("WANDB_ENTITY")
        self.project = project or os.environ.get("WANDB_PROJECT")
        self._key = api_key or configured_key()
        self.timeout = timeout
        self._client = None

    def describe_location(self) -> str:
        return f"the Weave trace server {self.url}"

    def projects(self) -> list[str]:
        if self.entity and self.project:
            return [self.project if "/" in self.project else f"{self.entity}/{self.project}"]
        return []

    # ---- transport ---------------------------------------------------------------------------
    def _http(self):
        if self._client is None:
            import httpx

            self._client = httpx.Client(base_url=self.url, timeout=self.timeout)
        return self._client

    def _current_key(self) -> str | None:
        from ..cloud.source import request_key

        return request_key.get() or self._key

    def _auth(self) -> dict:
        key = self._current_key()
        if not key:
            raise LensError("No W&B API key: set WANDB_API_KEY (or run `wandb login`) to read Weave "
                            "traces from W&B cloud, or in HTTP mode send `Authorization: Bearer <key>`; "
                            "or use a local store with --traces-db.")
        return {"Authorization": "Basic " + base64.b64encode(f"api:{key}".encode()).decode()}

    def _clean(self, text: str) -> str:
        for key in (self._current_key(), self._key):
            if key:
                text = text.replace(key, "[key]")
        return text[:300]

    def _post(self, route: str, body: dict, stream: bool = False):
        import httpx

        try:
            headers = self._auth()  # per call: each HTTP-mode request may carry its own user's key
            if stream:
                headers["Accept"] = "application/jsonl"
            resp = self._http().post(route, json=body, headers=headers)
        except httpx.TimeoutException:
            raise LensError(f"The Weave trace server {self.url} did not answer {route} within "
                            f"{self.timeout:.0f} s.") from None
        except httpx.HTTPError as exc:
            raise LensError(f"Cannot reach the Weave trace server {self.url} ({type(exc).__name__}: "
                            f"{self._clean(str(exc))}). Check WF_TRACE_SERVER_URL and the network.") from None
        if resp.status_code in (401, 403):
            raise LensError(f"The Weave trace server {self.url} refused the W&B API key (HTTP {resp.status_code}"
                            f" on {route}): check WANDB_API_KEY and that it can read this project.")
        if resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            raise LensError(f"The Weave trace server {self.url} answered HTTP {resp.status_code} on {route}: "
                            f"{self._clean(resp.text.strip()) or resp.reason_phrase}.")
        if stream:
            return [bounded_json.loads(line, fallback_to_text=False) for line in resp.text.splitlines() if line.strip()]
        try:
            return resp.json()
        except ValueError:
            raise LensError(f"The Weave trace server {self.url} answered {route} with something that is not "
                            "JSON (is WF_TRACE_SERVER_URL the trace server?).") from None

    # ---- the source interface ----------------------------------------------------------------
    def calls(self, project_id, filter=None, query=None, columns=None, sort_by=None, limit=None, offset=0,
              include_costs=False) -> list[dict]:
        body: dict = {"project_id": project_id}
        for k, v in (("filter", filter), ("query", query), ("columns", columns), ("sort_by", sort_by),
                     ("limit", limit), ("offset", offset or None), ("include_costs", include_costs or None)):
            if v is not None:
                body[k] = v
        return self._post("/calls/stream_query", body, stream=True) or []

    def count(self, project_id, filter=None, query=None) -> int:
        body: dict = {"project_id": project_id}
        if filter:
            body["filter"] = filter
        if query:
            body["query"] = query
        res = self._post("/calls/query_stats", body) or {}
        return int(res.get("count", 0))

    def status_counts(self, project_id, filter=None, query=None) -> dict[str, int]:
        out = {}
        for s in STATUSES:
            q = _and(query, {"$eq": [{"$getField": "summary.weave.status"}, {"$literal": s}]})
            n = self.count(project_id, filter, q)
            if n:
                out[s] = n
        return out

    def op_counts(self, project_id, filter=None, query=None) -> dict[str, dict]:
        res = self._post("/objs/query", {"project_id": project_id, "filter": {"is_op": True, "latest_only": True},
                                         "metadata_only": True, "limit": MAX_OPS}) or {}
        names = sorted({o["object_id"] for o in res.get("objs", [])})
        out = {}
        for i, name in enumerate(names):  # two count requests per op: a scan of many ops takes seconds
            progress.report(i, len(names), f"counting calls per op: {i} of {len(names)} ops")
            f = dict(filter or {})
            f["op_names"] = [f"weave:///{project_id}/op/{name}:*"]
            n = self.count(project_id, f, query)
            if n:
                err = self.count(project_id, f, _and(query, {"$not": [{"$eq": [
                    {"$getField": "exception"}, {"$literal": None}]}]}))
                out[name] = {"calls": n, "errors": err}
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["calls"]))

    def usage(self, project_id, filter=None, query=None) -> tuple[dict, bool]:
        rows = self.calls(project_id, filter, query, columns=["id", "summary"], limit=USAGE_CAP,
                          sort_by=[{"field": "started_at", "direction": "desc"}], include_costs=True)
        totals: dict[str, dict] = {}
        for c in rows:
            for model, u in ((c.get("summary") or {}).get("usage") or {}).items():
                if not isinstance(u, dict):
                    continue
                t = totals.setdefault(model, {"requests": 0, "input_tokens": 0, "output_tokens": 0,
                                              "total_tokens": 0})
                i = u.get("input_tokens", u.get("prompt_tokens")) or 0
                o = u.get("output_tokens", u.get("completion_tokens")) or 0
                t["requests"] += u.get("requests") or 0
                t["input_tokens"] += i
                t["output_tokens"] += o
                t["total_tokens"] += u.get("total_tokens") or i + o
            for model, cost in (((c.get("summary") or {}).get("weave") or {}).get("costs") or {}).items():
                if isinstance(cost, dict):
                    t = totals.setdefault(model, {"requests": 0, "input_tokens": 0, "output_tokens": 0,
                                                  "total_tokens": 0})
                    t["cost"] = t.get("cost", 0.0) + float(cost.get("prompt_tokens_total_cost") or 0) + \
                        float(cost.get("completion_tokens_total_cost") or 0)
        return totals, len(rows) >= USAGE_CAP

    def latencies(self, project_id, filter=None, query=None, ops=None) -> tuple[dict[str, list], bool]:
        """Per op: latencies of its newest LATENCY_SAMPLE ended calls (sampled: True when an op has more)."""
        out: dict[str, list] = {}
        sampled = False
        for name in ops or []:
            f = dict(filter or {})
            f["op_names"] = [f"weave:///{project_id}/op/{name}:*"]
            rows = self.calls(project_id, f, query, columns=["id", "started_at", "ended_at", "summary"],
                              sort_by=[{"field": "started_at", "direction": "desc"}], limit=LATENCY_SAMPLE)
            sampled |= len(rows) >= LATENCY_SAMPLE
            lat = [((c.get("summary") or {}).get("weave") or {}).get("latency_ms") for c in rows]
            out[name] = sorted(v for v in lat if isinstance(v, (int, float)))
        return out, sampled

    def read_call(self, project_id, call_id) -> dict | None:
        res = self._post("/call/read", {"project_id": project_id, "id": call_id})
        return (res or {}).get("call")

    def obj_version(self, ref: str) -> int | None:
        """An object ref's version index, from POST /obj/read."""
        from .refs import parse_ref

        try:
            r = parse_ref(ref)
        except ValueError:
            return None
        res = self._post("/obj/read", {"project_id": r.project_id, "object_id": r.name, "digest": r.digest})
        n = ((res or {}).get("obj") or {}).get("version_index")
        return n if isinstance(n, int) else None

    def read_refs(self, refs: list[str]) -> list:
        if not refs:
            return []
        res = self._post("/refs/read_batch", {"refs": refs})
        vals = (res or {}).get("vals")
        return vals if isinstance(vals, list) and len(vals) == len(refs) else [None] * len(refs)
