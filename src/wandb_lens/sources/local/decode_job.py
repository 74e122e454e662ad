"""A history decode on a thread of its own, shared by the tool calls that wait for it.

A cold decode of a big run can outlast a tool call's budget (`budget.py`). The decode runs here,
not on the call's thread: each waiting call relays its progress (and is cancelled through it), and
when the call's budget is spent it takes the rows decoded so far from the start of the log
(`snapshot`, published by the decode) and answers from them, while the decode goes on and fills
the cache for the next call. A decode nobody waits for any more, and whose rows nobody was given
in part, is stopped (the client cancelled the only call that wanted it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ... import budget, progress
from ..history import History

POLL_S = 0.2


class Cancelled(Exception):
    """Raised inside the decode when every call waiting for it was cancelled."""


class DecodeJob:
    def __init__(self, work: Callable[[DecodeJob], History], name: str):
        self.snapshot: Callable[[], History | None] | None = None  # set by the decode: rows so far
        self.result: History | None = None
        self.error: BaseException | None = None
        self._state: tuple[float, float | None, str] | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._waiters = 0
        self._given_in_part = False  # a call answered from part of it: it must run to the end
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True, name=name)

    def start(self) -> DecodeJob:
        self._thread.start()
        return self

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def _run(self, work) -> None:
        try:
            with progress.reporting(self._report, check=self._check):
                self.result = work(self)
        except BaseException as exc:  # handed to every waiting call
            self.error = exc
        finally:
            self._done.set()

    def _report(self, done: float, total: float | None, message: str) -> None:
        self._state = (done, total, message)

    def _check(self) -> None:
        if self._cancelled:
            raise Cancelled("every call waiting for this decode was cancelled")

    def attach(self) -> bool:
        """Count a call as waiting; False when the decode was already told to stop (start another)."""
        with self._lock:
            if self._cancelled:
                return False
            self._waiters += 1
            return True

    def wait(self) -> tuple[History, bool]:
        """(History, False) when the decode is done; (rows decoded so far, True) when the call's
        budget ran out first and some rows exist. Call `attach` first. Relays progress and the
        call's cancellation (which stops the decode when no other call waits or was answered)."""
        try:
            while not self._done.wait(POLL_S):
                state = self._state
                if state is not None:
                    progress.report(*state)
                else:
                    progress.report(0, None, "waiting for the decode to start")
                left = budget.remaining()
                if left is not None and left <= 0 and self.snapshot is not None:
                    part = self.snapshot()
                    if part is not None and part.n_rows and not self._done.is_set():
                        with self._lock:
                            self._given_in_part = True
                        return part, True
        except BaseException:
            with self._lock:
                self._waiters -= 1
                if self._waiters == 0 and not self._given_in_part:
                    self._cancelled = True
            raise
        with self._lock:
            self._waiters -= 1
        if self._state is not None and self.error is None:
            progress.report(*self._state)  # the decode's last word (its end), which the loop may not have seen
        if self.error is not None:
            raise self.error
        return self.result, False
