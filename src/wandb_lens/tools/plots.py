"""Plot tools: plot_overview, plot_comparison, plot_grad_histograms, plot_grad_norm_by_layer.

Each returns three content blocks: the PNG (ImageContent), a compact JSON text block with the
numbers drawn (for clients that hide images and for text-only models), and a resource link to
`wandb-lens://plots/<id>.png`, readable through resources/read while it stays in the bounded
cache. Curve features, key roles and the ranking come from `analysis/`, so a plot shows the
same spikes, minima and order as the diagnostics tools. matplotlib loads on the first render.
"""

from __future__ import annotations

from mcp.server.mcpserver import Context  # resolved by name for the resources' ctx parameter

import re
from typing import Any

import numpy as np

from .. import budget, identity, progress
from ..compact import dumps
from ..errors import LensError, suggest
from . import _base

MAX_OVERVIEW = 6
MAX_OVERLAY = 6
MAX_COMPARE = 50
MAX_LAYERS = 16
MAX_HEAT_LAYERS = 60
_SKIP = re.compile(r"^(_|system/)|(^|/)(_step|_runtime|_timestamp|epoch|step|global_step|iter|iteration)$")


def register(server, app) -> None:
    from mcp.server.mcpserver.exceptions import ResourceError
    from mcp.types import ResourceLink, TextContent

    from ..plotting.cache import Plot, PlotCache, plot_id

    cache = PlotCache()
    server.plot_cache = cache  # type: ignore[attr-defined]

    def answer(plot: Plot) -> list:
        from mcp.server.mcpserver import Image

        text = dict(plot.text, plot=plot.uri, px=[plot.width, plot.height])
        return [Image(data=plot.png, format="png").to_image_content(), TextContent(type="text", text=dumps(text)),
                ResourceLink(type="resource_link", name=f"{plot.id}.png", uri=plot.uri, mime_type="image/png",
                             size=len(plot.png))]

    def cached_plot(tool: str, args: dict, infos: list, draw) -> Plot:
        sig = [(i.ref, i.history_rows, i.last_step, i.state) for i in infos]
        owner = identity.current.get()
        pid = plot_id(tool, args, sig, owner)
        plot = cache.get(pid, owner)
        if plot is None:
            progress.report(0, 1, f"{tool}: reading history and drawing")
            png, w, h, text = draw()
            progress.report(1, 1, f"drew {tool}")
            partial = budget.notes()
            if partial:  # drawn from part of a run still decoding: its own id, the next call draws it all
                text = dict(text, partial=partial[0] if len(partial) == 1 else partial)
                pid = plot_id(tool, dict(args, partial=str(partial)), sig, owner)
            plot = cache.put(Plot(pid, png, text, w, h, owner))
        return plot

    def cached(tool: str, args: dict, infos: list, draw) -> list:
        return answer(cached_plot(tool, args, infos, draw))

    def plot_overview(run: str, step_key: str | None = None, metrics: list[str] | None = None,
                      step_min: float | None = None, step_max: float | None = None,
                      smoothing: float | None = None) -> list:
        info = app.runs.get_run(run)
        win, sm = window(step_min, step_max), smoothing_of(smoothing)
        args = overview_args(step_key, metrics, win, sm)
        return cached("plot_overview", args, [info], lambda: _overview(app, info, step_key, metrics, win, sm))

    def plot_comparison(runs: list[str], metric: str, step_key: str | None = None, highlight: str | None = None,
                        step_min: float | None = None, step_max: float | None = None,
                        smoothing: float | None = None) -> list:
        from .plots_compare import comparison, highlight_ref, resolve_runs

        win, sm = window(step_min, step_max), smoothing_of(smoothing)
        infos = resolve_runs(app, runs)
        hl = highlight_ref(app, infos, highlight)
        args = {"metric": metric, "step_key": step_key, "highlight": hl, "steps": win, "smoothing": sm}
        return cached("plot_comparison", args, infos,
                      lambda: comparison(app, infos, metric, step_key, hl, win, sm))

    def plot_grad_histograms(run: str, prefix: str = "gradients/", stat: str = "mean_abs",
                             step_min: float | None = None, step_max: float | None = None) -> list:
        from ..plotting.heatmap import STATS
        from .plots_grads import grad_heatmap

        if stat not in STATS:
            raise LensError(f"Unknown stat {stat!r}: use one of {', '.join(STATS)}.")
        win = window(step_min, step_max)
        info = app.runs.get_run(run)
        args = {"prefix": prefix, "stat": stat, "steps": win}
        return cached("plot_grad_histograms", args, [info], lambda: grad_heatmap(app, info, prefix, stat, win))

    def plot_grad_norm_by_layer(run: str, prefix: str | None = None, step_min: float | None = None,
                                step_max: float | None = None) -> list:
        from .plots_grads import layer_norms

        win = window(step_min, step_max)
        info = app.runs.get_run(run)
        return cached("plot_grad_norm_by_layer", {"prefix": prefix, "steps": win}, [info],
                      lambda: layer_norms(app, info, prefix, win))

    _base.add(server, plot_overview, "PNG of a run's main curves (train+val loss, lr, grad norm, acc, speed), "
              "spikes/NaN marked.")
    _base.add(server, plot_comparison, "PNG overlay of one metric across runs (>6: 6 best).")
    _base.add(server, plot_grad_histograms, "PNG heatmap of gradient histograms, layer x step.")
    _base.add(server, plot_grad_norm_by_layer, "PNG of per-layer grad norms (<=16).")

    @server.resource("wandb-lens://runs/{project}/{run_id}/overview.png", name="run_overview", mime_type="image/png",
                     description="A run's plot_overview PNG.")
    def run_overview_png(project: str, run_id: str, ctx: Context) -> bytes:
        from ..resources import run_ref
        from ._base import request_key_from, scrubbed

        with request_key_from(ctx):  # HTTP mode: the caller's own W&B key, as for tools
            try:
                info = app.runs.get_run(run_ref(project, run_id))
                args = overview_args(None, None, None, DEFAULT_SMOOTHING)
                return cached_plot("plot_overview", args, [info],
                                   lambda: _overview(app, info, None, None, None, DEFAULT_SMOOTHING)).png
            except LensError as exc:
                raise ResourceError(scrubbed(str(exc))) from None

    @server.resource("wandb-lens://plots/{plot_id}.png", name="plot", mime_type="image/png",
                     description="A PNG rendered by a plot_* tool (kept in a bounded cache).")
    def read_plot(plot_id: str, ctx: Context) -> bytes:
        plot = cache.get(plot_id, identity.of_ctx(ctx))  # only the identity that drew it
        if plot is None:
            raise ResourceError(f"Plot {plot_id!r} is not in the cache (evicted or never rendered): call the "
                                "plot tool again.")
        return plot.png


