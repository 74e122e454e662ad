"""Line-chart grids as PNG bytes (matplotlib, Agg canvas, no pyplot global state).

Callers hand over plain data (`Panel`s of `Line`s); this module decides the look: fixed margins
(so each axes' pixel width is known before drawing and decimation buckets match pixel columns),
log-y when a panel's values are positive and span more than 2 decades, spike markers, a marker
for the first NaN/Inf step, and a one-line caption per panel. A panel with nothing to draw says
what is missing instead of showing empty axes. matplotlib is imported here only, on first use.

A line with `trend` gets W&B's default smoothing (smooth.py) drawn bold over its raw points, drawn
faint. Y limits follow ylimits.py: a line far outside an overlay's others, or the late explosion of
a curve, is cut at a ceiling so the rest stays readable; what was cut is marked at the panel's top
edge, said in the panel, and recorded in `Panel.drawn` for the answer text.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np

from .decimate import decimate, finite_sorted
from .smooth import trend as smoothed
from .ylimits import explosion_cap, far_out, line_stats

DPI = 100
MAX_SIDE = 1600
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]
SPIKE = "#e6007e"
NAN = "#b30000"
BEST = "#1a9641"
LOG_SPAN = 100.0  # log-y when max / min exceeds this (2 decades)
CLIP = 1e200  # matplotlib's tick code overflows near 1e308: larger magnitudes are marked, not drawn
TREND_MIN = 60  # fewer points are drawn as markers, without a trend
NOISY = 0.005  # a trend is drawn over a curve whose step-to-step noise exceeds 0.5% of its range


@dataclass
class Line:
    label: str
    x: np.ndarray
    y: np.ndarray  # raw values, NaN/Inf included (they are not drawn; first_nan_step marks them)
    spikes: list = field(default_factory=list)  # [{"step", "value", ...}] on the same x axis
    first_nan_step: float | None = None
    bold: bool = False
    best: tuple | None = None  # (step, value) of the best point, marked with a small diamond
    trend: bool = False  # draw the smoothed trend bold over faint raw points (Panel.smoothing)
    clip: bool = True  # its late explosion may be cut (not for higher-is-better curves)
    detail: bool | None = None  # best point and NaN note drawn (default: when alone in its panel)


@dataclass
class Panel:
    title: str
    xlabel: str
    lines: list[Line]
    caption: str = ""
    empty_note: str = ""  # said in the panel when no line has a finite point
    wide: bool = False  # a whole row of the grid
    legend: bool = False  # the title names each line in its colour (a legend that covers no data)
    smoothing: float = 0.0
    drawn: dict = field(default_factory=dict)  # filled by the renderer: y limits, what was clipped


def _mpl():
    import matplotlib

    matplotlib.rcParams.update({
        "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
        "legend.fontsize": 8, "axes.spines.top": False, "axes.spines.right": False, "path.simplify": True,
        "agg.path.chunksize": 20000,
    })
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg


def new_figure(width_px: int, height_px: int):
    width_px, height_px = min(width_px, MAX_SIDE), min(height_px, MAX_SIDE)
    Figure, Canvas = _mpl()
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, facecolor="white")
    Canvas(fig)
    return fig


def to_png(fig) -> tuple[bytes, int, int]:
    """PNG bytes, width, height: drawn once, then stored as a 256-colour palette PNG (a third of the
    size of RGBA and faster to encode; charts use few colours). Plain RGBA PNG without Pillow."""
    fig.canvas.draw()
    w, h = (int(round(v)) for v in fig.canvas.get_width_height())
    try:
        from PIL import Image

        rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        img = Image.fromarray(np.ascontiguousarray(rgb)).quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        out = io.BytesIO()
        img.save(out, format="PNG", compress_level=6)
        return out.getvalue(), w, h
    except Exception:  # Pillow missing or failing: the plain PNG is still correct
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
        return buf.getvalue(), w, h


def fmt(v) -> str:
    """A number as a caption shows it: 4 significant digits, steps without decimals."""
    if v is None:
        return "-"
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e7:
        return f"{int(v):,}"
    return f"{v:.4g}"


def short_step(v: float) -> str:
    """Axis label for a step: 950, 12.5k, 1M, 0.25 (epochs)."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.4g}M"
    if a >= 1e4:
        return f"{v / 1e3:.4g}k"
    return f"{v:.4g}"


