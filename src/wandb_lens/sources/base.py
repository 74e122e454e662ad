"""What every run source gives the tools: run records, reference parsing, history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from ..errors import LensError, close_matches
from .history import History

STATES = ("finished", "failed", "crashed", "running", "killed", "unreadable")


@dataclass
class RunInfo:
    id: str
    project: str
    entity: str = ""
    name: str = ""
    group: str = ""
    sweep_id: str = ""  # the W&B sweep that started the run ("" when none or not recorded: wandb < 0.10 folders)
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    host: str = ""
    created_at: float | None = None  # unix seconds
    runtime_s: float | None = None
    state: str = "finished"
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    summary_derived: bool = False  # no summary in the log: the last logged value of each key
    metrics: list[dict] = field(default_factory=list)  # define_metric declarations
    history_rows: int = 0
    last_step: int | None = None
    damage: list[str] = field(default_factory=list)  # what the reader could not read
    truncated: bool = False
    wandb_version: str = ""
    environment: dict = field(default_factory=dict)
    location: str = ""  # where the run lives (a folder name for local runs)
    exit_code: int | None = None
    path: str = field(default="", repr=False)  # local runs: the log it was read from (internal, never shown)
    segments: list = field(default_factory=list, repr=False)  # a resumed run: its folders' runs, in order
    finish_called: bool | None = None  # False: exit record without run.finish() (the exit hook ended it)

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.id}"

    @property
    def created_iso(self) -> str:
        if self.created_at is None:
            return ""
        return datetime.fromtimestamp(self.created_at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ref(ref: str) -> tuple[str | None, str | None, str]:
    """'run_id', 'project/run_id' or 'entity/project/run_id' -> (entity, project, run_id)."""
    if not isinstance(ref, str) or not ref.strip():
        raise LensError("A run reference is required: 'run_id', 'project/run_id' or 'entity/project/run_id'.")
    if "\x00" in ref or len(ref) > 300:
        raise LensError("Invalid run reference: it contains a NUL byte or is longer than 300 characters.")
    parts = ref.strip().split("/")
    if any(not p for p in parts) or len(parts) > 3:
        raise LensError(
            f"Invalid run reference {ref!r}: use 'run_id', 'project/run_id' or 'entity/project/run_id'."
        )
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return None, None, parts[0]


def no_such_run(run_id: str, where: str, pool: list[RunInfo], shown: int = 8) -> str:
    """'No run 'x' in project 'p'. Close matches: ... Runs (8): name (id), ...'"""
    by_label = {}
    for r in pool:
        by_label[r.id] = r
        if r.name:
            by_label[r.name] = r
    near = []
    for label in close_matches(run_id, by_label):
        r = by_label[label]
        text = f"{r.name} ({r.id})" if r.name and r.name != r.id else r.id
        if text not in near:
            near.append(text)
    msg = f"No run {run_id!r}{where}."
    if near:
        msg += " Close matches: " + ", ".join(near) + "."
    if not pool:
        return msg + " There are no runs here."
    listed = ", ".join(f"{r.name} ({r.id})" if r.name and r.name != r.id else r.id for r in pool[:shown])
    more = f", ... ({len(pool) - shown} more; query_runs lists them)" if len(pool) > shown else ""
    return msg + f" Runs ({len(pool)}): {listed}{more}."


class RunSource(Protocol):
    """The interface the tools use; local and cloud sources implement it."""

    def describe_location(self) -> str: ...

    def list_runs(self, project: str | None = None) -> list[RunInfo]: ...

    def get_run(self, ref: str) -> RunInfo: ...

    def history(self, run: RunInfo, keys: list[str] | None = None) -> History: ...
