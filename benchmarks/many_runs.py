"""A 1,000-run project of small runs, written once with wandb's record classes (`synth_run.LogWriter`).

Each run is what wandb-core (0.19+) writes for a short `run.log()` loop: header, run record with
config / tags / group, environment, telemetry, then per step a summary delta holding the row's
items, the history record and a `_wandb.runtime` delta; at the end the finish telemetry and the exit
record. Most runs finish; every 20th exits with code 1 (no finish flag), every 25th is killed (no
exit record, mtime an hour back so it reads crashed). With `legacy=True` the runs are written the
way wandb 0.10-0.17's Python writer does: history records only, and at exit the exit record, one
summary record holding the whole summary, `final` and `footer`.

    python benchmarks/many_runs.py [RUNS] [STEPS]    # prints the runs folder

The project is cached under ~/.cache/wandb-lens-bench/many-runs-<hash of this file>-<runs>x<steps>
(shared by worktrees; regenerated when missing).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = "many-runs"


def cache_root() -> Path:
    base = os.environ.get("WANDB_LENS_BENCH_CACHE") or Path.home() / ".cache" / "wandb-lens-bench"
    return Path(base)


def write_small_run(folder: Path, i: int, steps: int, metrics: int = 5, legacy: bool = False) -> Path:
    sys.path.insert(0, str(HERE))
    import numpy as np
    from synth_run import LogWriter, metric_names
    from wandb.proto import wandb_internal_pb2 as pb
    from wandb.proto import wandb_telemetry_pb2 as tpb

    run_id = f"r{i:05d}x"
    run_dir = folder / f"offline-run-20260102_{i // 60:04d}{i % 60:02d}-{run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / f"run-{run_id}.wandb"
    names = metric_names(metrics)
    rng = np.random.default_rng(i)
    lr = float([1e-4, 3e-4, 1e-3, 3e-3][i % 4])
    batch = [16, 32, 64][i % 3]
    opt = ["adam", "sgd"][i % 2]
    exit_code = None if i % 25 == 24 else (1 if i % 20 == 19 else 0)
    t0 = 1.79e9 + i * 600
    num = 0

    def record(**kw) -> bytes:
        nonlocal num
        num += 1
        return pb.Record(num=num, **kw).SerializeToString()

    with open(out, "wb") as fh:
        w = LogWriter(fh)
        w.write(record(header=pb.HeaderRecord(version_info=pb.VersionInfo(
            producer="0.15.12" if legacy else "0.31.0+synth"))))
        run = pb.RunRecord(run_id=run_id, project=PROJECT, display_name=f"run-{i}", host="bench",
                           job_type="train", run_group=f"g{i % 10}")
        run.tags.extend(["baseline"] if i % 3 == 0 else ["sweep", f"opt-{opt}"])
        run.start_time.seconds = int(t0)
        config = {"lr": lr, "batch_size": batch, "optimizer": opt, "seed": i, "model": {"layers": 2 + i % 6, "width": 256}}
        run.config.update.add(key="_wandb", value_json="{}")
        for k, v in config.items():
            run.config.update.add(key=k, value_json=json.dumps(v))
        w.write(record(run=run))
        w.write(record(environment=pb.EnvironmentRecord(os="Linux", python="CPython 3.11.7", program="train.py")))
        tel = tpb.TelemetryRecord()
        tel.feature.offline = True
        w.write(record(telemetry=tel))
        t = np.arange(steps, dtype=np.float64)
        scale = rng.uniform(0.5, 1.5, (1, metrics)) * (1 + 3 * lr * 100)
        vals = 0.2 + 2.5 * np.exp(-t / max(1, steps / 8))[:, None] * scale + rng.normal(0, 0.02, (steps, metrics))
        last: dict[str, str] = {}
        for step in range(steps):
            items = [(k, repr(float(v))) for k, v in zip(names, vals[step])]
            items += [("_timestamp", repr(t0 + step * 0.5)), ("_runtime", repr(step * 0.5)), ("_step", str(step))]
            if step % 100 == 99:
                items.append(("val/loss", repr(float(vals[step, 0]) + 0.05)))
            r = step % len(items)
            items = items[r:] + items[:r]
            last.update(items)
            if not legacy:
                summ = pb.SummaryRecord()
                for k, v in items:
                    summ.update.add(nested_key=[k], value_json=v)
                w.write(record(summary=summ))
            hist = pb.HistoryRecord()
            for k, v in items:
                hist.item.add(nested_key=[k], value_json=v)
            if step:
                hist.step.num = step
            w.write(record(history=hist))
            if not legacy:
                rt = pb.SummaryRecord()
                rt.update.add(nested_key=["_wandb", "runtime"], value_json=str(int(step * 0.5)))
                w.write(record(summary=rt))
        if exit_code is not None:
            if exit_code == 0:
                tel.feature.finish = True
                w.write(record(telemetry=tel))
            w.write(record(exit=pb.RunExitRecord(exit_code=exit_code, runtime=int(steps * 0.5))))
            if legacy:  # the Python writer's exit path: the whole summary, then final and footer
                summ = pb.SummaryRecord()
                for k, v in last.items():
                    summ.update.add(key=k, value_json=v)
                w.write(record(summary=summ))
                w.write(record(final=pb.FinalRecord()))
                w.write(record(footer=pb.FooterRecord()))
        w.flush()
    if exit_code is None:  # killed long ago: no exit record, not written to lately
        past = time.time() - 3600
        os.utime(out, (past, past))
    return out


def ensure(runs: int = 1000, steps: int = 1000, legacy: bool = False) -> Path:
    """The `wandb/` folder of the project (written when missing; a few minutes for 1,000 runs)."""
    digest = hashlib.sha1((HERE / "many_runs.py").read_bytes() + (HERE / "synth_run.py").read_bytes()).hexdigest()[:10]
    base = cache_root() / f"many-runs-{digest}-{runs}x{steps}{'-legacy' if legacy else ''}"
    folder = base / "wandb"
    if (base / "done").is_file():
        return folder
    shutil.rmtree(base, ignore_errors=True)
    print(f"# writing {runs:,} runs of {steps:,} steps into {base} (once)", file=sys.stderr)
    for i in range(runs):
        write_small_run(folder, i, steps, legacy=legacy)
    (base / "done").write_text(str(runs))
    return folder


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    t = time.perf_counter()
    print(ensure(int(args[0]) if args else 1000, int(args[1]) if len(args) > 1 else 1000, legacy="--legacy" in sys.argv))
    print(f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