def _rows(panels: list[Panel], ncols: int) -> list[list[int]]:
    """Panel indices per grid row: a wide panel takes a row; so does a lone panel in the last row."""
    rows: list[list[int]] = []
    for i, p in enumerate(panels):
        if p.wide or not rows or len(rows[-1]) >= ncols or panels[rows[-1][0]].wide:
            rows.append([i])
        else:
            rows[-1].append(i)
    return rows


def grid(panels: list[Panel], ncols: int, panel_w: int, panel_h: int, title: str = "", footer: str = "",
         legend: bool = False) -> tuple[bytes, int, int]:
    """A grid of line panels as PNG bytes (+ width, height)."""
    n = max(1, len(panels))
    ncols = max(1, ncols if any(p.wide for p in panels) else min(ncols, n))
    rows = _rows(panels, ncols) if panels else [[0]]
    nrows = len(rows)
    top_px, bottom_px = (46 if title else 14), (26 if footer else 6)
    labels = [ln.label for p in panels for ln in p.lines]
    legend_px = min(340, 40 + 6 * max((len(t) for t in labels), default=10)) if legend else 0
    width = ncols * panel_w + legend_px
    height = nrows * panel_h + top_px + bottom_px
    scale = min(1.0, MAX_SIDE / max(width, height))
    width, height = int(width * scale), int(height * scale)
    fig = new_figure(width, height)
    left, right = 62 / width, 1 - (16 + legend_px) / width
    top, bottom = 1 - (top_px + 22) / height, (bottom_px + 42) / height
    gs = fig.add_gridspec(nrows, ncols, left=left, right=right, top=top, bottom=bottom,
                          wspace=0.22 * ncols / 2 + 0.06, hspace=0.45 if nrows > 1 else 0.2)
    for r, members in enumerate(rows):
        for c, i in enumerate(members):
            if i >= len(panels):
                continue
            panel = panels[i]
            ax = fig.add_subplot(gs[r, :] if len(members) == 1 else gs[r, c])
            _draw_panel(fig, ax, panel, width)
            handles, names = ax.get_legend_handles_labels()
            if legend and handles:
                ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                          borderaxespad=0.0, handlelength=1.6)
    if title:
        fig.suptitle(title, x=left, y=1 - 10 / height, ha="left", va="top", fontsize=11, fontweight="bold")
    if footer:
        fig.text(left, 6 / height, footer, ha="left", va="bottom", fontsize=8, color="#444444")
    return to_png(fig)


def _limits(panel: Panel, prepared, log: bool):
    """(lo, hi, log, far-out labels, {label: (ceiling, x, y) of a clipped line}) or None for autoscale."""
    outside: list[str] = []
    limits = None
    if len(prepared) > 1:
        stats = [s for s in (line_stats(ln.label, y, log) for ln, _, y in prepared) if s]
        limits, outside = far_out(stats, log)
    inside = [(ln, x, y) for ln, x, y in prepared if y.size and ln.label not in outside]
    caps = {}
    for ln, x, y in inside:
        cap = explosion_cap(y, bool(y.min() > 0)) if ln.clip else None
        if cap is not None:
            caps[ln.label] = (cap, x, y)
    if caps:
        # the other lines of the panel count up to where the first capped line leaves its ceiling (a
        # validation key too short to judge alone explodes with its train key)
        onset = min(float(x[y > cap][0]) for cap, x, y in caps.values() if (y > cap).any()) \
            if any((y > cap).any() for cap, _, y in caps.values()) else np.inf
        lo = min(float(y.min()) for _, _, y in inside)
        hi = max(caps[ln.label][0] if ln.label in caps else
                 float(y[x < onset].max()) if (x < onset).any() else float(y.min()) for ln, x, y in inside)
        limits = (lo, hi)
        caps = {ln.label: (hi, x, y) for ln, x, y in inside}
    if limits is None:
        return None
    lo, hi = limits
    return lo, hi, lo > 0 and hi / lo > LOG_SPAN, outside, caps


