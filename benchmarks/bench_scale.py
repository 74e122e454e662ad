"""Issue 18: the scaling table. Runs of steps x metrics written with wandb's record classes
(`synth_run.py`), each measured beside the floors of the same log in the same run.

    python benchmarks/bench_scale.py [--grid 10k:5,100k:50,1m:50]     # or SCALE_GRID=... make bench
    (default grid: 10k:5,10k:50,100k:5,100k:50; the full grid is 10k,100k,1m,10m x 5,50,200)
    SCALE_TOOLS=0 ... : floors, index and decode only (no tool calls)

Per cell:
- floors: raw read of the file (16 MB reads), framing alone (chunks + CRC into records),
  protobuf parse alone (framing + `Record.FromString` of every record), on one core and on two
  (the file split in two halves at a block boundary, one process each);
- index: a new process indexes the run (metadata, config, final summary): seconds and peak RSS;
- decode: another new process (index from that cache) decodes the history into a fresh cache:
  seconds, MB/s and peak RSS of the largest process (this one or the decode's worker);
- tools: `wandb-lens call` in a new process (so about 1 s of start-up and imports is in every
  figure): describe_run, diagnose_run, plot_overview cold (fresh cache) and cached (second call).
Logs are written once under benchmarks/out/scale/ and reused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_GRID = "10k:5,10k:50,100k:5,100k:50"
FULL_GRID = [f"{s}:{m}" for s in ("10k", "100k", "1m", "10m") for m in (5, 50, 200)]


def _steps(text: str) -> int:
    text = text.lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * mult)


def parse_grid(spec: str) -> list[tuple[int, int]]:
    return [(_steps(c.split(":")[0]), int(c.split(":")[1])) for c in spec.split(",") if c.strip()]


def ensure_log(work: Path, steps: int, metrics: int) -> Path:
    sys.path.insert(0, str(HERE))
    from synth_run import write_run

    base = work / "scale" / f"{steps}x{metrics}"
    marker = base / "done.json"
    if marker.is_file():
        return Path(json.loads(marker.read_text())["file"])
    print(f"# writing a {steps:,} x {metrics} log into {base} (once)", file=sys.stderr)
    path = write_run(base, steps, metrics)
    marker.write_text(json.dumps({"file": str(path)}))
    return path


_FLOOR = r"""
import json, sys, time, mmap, os
from wandb_lens.sources.local.wandb_file import Framing
path, what, start, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
from wandb.proto import wandb_internal_pb2 as pb
from wandb_lens.sources.local import run_file  # noqa: F401 (same imports as the decode)
t = time.perf_counter(); c = time.process_time()
if what == "read":
    with open(path, "rb", buffering=0) as fh:
        while fh.read(16 << 20):
            pass
else:
    with open(path, "rb") as fh:
        data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        parse = pb.Record.FromString
        n = 0
        for rec in Framing(data, start=start, stop=stop or None).records():
            if what == "parse":
                parse(rec)
            n += 1
print(json.dumps({"s": time.perf_counter() - t, "cpu": time.process_time() - c}))
"""

_INDEX = r"""
import json, resource, sys, time
from wandb_lens.sources.local.source import LocalRunSource
src = LocalRunSource([sys.argv[1]], cache_dir=sys.argv[2])
t = time.perf_counter(); src.get_run(sys.argv[3]); t_index = time.perf_counter() - t
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"index_s": t_index, "rss_mb": rss / 1024}))
"""

# the index is read from the cache the _INDEX process wrote: the peak RSS is the decode's (both processes)
_DECODE = r"""
import json, resource, sys, time
import numpy, pyarrow.compute, pyarrow.parquet, wandb.proto.wandb_internal_pb2  # imports are not the decode
from wandb_lens.sources.local.source import LocalRunSource
src = LocalRunSource([sys.argv[1]], cache_dir=sys.argv[2])
info = src.get_run(sys.argv[3])
cpu = lambda u: u.ru_utime + u.ru_stime
s0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
t = time.perf_counter(); hist = src.history(info); t_decode = time.perf_counter() - t
s1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
rss = max(s1.ru_maxrss, c1.ru_maxrss)
# CPU seconds of this process and of the worker: on a loaded machine the larger one estimates the idle wall time
print(json.dumps({"decode_s": t_decode, "rows": hist.n_rows, "rss_mb": rss / 1024,
                  "cpu_self": cpu(s1) - cpu(s0), "cpu_worker": cpu(c1) - cpu(c0)}))