# ----- shared helpers ---------------------------------------------------------------------
from ..plotting.smooth import DEFAULT as DEFAULT_SMOOTHING  # numpy only: no matplotlib at start


def overview_args(step_key, metrics, win, smoothing) -> dict:
    return {"step_key": step_key, "metrics": metrics, "steps": win, "smoothing": smoothing}


def window(step_min, step_max) -> tuple | None:
    """The asked step range (either end may be open), checked; None when no range is asked."""
    for name, v in (("step_min", step_min), ("step_max", step_max)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v)):
            raise LensError(f"{name} must be a finite number (a value of the plot's step axis), got {v!r}.")
    if step_min is None and step_max is None:
        return None
    if step_min is not None and step_max is not None and step_min > step_max:
        raise LensError(f"step_min ({step_min:g}) is greater than step_max ({step_max:g}).")
    return (step_min, step_max)


def smoothing_of(smoothing) -> float:
    if smoothing is None:
        return DEFAULT_SMOOTHING
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0 <= smoothing < 1:
        raise LensError(f"smoothing must be a number in [0, 1) as in W&B's panel settings (0 = off, default "
                        f"{DEFAULT_SMOOTHING}), got {smoothing!r}.")
    return float(smoothing)


def in_window(x: np.ndarray, y: np.ndarray, win) -> tuple[np.ndarray, np.ndarray, str]:
    """The points inside the step range, and a note when it holds none of the logged points."""
    if win is None or x.size == 0:
        return x, y, ""
    keep = np.ones(x.size, dtype=bool)
    if win[0] is not None:
        keep &= x >= win[0]
    if win[1] is not None:
        keep &= x <= win[1]
    if keep.all():
        return x, y, ""
    note = "" if keep.any() else f"no points in steps {_range_text(win)} (logged {x.min():g}..{x.max():g})"
    return x[keep], y[keep], note


def _range_text(win) -> str:
    lo, hi = win
    if hi is None:
        return f">= {lo:g}"
    return f"<= {hi:g}" if lo is None else f"{lo:g}..{hi:g}"


