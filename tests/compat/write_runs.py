"""Run INSIDE a venv with one wandb version: writes one offline run into the current folder.

    python write_runs.py finished|failed|killed

finished: logs, updates config and summary, calls run.finish(); failed: the same, then raises
(the exit hook records exit code 1, no run.finish()); killed: the same, then SIGKILLs itself
(no exit record). Enough rows to fill a few 32 KiB blocks, so a buffered writer flushes some.
What was logged is written to expected-<kind>.json beside the run.
"""

import json
import os
import signal
import sys
import time

import wandb

kind = sys.argv[1]
STEPS = 300
config = {"lr": 0.01, "opt": {"name": "adam", "beta": 0.9}, "layers": [4, 8]}
OLD = not hasattr(wandb, "finish")  # wandb 0.9: the layout before the .wandb log, offline = "dryrun"
mode = {} if OLD else {"mode": "offline"}
run = wandb.init(project="compat", name=f"{kind}-run", config=config, **mode)
for step in range(STEPS):
    row = {"train/loss": 1.0 / (step + 1), "acc": step / STEPS}
    if step % 10 == 9:
        row["val"] = {"loss": 2.0 / (step + 1)}
    wandb.log(row, step=step)
run.config.update({"late": "yes"})
run.summary["best_acc"] = 0.95
with open(f"expected-{kind}.json", "w") as fh:
    json.dump({"id": run.id, "steps": STEPS, "config": dict(config, late="yes"),
               "summary": {"train/loss": 1.0 / STEPS, "acc": (STEPS - 1) / STEPS,
                           "val": {"loss": 2.0 / STEPS}, "best_acc": 0.95}}, fh)
if kind == "finished":
    wandb.join() if OLD else run.finish()
elif kind == "failed":
    raise RuntimeError("boom")
else:
    time.sleep(3)  # let the writer take in what was logged
    os.kill(os.getpid(), signal.SIGKILL)
