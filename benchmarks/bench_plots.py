"""Plot tools: PNG size and dimensions, plot_overview time on a cached 1,000,000-step run, tools/list bytes.

"Cached run" = its history is already decoded into wandb-lens's parquet cache (the state after the
first call on any tool); each timed call uses a fresh App (no in-memory history, empty plot cache)
in a process that has already imported matplotlib, through an in-memory MCP client. Wall time
depends on what else runs on the machine; the process's CPU time (all threads) is shown next to it.
"""

from __future__ import annotations

import base64
import statistics
import struct
import tempfile
import time

import anyio

import bigrun


def _server(runs_dir, cache):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    return build_server(AppConfig(runs_dirs=[str(runs_dir)], cache_dir=str(cache)))


def _call(server, tool, args):
    from mcp import Client

    async def go():
        async with Client(server) as c:
            t0, c0 = time.perf_counter(), time.process_time()
            r = await c.call_tool(tool, args)
            _call.cpu = time.process_time() - c0  # all threads of this process: contention-free cost
            return r, time.perf_counter() - t0

    return anyio.run(go)


def _png(result):
    assert not result.is_error, result.content[0].text
    img = next(b for b in result.content if b.type == "image")
    data = base64.b64decode(img.data)
    w, h = struct.unpack(">II", data[16:24])
    return len(data), w, h


def _tools_list_bytes(server) -> int:
    from mcp import Client

    async def go():
        async with Client(server) as c:
            return (await c.list_tools()).tools

    tools = anyio.run(go)
    return sum(len(t.model_dump_json(by_alias=True, exclude_none=True)) for t in tools if t.name.startswith("plot_"))


def bench(ctx) -> list[dict]:
    runs_dir = bigrun.ensure(ctx["work"])
    cache = ctx["work"] / "lens-cache"
    ref = f"{bigrun.PROJECT}/{bigrun.NAME}"
    rows = []
    first, t_first = _call(_server(runs_dir, cache), "plot_overview", {"run": ref})  # fills the parquet cache
    size, w, h = _png(first)
    times, cpus = [], []
    for _ in range(5):
        server = _server(runs_dir, cache)
        r, dt = _call(server, "plot_overview", {"run": ref})
        times.append(dt)
        cpus.append(_call.cpu)
    _, hit = _call(server, "plot_overview", {"run": ref})
    import json

    panels = len(json.loads(next(b.text for b in r.content if b.type == "text"))["panels"])
    rows.append({"name": f"plot_overview, cached 1,000,000-step run, {panels} panels (median of 5)",
                 "value": f"{statistics.median(times):.2f} s wall, {statistics.median(cpus):.2f} s CPU",
                 "target": "<= 1.5 s"})
    rows.append({"name": "plot_overview, same request again (plot cache hit)", "value": f"{hit * 1000:.0f} ms",
                 "target": ""})
    rows.append({"name": "plot_overview, first call (history decoded, matplotlib imported)",
                 "value": f"{t_first:.1f} s", "target": ""})
    rows.append({"name": "overview PNG (1,000,000-step run)", "value": f"{size / 1024:.0f} KB, {w}x{h} px",
                 "target": "<= 300 KB, <= 1600 px"})
    from wandb_lens.demo import write_runs

    with tempfile.TemporaryDirectory() as tmp:
        write_runs(tmp)
        server = _server(f"{tmp}/wandb", f"{tmp}/cache")
        names = ["baseline-cosine", "still-improving", "lr-too-high", "overfit-wide-model", "plateau-tiny-lr",
                 "spiky-bad-batches", "custom-step-axis", "killed-mid-run"]
        worst = (0, 0, 0, "")
        for name in names:
            s, pw, ph = _png(_call(server, "plot_overview", {"run": name})[0])
            worst = max(worst, (s, pw, ph, f"overview {name}"))
        for tool, args in [("plot_comparison", {"runs": names, "metric": "train"}),
                           ("plot_grad_histograms", {"run": "spiky-bad-batches"})]:
            s, pw, ph = _png(_call(server, tool, args)[0])
            worst = max(worst, (s, pw, ph, tool))
        rows.append({"name": f"largest demo PNG ({worst[3]})", "value": f"{worst[0] / 1024:.0f} KB, {worst[1]}x{worst[2]} px",
                     "target": "<= 300 KB, <= 1600 px"})
        rows.append({"name": "plot tools in tools/list (4 tools)", "value": f"{_tools_list_bytes(server)} bytes",
                     "target": "<= 3,400 bytes"})
    return rows
