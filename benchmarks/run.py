"""`make bench`: measures the targets of every issue and prints one table.

Each `benchmarks/bench_*.py` module exposes `bench(ctx) -> list[dict]`, rows with keys
`name`, `value` (a string with its unit) and `target` (a string, or "" when informational).
`ctx` is a dict shared by the modules: `ctx["work"]` is a scratch folder kept across runs
(`benchmarks/out/`, git-ignored) so large generated runs are made once.
"""

from __future__ import annotations

import importlib
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    import os

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu or platform.processor()}), {mem:.0f} GiB, Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    only = argv[1:]
    ctx = {"work": HERE / "out"}
    ctx["work"].mkdir(exist_ok=True)
    sys.path.insert(0, str(HERE))
    rows = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem
        if only and not any(o in name for o in only):
            continue
        t0 = time.perf_counter()
        mod = importlib.import_module(name)
        for row in mod.bench(ctx):
            rows.append((name[len("bench_"):], row))
        print(f"# {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(f"Machine: {machine()}\n")
    print("| area | measure | value | target |")
    print("|---|---|---|---|")
    for area, row in rows:
        print(f"| {area} | {row['name']} | {row['value']} | {row.get('target', '')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
