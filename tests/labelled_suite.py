"""The labelled scenario suite, generated once and cached.

numpy trainings (tests/scenarios.py) and PyTorch CPU trainings (tests/torch_suite.py), all written by
`wandb.init(mode="offline")` in ONE process, run after run, under `nice`. The result lives under
~/.cache/wandb-lens-test/suite-<hash of the generator code>/ and is regenerated when missing (a
clean clone, or a changed generator). A lock keeps two test sessions from generating it twice.

labels.json: {"runs": {name: {"id", "verdict", "why", "held_out", "source"}}, "extras": {name: id}}.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GENERATORS = [HERE / "scenarios.py", HERE / "torch_suite.py", HERE / "labelled_suite.py"]


def _code() -> bytes:
    """The generator code: the three test modules and the two demo functions the scenarios call."""
    import inspect

    from wandb_lens import demo

    return b"".join(p.read_bytes() for p in GENERATORS) + (inspect.getsource(demo._init)
                                                            + inspect.getsource(demo.overfit)).encode()


def cache_dir() -> Path:
    h = hashlib.sha256(_code()).hexdigest()[:16]
    base = Path(os.environ.get("WANDB_LENS_TEST_CACHE", Path.home() / ".cache" / "wandb-lens-test"))
    return base / f"suite-{h}"


def ensure() -> tuple[Path, dict]:
    """(the folder holding wandb/, the labels), generating them first when missing."""
    out = cache_dir()
    labels = out / "labels.json"
    if not labels.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out.parent / f"{out.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not labels.exists():
                tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}-", dir=out.parent))
                try:
                    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
                    subprocess.run(["nice", "-n", "10", sys.executable, str(Path(__file__)), str(tmp)], check=True,
                                   env=env, timeout=3600, stdout=subprocess.DEVNULL)
                    shutil.rmtree(out, ignore_errors=True)
                    tmp.rename(out)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
    return out, json.loads(labels.read_text())


# one line per numpy scenario: why its dynamics give its label
NUMPY_WHY = {
    "div-nan-loss": "LR 0.9 far above 2/lambda_max of the inputs: the loss explodes to inf/NaN",
    "div-nan-evalnames": "LR 0.7 above the stability limit (HF-style eval names): NaN",
    "div-lr-ramp": "the LR ramps 4x over the first half, past stability: the loss rises and stays up",
    "div-short": "80 steps at LR 1.2: explodes at once",
    "ovf-linear": "60 features, 50 examples, full batch: train -> 0 while validation turns up",
    "ovf-linear-2": "the same, another seed",
    "ovf-logistic": "logistic regression, 60 features, 40 examples with 15% flipped labels: memorises them",
    "ovf-logistic-stepmetric": "the same with Lightning keys and a trainer/global_step axis",
    "uns-bad-batches": "a batch with x25 targets every ~60 steps: spikes that set SGD back",
    "uns-lossnames": "bad batches every ~40 steps, plain keys",
    "uns-late": "bad batches only in the last 30% of the run",
    "uns-short": "150 steps with bad batches every ~20",
    "pla-tiny-lr": "LR 2e-6: the loss cannot move",
    "pla-tiny-lr-stepmetric": "LR 1e-6 on a custom step axis",
    "pla-lr-collapse": "exponential LR decay 0.96/step: the LR is ~0 after 15% of the run, the loss stops there",
    "pla-lr-collapse-2": "the same collapse, other keys",
    "cvg-cosine": "warm-up+cosine, reaches the noise floor early, flat after",
    "cvg-stepmetric": "cosine on a custom step axis: flat at the floor",
    "cvg-constant-long": "constant LR 0.02 for 2,500 steps: at the noise floor for most of the run",
    "cvg-short": "120 steps at a high stable LR: at the floor quickly",
    "hlt-slow": "LR 0.004: still descending at the end",
    "hlt-names": "LR 0.0015 with HF-style names: still descending",
    "hlt-fullbatch": "full batch, small LR: a smooth curve still descending",
    "hlt-short": "60 steps: stopped while falling",
    "killed-converging": "SIGKILLed at step 500 after reaching its floor (crashed, judged on what it logged)",
    "heldout-converged": "cosine LR 0.012 reaches the floor by ~30% of the run",
    "heldout-overfit": "100 features, 50 noisy examples: validation turns up",
}


def generate(out: Path) -> None:
    """Write every run into `out` (one process) and labels.json last."""
    sys.path.insert(0, str(HERE))
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ["WANDB_MODE"] = "offline"
    import scenarios
    import torch_suite

    runs = {}
    for name, m in scenarios.write(out).items():
        runs[name] = {"id": m["id"], "verdict": m["verdict"], "why": NUMPY_WHY[name], "held_out": False,
                      "source": "numpy"}
    for name, m in scenarios.held_out(out).items():
        runs[name] = {"id": m["id"], "verdict": m["verdict"], "why": NUMPY_WHY[name], "held_out": True,
                      "source": "numpy"}
    extras = scenarios.extras(out)
    excluded = {}
    for name, m in torch_suite.write(out).items():
        if "excluded" in m:
            excluded[name] = m["excluded"]
        else:
            runs[name] = {**m, "source": "torch"}
    (out / "labels.json").write_text(json.dumps({"runs": runs, "extras": extras, "excluded": excluded}, indent=1))


if __name__ == "__main__":
    generate(Path(sys.argv[1]))