def stated_range(text: dict, win, smoothing: float | None = None) -> dict:
    """What the answer says about the step range and the smoothing."""
    if win is not None:
        text["step_range"] = {k: v for k, v in zip(("min", "max"), win) if v is not None}
    if smoothing is not None:
        from ..plotting.smooth import describe

        text["smoothing"] = describe(smoothing)
    return text


def clipped_facts(panels, rows_by_label: dict) -> None:
    """Copy what the renderer clipped into the answer rows (by line label)."""
    for panel in panels:
        for label, facts in panel.drawn.get("clipped", {}).items():
            if label in rows_by_label:
                rows_by_label[label]["clipped"] = facts
        for label in panel.drawn.get("off_scale", []):
            if label in rows_by_label:
                rows_by_label[label]["off_scale"] = True


def _features(x: np.ndarray, y: np.ndarray, key: str) -> dict:
    """Curve features with the direction the key's name implies (loss: lower is better; grad norms:
    upward spikes are the bad ones), else the curve's own trend."""
    from ..analysis.curves import curve_features
    from ..analysis.keys import direction_for, role_of

    direction = direction_for(key) or ("min" if role_of(key) == "grad_norm" else "auto")
    return curve_features(x, y, direction=direction)


def _axis(rd, metric: str, step_key: str | None) -> tuple[str, np.ndarray, np.ndarray, str]:
    """(step key used, x, y, note) for one metric on the axis RunData chooses (explicit key wins)."""
    choice = rd.axis(metric, step_key)
    key = choice["key"]
    x, y = rd.series(metric, key)
    if x.size == 0 and y.size == 0 and key != "_step":
        return key, x, y, f"never logged together with {key}"
    return key, x, y, choice.get("note", "")


def _caption(f: dict, n: int, key: str = "") -> str:
    from ..analysis.keys import direction_for
    from ..plotting.render import fmt

    if not n:
        return "no points"
    if f.get("min") is not None and f.get("min") == f.get("max"):
        return f"constant {fmt(f['min'])} ({n:,} points)" + (f" · NaN/Inf x{f['nan_inf']}" if f.get("nan_inf") else "")
    good = "max" if direction_for(key) == "max" else "min"
    parts = [f"final {fmt(f.get('last'))}", f"{good} {fmt(f.get(good))} @ {fmt(f.get(f'{good}_step'))}"]
    count, marked = f.get("spike_count", 0), len(f.get("spikes") or [])
    parts.append(f"{count} spike{'s' if count != 1 else ''}" + (f" (top {marked} ringed)" if count > marked else ""))
    if f.get("nan_inf"):
        parts.append(f"NaN/Inf x{f['nan_inf']}")
    return " · ".join(parts)


def _numbers(f: dict, key: str, step_key: str, n: int) -> dict:
    spikes = f.get("spikes") or []
    out: dict[str, Any] = {"metric": key, "step_key": step_key, "points": n, "last": f.get("last"),
                           "min": f.get("min"), "min_step": f.get("min_step"), "spikes": f.get("spike_count", 0)}
    if direction_of(key) == "max":
        out.update(max=f.get("max"), max_step=f.get("max_step"))
    if spikes:
        out["spike_steps"] = [s["step"] for s in spikes[:5]]
    if f.get("nan_inf"):
        out["nan_inf"] = f["nan_inf"]
        out["first_nan_step"] = f.get("first_nan_step")
    return out


def direction_of(key: str) -> str | None:
    from ..analysis.keys import direction_for

    return direction_for(key)


def _empty_note(y: np.ndarray, x: np.ndarray, note: str) -> str:
    if y.size == 0:
        return f"no points ({note})" if note else "no points"
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size == y.size:
        return f"all {y.size} values are NaN/Inf (first at step {int(x[0]) if x.size else '?'})"
    return ""


def _line(label: str, x, y, f: dict, bold: bool = False, spikes: bool = True, key: str = "",
          detail: bool | None = None):
    """A drawn line: its trend is smoothed unless it is a learning rate (a schedule, not noise); a
    higher-is-better curve is never clipped as an explosion."""
    from ..analysis.keys import direction_for, role_of
    from ..plotting.render import Line

    best = None
    good = direction_for(key) if key else None
    if good and f.get(good) is not None and f.get(f"{good}_step") is not None and f.get("min") != f.get("max"):
        best = (f[f"{good}_step"], f[good])
    return Line(label, x, y, spikes=(f.get("spikes") or []) if spikes else [], first_nan_step=f.get("first_nan_step"),
                bold=bold, best=best, trend=role_of(key or label) != "lr", clip=good != "max", detail=detail)


