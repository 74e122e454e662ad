"""A cold listing of many runs indexed on two cores: a helper process indexes from the end of the list
while the listing indexes from the start, and they meet in the middle.

The helper is a new interpreter (`python -m` this module; never a fork of a threaded server) with
its own `LocalRunSource` over the same roots and cache folder: it writes each run's disk index (the
same atomic write, fingerprinted, as the listing's own) and says so on its stdout, a pipe to this
process. The listing tells it on its stdin how far it has come, so neither indexes a file the other
has done; a file the helper has taken is read from the disk index once the helper says it is done
(checked against the file like any disk index). If the helper cannot start, dies, or stalls, the
listing indexes the rest itself: the answer never depends on it. Only logs small enough to be
indexed on the request path go to the helper (a big one is indexed in the background, see
`LocalRunSource._info_once`).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger("wandb_lens.local")

MIN_FILES = 100  # fewer cold logs index in about a second: not worth a second interpreter (~1 s to start)
WAIT_S = 10.0  # longest wait for a file the helper took before the listing indexes it itself


class Helper:
    def __init__(self, paths: list[Path], roots: list[Path], cache_dir: Path):
        self.index = {str(p): i for i, p in enumerate(paths)}
        self.claimed = len(paths)  # the helper takes files from the end: every i >= claimed is its
        self.done: set[int] = set()
        self.alive = True
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.proc.stdin.write(json.dumps({"roots": [str(r) for r in roots], "cache_dir": str(cache_dir),
                                          "paths": [str(p) for p in paths]}) + "\n")
        self.proc.stdin.flush()
        threading.Thread(target=self._read, daemon=True, name="wandb-lens index helper").start()

    def _read(self) -> None:
        try:
            for line in self.proc.stdout:
                kind, _, i = line.partition(" ")
                with self._cond:
                    if kind == "claim":
                        self.claimed = min(self.claimed, int(i))
                    elif kind == "done":
                        self.done.add(int(i))
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self.alive = False
                self._cond.notify_all()

    def before(self, path: Path) -> None:
        """Called before the listing indexes `path`: tells the helper, and waits for it if it took the file."""
        i = self.index.get(str(path))
        if i is None:
            return
        try:
            self.proc.stdin.write(f"{i}\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass
        with self._cond:
            if i >= self.claimed:
                self._cond.wait_for(lambda: i in self.done or not self.alive, timeout=WAIT_S)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if self.proc.poll() is None:  # mid-file: its index writes are atomic, so nothing is left half-written
            self.proc.kill()
        self.proc.wait()


def command() -> list[str]:
    return [sys.executable, "-m", __name__]


def start(paths: list[Path], roots: list[Path], cache_dir: Path) -> Helper | None:
    from .parallel_decode import workers

    if len(paths) < MIN_FILES or workers() < 2:
        return None
    try:
        return Helper(paths, roots, cache_dir)
    except OSError as exc:
        log.warning("index helper unavailable (%s): indexing on one core", exc)
        return None


def _helper_main() -> int:
    from ..safe_open import check_regular
    from .source import LocalRunSource

    job = json.loads(sys.stdin.readline())
    paths = [Path(p) for p in job["paths"]]
    src = LocalRunSource(job["roots"], cache_dir=job["cache_dir"])
    reached = [-1]  # the highest index the listing has started

    def listen() -> None:
        for line in sys.stdin:
            try:
                reached[0] = max(reached[0], int(line))
            except ValueError:
                pass
        reached[0] = len(paths)  # the listing closed the pipe: it is done or gone

    threading.Thread(target=listen, daemon=True).start()
    for i in range(len(paths) - 1, -1, -1):
        if i <= reached[0]:
            break
        print(f"claim {i}", flush=True)
        try:
            src._scan(paths[i], check_regular(paths[i], src.roots))
        except Exception as exc:  # the listing indexes it itself and reports what failed
            print(f"could not index {paths[i]}: {exc!r}", file=sys.stderr)
        print(f"done {i}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_helper_main())
