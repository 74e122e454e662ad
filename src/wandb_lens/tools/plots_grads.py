"""The gradient plots behind plot_grad_histograms and plot_grad_norm_by_layer (see tools/plots.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import LensError
from .plots import (MAX_HEAT_LAYERS, MAX_LAYERS, _axis, _caption, _empty_note, _features, _line, _numbers, _range_text,
                    in_window, stated_range)


def _families(keys: list[str]) -> dict[str, list[str]]:
    fam: dict[str, list[str]] = {}
    for k in keys:
        if "/" in k:
            fam.setdefault(k.rsplit("/", 1)[0] + "/", []).append(k)
    return fam


def grad_heatmap(app, info, prefix: str, stat: str, win=None):
    from ..plotting.heatmap import bucket_matrix, hist_stat, render
    from ..sources.history import HISTOGRAM

    hist = app.runs.history(info)
    keys = [k for k in hist.keys(HISTOGRAM) if k.startswith(prefix)]
    if not keys:
        others = sorted(_families(hist.keys(HISTOGRAM)))
        found = f" Histogram keys it logs are under: {', '.join(others[:8])}." if others else " It logs no histograms."
        raise LensError(f"Run {info.ref} logs no histogram keys under {prefix!r}.{found}")
    per_layer: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k in keys:
        col = hist.columns[k]
        steps = hist.steps[col.rows].astype(np.float64)
        vals = np.array([hist_stat(c, b, stat) for c, b in zip(col.values, col.bins or [])], dtype=np.float64)
        x, v, _ = in_window(steps[: vals.size], vals, win)
        per_layer[k[len(prefix):] or k] = (x, v)
    total = len(per_layer)
    if win is not None and not any(x.size for x, _ in per_layer.values()):
        logged = np.concatenate([hist.steps[hist.columns[k].rows] for k in keys]).astype(np.float64)
        raise LensError(f"No {prefix}* histogram of run {info.ref} in steps {_range_text(win)} (logged "
                        f"{logged.min():g}..{logged.max():g}).")
    # dead layers by the documented rule curve_features applies (analysis.gradients), so they agree
    from ..analysis.gradients import layer_table

    def in_range(k):
        steps = hist.steps[hist.columns[k].rows].astype(np.float64)
        keep = in_window(steps, np.arange(steps.size), win)[1]
        return steps[keep], [hist.columns[k].values[i] for i in keep], [(hist.columns[k].bins or [])[i] for i in keep]

    table = layer_table({k: in_range(k) for k in keys}, limit=len(keys))
    dead = [k[len(prefix):] or k for k in table.get("dead_layers", [])]
    shown = dict(list(per_layer.items())[:MAX_HEAT_LAYERS])
    mat, edges = bucket_matrix(shown)
    footer = f"showing {len(shown)} of {total} layers" if total > len(shown) else ""
    title = f"{info.name or info.id}: {prefix}* {stat} per layer ({info.ref})" + (
        f", steps {_range_text(win)}" if win is not None else "")
    png, w, h = render(mat, edges, list(shown), title=title, xlabel="_step", stat=stat, footer=footer)
    rows = []
    for name, (steps, v) in list(per_layer.items())[:MAX_LAYERS]:
        ok = np.isfinite(v)
        if not ok.any():
            rows.append({"layer": name, "n": int(v.size)})
            continue
        first, last = float(v[ok][0]), float(v[ok][-1])
        row: dict[str, Any] = {"layer": name, "n": int(v.size), "first": first, "last": last}
        if first > 0:
            row["last/first"] = last / first
        rows.append(row)
    text: dict[str, Any] = {"run": info.ref, "prefix": prefix, "stat": stat, "layers_total": total,
                            "steps": [float(edges[0]), float(edges[-1])], "buckets": int(mat.shape[1]),
                            "dead_layers": dead, "layers": rows}
    if total > MAX_LAYERS:
        text["note"] = f"per-layer numbers for the first {MAX_LAYERS} of {total} layers"
    return png, w, h, stated_range(text, win)


def _norm_keys(rd, ref: str, prefix: str | None) -> tuple[str, list[str]]:
    numeric = [k for k in rd.numeric_keys() if not k.startswith("_")]
    if prefix is not None:
        keys = [k for k in numeric if k.startswith(prefix) and k != prefix]
        if not keys:
            fams = [p for p, ks in _families(numeric).items() if "grad" in p.lower() and len(ks) > 1]
            hint = f" Per-layer families that look like gradient norms: {', '.join(fams[:6])}." if fams else ""
            raise LensError(f"Run {ref} logs no numeric keys under {prefix!r}.{hint}")
        return prefix, keys
    fams = {p: ks for p, ks in _families(numeric).items() if "grad" in p.lower() and len(ks) > 1}
    if not fams:
        raise LensError("No per-layer gradient-norm keys found (a family like 'grad_norm/<layer>' with 2+ keys)."
                        " Pass prefix=..., or use plot_grad_histograms for gradients/* histograms.")
    best = max(fams, key=lambda p: (len(fams[p]), "norm" in p.lower()))
    return best, fams[best]


def layer_norms(app, info, prefix, win=None):
    from ..plotting.render import Panel, grid

    from .run_data import RunData

    rd = RunData(app, info=info)
    prefix, keys = _norm_keys(rd, info.ref, prefix)
    shown = keys[:MAX_LAYERS]
    panels, rows = [], []
    for key in shown:
        used, x, y, note = _axis(rd, key, None)
        x, y, out_note = in_window(x, y, win)
        f = _features(x, y, "grad_norm") if y.size else {}
        name = key[len(prefix):] or key
        line = _line(name, x, y, f, key="grad_norm")
        line.trend = False  # small multiples: raw values
        panels.append(Panel(name, used, [line], _caption(f, int(y.size)), _empty_note(y, x, out_note or note)))
        row = _numbers(f, name, used, int(y.size))
        row.pop("step_key")
        rows.append(row)
    footer = f"showing {len(shown)} of {len(keys)} layers" if len(keys) > len(shown) else ""
    ncols = 4 if len(shown) > 6 else (2 if len(shown) > 1 else 1)
    title = f"{info.name or info.id}: {prefix}* per layer ({info.ref})"
    png, w, h = grid(panels, ncols=ncols, panel_w=380 if ncols == 4 else 560, panel_h=230, title=title, footer=footer)
    text: dict[str, Any] = {"run": info.ref, "prefix": prefix, "layers_total": len(keys), "shown": len(shown),
                            "step_key": panels[0].xlabel if panels else None, "layers": rows}
    if len(keys) > len(shown):
        text["left_out"] = [k[len(prefix):] for k in keys[len(shown):]][:40]
    return png, w, h, stated_range(text, win)
