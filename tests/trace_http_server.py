"""A loopback HTTP server serving a local trace store through the Weave trace server's routes.

It stands in for W&B's trace server at the network boundary only: the cloud source's real HTTP
client code runs against it. It checks the basic-auth key and can be told to answer 401 or 500.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from wandb_lens.sources.weave import query as tq
from wandb_lens.sources.weave.refs import RefResolver
from wandb_lens.sources.weave.store import TraceStore


PRICES = {"gpt-4o-mini-2024-07-18": (0.15e-6, 0.6e-6)}  # $ per prompt / completion token, like W&B's price table


def with_costs(call: dict) -> dict:
    """What the trace server adds for include_costs: summary.weave.costs per model from summary.usage."""
    costs = {}
    for model, u in ((call.get("summary") or {}).get("usage") or {}).items():
        if model in PRICES and isinstance(u, dict):
            p = u.get("prompt_tokens", u.get("input_tokens")) or 0
            c = u.get("completion_tokens", u.get("output_tokens")) or 0
            costs[model] = {"requests": u.get("requests") or 0, "prompt_tokens": p, "completion_tokens": c,
                            "prompt_token_cost": PRICES[model][0], "completion_token_cost": PRICES[model][1],
                            "prompt_tokens_total_cost": p * PRICES[model][0],
                            "completion_tokens_total_cost": c * PRICES[model][1]}
    if costs:
        call["summary"]["weave"]["costs"] = costs
    return call


class LoopbackTraceServer:
    def __init__(self, db_path: str, api_key: str):
        self.store = TraceStore(db_path, readonly=True)
        self.refs = RefResolver(self.store)
        self.api_key = api_key
        self.force_status: int | None = None
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def route(self, path: str, body: dict):
        conn = self.store.conn
        with self.lock:
            if path == "/calls/stream_query":
                calls = tq.query_calls(conn, body["project_id"], body.get("filter"), body.get("query"),
                                       body.get("columns"), body.get("sort_by"), body.get("limit"),
                                       body.get("offset") or 0)
                if body.get("include_costs"):
                    calls = [with_costs(c) for c in calls]
                return 200, "\n".join(json.dumps(c) for c in calls), "application/jsonl"
            if path == "/calls/query_stats":
                return 200, {"count": tq.count_calls(conn, body["project_id"], body.get("filter"), body.get("query"))}
            if path == "/call/read":
                found = tq.query_calls(conn, body["project_id"], {"call_ids": [body["id"]]}, limit=1)
                if not found:
                    return 404, {"detail": "Not found"}
                return 200, {"call": found[0]}
            if path == "/refs/read_batch":
                try:
                    return 200, {"vals": [self.refs.resolve(r) for r in body["refs"]]}
                except (KeyError, ValueError, IndexError):
                    return 404, {"detail": "ref not found"}
            if path == "/obj/read":
                obj = self.store.obj_read(body["project_id"], body["object_id"], body["digest"])
                if obj is None:
                    return 404, {"detail": "Not found"}
                return 200, {"obj": obj}
            if path == "/objs/query":
                f = body.get("filter") or {}
                kind = "op" if f.get("is_op") else "object"
                return 200, {"objs": [{"object_id": o} for o in self.store.objs_of_kind(body["project_id"], kind)]}
        return 404, {"detail": f"no route {path}"}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append((self.path, body))
                expected = "Basic " + base64.b64encode(f"api:{server.api_key}".encode()).decode()
                if server.force_status:
                    return self._send(server.force_status, {"detail": "forced failure"})
                if self.headers.get("Authorization") != expected:
                    return self._send(401, {"detail": "Unauthorized"})
                try:
                    status, payload, *ctype = server.route(self.path, body)
                except tq.QueryError as exc:
                    return self._send(400, {"detail": str(exc)})
                self._send(status, payload, *ctype)

            def _send(self, status, payload, ctype="application/json"):
                data = payload if isinstance(payload, str) else json.dumps(payload)
                raw = data.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler
