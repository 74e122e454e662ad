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

from .. import identity, progress
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
            plot = cache.put(Plot(pid, png, text, w, h, owner))
        return plot

    def cached(tool: str, args: dict, infos: list, draw) -> list:
        return answer(cached_plot(tool, args, infos, draw))

    def plot_overview(run: str, step_key: str | None = None, metrics: list[str] | None = None) -> list:
        info = app.runs.get_run(run)
        args = {"step_key": step_key, "metrics": metrics}
        return cached("plot_overview", args, [info], lambda: _overview(app, info, step_key, metrics))

    def plot_comparison(runs: list[str], metric: str, step_key: str | None = None,
                        highlight: str | None = None) -> list:
        infos = _resolve_runs(app, runs)
        hl = _highlight(app, infos, highlight)
        args = {"metric": metric, "step_key": step_key, "highlight": hl}
        return cached("plot_comparison", args, infos, lambda: _comparison(app, infos, metric, step_key, hl))

    def plot_grad_histograms(run: str, prefix: str = "gradients/", stat: str = "mean_abs") -> list:
        from ..plotting.heatmap import STATS
        from .plots_grads import grad_heatmap

        if stat not in STATS:
            raise LensError(f"Unknown stat {stat!r}: use one of {', '.join(STATS)}.")
        info = app.runs.get_run(run)
        args = {"prefix": prefix, "stat": stat}
        return cached("plot_grad_histograms", args, [info], lambda: grad_heatmap(app, info, prefix, stat))

    def plot_grad_norm_by_layer(run: str, prefix: str | None = None) -> list:
        from .plots_grads import layer_norms

        info = app.runs.get_run(run)
        return cached("plot_grad_norm_by_layer", {"prefix": prefix}, [info], lambda: layer_norms(app, info, prefix))

    _base.add(server, plot_overview, "PNG of a run's main curves (loss, val, lr, grad norm, acc, speed), "
              "spikes/NaN marked.")
    _base.add(server, plot_comparison, "PNG overlay of one metric across runs (>6: 6 best). metric: key or role "
              "train|val|lr|grad_norm.")
    _base.add(server, plot_grad_histograms, "PNG heatmap of gradient histograms, layer x step. "
              "stat: mean_abs|max_abs|std.")
    _base.add(server, plot_grad_norm_by_layer, "PNG of per-layer grad norms (<=16).")

    @server.resource("wandb-lens://runs/{project}/{run_id}/overview.png", name="run_overview", mime_type="image/png",
                     description="A run's plot_overview PNG.")
    def run_overview_png(project: str, run_id: str, ctx: Context) -> bytes:
        from ..resources import run_ref
        from ._base import request_key_from, scrubbed

        with request_key_from(ctx):  # HTTP mode: the caller's own W&B key, as for tools
            try:
                info = app.runs.get_run(run_ref(project, run_id))
                args = {"step_key": None, "metrics": None}
                return cached_plot("plot_overview", args, [info], lambda: _overview(app, info, None, None)).png
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


def _line(label: str, x, y, f: dict, bold: bool = False, spikes: bool = True, key: str = ""):
    from ..analysis.keys import direction_for
    from ..plotting.render import Line

    best = None
    good = direction_for(key) if key else None
    if good and f.get(good) is not None and f.get(f"{good}_step") is not None and f.get("min") != f.get("max"):
        best = (f[f"{good}_step"], f[good])
    return Line(label, x, y, spikes=(f.get("spikes") or []) if spikes else [], first_nan_step=f.get("first_nan_step"),
                bold=bold, best=best)


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


def _overview(app, info, step_key, metrics):
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
    panels, numbers = [], []
    for key in keys:
        used, x, y, note = _axis(rd, key, step_key)
        f = _features(x, y, key) if y.size else {}
        panels.append(Panel(key, used, [_line(key, x, y, f, key=key)], _caption(f, int(y.size), key),
                            _empty_note(y, x, note)))
        numbers.append(_numbers(f, key, used, int(y.size)))
        if note:
            numbers[-1]["step_key_note"] = note
    title = f"{info.name or info.id}  ({info.ref}, {info.state}, {hist.n_rows:,} rows)"
    png, w, h = grid(panels, ncols=2 if len(panels) > 1 else 1, panel_w=620, panel_h=300, title=title)
    text: dict[str, Any] = {"run": info.ref, "name": info.name, "state": info.state, "panels": numbers}
    if notes:
        text["note"] = "; ".join(notes)
    return png, w, h, text


# ----- plot_comparison --------------------------------------------------------------------
def _resolve_runs(app, runs) -> list:
    if not isinstance(runs, list) or not runs:
        raise LensError("runs must be a non-empty list of run references (run_id or project/run_id).")
    if len(runs) > MAX_COMPARE:
        raise LensError(f"{len(runs)} runs asked; plot_comparison takes at most {MAX_COMPARE}. Narrow the list "
                        "with query_runs first.")
    infos, seen, errors = [], set(), []
    for ref in runs:
        try:
            info = app.runs.get_run(ref)
        except LensError as exc:
            errors.append(str(exc))
            continue
        if info.ref not in seen:
            seen.add(info.ref)
            infos.append(info)
    if errors:
        raise LensError(" ".join(errors[:3]) + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""))
    return infos


