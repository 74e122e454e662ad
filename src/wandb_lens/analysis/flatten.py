"""Flattening nested config / summary dicts into dotted keys, as W&B shows them."""

from __future__ import annotations

from typing import Any


def flatten(obj: dict, prefix: str = "", out: dict | None = None, max_depth: int = 6) -> dict[str, Any]:
    """{"opt": {"name": "adam"}} -> {"opt.name": "adam"}; W&B media objects collapse to their type."""
    out = {} if out is None else out
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            kind = value.get("_type")
            if isinstance(kind, str):
                out[name] = f"<{kind}>"
            elif max_depth > 0:
                flatten(value, name + ".", out, max_depth - 1)
            else:
                out[name] = "<object>"
        else:
            out[name] = value
    return out


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def short(value: Any, limit: int = 120) -> Any:
    """Long strings and lists cut, stating their full size."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"...({len(value)} chars)"
    if isinstance(value, list):
        if len(value) > 10:
            return [short(v, 40) for v in value[:10]] + [f"...({len(value)} items)"]
        return [short(v, 40) for v in value]
    return value