def _title(ax, panel: Panel) -> None:
    if not (panel.legend and len(panel.lines) > 1):
        ax.set_title(panel.title, loc="left", fontweight="bold", y=1.0, pad=5)  # fixed y: no auto-placement
        return
    from matplotlib.offsetbox import AnchoredOffsetbox, HPacker, TextArea

    parts = []
    for i, line in enumerate(panel.lines):
        if i:
            parts.append(TextArea(" + ", textprops={"fontweight": "bold", "fontsize": 10}))
        parts.append(TextArea(f"— {line.label}", textprops={"color": COLORS[i % len(COLORS)], "fontweight": "bold",
                                                             "fontsize": 10}))
    box = AnchoredOffsetbox(loc="lower left", child=HPacker(children=parts, pad=0, sep=0), frameon=False, pad=0,
                            borderpad=0.35, bbox_to_anchor=(0, 1.0), bbox_transform=ax.transAxes)
    ax.add_artist(box)


def _draw_panel(fig, ax, panel: Panel, fig_width: int) -> None:
    _title(ax, panel)
    if panel.caption:
        ax.set_title(panel.caption, loc="right", fontsize=8, color="#333333", y=1.0, pad=6)
    ax.set_xlabel(panel.xlabel)
    px = max(100, int(ax.get_position().width * fig_width))
    prepared = []
    off_scale = []  # (first step, count) of values too large to draw
    for line in panel.lines:
        x, y = finite_sorted(line.x, line.y)
        big = np.abs(y) > CLIP
        if big.any():
            off_scale.append((line.label, float(x[big][0]), int(big.sum())))
            x, y = x[~big], y[~big]
        prepared.append((line, x, y))
    notes = []
    for label, step, count in off_scale[:2]:
        ax.axvline(step, color=NAN, ls=":", lw=1.2, zorder=5)
        who = "" if len(panel.lines) == 1 else f"{label}: "
        notes.append(f"{who}{count} value(s) beyond ±1e200 from step {fmt(step)} (not drawn)")
    finite = [y for _, _, y in prepared if y.size]
    if not finite:
        _say(ax, panel.empty_note or "nothing to draw")
        return
    raw_x = [np.asarray(line.x, dtype=np.float64) for line in panel.lines]
    raw_x = [x[np.isfinite(x)] for x in raw_x]
    xmax_all = max([float(x.max()) for x in raw_x if x.size] + [s for _, s, _ in off_scale])
    lo = min(float(y.min()) for y in finite)
    hi = max(float(y.max()) for y in finite)
    xmin = min(float(x.min()) for x in raw_x if x.size)
    xmax = xmax_all
    span = (xmax - xmin) or 1.0
    log = lo > 0 and hi / lo > LOG_SPAN
    limits = _limits(panel, prepared, log)
    if limits is not None:
        lo, hi, log = limits[:3]
    if log:
        ax.set_yscale("log")
    single = len(prepared) == 1
    n_nan = 0
    for i, (line, x, y) in enumerate(prepared):
        color = COLORS[i % len(COLORS)]
        if y.size == 0:
            ax.plot([], [], color=color, label=f"{line.label} (no finite values)")
            continue
        buckets = max(1, int(px * (float(x[-1]) - float(x[0])) / span))
        dx, dy = decimate(x, y, buckets)
        few = dy.size < TREND_MIN
        trend = line.trend and panel.smoothing > 0 and y.size >= TREND_MIN and _noisy(y, log, lo, hi)
        width = 2.4 if line.bold else (1.6 if trend else 1.1)
        if trend:
            ax.plot(dx, dy, color=color, lw=0.7, alpha=0.35, zorder=1, solid_joinstyle="miter")
            geometric = log and y.min() > 0  # on a log axis the EMA of log10 values: spikes do not drag it
            tx, ty = smoothed(x, y, panel.smoothing, geometric)
            step = max(1, ty.size // (2 * buckets))  # a smooth line: every step-th point draws it
            tx, ty = tx[::step], ty[::step]
            ax.plot(tx, ty, color=color, lw=width, label=line.label, zorder=(4 if line.bold else 3))
        else:
            ax.plot(dx, dy, color=color, lw=width, alpha=(1.0 if line.bold or single else 0.8),
                    marker=("o" if few else None), ms=(4 if dy.size > 1 else 7), label=line.label,
                    zorder=(4 if line.bold else 2), solid_joinstyle="miter")
        detail = single if line.detail is None else line.detail
        _mark_spikes(ax, line.spikes, ax.get_yscale() == "log")
        if line.best is not None and detail:
            ax.plot([line.best[0]], [line.best[1]], marker="D", ms=5, color=BEST, zorder=6, ls="none")
        if line.first_nan_step is not None and np.isfinite(line.first_nan_step):
            ax.axvline(line.first_nan_step, color=NAN if single else color, ls="--", lw=1.2, zorder=5)
            xmax = max(xmax, float(line.first_nan_step))
            if detail:
                # to the right of the line (where the curve has stopped), unless that runs off the panel;
                # a line lower than the top-left notes either way
                right = (float(line.first_nan_step) - xmin) / span < 0.7
                who = "" if single else f"{line.label}: "
                ax.annotate(f"{who}NaN/Inf from {fmt(line.first_nan_step)}", xy=(line.first_nan_step, 1.0),
                            xycoords=("data", "axes fraction"), xytext=(4 if right else -4, -16 - 12 * n_nan),
                            textcoords="offset points", ha="left" if right else "right", va="top", fontsize=8,
                            color=NAN if single else color)
                n_nan += 1
    if limits is not None:
        outside, caps = limits[3], limits[4]
        pad = (hi / lo) ** 0.04 if log else 0.04 * (hi - lo or 1.0)
        ax.set_ylim(*((lo / pad, hi * pad) if log else (lo - pad, hi + pad)))
        panel.drawn["ylim"] = [lo, hi]
        if outside:
            notes.append("off scale, not shown in full: " + ", ".join(outside[:4]))
            panel.drawn["off_scale"] = outside
        clipped = {}
        for label, (_, x, y) in caps.items():
            above = y > hi  # the panel's ceiling: another line may have raised it above this one's cap
            if not above.any():
                continue
            _mark_clipped(ax, x[above], px, (xmin, xmax))
            clipped[label] = {"above": hi, "points": int(above.sum()), "from_step": float(x[above][0]),
                              "max": float(y.max())}
            who = "" if single else f"{label}: "
            notes.append(f"{who}{clipped[label]['points']} point(s) above {fmt(hi)} clipped (▲), from step "
                         f"{fmt(x[above][0])}, max {fmt(y.max())}")
        if clipped:
            panel.drawn["clipped"] = clipped
    if notes:
        ax.text(0.01, 0.99, "\n".join(notes[:3]), transform=ax.transAxes, ha="left", va="top", fontsize=8,
                color=NAN, zorder=7, bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1})
    if xmax > xmin:
        ax.set_xlim(xmin, xmax)  # exact range: decimation buckets are the pixel columns
    else:
        ax.set_xlim(xmin - 1, xmin + 1)
    ax.grid(True, alpha=0.25, lw=0.6)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: short_step(v)))


