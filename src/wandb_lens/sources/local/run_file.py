"""Scanning a `.wandb` run file: metadata, config, summary, metric definitions, exit state.

One pass over the framed records (see `wandb_file`). History records are recognised by the tag
byte after the record number and kept undecoded until their columns are needed
(`history_decode.decode_history`), so listing a run never pays for decoding its history. A scan
works on a byte range, so a run that is still being written is read incrementally from where the
last pass stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .wandb_file import Framing, check_header

_HISTORY_TAG = 0x12  # Record field 2, length-delimited
_SUMMARY_TAG = 0x1A  # Record field 3


_SKIP_LEN = {16, 19, 200}  # Record.control, uuid, _info: may come before the payload field


def _record_tag(rec: bytes) -> int:
    """The tag byte of the record's payload field (after the optional `num` varint); -1 when it
    cannot be told."""
    i = 0
    n = len(rec)
    if n and rec[0] == 0x08:
        i = 1
        while i < n and rec[i] & 0x80:
            i += 1
        i += 1
    if i >= n:
        return -1
    tag = rec[i]
    return _record_tag_after_extras(rec) if tag in (0x82, 0x9A, 0xC2) else tag


def _record_tag_after_extras(rec: bytes) -> int:
    """The payload's tag when control / uuid / _info fields come first (a summary set from
    Python carries `_info` before it)."""
    i = 0
    n = len(rec)
    while i < n:
        tag = rec[i]
        field_no = tag >> 3
        j = i + 1
        if tag & 0x80:  # two-byte tag
            if j >= n:
                return -1
            field_no = ((tag & 0x7F) | (rec[j] & 0x7F) << 7) >> 3
            j += 1
        if field_no == 1 and tag & 7 == 0:  # num
            while j < n and rec[j] & 0x80:
                j += 1
            i = j + 1
            continue
        if field_no in _SKIP_LEN and tag & 7 == 2:
            length = shift = 0
            while j < n:
                b = rec[j]
                j += 1
                length |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            i = j + length
            continue
        return tag if not tag & 0x80 else -1
    return -1


def _key(item) -> str:
    nk = item.nested_key
    if len(nk) == 1:
        return nk[0]
    if nk:
        return ".".join(nk)
    return item.key


def _loads(text: str) -> Any:
    """A config / summary value; not JSON: the text; nested too deep: that part cut (bounded_json)."""
    from ..bounded_json import loads

    return loads(text)


MAX_NESTING = 16  # deeper config / summary keys are kept whole, joined by dots


def _set_nested(target: dict, path: list[str], value: Any) -> None:
    if len(path) > MAX_NESTING:
        path = [*path[: MAX_NESTING - 1], ".".join(path[MAX_NESTING - 1:])]
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[path[-1]] = value


def _del_nested(target: dict, path: list[str]) -> None:
    for part in path[:-1]:
        target = target.get(part)
        if not isinstance(target, dict):
            return
    target.pop(path[-1], None)


@dataclass
class RunScan:
    """Everything a pass over the file found, except the decoded history."""

    run_id: str = ""
    entity: str = ""
    project: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    host: str = ""
    sweep_id: str = ""  # RunRecord.sweep_id: the W&B sweep that started the run (agent runs)
    start_time: float | None = None
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)  # define_metric records
    exit_code: int | None = None
    finish_called: bool = False  # telemetry feature.finish: the user process reached run.finish()
    exit_runtime: float | None = None
    environment: dict = field(default_factory=dict)
    wandb_version: str = ""
    history_rows: int = 0
    summary_records: int = 0  # summary records seen (none: the summary is derived from history)
    summary_derived: bool = False
    last_step: int | None = None
    last_timestamp: float | None = None
    end_offset: int = 0
    damage: list[str] = field(default_factory=list)
    truncated: bool = False
    index_method: str = "scan"  # "walk" (index_walk: history not read) or "scan" / "scan: <why not walked>"

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict) -> RunScan:
        return cls(**data)


def scan(data: bytes, previous: RunScan | None = None, want_history: bool = False, want_summary: bool = True,
         history_sink=None, label: str = ""):
    """Scan records from `previous.end_offset` (or the header) on.

    Returns (RunScan, list of undecoded history record payloads if `want_history`). History
    records go to `history_sink(record)` instead when given (a `HistoryBuilder.add`: decoded a
    batch at a time, never all held). Summary deltas (about two per history row) are merged a
    batch at a time (`summary_merge`); `want_summary=False` skips them. Progress is reported in
    bytes as `<label>: 410 of 1,020 MB` (a no-op unless the tool call listens).
    """
    from ... import progress
    from wandb.proto import wandb_internal_pb2 as pb  # heavy: imports wandb

    from .summary_merge import SummaryMerge

    check_header(data)
    state = RunScan(**previous.to_json()) if previous else RunScan()
    if previous is not None:
        state.config = json.loads(json.dumps(previous.config))
        state.summary = json.loads(json.dumps(previous.summary))
        state.metrics = list(previous.metrics)
        state.damage = list(previous.damage)
    framing = Framing(data, start=state.end_offset or 7)
    parse = pb.Record.FromString
    history: list[bytes] = []
    sink = history_sink or (history.append if want_history else None)
    merge = SummaryMerge() if want_summary else None
    last_history: bytes | None = None
    fresh_summary = False
    first = framing.start
    total_mb = (len(data) - first) / 1e6
    listening = progress.active() and total_mb > 8
    count = 0
    for rec in framing.records():
        count += 1
        if listening and not count & 0xFFF:
            done_mb = (framing.end_offset - first) / 1e6
            progress.report(done_mb, total_mb, f"{label or 'reading'}: {done_mb:,.0f} of {total_mb:,.0f} MB")
        tag = _record_tag(rec)
        if tag == _HISTORY_TAG:
            state.history_rows += 1
            last_history = rec
            if sink is not None:
                sink(rec)
            elif merge is not None and not state.summary_records:
                history.append(rec)  # kept while the log has no summary record (summary_derive)
            continue
        if tag == _SUMMARY_TAG:
            if merge is not None:
                merge.add(rec)
                state.summary_records += 1
                fresh_summary = True
            continue
        try:
            record = parse(rec)
            _apply_record(state, record)
        except Exception as exc:  # a record that passed its CRC but is not a Record (or holds nonsense)
            _damage(state, f"undecodable record ({type(exc).__name__})")
    if merge is not None:
        if fresh_summary and state.summary_derived:  # the real summary arrived after all
            state.summary, state.summary_derived = {}, False
        merge.apply(state.summary)
        if not state.summary_records and history:
            from .summary_derive import last_values

            last_values(state.summary, history, parse)  # no summary record: W&B shows the last values
            state.summary_derived = True
        if not want_history:
            history = []
    if last_history is not None:
        try:
            _apply_last_row(state, parse(last_history).history)
        except Exception as exc:
            _damage(state, f"undecodable history record ({type(exc).__name__})")
    state.end_offset = framing.end_offset
    state.truncated = framing.truncated
    state.damage.extend(framing.damage)
    return state, history


def _damage(state: RunScan, what: str) -> None:
    if len(state.damage) < 20:
        state.damage.append(what)


def _apply_record(state: RunScan, record) -> None:
    kind = record.WhichOneof("record_type")
    if kind == "run":
        _apply_run(state, record.run)
    elif kind == "config":
        _apply_config(state.config, record.config)
    elif kind == "metric":
        _apply_metric(state.metrics, record.metric)
    elif kind == "exit":
        state.exit_code = int(record.exit.exit_code)
        state.exit_runtime = float(record.exit.runtime) or None
    elif kind == "environment":
        env = record.environment
        for name in ("os", "python", "program", "host", "gpu_type"):
            value = getattr(env, name, "")
            if value:
                state.environment[name] = value
        if env.gpu_count:
            state.environment["gpu_count"] = int(env.gpu_count)
    elif kind == "telemetry":
        if record.telemetry.feature.finish:
            state.finish_called = True
        if not state.wandb_version and record.telemetry.cli_version:  # versions before the header had it
            state.wandb_version = record.telemetry.cli_version
    elif kind == "header":
        state.wandb_version = record.header.version_info.producer.split("+")[0]


def _apply_run(state: RunScan, run) -> None:
    state.run_id = run.run_id or state.run_id
    state.entity = run.entity or state.entity
    state.project = run.project or state.project
    state.name = run.display_name or state.name
    state.group = run.run_group or state.group
    state.job_type = run.job_type or state.job_type
    state.notes = run.notes or state.notes
    state.tags = list(run.tags) or state.tags
    state.host = run.host or state.host
    state.sweep_id = run.sweep_id or state.sweep_id
    if run.start_time.seconds:
        state.start_time = run.start_time.seconds + run.start_time.nanos / 1e9
    _apply_config(state.config, run.config)


def _apply_config(config: dict, record) -> None:
    for item in record.update:
        path = list(item.nested_key) or [item.key]
        if path[0] == "_wandb":
            continue
        _set_nested(config, path, _loads(item.value_json))
    for item in record.remove:
        _del_nested(config, list(item.nested_key) or [item.key])


def _apply_metric(metrics: list[dict], metric) -> None:
    name = metric.name or metric.glob_name
    if not name:
        return
    entry: dict = {"name": name}
    if metric.glob_name:
        entry["glob"] = True
    if metric.step_metric:
        entry["step_metric"] = metric.step_metric
    summary = [s for s in ("min", "max", "mean", "last", "best", "first") if getattr(metric.summary, s, False)]
    if summary:
        entry["summary"] = summary
    if metric.goal:
        entry["goal"] = "minimize" if metric.goal == 1 else "maximize"
    metrics[:] = [m for m in metrics if m["name"] != name] + [entry]


def _apply_last_row(state: RunScan, history) -> None:
    for item in history.item:
        key = _key(item)
        try:
            if key == "_step":
                state.last_step = int(float(item.value_json))
            elif key == "_timestamp":
                state.last_timestamp = float(item.value_json)
        except (ValueError, OverflowError):  # 'NaN', 'Infinity' or not a number: leave it unknown
            pass
    if state.last_step is None and history.HasField("step"):
        state.last_step = int(history.step.num)
