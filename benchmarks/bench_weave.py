"""Weave tools on a large local trace store (issue 5 targets).

The store is generated once into ctx["work"] through the store's own write path (the same
`TraceStore.call_start / call_end / obj_create / table_create` the weave client adapter uses):
200 evaluations x 100 rows (each row: predict_and_score, a model call reporting usage, two
scorers; 1 row in 25 fails in a scorer) plus chat traces up to 100,000 calls in all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import statistics
import time
import uuid
from pathlib import Path

PID = "bench/weave-bench"
EVALS, ROWS, TOTAL_CALLS = 200, 100, 100_000
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def _digest(val) -> str:
    return hashlib.sha256(json.dumps(val, sort_keys=True).encode()).hexdigest()[:43]


def _ref(kind: str, name: str, digest: str) -> str:
    return f"weave:///{PID}/{kind}/{name}:{digest}"


def generate(path: Path) -> int:
    from wandb_lens.sources.weave.store import TraceStore

    store = TraceStore(str(path))
    n = 0
    clock = [T0]

    def tick(ms: float) -> dt.datetime:
        clock[0] += dt.timedelta(milliseconds=ms)
        return clock[0]

    def call(op: str, parent: str | None, trace: str, inputs: dict, output, summary: dict, exc: str | None = None,
             display: str | None = None, ms: float = 5) -> str:
        nonlocal n
        cid = str(uuid.uuid4())
        start = tick(0.1)
        store.call_start({"project_id": PID, "id": cid, "trace_id": trace, "parent_id": parent,
                          "op_name": _ref("op", op, "d1"), "display_name": display, "started_at": start,
                          "inputs": inputs, "attributes": {}})
        store.call_end({"project_id": PID, "id": cid, "trace_id": trace, "ended_at": start + dt.timedelta(milliseconds=ms),
                        "exception": exc, "output": output, "summary": summary})
        n += 1
        return cid

    rows = [{"id": f"r{i:03d}", "question": f"question {i}", "expected": str(i % 7)} for i in range(ROWS)]
    row_digests = [_digest(r) for r in rows]
    with store.batch():
        store.table_create(PID, _digest(row_digests), list(zip(row_digests, rows)))
        ds_val = {"_type": "Dataset", "name": "bench-ds", "rows": f"weave:///{PID}/table/{_digest(row_digests)}"}
        ds_ref = _ref("object", "bench-ds", _digest(ds_val))
        store.obj_create(PID, "bench-ds", _digest(ds_val), ds_val, "object")
        ev_val = {"_type": "Evaluation", "name": "bench-eval", "dataset": ds_ref,
                  "scorers": [_ref("op", "exact", "d1"), _ref("op", "judge", "d1")]}
        ev_ref = _ref("object", "bench-eval", _digest(ev_val))
        store.obj_create(PID, "bench-eval", _digest(ev_val), ev_val, "object")
        for e in range(EVALS):
            trace = str(uuid.uuid4())
            model = f"model-{e % 8}"
            eval_id = call("Evaluation.evaluate", None, trace, {"self": ev_ref, "model": _ref("op", model, "d1")},
                           None, {}, ms=0)
            correct = 0
            for i, rd in enumerate(row_digests):
                ex = f"{ds_ref}/attr/rows/id/{rd}"
                usage = {"gpt-4o-mini": {"requests": 1, "prompt_tokens": 40 + i % 9, "completion_tokens": 8,
                                         "total_tokens": 48 + i % 9}}
                ok = (i + e) % 3 != 0
                fails = i % 25 == 7
                pas = str(uuid.uuid4())
                call(model, pas, trace, {"question": ex}, {"answer": "x", "usage": usage["gpt-4o-mini"],
                                                           "model": "gpt-4o-mini"}, {"usage": usage}, ms=20)
                call("exact", pas, trace, {"output": "x"}, {"correct": ok}, {})
                call("judge", pas, trace, {"output": "x"}, None if fails else 0.5, {},
                     exc=json.dumps({"type": "ValueError", "message": "judge could not parse"}) if fails else None)
                correct += ok
                store.call_start({"project_id": PID, "id": pas, "trace_id": trace, "parent_id": eval_id,
                                  "op_name": _ref("op", "Evaluation.predict_and_score", "d1"), "started_at": tick(0.1),
                                  "inputs": {"self": ev_ref, "model": _ref("op", model, "d1"), "example": ex}})
                out = None if fails else {"output": {"answer": "x"}, "scores": {"exact": {"correct": ok}, "judge": 0.5}}
                store.call_end({"project_id": PID, "id": pas, "trace_id": trace, "ended_at": tick(30),
                                "exception": json.dumps({"type": "ValueError", "message": "judge could not parse"})
                                if fails else None, "output": out,
                                "summary": {"usage": usage, "status_counts": {"success": 2 if fails else 4,
                                                                              "error": 2 if fails else 0}}})
                n += 1
            errs = sum(1 for i in range(ROWS) if i % 25 == 7)
            store.call_end({"project_id": PID, "id": eval_id, "trace_id": trace, "ended_at": tick(50),
                            "output": {"exact": {"correct": {"true_count": correct, "true_fraction": correct / ROWS}},
                                       "judge": {"mean": 0.5}, "model_latency": {"mean": 0.02}},
                            "summary": {"usage": {"gpt-4o-mini": {"requests": ROWS, "prompt_tokens": 4400,
                                                                  "completion_tokens": 800, "total_tokens": 5200}},
                                        "status_counts": {"success": ROWS * 4 - 2 * errs, "error": 2 * errs}}})
        while n < TOTAL_CALLS:
            trace = str(uuid.uuid4())
            root = call("chat", None, trace, {"q": "hi"}, {"a": "hello"},
                        {"usage": {"claude": {"requests": 1, "input_tokens": 30, "output_tokens": 10}},
                         "status_counts": {"success": 4, "error": 0}}, ms=40)
            for _ in range(3):
                if n < TOTAL_CALLS:
                    call("retrieve", root, trace, {"q": "hi"}, ["doc"], {})
    store.close()
    return n


def _time(fn, repeat: int = 3) -> tuple[float, float, object]:
    t = time.perf_counter()
    first = fn()
    cold = time.perf_counter() - t
    warm = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t)
    return cold, statistics.median(warm), first


def bench(ctx) -> list[dict]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import call

    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    path = Path(ctx["work"]) / "weave_bench.db"
    marker = path.with_suffix(".done")
    gen_s = None
    if not marker.exists():
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
        t = time.perf_counter()
        generate(path)
        gen_s = time.perf_counter() - t
        marker.write_text("ok")
    server = build_server(AppConfig(traces_db=str(path)))
    cold, warm, res = _time(lambda: call(server, "eval_health", {}))
    size = len(res.text.encode())
    out = json.loads(res.text)
    assert out["total"] == EVALS and out["returned"] == 20, out.get("total")
    ts_cold, ts_warm, ts = _time(lambda: call(server, "trace_stats", {}))
    assert json.loads(ts.text)["calls"] == TOTAL_CALLS
    ev_id = out["evals"]["rows"][0][0]
    er_cold, er_warm, _ = _time(lambda: call(server, "eval_results", {"eval_id": ev_id}))
    cmp_ids = [r[0] for r in out["evals"]["rows"][:2]]
    ce_cold, ce_warm, _ = _time(lambda: call(server, "compare_evals", {"eval_ids": cmp_ids}))
    qargs = {"op": "judge", "status": "error", "where": ["inputs.output == \"x\""], "limit": 50,
             "columns": ["inputs.output"]}
    qc_cold, qc_warm, qc = _time(lambda: call(server, "query_calls", qargs))
    qc_out = json.loads(qc.text)
    assert qc_out["total"] == EVALS * 4 and qc_out["returned"] == 50, qc.text[:200]
    wq_cold, wq_warm, _ = _time(lambda: call(server, "query_calls", {"where": ["summary.usage.gpt-4o-mini.total_tokens > 50"],
                                                                   "limit": 50, "sort": "-latency_ms"}))
    default_q = call(server, "query_calls", {})
    rows = [
        {"name": "query_calls, 100,000 calls: op + status + input condition, page of 50 (cold / warm)",
         "value": f"{qc_cold:.3f} s / {qc_warm:.3f} s", "target": "<= 0.3 s"},
        {"name": "query_calls, 100,000 calls: summary condition on every call, sorted by latency, page of 50 "
                 "(cold / warm)", "value": f"{wq_cold:.3f} s / {wq_warm:.3f} s", "target": ""},
        {"name": "query_calls answer at the default limit", "value": f"{len(default_q.text.encode())} bytes",
         "target": "<= 4,000 bytes"},
        {"name": "eval_health, 200 evals x 100 rows (cold / warm)", "value": f"{cold:.3f} s / {warm:.3f} s",
         "target": "<= 1 s"},
        {"name": "eval_health answer at default limit", "value": f"{size} bytes", "target": "<= 4,000 bytes"},
        {"name": "trace_stats, 100,000 calls (cold / warm)", "value": f"{ts_cold:.3f} s / {ts_warm:.3f} s",
         "target": "<= 0.5 s"},
        {"name": "eval_results, 100 rows (warm)", "value": f"{er_warm:.3f} s", "target": ""},
        {"name": "compare_evals, 2 x 100 rows (warm)", "value": f"{ce_warm:.3f} s", "target": ""},
    ]
    if gen_s is not None:
        rows.append({"name": "generating the 100,000-call store (once)", "value": f"{gen_s:.0f} s", "target": ""})
    return rows
