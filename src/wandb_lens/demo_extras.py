"""Demo runs for what W&B records beside metrics: console output, system metrics, artifacts and a
hyperparameter sweep. Written by the real wandb library (offline) in one child process, so console
capture is W&B's own and one run can end by raising.

Two things wandb 0.31 cannot do offline are done through the same calls its online path makes:
- GPU metrics: this machine may have no GPU, so the GPU runs publish their `stats` records with
  `run._interface.publish_stats` (what wandb's system monitor sends), W&B's own key names
  (`gpu.0.gpu`, `gpu.0.memoryAllocated`, `cpu`, `memory_percent`, `proc.memory.rssMB`), and W&B's
  own sampler is switched off for them (`x_disable_stats`).
- Using an artifact: `run.use_artifact` refuses offline; the consumer run publishes the
  `use_artifact` record an online `use_artifact("name:v0")` writes (`_publish_use_artifact`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PROJECT = "lens-demo"
SWEEP_PROJECT = "lens-sweep"
SWEEP_GROUP = "sweep-lr-wd"
SWEEP_RUNS = 16
SWEEP_ID = "q7lrwd2x"  # what `wandb agent` passes (WANDB_SWEEP_ID): each run's log records it (RunRecord.sweep_id)

_CHILD = r"""
import sys
sys.path[:0] = {path!r}
from wandb_lens.demo_extras import child
child({out!r}, {parts!r})
"""


def _init(out: Path, name: str, config: dict, project: str = PROJECT, stats: bool = False, sweep_id: str | None = None,
          **kw):
    import wandb

    settings = wandb.Settings(silent=True, console="wrap", x_disable_stats=not stats, x_stats_sampling_interval=1.0,
                              sweep_id=sweep_id)
    return wandb.init(project=project, name=name, config=config, dir=str(out), mode="offline",
                      reinit="create_new", settings=settings, **kw)


def _stats(run, **values) -> None:
    run._interface.publish_stats(values)


def input_bound(out: Path) -> None:
    """GPU mostly idle (waiting for data), a slow stretch at steps 150-199, progress on the console."""
    run = _init(out, "input-bound-gpu", {"lr": 0.01, "batch_size": 64, "num_workers": 0}, job_type="train",
                tags=["system"])
    rng = np.random.default_rng(11)
    loss = 2.0
    for step in range(300):
        slow = 150 <= step < 200
        time.sleep(0.02 if slow else 0.001)
        loss = loss * 0.995 + rng.normal(0, 0.01)
        run.log({"train/loss": loss, "samples_per_sec": (64 / 0.02 if slow else 64 / 0.001) * rng.uniform(0.9, 1.1)})
        if step % 10 == 0:
            _stats(run, **{"gpu.0.gpu": float(rng.uniform(8, 22)), "gpu.0.memoryAllocated": 31.0,
                           "gpu.0.memoryAllocatedBytes": 31.0 * 0.8e9, "cpu": float(rng.uniform(92, 99)),
                           "memory_percent": 22.0, "proc.memory.rssMB": 2100.0})
        if step % 50 == 0:
            print(f"step {step}: loss {loss:.4f}", flush=True)
    run.finish()


def leaky(out: Path) -> None:
    """GPU busy, but GPU memory and host memory grow step after step (tensors kept for logging)."""
    run = _init(out, "leaky-memory", {"lr": 0.01, "batch_size": 32, "keep_outputs": True}, job_type="train",
                tags=["system"])
    rng = np.random.default_rng(12)
    for step in range(300):
        time.sleep(0.001)
        run.log({"train/loss": 1.0 / (1 + step / 50) + rng.normal(0, 0.01)})
        if step % 10 == 0:
            _stats(run, **{"gpu.0.gpu": float(rng.uniform(85, 97)), "gpu.0.memoryAllocated": 20.0 + step * 0.25,
                           "gpu.0.memoryAllocatedBytes": (20.0 + step * 0.25) * 0.8e9, "cpu": 35.0,
                           "memory_percent": 18.0 + step * 0.05, "proc.memory.rssMB": 1800.0 + step * 6.0})
    run.finish()


def raises(out: Path) -> None:
    """Prints progress and a warning, then raises: wandb marks it failed (exit code 1)."""
    run = _init(out, "crash-raises", {"lr": 0.05, "batch_size": 16}, job_type="train", tags=["crash"])
    rng = np.random.default_rng(13)
    for step in range(120):
        loss = 1.0 / (1 + step / 30) + rng.normal(0, 0.02)
        run.log({"loss": loss})
        if step % 20 == 0:
            print(f"epoch 0 step {step}: loss {loss:.4f}", flush=True)
    print("WARNING: 3 samples had empty labels and were skipped", file=sys.stderr, flush=True)
    _load_batch({"image": np.zeros(3)}, "label")


def _load_batch(batch: dict, key: str):
    return _collate(batch, key)


def _collate(batch: dict, key: str):
    return batch[key]  # KeyError: 'label'


def artifacts(out: Path) -> None:
    """A data-prep run logs a dataset; a training run uses it and logs a model (two versions of it)."""
    import wandb

    data_dir = out / "artifact-files"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "train.csv").write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(500)))
    (data_dir / "val.csv").write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(100)))
    run = _init(out, "prepare-data", {"source": "synthetic", "rows": 600}, job_type="data-prep", tags=["data"])
    ds = wandb.Artifact("digits-small", type="dataset", description="600 synthetic rows",
                        metadata={"rows": 600, "splits": ["train", "val"]})
    ds.add_file(str(data_dir / "train.csv"))
    ds.add_file(str(data_dir / "val.csv"))
    run.log_artifact(ds, aliases=["latest", "clean"])
    run.finish()

    from wandb.proto import wandb_internal_pb2 as pb

    run = _init(out, "train-on-digits", {"lr": 0.02, "epochs": 3, "dataset": "digits-small:v0"}, job_type="train",
                tags=["data"])
    run._interface._publish_use_artifact(pb.UseArtifactRecord(type="dataset", name="digits-small:v0"))
    for epoch in range(3):
        run.log({"epoch": epoch, "val/acc": 0.6 + 0.1 * epoch})
        (data_dir / "model.bin").write_bytes(bytes(1000 * (epoch + 1)))
        model = wandb.Artifact("digits-model", type="model", metadata={"epoch": epoch, "val/acc": 0.6 + 0.1 * epoch})
        model.add_file(str(data_dir / "model.bin"))
        run.log_artifact(model, aliases=["best"] if epoch == 2 else [])
    run.finish()


def sweep(out: Path, n: int = SWEEP_RUNS) -> None:
    """A random-search sweep as a group: val/loss falls with log(lr) and rises with weight decay;
    batch size, dropout, warmup and seed do not enter it (noise 0.01)."""
    rng = np.random.default_rng(21)
    for i in range(n):
        cfg = {"lr": float(10 ** rng.uniform(-4, -1)), "weight_decay": float(rng.choice([0.0, 1e-3, 1e-2, 3e-2])),
               "batch_size": int(rng.choice([16, 32, 64])), "dropout": float(round(rng.uniform(0, 0.5), 2)),
               "warmup_steps": int(rng.choice([0, 50, 100])), "seed": i}
        final = 0.2 + 0.25 * (-1 - np.log10(cfg["lr"])) + 8 * cfg["weight_decay"] + rng.normal(0, 0.01)
        run = _init(out, f"sweep-{i:02d}", cfg, project=SWEEP_PROJECT, group=SWEEP_GROUP, job_type="sweep-trial",
                    tags=["sweep"], sweep_id=SWEEP_ID)
        for step in range(0, 100, 5):
            t = step / 99
            run.log({"train/loss": final + (2.0 - final) * (1 - t) ** 3, "val/loss": final + (2.1 - final) * (1 - t) ** 3},
                    step=step)
        run.finish()


PARTS = {"console": [raises], "system": [input_bound, leaky], "artifacts": [artifacts], "sweep": [sweep]}


def child(out: str, parts: list[str]) -> None:
    """In the child process: every part asked for; `console` last (it ends the process by raising)."""
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    os.environ.pop("WANDB_CONSOLE", None)
    for part in sorted(parts, key=lambda p: p == "console"):
        for fn in PARTS[part]:
            fn(Path(out))


def write_extras(out: str | os.PathLike, parts=("system", "artifacts", "sweep", "console")) -> None:
    """Write the parts under `out/wandb` in one child process (the console part raises at its end)."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    src = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SERVICE", "WANDB_CONSOLE")}
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(path=[src], out=str(out), parts=list(parts))],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600, env=env)
    expect_fail = "console" in parts
    if (proc.returncode != 0) != expect_fail or (expect_fail and b"KeyError" not in proc.stderr):
        raise RuntimeError(f"demo extras child exited with {proc.returncode}: {proc.stderr[-2000:].decode(errors='replace')}")