def _noisy(y: np.ndarray, log: bool, lo: float, hi: float) -> bool:
    """Whether a trend helps: the step-to-step noise (robust std of differences / sqrt 2) is more than
    NOISY of the panel's y range. A clean curve is drawn as is: a lagging EMA would only double it."""
    geometric = log and y.min() > 0
    i = np.unique(np.linspace(0, y.size - 2, min(y.size - 1, 20_000)).astype(np.int64))  # sampled neighbours
    a, b = y[i], y[i + 1]
    d = np.log10(b) - np.log10(a) if geometric else b - a
    noise = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2)
    shown = math.log10(hi / lo) if geometric and lo > 0 else hi - lo
    return noise > NOISY * max(shown, 1e-300)


def _mark_clipped(ax, xs: np.ndarray, px: int, xrange: tuple[float, float]) -> None:
    """A small triangle at the top edge over each pixel column that holds clipped points."""
    lo, hi = xrange
    if hi > lo:
        cols = np.unique(((xs - lo) / (hi - lo) * (px / 4)).astype(np.int64))  # one mark per 4 px
        xs = lo + (cols + 0.5) * (hi - lo) / (px / 4)
    ax.scatter(xs[:400], np.ones(min(xs.size, 400)), transform=ax.get_xaxis_transform(), marker="^", s=14,
               color=NAN, zorder=7, clip_on=False, label="_clipped")


def _mark_spikes(ax, spikes, log: bool) -> None:
    pts = [(s.get("step"), s.get("value")) for s in spikes or []]
    pts = [(float(a), float(b)) for a, b in pts if a is not None and b is not None
           and np.isfinite(float(a)) and abs(float(b)) <= CLIP and (not log or float(b) > 0)]
    if not pts:
        return
    xs, ys = zip(*pts)
    ax.scatter(xs, ys, s=36, facecolors="none", edgecolors=SPIKE, linewidths=1.3, zorder=6, label="_spikes")


def _say(ax, text: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=10, color="#a00000",
            wrap=True)