# ----- plot_overview ----------------------------------------------------------------------
def _overview_keys(rd) -> list[str]:
    from ..analysis.keys import find_keys

    hist = rd.hist
    numeric = rd.numeric_keys()
    roles = find_keys(numeric)
    chosen: list[str] = []

    def one(v):
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        return v if isinstance(v, str) and v in hist.columns and v not in chosen else None

    for role in ("train", "val", "lr", "grad_norm", "accuracy", "throughput"):
        key = one(roles.get(role))
        if key is None and role in ("accuracy", "throughput"):
            pattern = re.compile(r"(val|eval|test|valid)", re.I) if role == "accuracy" else None
            rest = [k for k in numeric if k not in chosen and not _SKIP.search(k) and
                    not k.startswith(("gradients/", "parameters/")) and (pattern is None or pattern.search(k))]
            key = rest[0] if rest else None
        if key:
            chosen.append(key)
    return chosen[:MAX_OVERVIEW]


def _pair(rd, keys: list[str], series: dict) -> tuple[str, str] | None:
    """(train key, val key) of this run when both are drawn: one panel, each on its own step axis;
    the validation key moves to the train key's axis when theirs differ (paired by step, not row)."""
    from ..analysis.keys import find_keys

    roles = find_keys(rd.numeric_keys())
    t, v = roles.get("train"), roles.get("val")
    if not (t and v and t != v and t in keys and v in keys):
        return None
    if series[t][0] != series[v][0]:
        x, y = rd.series(v, series[t][0])
        if y.size == 0:
            return None
        series[v] = (series[t][0], x, y, f"on {t}'s step key {series[t][0]}")
    return t, v


def _overview(app, info, step_key, metrics, win, smoothing):
    from ..plotting.render import Panel, grid
    from .run_data import RunData

    rd = RunData(app, info=info)
    hist = rd.hist
    notes = []
    if metrics:
        if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
            raise LensError("metrics must be a list of history keys.")
        for m in metrics:
            rd.check_metric(m, numeric=True)
        keys = list(dict.fromkeys(metrics))
        if len(keys) > MAX_OVERVIEW:
            notes.append(f"{len(keys)} metrics asked, the first {MAX_OVERVIEW} drawn; left out: "
                         + ", ".join(keys[MAX_OVERVIEW:]))
            keys = keys[:MAX_OVERVIEW]
    else:
        keys = _overview_keys(rd)
    if not keys:
        raise LensError(f"Run {info.ref} logs no numeric history to plot (history rows: {hist.n_rows}).")
    series = {key: _axis(rd, key, step_key) for key in keys}
    pair = _pair(rd, keys, series)
    panels, numbers, by_label = [], [], {}
    for key in keys:
        if pair and key == pair[1]:
            continue  # drawn with the train key
        group = list(pair) if pair and key == pair[0] else [key]
        lines, captions, empty = [], [], ""
        for k in group:
            used, x, y, note = series[k]
            x, y, out_note = in_window(x, y, win)
            f = _features(x, y, k) if y.size else {}
            lines.append(_line(k, x, y, f, key=k, detail=True if len(group) > 1 else None))
            cap = _caption(f, int(y.size), k)
            captions.append(f"{k}: {cap}" if len(group) > 1 else cap)
            empty = empty or _empty_note(y, x, out_note or note)
            row = _numbers(f, k, used, int(y.size))
            if note:
                row["step_key_note"] = note
            numbers.append(row)
            by_label[k] = row
        wide = len(group) > 1
        panels.append(Panel(" + ".join(group), series[group[0]][0], lines, "  |  ".join(captions), empty,
                            wide=wide, legend=wide, smoothing=smoothing))
    title = f"{info.name or info.id}  ({info.ref}, {info.state}, {hist.n_rows:,} rows)"
    if win is not None:
        title += f"  steps {_range_text(win)}"
    png, w, h = grid(panels, ncols=2 if len(panels) > 1 or panels[0].wide else 1, panel_w=620, panel_h=300,
                     title=title)
    clipped_facts(panels, by_label)
    text: dict[str, Any] = {"run": info.ref, "name": info.name, "state": info.state,
                            "layout": [p.title for p in panels], "panels": numbers}
    stated_range(text, win, smoothing)
    if notes:
        text["note"] = "; ".join(notes)
    return png, w, h, text
