"""Resumed runs: one run id written into several folders (`wandb.init(id=..., resume=...)`), read
as the one run W&B shows: segments in the order they started, history continuing, config and
summary updated by each later segment, state and exit from the last.

History steps: a later segment whose steps continue after the earlier ones is appended as it is.
One whose steps restart at 0 (an offline resume cannot ask the server for the last step) is
numbered on after the earlier segments, as an online resume would have logged it. One that
re-logs earlier steps (resumed from an older checkpoint with explicit `step=`) loses those rows,
as W&B rejects steps lower than the run's current step; the answer says how many.
"""

from __future__ import annotations

import numpy as np

from ..base import RunInfo
from ..history import NUMERIC, Column, History


def merge_listing(runs: list[RunInfo]) -> list[RunInfo]:
    """The listing with each resumed run's folders replaced by one merged run."""
    groups: dict[tuple, list[RunInfo]] = {}
    for r in runs:
        if r.state != "unreadable":
            groups.setdefault((r.entity, r.project, r.id), []).append(r)
    merged = {key: merge(segs) for key, segs in groups.items() if len(segs) > 1}
    if not merged:
        return runs
    out, done = [], set()
    for r in runs:
        key = (r.entity, r.project, r.id)
        if key not in merged or r.state == "unreadable":
            out.append(r)
        elif key not in done:
            done.add(key)
            out.append(merged[key])
    return out


def merge(segments: list[RunInfo]) -> RunInfo:
    segs = sorted(segments, key=lambda r: (r.created_at or 0, r.location))
    last = segs[-1]
    config: dict = {}
    summary: dict = {}
    damage: list[str] = []
    runtime = 0.0
    last_step = None
    for s in segs:
        config.update(s.config)
        summary.update(s.summary)
        damage.extend(f"{s.location}: {d}" for d in s.damage)
        runtime += s.runtime_s or 0.0
        if s.last_step is not None:
            last_step = s.last_step if last_step is None or s.last_step > last_step else last_step + 1 + s.last_step
    return RunInfo(
        id=last.id, project=last.project, entity=last.entity, name=last.name or segs[0].name,
        group=last.group, sweep_id=last.sweep_id or segs[0].sweep_id, job_type=last.job_type, tags=last.tags, notes=last.notes, host=last.host,
        created_at=segs[0].created_at, runtime_s=runtime or None, state=last.state, config=config,
        summary=summary, summary_derived=last.summary_derived, metrics=_metrics(segs),
        history_rows=sum(s.history_rows for s in segs), last_step=last_step, damage=damage,
        truncated=last.truncated, wandb_version=last.wandb_version, environment=last.environment,
        location=last.location, exit_code=last.exit_code, finish_called=last.finish_called, segments=segs,
    )


def _metrics(segs: list[RunInfo]) -> list[dict]:
    by_name: dict[str, dict] = {}
    for s in segs:
        for m in s.metrics:
            by_name[m["name"]] = m
    return list(by_name.values())


def join_histories(parts: list[tuple[str, History]]) -> History:
    """Segments' histories, in order, as one (see the module doc for the step rule)."""
    out: History | None = None
    notes: list[str] = []  # how the steps were joined (said in describe_run's "resumed")
    lost: list[str] = []  # rows W&B would not keep (damage)
    for folder, h in parts:
        if out is None or out.n_rows == 0:
            out = h
            continue
        if h.n_rows == 0:
            continue
        prev_last = int(out.steps.max())
        first = int(h.steps[0])
        if first > prev_last:
            nxt = h
        elif first == 0:
            shift = prev_last + 1
            nxt = _shifted(h, shift)
            notes.append(f"{folder}: its steps restart at 0 (offline resume): numbered on from _step {shift}")
        else:
            keep = np.flatnonzero(h.steps > prev_last)
            lost.append(f"{folder}: {h.n_rows - len(keep)} row(s) at steps <= {prev_last} left out "
                        "(W&B rejects steps lower than the run's current step)")
            nxt = _rows(h, keep)
        out = out.append(nxt)
    if out is None:
        return History()
    out = History(out.steps, out.columns, list(out.damage) + lost)
    out.join_notes = notes
    return out


def _shifted(h: History, shift: int) -> History:
    cols = dict(h.columns)
    step = cols.get("_step")
    if step is not None and step.kind == NUMERIC:
        cols["_step"] = Column(NUMERIC, step.rows, np.asarray(step.values, dtype=np.float64) + shift)
    return History(h.steps + shift, cols, list(h.damage))


def _rows(h: History, keep: np.ndarray) -> History:
    """The rows `keep` (increasing indices) of `h`, renumbered."""
    new_index = np.full(h.n_rows, -1, dtype=np.int64)
    new_index[keep] = np.arange(len(keep))
    cols = {}
    for key, col in h.columns.items():
        mask = new_index[col.rows] >= 0
        idx = np.flatnonzero(mask)
        if not len(idx):
            continue
        values = col.values[idx] if isinstance(col.values, np.ndarray) else [col.values[i] for i in idx]
        bins = None if col.bins is None else [col.bins[i] for i in idx]
        cols[key] = Column(col.kind, new_index[col.rows[idx]], values, bins)
    return History(h.steps[keep], cols, list(h.damage))
