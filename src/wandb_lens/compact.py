"""Compact JSON for answers: no indentation, no nulls, floats cut to what matters."""

from __future__ import annotations

import json
import math
from typing import Any

SIG = 5


def rnd(x: float, sig: int = SIG) -> float | int | str:
    """A float rounded to `sig` significant digits; NaN/Inf as strings (JSON has neither)."""
    if isinstance(x, bool):
        return x
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x.is_integer() and abs(x) < 2**53:
        return int(x)  # steps and counts stay exact: step 123457 must not print as 123460
    r = float(f"{x:.{sig}g}")
    return int(r) if r.is_integer() and abs(r) < 1e15 else r


def clean(obj: Any, sig: int = SIG) -> Any:
    """Recursively: round floats, drop None values from dicts, numpy scalars to Python."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return rnd(obj, sig)
    if isinstance(obj, dict):
        return {str(k): clean(v, sig) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [clean(v, sig) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # numpy scalar
        return clean(obj.item(), sig)
    if hasattr(obj, "tolist"):
        return clean(obj.tolist(), sig)
    return str(obj)


def dumps(obj: Any, sig: int = SIG) -> str:
    return json.dumps(clean(obj, sig), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
