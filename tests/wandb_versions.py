"""Run folders written by several real wandb versions, built by the tests' own setup.

Each version gets a throw-away venv under ~/.cache/wandb-lens-test/wandb-venvs/<version>
(`pip install wandb==<version>`, built when missing) and writes three offline runs with
tests/compat/write_runs.py: finished, exit code 1, SIGKILLed. The runs are cached under
~/.cache/wandb-lens-test/wandb-runs-<hash of the writer>/<version>/ and rebuilt when missing.
"current" is the wandb this project installs. Under CI=true a version that cannot be built fails
the test; elsewhere it is skipped with the reason.

Versions: the newest patch of each minor that installs and runs on Python 3.11 (all of these do;
0.9.7, the last with the layout before the `.wandb` log, needs a 3-line shim for its graphql-core).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

VERSIONS = ("0.9.7", "0.12.21", "0.15.12", "0.17.9", "0.19.11", "0.21.4", "current")
KINDS = ("finished", "failed", "killed")
WRITER = Path(__file__).parent / "compat" / "write_runs.py"
CACHE = Path(os.environ.get("WANDB_LENS_TEST_CACHE", Path.home() / ".cache" / "wandb-lens-test"))


SHIM = """import collections, collections.abc
for _n in ("Iterable", "Mapping", "MutableMapping", "Sequence", "Callable", "Hashable"):
    setattr(collections, _n, getattr(collections.abc, _n))
"""


class Unavailable(Exception):
    pass


def _run(cmd: list, cwd: Path | None = None, timeout: int = 900, **extra_env) -> subprocess.CompletedProcess:
    """Output goes to a file, not a pipe: wandb's internal process outlives a killed writer and
    would hold a pipe open (and, unreaped, the writer's pid stays "alive" for it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_SILENT="true", PYTHONDONTWRITEBYTECODE="1", **extra_env)
    log = (cwd or CACHE) / "setup.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a+") as fh:
        start = fh.tell()
        proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=timeout)
        fh.seek(start)
        proc.stderr = fh.read()[-2000:]
    return proc


def venv_python(version: str) -> Path:
    if version == "current":
        return Path(sys.executable)
    folder = CACHE / "wandb-venvs" / version
    py = folder / "bin" / "python"
    if (folder / ".ok").exists() and py.exists():
        return py
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    for cmd in ([base, "-m", "venv", folder], [py, "-m", "pip", "install", "-q", f"wandb=={version}"],
                [py, "-c", "import wandb"]):
        if cmd[1] == "-c" and version.startswith("0.9."):  # its graphql-core imports collections.Iterable
            site = next((folder / "lib").glob("python3*/site-packages"))  # (gone since Python 3.10)
            (site / "sitecustomize.py").write_text(SHIM)
        proc = _run(cmd)
        if proc.returncode:
            raise Unavailable(f"wandb {version}: {' '.join(map(str, cmd[1:]))} failed: {proc.stderr[-500:]}")
    (folder / ".ok").touch()
    return py


def runs_folder(version: str) -> Path:
    """The `wandb/` folder holding the three runs this version wrote (built when missing)."""
    digest = hashlib.sha1(WRITER.read_bytes()).hexdigest()[:10]
    name = version
    if version == "current":
        import wandb

        name = f"current-{wandb.__version__}"
    out = CACHE / f"wandb-runs-{digest}" / name
    if (out / ".ok").exists():
        return out / "wandb"
    py = venv_python(version)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for kind in KINDS:
        old = {"WANDB_MODE": "dryrun"} if version.startswith("0.9.") else {}
        proc = _run([py, WRITER, kind], cwd=out, timeout=300, **old)
        want = {"finished": 0, "failed": 1, "killed": -9}[kind]
        if proc.returncode != want:
            raise Unavailable(f"wandb {version}: the {kind} run exited with {proc.returncode}: {proc.stderr[-500:]}")
    (out / ".ok").touch()
    return out / "wandb"
