"""query_runs filters and order, translated to the server-side filters W&B's `runs` query takes.

The tools speak one filter language for both sources (see analysis/run_filters.py): `id`, `name`
(the display name), `state`, `tags`, `group`, `sweep` (the sweep id), `job_type`, `created_at`, `config.<key>`,
`summary.<key>`. W&B's server names them differently: the run id is `name`, the display name
`display_name`, config values live under `config.<key>.value`, the summary under
`summary_metrics.<key>`. Operators ($eq ... $regex, $and/$or/$nor) pass through unchanged.
"""

from __future__ import annotations

from typing import Any

from ...errors import LensError

_TOP = {
    "id": "name", "name": "display_name", "display_name": "display_name", "displayName": "display_name",
    "state": "state", "tags": "tags", "group": "group", "sweep": "sweep", "job_type": "jobType", "jobType": "jobType",
    "created_at": "created_at", "createdAt": "created_at", "heartbeat_at": "heartbeat_at",
    "runtime": "summary_metrics._runtime",
}
_LOCAL_ONLY = ("host", "project", "entity")


def to_wandb_field(field: str, for_order: bool = False) -> str:
    if field.startswith("config."):
        key = field[len("config."):]
        return field if key.endswith(".value") else f"config.{key}.value"
    for prefix in ("summary_metrics.", "summary."):
        if field.startswith(prefix):
            return "summary_metrics." + field[len(prefix):]
    if field in _TOP:
        return _TOP[field]
    if field in _LOCAL_ONLY:
        raise LensError(f"Filtering or ordering on {field!r} is not supported for W&B cloud runs "
                        "(the server does not index it); use state, tags, group, sweep, job_type, name, id, created_at, "
                        "config.<key> or summary.<key>.")
    raise LensError(f"Unknown run field {field!r}. Use state, tags, group, sweep, job_type, name, id, created_at, "
                    "config.<key> or summary.<key>.")


def to_wandb_filters(node: Any) -> Any:
    """A checked filter document (run_filters.check) in W&B's server-side field names."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("$and", "$or", "$nor"):
                out[key] = [to_wandb_filters(v) for v in value]
            elif key.startswith("$"):
                out[key] = value
            else:
                out[to_wandb_field(key)] = value
        return out
    return node


def to_wandb_order(order: str | None) -> str:
    """'-summary.val_loss' -> '-summary_metrics.val_loss'; default newest first."""
    if not order:
        return "-created_at"
    desc = order.startswith("-")
    field = order.lstrip("+-").strip()
    return ("-" if desc else "+") + to_wandb_field(field, for_order=True)
