"""The time a tool call may take, and the answers given before long work was done.

MCP clients give a tool call about 60 s and show nothing meanwhile. The tool layer opens a budget
for each call (`call()`; `WANDB_LENS_CALL_BUDGET_S`, default 45 s); code below a tool asks
`remaining()` while it waits for long work (a cold decode of a big run), and when the budget is
spent it answers from what is done so far and says so with `mark_partial(...)`. The tool layer adds
those notes to the answer as `partial`. The long work itself goes on in the background, so the next
call is complete. Like `progress`, this module imports nothing from MCP; outside a tool call there
is no budget (`remaining()` is None: wait for the whole answer).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
from collections.abc import Iterator

DEFAULT_S = 45.0

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("wandb_lens_deadline", default=None)
_notes: contextvars.ContextVar[list | None] = contextvars.ContextVar("wandb_lens_partial", default=None)


def seconds() -> float:
    """The per-call budget: WANDB_LENS_CALL_BUDGET_S (seconds, > 0), else DEFAULT_S."""
    try:
        value = float(os.environ["WANDB_LENS_CALL_BUDGET_S"])
        return value if value > 0 else DEFAULT_S
    except (KeyError, ValueError):
        return DEFAULT_S


@contextlib.contextmanager
def call(budget_s: float | None = None) -> Iterator[list]:
    """A budget for the work inside the block; yields the list that collects partial-answer notes."""
    notes: list = []
    t1 = _deadline.set(time.monotonic() + (seconds() if budget_s is None else budget_s))
    t2 = _notes.set(notes)
    try:
        yield notes
    finally:
        _deadline.reset(t1)
        _notes.reset(t2)


def remaining() -> float | None:
    """Seconds left in the current call's budget (never below 0), or None outside a budgeted call."""
    deadline = _deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def mark_partial(note: dict) -> None:
    """Say that the answer was built from part of the data (`note`: what was covered and why)."""
    notes = _notes.get()
    if notes is not None:
        notes.append(note)


def notes() -> list:
    """The partial-answer notes of the current call so far (a copy; [] outside a call)."""
    return list(_notes.get() or [])
