"""Run folders of the layout before the `.wandb` log (wandb <= 0.9): plain files in the folder.

    wandb-history.jsonl   one JSON object per logged row (`_step`, `_runtime`, `_timestamp`, keys)
    wandb-summary.json    the final summary
    config.yaml           {key: {desc, value}} (plus `wandb_version`, `_wandb`)
    wandb-metadata.json   project, name, host, startedAt, state and exitcode (written at exit)
    wandb-events.jsonl    system metrics: one JSON object per sample (`system.cpu`, `system.gpu.0.gpu`,
                          `_timestamp`), read by `events` as the `system/...` names the log's
                          stats records get (system.py)

The rows are turned into the same HistoryRecords a `.wandb` log holds (nested dicts become
nested keys, as wandb-core writes them), so one decoder serves both layouts.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from .. import bounded_json
from ..safe_open import UnsafeFile, open_regular
from .run_file import RunScan

FILES = ("wandb-history.jsonl", "wandb-summary.json", "config.yaml")
MAX_BYTES = 512 * 1024 * 1024
STATES = {"finished": "finished", "failed": "failed", "killed": "killed", "crashed": "crashed"}


def is_legacy(names: set[str]) -> bool:
    return "wandb-history.jsonl" in names or {"wandb-summary.json", "config.yaml"} <= names


def primary_file(folder: Path) -> Path:
    for name in FILES:
        if (folder / name).is_file():
            return folder / name
    return folder / FILES[0]


def _read(path: Path, roots) -> bytes | None:
    """A file of the folder, read through safe_open (regular files inside the roots only)."""
    try:
        with open_regular(path, roots) as f:
            if f.size > MAX_BYTES:
                raise OSError(f"{path.name} is {f.size} bytes, more than the {MAX_BYTES} read from an old-layout file")
            return f.read(MAX_BYTES)
    except FileNotFoundError:
        return None
    except UnsafeFile as exc:
        if exc.reason == "no longer exists":
            return None
        raise


def _read_json(path: Path, roots):
    data = _read(path, roots)
    try:
        return bounded_json.loads(data, fallback_to_text=False) if data else None
    except ValueError:
        return None


def _config(folder: Path, roots) -> dict:
    data = _read(folder / "config.yaml", roots)
    try:
        import yaml

        raw = yaml.safe_load(data) if data else None
    except Exception:  # not YAML: no config
        return {}
    if not isinstance(raw, dict):
        return {}
    out = {}
    for key, entry in raw.items():
        if key == "_wandb" and isinstance(entry, dict) and isinstance(entry.get("value"), dict):
            out["_wandb"] = str(entry["value"].get("cli_version") or "")
        if key in ("wandb_version", "_wandb"):
            continue
        out[str(key)] = entry.get("value") if isinstance(entry, dict) and "value" in entry else entry
    return out


def _time(text) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def scan_legacy(folder: Path, roots=None) -> tuple[RunScan, list[bytes], str | None]:
    """(RunScan, HistoryRecord payloads, state from the metadata or None)."""
    meta = _read_json(folder / "wandb-metadata.json", roots) or {}
    if not isinstance(meta, dict):
        meta = {}
    summary = _read_json(folder / "wandb-summary.json", roots)
    run_id = folder.name.rsplit("-", 1)[-1]
    scan = RunScan(
        run_id=run_id, project=str(meta.get("project") or ""), name=str(meta.get("name") or ""),
        host=str(meta.get("host") or ""), job_type=str(meta.get("jobType") or ""), notes=str(meta.get("notes") or ""),
        start_time=_time(meta.get("startedAt")) if meta.get("startedAt") else None, config=_config(folder, roots),
        summary={k: v for k, v in (summary or {}).items() if k != "_wandb"} if isinstance(summary, dict) else {},
    )
    scan.wandb_version = scan.config.pop("_wandb", "")
    if scan.summary:
        scan.summary_records = 1
    scan.environment = {k: meta[k] for k in ("os", "python", "program") if isinstance(meta.get(k), str)}
    if isinstance(meta.get("exitcode"), int):
        scan.exit_code = meta["exitcode"]
    records = _history_records(_read(folder / "wandb-history.jsonl", roots) or b"", scan)
    if not scan.summary and records:
        from wandb.proto import wandb_internal_pb2 as pb

        from .summary_derive import last_values

        last_values(scan.summary, records, pb.Record.FromString)
        scan.summary_derived = True
    return scan, records, STATES.get(str(meta.get("state")))


def _items(row: dict, prefix: tuple, out: list) -> None:
    for key, value in row.items():
        path = (*prefix, str(key))
        if isinstance(value, dict) and value and len(path) < 8:
            _items(value, path, out)
        else:
            out.append((path, value))


def _history_records(data: bytes, scan: RunScan) -> list[bytes]:
    from wandb.proto import wandb_internal_pb2 as pb

    records: list[bytes] = []
    for n, line in enumerate(data.splitlines()):
        try:
            row = bounded_json.loads(line, fallback_to_text=False)  # a value too deep: that value cut
        except ValueError:
            if line.strip() and len(scan.damage) < 20:
                scan.damage.append(f"wandb-history.jsonl line {n + 1} is not JSON: left out")
            continue
        if not isinstance(row, dict):
            continue
        items: list = []
        _items(row, (), items)
        rec = pb.Record()
        step = row.get("_step")
        rec.history.step.num = int(step) if isinstance(step, (int, float)) and abs(step) < 2**62 else len(records)
        for key_path, value in items:
            item = rec.history.item.add()
            item.nested_key.extend(key_path)
            item.value_json = json.dumps(value)
        records.append(rec.SerializeToString())
        scan.last_step = rec.history.step.num
        if isinstance(row.get("_timestamp"), (int, float)):
            scan.last_timestamp = float(row["_timestamp"])
    scan.history_rows = len(records)
    return records


def events(folder: Path, roots=None) -> dict[str, tuple[list, list]]:
    """{system/<key>: ([unix times], [values])} from wandb-events.jsonl, numeric samples only."""
    out: dict[str, tuple[list, list]] = {}
    for line in (_read(folder / "wandb-events.jsonl", roots) or b"").splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # a line cut by a killed writer
            continue
        t = row.get("_timestamp") if isinstance(row, dict) else None
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            continue
        for key, value in row.items():
            if key.startswith("system.") and isinstance(value, (int, float)) and not isinstance(value, bool):
                slot = out.setdefault("system/" + key[len("system."):], ([], []))
                slot[0].append(float(t))
                slot[1].append(float(value))
    return out