def _highlight(app, infos, highlight):
    if highlight is None:
        return None
    info = app.runs.get_run(highlight)
    if info.ref not in {i.ref for i in infos}:
        raise LensError(f"highlight {highlight!r} is not one of the runs asked for.")
    return info.ref


def _direction(metric: str, feats: dict) -> str:
    from ..analysis.keys import direction_for

    named = direction_for(metric)
    if named:
        return named
    votes = [f.get("direction") for f in feats.values()]
    return "max" if votes.count("max") > votes.count("min") else "min"


def _label(info, taken: set) -> str:
    label = info.name or info.id
    if label in taken:
        label = f"{label} ({info.id})"
    taken.add(label)
    return label


ROLES = ("train", "val", "lr", "grad_norm", "accuracy", "throughput")


def _comparison(app, infos, metric, step_key, hl):
    from ..analysis.compare import rank
    from ..analysis.keys import find_keys
    from ..plotting.render import Panel, fmt, grid
    from .run_data import RunData

    rds = {i.ref: RunData(app, info=i) for i in infos}
    by_role = metric in ROLES and not any(metric in rd.hist.columns for rd in rds.values())
    data, missing = {}, []
    for info in infos:
        rd = rds[info.ref]
        key = find_keys(rd.numeric_keys()).get(metric) if by_role else metric
        col = rd.hist.columns.get(key) if key else None
        if col is None or (step_key is not None and step_key != "_step" and step_key not in rd.hist.columns):
            missing.append(info.name or info.id)
            continue
        rd.check_metric(key, numeric=True)
        if step_key is not None and step_key != "_step":
            rd.check_metric(step_key, "step_key", numeric=True)  # a text or histogram column is no axis
        data[info.ref] = (info, rd, key)
    if not data:
        pool = sorted({k for rd in list(rds.values())[:10] for k in rd.numeric_keys()})
        what = f"{metric!r}" + (f" with step key {step_key!r}" if step_key else "")
        raise LensError(f"None of the {len(infos)} runs logs {what}. " + suggest("metric", metric, pool))
    axis_note = ""
    if step_key is None:
        chosen = {ref: rd.axis(k, None)["key"] for ref, (i, rd, k) in data.items()}
        keys = set(chosen.values())
        step_key = keys.pop() if len(keys) == 1 else "_step"
        if len(set(chosen.values())) > 1:
            axis_note = f"step keys differ ({', '.join(sorted(set(chosen.values())))}): drawn on _step"
    series, feats = {}, {}
    for ref, (info, rd, key) in data.items():
        x, y = rd.series(key, step_key)
        series[ref] = (x, y)
        feats[ref] = _features(x, y, key) if y.size else {"n": 0}
    direction = _direction(next(iter(data.values()))[2], feats)
    order = rank(feats, direction)
    order += [r for r in data if r not in order]
    shown = order[:MAX_OVERLAY]
    if hl and hl in data and hl not in shown:
        shown = shown[: MAX_OVERLAY - 1] + [hl]
    left_out = [data[r][0].name or data[r][0].id for r in order if r not in shown]
    mixed = len({k for _, _, k in data.values()}) > 1
    lines, rows, taken = [], [], set()
    for ref in shown:
        info, _, key = data[ref]
        x, y = series[ref]
        f = feats[ref]
        label = _label(info, taken) + (f" [{key}]" if mixed else "")
        lines.append(_line(label, x, y, f, bold=(ref == hl), spikes=(ref == hl or len(shown) == 1)))
        row = dict(_numbers(f, key, step_key, int(y.size)), run=ref, name=info.name, rank=order.index(ref) + 1,
                   final_mean=f.get("final_mean"))
        row.pop("step_key")
        if not mixed:
            row.pop("metric")
        rows.append(row)
    best = data[order[0]][0]
    caption = (f"{len(shown)} of {len(data)} runs · best ({direction}): {best.name or best.id}, "
               f"final-10% mean {fmt(feats[order[0]].get('final_mean'))}")
    footer_bits = []
    if left_out:
        footer_bits.append(f"left out ({len(left_out)}, ranked lower): " + ", ".join(left_out[:8])
                           + (" ..." if len(left_out) > 8 else ""))
    if missing:
        footer_bits.append(f"no {metric}: " + ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else ""))
    if axis_note:
        footer_bits.append(axis_note)
    title = f"{metric} across runs" + (" (each run's own key for this role)" if by_role else "")
    panel = Panel(metric, step_key, lines, caption, "no finite values in any run")
    png, w, h = grid([panel], ncols=1, panel_w=1000, panel_h=560, title=title,
                     footer=" | ".join(footer_bits), legend=True)
    text: dict[str, Any] = {"metric": metric, "step_key": step_key, "direction": direction, "runs_asked": len(infos),
                            "shown": rows, "rank": "final-10% mean; gaps within 2x final std are ties, won by the "
                            "smoother run"}
    if left_out:
        text["left_out"] = left_out
    if missing:
        text["missing_metric"] = missing
    if axis_note:
        text["note"] = axis_note
    return png, w, h, text
