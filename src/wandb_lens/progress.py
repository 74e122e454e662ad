"""Progress of long work, reported from anywhere below a tool call without importing MCP.

Sources and analysis code call `report(done, total, message)` while they work (a decode, an index
build, a cloud fetch, a trace scan). It is a no-op unless the running tool call installed a reporter
with `reporting(fn)`: the tool layer does that when the request carried a progressToken and turns
each report into an MCP `notifications/progress`. Reports are rate-limited here (at most a few a
second, the last one always kept), so callers may report as often as is convenient.

`report()` is also the cancellation point of long work: the tool layer installs a `check` that
raises the call's cancellation (the client sent notifications/cancelled) in the worker thread, so a
cancelled decode or scan stops at its next report instead of running to the end. Call `report()`
at least every few hundred milliseconds of work, even without a progressToken (it costs little).

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
    final one of a stage (done == total), and sends a `done` that never goes backwards (MCP requires
    progress to increase). Work in stages (an index scan of N runs, then a decode of M bytes) is
    chained: a report whose total differs from the previous one, or whose done went back, starts a
    new stage that counts on from one past the last value sent (total: that offset + the stage's total)."""

    def __init__(self, fn: Reporter | None, check: Callable[[], None] | None = None):
        self.fn = fn
        self.check = check
        self.last_t = 0.0
        self.sent = -1.0  # last progress value sent
        self.base = 0.0  # where the current stage starts
        self.stage_total: float | None = None
        self.stage_done = -1.0
        self.lock = threading.Lock()

    def __call__(self, done: float, total: float | None, message: str) -> None:
        if self.check is not None:
            self.check()  # may raise the call's cancellation: not caught below
        if self.fn is None:
            return
        now = time.monotonic()
        with self.lock:  # held while sending, so concurrent reporters' notifications leave in order
            if total != self.stage_total or done < self.stage_done:
                self.base = self.sent + 1 if self.sent >= 0 else 0.0  # one unit past the last value sent
                self.stage_total = total
            self.stage_done = done
            value = self.base + done
            final = total is not None and done >= total
            if value <= self.sent or (not final and now - self.last_t < MIN_INTERVAL_S):
                return
            self.last_t, self.sent = now, value
            self.fn(value, None if total is None else self.base + total, message)


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
    limited = _current.get()
    return limited is not None and limited.fn is not None


@contextlib.contextmanager
def reporting(fn: Reporter | None, check: Callable[[], None] | None = None) -> Iterator[None]:
    """Install `fn` as the reporter for the work done inside the block (None: nothing is reported);
    `check` runs at every report (rate limit or not) and may raise to stop the work."""
    token = _current.set(_Limited(fn, check) if fn is not None or check is not None else None)
    try:
        yield
    finally:
        _current.reset(token)
