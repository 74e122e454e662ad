"""Big `.wandb` logs in seconds, written with wandb's own record classes (`wandb_internal_pb2`).

`wandb.init(mode="offline")` writes about 5,000 rows a second, so a 10M-step run would take hours.
This writer builds the same records wandb-core writes for a `run.log()` training loop (header,
run with config, environment, telemetry, then per step: a summary delta holding the row's items,
the history record, a `_wandb.runtime` summary delta; at the end the finish telemetry and the exit
record), rotates the item order per row as wandb-core's map iteration does, and frames them in
32 KiB blocks with CRCs exactly like wandb's log writer.

    python benchmarks/synth_run.py OUT_DIR STEPS METRICS     # prints the run file's path
"""

from __future__ import annotations

import struct
import sys
import time
import zlib
from pathlib import Path

BLOCK = 32768


class LogWriter:
    """The LevelDB-style framing of wandb's transaction log (FULL / FIRST / MIDDLE / LAST chunks)."""

    def __init__(self, fh):
        self.fh = fh
        fh.write(struct.pack("<4sHB", b":W&B", 0xBEE1, 0))
        self.pos = 7
        self.buf: list[bytes] = []

    def write(self, data: bytes) -> None:
        first = True
        while True:
            left = BLOCK - self.pos % BLOCK
            if left < 7:
                self.buf.append(b"\0" * left)
                self.pos += left
                left = BLOCK
            frag = data[: left - 7]
            data = data[left - 7:]
            last = not data
            ctype = (1 if last else 2) if first else (4 if last else 3)
            crc = zlib.crc32(frag, zlib.crc32(bytes([ctype])))
            self.buf.append(struct.pack("<IHB", crc, len(frag), ctype))
            self.buf.append(frag)
            self.pos += 7 + len(frag)
            first = False
            if last:
                break
        if len(self.buf) > 4096:
            self.flush()

    def flush(self) -> None:
        self.fh.write(b"".join(self.buf))
        self.buf.clear()


def metric_names(metrics: int) -> list[str]:
    base = ["train/loss", "train/lr", "train/grad_norm", "perf/samples_per_sec"]
    names = base[:metrics]
    layer = 0
    while len(names) < metrics:
        names.append(f"layers/{layer // 4}/{('attn', 'mlp', 'norm', 'resid')[layer % 4]}/grad_norm")
        layer += 1
    return names


def write_run(path: str | Path, steps: int, metrics: int, *, run_id: str = "synth0001", seed: int = 0,
              project: str = "lens-bench", name: str | None = None, val_every: int = 1000) -> Path:
    """Write `run-<id>.wandb` under `path` (a run folder is made); returns the file's path."""
    import numpy as np
    from wandb.proto import wandb_internal_pb2 as pb
    from wandb.proto import wandb_telemetry_pb2 as tpb

    folder = Path(path) / f"offline-run-20260101_000000-{run_id}"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"run-{run_id}.wandb"
    names = metric_names(metrics)
    rng = np.random.default_rng(seed)
    t0 = 1.79e9
    num = 0

    def record(**kw) -> bytes:
        nonlocal num
        num += 1
        return pb.Record(num=num, **kw).SerializeToString()

    with open(out, "wb") as fh:
        w = LogWriter(fh)
        w.write(record(header=pb.HeaderRecord(version_info=pb.VersionInfo(producer="0.31.0+synth"))))
        run = pb.RunRecord(run_id=run_id, project=project, display_name=name or f"synth-{steps}x{metrics}",
                           host="bench", job_type="train")
        run.start_time.seconds = int(t0)
        for k, v in (("_wandb", "{}"), ("steps", str(steps)), ("metrics", str(metrics)), ("lr", "0.0003")):
            run.config.update.add(key=k, value_json=v)
        w.write(record(run=run))
        w.write(record(environment=pb.EnvironmentRecord(os="Linux", python="CPython 3.11.7", program="train.py")))
        tel = tpb.TelemetryRecord()
        tel.feature.offline = True
        w.write(record(telemetry=tel))
        block = 4096
        for lo in range(0, steps, block):
            n = min(block, steps - lo)
            t = np.arange(lo, lo + n, dtype=np.float64)
            vals = 0.2 + 2.5 * np.exp(-t / max(1, steps / 8))[:, None] * rng.uniform(0.5, 1.5, (1, metrics)) \
                + rng.normal(0, 0.02, (n, metrics))
            texts = [[repr(float(x)) for x in row] for row in vals]
            for j in range(n):
                step = lo + j
                items = [(k, v) for k, v in zip(names, texts[j])]
                items += [("_timestamp", repr(t0 + step * 0.01)), ("_runtime", repr(step * 0.01)), ("_step", str(step))]
                if val_every and step % val_every == val_every - 1:
                    items.append(("val/loss", repr(float(vals[j, 0]) + 0.05)))
                r = step % len(items)
                items = items[r:] + items[:r]  # wandb-core's map order varies from row to row
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
                rt = pb.SummaryRecord()
                rt.update.add(nested_key=["_wandb", "runtime"], value_json=str(int(step * 0.01)))
                w.write(record(summary=rt))
        tel.feature.finish = True
        w.write(record(telemetry=tel))
        w.write(record(exit=pb.RunExitRecord(exit_code=0, runtime=int(steps * 0.01))))
        w.flush()
    return out


if __name__ == "__main__":
    t = time.perf_counter()
    p = write_run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    print(p, f"{p.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    print(p)
