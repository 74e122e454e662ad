"""`wandb-lens call` output when its reader stops early (`... | head`): no traceback."""

from __future__ import annotations

import os
import subprocess
import sys


def test_call_into_a_closed_pipe_ends_quietly(demo_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_LENS")}
    env["WANDB_LENS_CACHE_DIR"] = str(tmp_path / "cache")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte is written
    try:
        proc = subprocess.run([sys.executable, "-m", "wandb_lens", "call", "query_runs", '{"limit": 50}',
                               "--runs-dir", str(demo_dir / "wandb")],
                              stdout=write_end, stderr=subprocess.PIPE, env=env, timeout=120)
    finally:
        os.close(write_end)
    stderr = proc.stderr.decode(errors="replace")
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr[-2000:]
    assert proc.returncode == 141  # as a process ended by SIGPIPE
