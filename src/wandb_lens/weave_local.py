"""Weave with no account and no network: a real `WeaveClient` recording into a local SQLite file.

    from wandb_lens.weave_local import init_local
    client = init_local("my-project", "traces.db")
    # @weave.op calls and weave.Evaluation(...).evaluate(model) now record into traces.db
    client.finish(); close_local(client)

weave 0.54 ships no local trace server; `LocalTraceServer` implements the trace-server methods
the client calls over the store in `sources/weave/store.py`. `wandb-lens serve --traces-db`
reads the same file. This module imports weave (~1.7 s): never import it from the server.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

from .sources.weave import query as tq
from .sources.weave.refs import RefResolver
from .sources.weave.store import TraceStore, now_iso

LOCAL_ENTITY = "local"


def quiet_weave_env() -> None:
    """No call links, no banners, no telemetry, nothing on stdout (the MCP stdio stream)."""
    os.environ.setdefault("WEAVE_PRINT_CALL_LINK", "false")
    os.environ.setdefault("WEAVE_LOG_LEVEL", "ERROR")
    os.environ.setdefault("WEAVE_CAPTURE_CLIENT_INFO", "false")
    os.environ.setdefault("WEAVE_CAPTURE_SYSTEM_INFO", "false")
    os.environ.setdefault("WEAVE_IMPLICITLY_PATCH_INTEGRATIONS", "false")
    os.environ.setdefault("WEAVE_ENABLE_DISK_FALLBACK", "false")
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    os.environ.setdefault("WEAVE_USE_SERVER_CACHE", "false")
    logging.getLogger("weave").setLevel(logging.ERROR)


class LocalTraceServer:
    """The trace-server methods WeaveClient calls, over a TraceStore. Requests are dicts."""

    def __init__(self, store: TraceStore):
        self.store = store
        self.refs = RefResolver(store)

    # ---- project / calls ------------------------------------------------------------------
    def ensure_project_exists(self, entity: str, project: str):
        from weave.trace_server_bindings.models import EnsureProjectExistsRes

        return EnsureProjectExistsRes(project_name=project)

    def call_start(self, req):
        from weave.vendor.weave_server_sdk.types import CallStartResponse

        start = dict(req["start"])
        start.setdefault("id", uuid.uuid4().hex)
        start.setdefault("trace_id", uuid.uuid4().hex)
        self.store.call_start(start)
        return CallStartResponse(id=start["id"], trace_id=start["trace_id"])

    def call_end(self, req):
        self.store.call_end(dict(req["end"]))
        return {}

    def call_update(self, req):
        self.store.call_update(dict(req))
        return {}

    def call_start_batch(self, req):
        for item in req["batch"]:
            (self.call_start if item["mode"] == "start" else self.call_end)(item["req"])
        return {"res": []}

    def _query(self, req) -> list[dict]:
        with self.store._lock:
            return tq.query_calls(self.store.conn, req["project_id"], req.get("filter"), req.get("query"),
                                  None, req.get("sort_by"), req.get("limit"), req.get("offset") or 0)

    def calls_query_stream(self, req) -> Iterator:
        from weave.vendor.weave_server_sdk.types.call_read_response import Call

        for c in self._query(req):
            yield Call.model_validate(c)

    def calls_query(self, req):
        from weave.trace_server_bindings.models import CallsQueryRes

        return CallsQueryRes(calls=list(self.calls_query_stream(req)))

    def calls_query_stats(self, req):
        from weave.vendor.weave_server_sdk.types import CallQueryStatsResponse

        with self.store._lock:
            n = tq.count_calls(self.store.conn, req["project_id"], req.get("filter"), req.get("query"))
        if req.get("limit") is not None:
            n = min(n, int(req["limit"]))
        return CallQueryStatsResponse(count=n)

    def call_read(self, req):
        from weave.vendor.weave_server_sdk.types.call_read_response import Call, CallReadResponse

        calls = self._query({"project_id": req["project_id"], "filter": {"call_ids": [req["id"]]}, "limit": 1})
        return CallReadResponse(call=Call.model_validate(calls[0]) if calls else None)

    # ---- objects ----------------------------------------------------------------------------
    def obj_create(self, req):
        from weave.trace.serialization.digest import compute_object_digest_result
        from weave.vendor.weave_server_sdk.types import ObjectCreateResponse

        obj = req["obj"]
        res = compute_object_digest_result(obj["val"], obj.get("builtin_object_class"))
        val = res.processed_val
        is_op = isinstance(val, dict) and val.get("_type") == "CustomWeaveType" and \
            (val.get("weave_type") or {}).get("type") == "Op"
        self.store.obj_create(obj["project_id"], obj["object_id"], res.digest, val, "op" if is_op else "object",
                              res.base_object_class, res.leaf_object_class)
        return ObjectCreateResponse(digest=res.digest, object_id=obj["object_id"])

    def obj_read(self, req):
        from weave.vendor.weave_server_sdk.types import ObjectReadResponse

        obj = self.store.obj_read(req["project_id"], req["object_id"], req["digest"])
        if obj is None:
            raise NotFound(f"object {req['object_id']}:{req['digest']} not found")
        return ObjectReadResponse.model_validate({"obj": obj})

    def refs_read_batch(self, req):
        from weave.vendor.weave_server_sdk.types import RefReadBatchResponse

        vals = []
        for uri in req["refs"]:
            try:
                vals.append(self.refs.resolve(uri))
            except (KeyError, ValueError, IndexError):
                raise NotFound(f"ref not found: {uri}") from None
        return RefReadBatchResponse(vals=vals)

    # ---- tables and files -------------------------------------------------------------------
    def table_create(self, req):
        from weave.trace.serialization.digest import compute_row_digest, compute_table_digest
        from weave.vendor.weave_server_sdk.types import TableCreateResponse

        t = req["table"]
        rows = [(compute_row_digest(r), r) for r in t["rows"]]
        digest = compute_table_digest([d for d, _ in rows])
        self.store.table_create(t["project_id"], digest, rows)
        return TableCreateResponse(digest=digest, row_digests=[d for d, _ in rows])

    def table_create_from_digests(self, req):
        from weave.trace.serialization.digest import compute_table_digest
        from weave.vendor.weave_server_sdk.types import TableCreateFromDigestsResponse

        digests = list(req["row_digests"])
        digest = compute_table_digest(digests)
        self.store.table_from_digests(req["project_id"], digest, digests)
        return TableCreateFromDigestsResponse(digest=digest)

    def table_query(self, req):
        from weave.vendor.weave_server_sdk.types import TableQueryResponse

        if req.get("sort_by"):
            raise NotImplementedError("table_query sort_by is not supported by the local store")
        digests = self.store.table_row_digests(req["project_id"], req["digest"])
        if digests is None:
            raise NotFound(f"table {req['digest']} not found")
        indexed = list(enumerate(digests))
        wanted = (req.get("filter") or {}).get("row_digests")
        if wanted:
            keep = set(wanted)
            indexed = [(i, d) for i, d in indexed if d in keep]
        off = req.get("offset") or 0
        indexed = indexed[off: off + req["limit"]] if req.get("limit") is not None else indexed[off:]
        vals = self.store.table_rows(req["project_id"], [d for _, d in indexed])
        return TableQueryResponse.model_validate(
            {"rows": [{"digest": d, "val": vals.get(d), "original_index": i} for i, d in indexed]})

    def table_query_stream(self, req):
        yield from self.table_query(req).rows

    def table_query_stats(self, req):
        from weave.vendor.weave_server_sdk.types import TableQueryStatsResponse

        digests = self.store.table_row_digests(req["project_id"], req["digest"]) or []
        return TableQueryStatsResponse(count=len(digests))

    def table_query_stats_batch(self, req):
        from weave.vendor.weave_server_sdk.types import TableQueryStatsBatchResponse

        tables = [{"digest": d, "count": len(self.store.table_row_digests(req["project_id"], d) or [])}
                  for d in req.get("digests") or []]
        return TableQueryStatsBatchResponse.model_validate({"tables": tables})

    def file_create(self, req):
        from weave.trace.serialization.digest import compute_file_digest
        from weave.vendor.weave_server_sdk.types import FileCreateResponse

        name, content = req["file"][0], req["file"][1]
        digest = compute_file_digest(content)
        self.store.file_create(req["project_id"], digest, name, content)
        return FileCreateResponse(digest=digest)

    def file_content_read(self, req):
        from weave.trace_server_bindings.models import FileContentReadRes

        content = self.store.file_read(req["project_id"], req["digest"])
        if content is None:
            raise NotFound(f"file {req['digest']} not found")
        return FileContentReadRes(content=content)

    def feedback_create(self, req):
        from weave.vendor.weave_server_sdk.types import FeedbackCreateResponse

        fid = req.get("id") or uuid.uuid4().hex
        self.store.feedback_create(fid, req["project_id"], req.get("weave_ref", ""), req.get("feedback_type", ""),
                                   req.get("payload"))
        return FeedbackCreateResponse.model_validate(
            {"id": fid, "created_at": now_iso(), "payload": req.get("payload") or {}, "wb_user_id": "local"})


class NotFound(KeyError):
    """What the client sees as a 404."""


def init_local(project: str, db_path: str, entity: str = LOCAL_ENTITY) -> Any:
    """A real weave `WeaveClient` recording into the SQLite file at `db_path`, set as weave's global client.

    `project` may be 'project' or 'entity/project'. Call `close_local(client)` when done.
    """
    quiet_weave_env()
    from weave.trace.context.weave_client_context import set_weave_client_global
    from weave.trace.weave_client import WeaveClient

    if "/" in project:
        entity, project = project.split("/", 1)
    store = TraceStore(db_path)
    store.register_writer()
    client = WeaveClient(entity, project, LocalTraceServer(store), ensure_project_exists=True)
    set_weave_client_global(client)
    return client


def close_local(client) -> None:
    """Flush pending writes, unset the global client, close the file."""
    from weave.trace.context.weave_client_context import set_weave_client_global

    client.finish(use_progress_bar=False)
    set_weave_client_global(None)
    client.server.store.close()