"""


def _py(code: str, *args: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _call(tool: str, args: dict, runs: Path, cache: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one `wandb-lens call` in a new process."""
    exe = str(Path(sys.executable).with_name("wandb-lens"))
    t = time.perf_counter()
    proc = subprocess.Popen([exe, "call", tool, json.dumps(args), "--runs-dir", str(runs), "--cache-dir", str(cache)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    if status != 0:
        raise RuntimeError(f"wandb-lens call {tool} failed ({status})")
    return elapsed, usage.ru_maxrss / 1024


def floors(path: Path) -> dict:
    from wandb_lens.sources.local.wandb_file import BLOCK

    size = path.stat().st_size
    mid = (size // 2) // BLOCK * BLOCK
    parse1 = _py(_FLOOR, str(path), "parse", "7", "0")
    out = {"read": _py(_FLOOR, str(path), "read", "7", "0")["s"],
           "framing": _py(_FLOOR, str(path), "framing", "7", "0")["s"],
           "parse1": parse1["s"], "parse1_cpu": parse1["cpu"]}
    procs = [subprocess.Popen([sys.executable, "-c", _FLOOR, str(path), "parse", str(a), str(b)], stdout=subprocess.PIPE)
             for a, b in ((7, mid), (mid, 0))]
    # each half timed inside its process (start-up excluded); both run at once, the slower one counts
    out["parse2"] = max(json.loads(p.communicate()[0].decode().strip().splitlines()[-1])["s"] for p in procs)
    return out


def measure(work: Path, steps: int, metrics: int) -> dict:
    import shutil

    path = ensure_log(work, steps, metrics)
    runs = path.parent.parent
    size_mb = path.stat().st_size / 1e6
    row: dict = {"cell": f"{steps:,} x {metrics}", "size_mb": size_mb, **floors(path)}
    cache = work / "scale_cache"  # not under scale/: that folder may be shared (a symlink) with others
    shutil.rmtree(cache, ignore_errors=True)
    idx = _py(_INDEX, str(runs), str(cache), "synth0001")
    dec = _py(_DECODE, str(runs), str(cache), "synth0001")
    row.update(index_s=idx["index_s"], index_rss=idx["rss_mb"], decode_s=dec["decode_s"], decode_rss=dec["rss_mb"],
               decode_cpu=(dec["cpu_self"], dec["cpu_worker"]))
    for tool, args in (("describe_run", {"run": "synth0001"}), ("diagnose_run", {"run": "synth0001"}),
                       ("plot_overview", {"run": "synth0001"})):
        if os.environ.get("SCALE_TOOLS", "1") == "0":  # the decode alone (tool calls cold at 1M+ take minutes)
            break
        shutil.rmtree(cache, ignore_errors=True)
        row[f"{tool}_cold"], row[f"{tool}_rss"] = _call(tool, args, runs, cache)
        row[f"{tool}_cached"], _ = _call(tool, args, runs, cache)
    return row


HEAD = ("| steps x metrics | log | raw read | framing | protobuf parse 1 core / 2 | index (peak RSS) | decode (MB/s) "
        "| decode / parse floor 1 core / 2 | CPU s decode (this / worker) / parse 1 core | peak RSS decode | describe cold / cached | diagnose cold / cached "
        "| plot_overview cold / cached | peak RSS tool |")


def _pair(r: dict, tool: str) -> str:
    if f"{tool}_cold" not in r:
        return "-"
    return f"{r[f'{tool}_cold']:.2f} / {r[f'{tool}_cached']:.2f} s"


def table(rows: list[dict], skipped: list[str]) -> str:
    lines = [HEAD, "|" + "---|" * (HEAD.count("|") - 1)]
    for r in rows:
        tool_rss = [r[k] for k in ("describe_run_rss", "diagnose_run_rss", "plot_overview_rss") if k in r]
        lines.append(
            f"| {r['cell']} | {r['size_mb']:,.0f} MB | {r['read']:.2f} s | {r['framing']:.2f} s "
            f"| {r['parse1']:.2f} / {r['parse2']:.2f} s | {r['index_s']:.2f} s ({r['index_rss']:,.0f} MB) "
            f"| {r['decode_s']:.2f} s ({r['size_mb'] / r['decode_s']:,.0f}) "
            f"| {r['decode_s'] / r['parse1']:.2f}x / {r['decode_s'] / r['parse2']:.2f}x "
            f"| {r['decode_cpu'][0]:.1f} / {r['decode_cpu'][1]:.1f} / {r['parse1_cpu']:.1f} "
            f"({max(r['decode_cpu']) / r['parse1_cpu']:.2f}x) | {r['decode_rss']:,.0f} MB | {_pair(r, 'describe_run')} | {_pair(r, 'diagnose_run')} "
            f"| {_pair(r, 'plot_overview')} | {f'{max(tool_rss):,.0f} MB' if tool_rss else '-'} |")
    if skipped:
        lines.append(f"\nNot run: {', '.join(skipped)}.")
    return "\n".join(lines)


def bench(ctx) -> list[dict]:
    grid = parse_grid(os.environ.get("SCALE_GRID", DEFAULT_GRID))
    rows = []
    for s, m in grid:
        rows.append(measure(Path(ctx["work"]), s, m))
        print(table(rows[-1:], []).splitlines()[-1], file=sys.stderr, flush=True)  # each row as it is done
    done = {f"{s}:{m}" for s, m in grid}
    skipped = [c for c in FULL_GRID if f"{_steps(c.split(':')[0])}:{c.split(':')[1]}" not in done]
    text = table(rows, skipped)
    (Path(ctx["work"]) / "scale_table.md").write_text(text + "\n")
    print(text, file=sys.stderr)
    return [{"name": f"{r['cell']}: cold decode / 1-core parse floor", "value": f"{r['decode_s'] / r['parse1']:.2f}x",
             "target": "<= 1.6x"} for r in rows] + \
           [{"name": f"{r['cell']}: peak RSS of the cold decode", "value": f"{r['decode_rss']:,.0f} MB",
             "target": "<= 1,500 MB"} for r in rows]


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--grid"] and len(args) > 1:
        os.environ["SCALE_GRID"] = args[1]
    work = HERE / "out"
    work.mkdir(exist_ok=True)
    bench({"work": work})
