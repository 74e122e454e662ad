"""A local run's state as W&B shows it, from what the wandb version wrote.

What every wandb version from 0.10 to today writes, read from its source and checked on runs each
version wrote (tests/test_wandb_versions.py):
- An `exit` record is written when the user process ends through wandb's exit path: an explicit
  `run.finish()`, or the exit hook when the script simply returns or raises (exit code 1). W&B
  marks the run "finished" for exit code 0 and "failed" otherwise, whether or not `run.finish()`
  was called: HF Trainer and many scripts never call it.
- The `finish` telemetry flag (written since wandb 0.10.13) is set only by an explicit
  `run.finish()`: its absence next to an exit record says the run ended through the exit hook,
  which is reported in its own field, never as a different state.
- A killed process (SIGKILL, OOM killer, node lost) writes no exit record: the internal process
  or wandb-core sees its parent gone and stops without one. W&B shows such a run "running" until
  heartbeats stop, then "crashed". Locally: the writer's pid (named in logs/debug.log) tells
  whether it is alive on this host; a run written on another host is never "running" by the age
  of its file alone; otherwise a file written in the last RUNNING_WINDOW_S reads "running".
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

from ..safe_open import read_head
from .run_file import RunScan

RUNNING_WINDOW_S = 300  # a log without an exit record, written to this recently, is "running"
FINISH_FLAG_SINCE = (0, 10, 13)  # first wandb version whose run.finish() logs telemetry feature.finish

_PID_LINE = re.compile(rb"Configure stats pid to (\d+)")


def _version(text: str) -> tuple[int, ...] | None:
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", text or "")
    return tuple(int(g) for g in m.groups()) if m else None


def finish_called(scan: RunScan) -> bool | None:
    """Did the user process call run.finish()? None when the log cannot say (no exit record, or a
    version that does not record it)."""
    if scan.exit_code is None:
        return None
    if scan.finish_called:
        return True
    version = _version(scan.wandb_version)
    if version is None or version < FINISH_FLAG_SINCE:
        return None
    return False


def other_host(scan: RunScan) -> bool:
    return bool(scan.host) and scan.host != socket.gethostname()


def writer_alive(folder: Path, scan: RunScan, roots=None) -> bool | None:
    """Is the process that wrote this run still alive? None when it cannot be told.

    wandb's `logs/debug.log` names the user process's pid; it is checked only for runs written
    on this host, and a pid that was reused by a process started after the run does not count.
    """
    if other_host(scan):
        return None
    try:
        head = read_head(folder / "logs" / "debug.log", 8192, roots)
    except OSError:
        return None
    m = _PID_LINE.search(head)
    if not m:
        return None
    pid = int(m.group(1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return None
    try:  # Linux: compare the process's start time with the run's
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime"))
        started = btime + ticks / os.sysconf("SC_CLK_TCK")
        if scan.start_time and started > scan.start_time + 5:
            return False
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    return True


def run_state(scan: RunScan, mtime: float, folder: Path | None = None, roots=None) -> str:
    """finished / failed from the exit record's code; otherwise running or crashed."""
    if scan.exit_code is not None:
        return "finished" if scan.exit_code == 0 else "failed"
    if other_host(scan):
        return "crashed"
    alive = writer_alive(folder, scan, roots) if folder is not None else None
    if alive is not None:
        return "running" if alive else "crashed"
    return "running" if time.time() - mtime < RUNNING_WINDOW_S and not scan.damage else "crashed"
