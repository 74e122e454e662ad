"""Progress of long work, reported from anywhere below a tool call without importing MCP.

Sources and analysis code call `report(done, total, message)` while they work (a decode, an index
build, a cloud fetch, a trace scan). It is a no-op unless the running tool call installed a reporter
with `reporting(fn)`: the tool layer does that when the request carried a progressToken and turns
each report into an MCP `notifications/progress`. Reports are rate-limited here (at most a few a
second, the last one always kept), so callers may report as often as is convenient.

The reporter lives in a context variable: worker threads started with `contextvars.copy_context()`
(anyio's `to_thread.run_sync` does this) see the reporter of the call that started them.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator

Reporter = Callable[[float, "float | None", str], None]

MIN_INTERVAL_S = 0.25  # at most four notifications a second per call

_current: contextvars.ContextVar[_Limited | None] = contextvars.ContextVar("wandb_lens_progress", default=None)


class _Limited:
    """Wraps a reporter: drops reports closer than MIN_INTERVAL_S to the previous one, except the
    final one (done == total), and never lets `done` go backwards (MCP requires it to increase)."""

    def __init__(self, fn: Reporter):
        self.fn = fn
        self.last_t = 0.0
        self.last_done = -1.0
        self.lock = threading.Lock()

    def __call__(self, done: float, total: float | None, message: str) -> None:
        now = time.monotonic()
        with self.lock:
            final = total is not None and done >= total
            if done <= self.last_done or (not final and now - self.last_t < MIN_INTERVAL_S):
                return
            self.last_t, self.last_done = now, done
        self.fn(done, total, message)


def report(done: float, total: float | None = None, message: str = "") -> None:
    """Report progress of the current tool call: `done` of `total` units (bytes, runs, calls)."""
    limited = _current.get()
    if limited is not None:
        try:
            limited(float(done), None if total is None else float(total), message)
        except Exception:  # a client gone away must not break the work it was watching
            pass


def active() -> bool:
    """True when someone is listening (skip building costly messages otherwise)."""
    return _current.get() is not None


@contextlib.contextmanager
def reporting(fn: Reporter | None) -> Iterator[None]:
    """Install `fn` as the reporter for the work done inside the block (None: nothing is reported)."""
    token = _current.set(_Limited(fn) if fn is not None else None)
    try:
        yield
    finally:
        _current.reset(token)
