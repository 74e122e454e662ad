"""Line-chart grids as PNG bytes (matplotlib, Agg canvas, no pyplot global state).

Callers hand over plain data (`Panel`s of `Line`s); this module decides the look: fixed margins
(so each axes' pixel width is known before drawing and decimation buckets match pixel columns),
log-y when a panel's values are positive and span more than 2 decades, spike markers, a marker
for the first NaN/Inf step, and a one-line caption per panel. A panel with nothing to draw says
what is missing instead of showing empty axes. matplotlib is imported here only, on first use.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np

from .decimate import decimate, finite_sorted

DPI = 100
MAX_SIDE = 1600
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]
SPIKE = "#e6007e"
NAN = "#b30000"
BEST = "#1a9641"
LOG_SPAN = 100.0  # log-y when max / min exceeds this (2 decades)
CLIP = 1e200  # matplotlib's tick code overflows near 1e308: larger magnitudes are marked, not drawn


@dataclass
class Line:
    label: str
    x: np.ndarray
    y: np.ndarray  # raw values, NaN/Inf included (they are not drawn; first_nan_step marks them)
    spikes: list = field(default_factory=list)  # [{"step", "value", ...}] on the same x axis
    first_nan_step: float | None = None
    bold: bool = False
    best: tuple | None = None  # (step, value) of the best point, marked with a small diamond


@dataclass
class Panel:
    title: str
    xlabel: str
    lines: list[Line]
    caption: str = ""
    empty_note: str = ""  # said in the panel when no line has a finite point


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


def grid(panels: list[Panel], ncols: int, panel_w: int, panel_h: int, title: str = "", footer: str = "",
         legend: bool = False) -> tuple[bytes, int, int]:
    """A grid of line panels as PNG bytes (+ width, height)."""
    n = max(1, len(panels))
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
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
    fig.subplots_adjust(left=left, right=right, top=top, bottom=bottom,
                        wspace=0.22 * ncols / 2 + 0.06, hspace=0.45 if nrows > 1 else 0.2)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, panel in zip(axes, panels):
        _draw_panel(fig, ax, panel, width)
        if legend:
            handles, labels = ax.get_legend_handles_labels()
            if handles:
                ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                          borderaxespad=0.0, handlelength=1.6)
    if title:
        fig.suptitle(title, x=left, y=1 - 10 / height, ha="left", va="top", fontsize=11, fontweight="bold")
    if footer:
        fig.text(left, 6 / height, footer, ha="left", va="bottom", fontsize=8, color="#444444")
    return to_png(fig)


def _draw_panel(fig, ax, panel: Panel, fig_width: int) -> None:
    ax.set_title(panel.title, loc="left", fontweight="bold", y=1.0, pad=5)  # fixed y: no auto-placement pass
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
            off_scale.append((float(x[big][0]), int(big.sum())))
            x, y = x[~big], y[~big]
        prepared.append((line, x, y))
    for step, count in off_scale[:1] if len(panel.lines) == 1 else []:
        ax.axvline(step, color=NAN, ls=":", lw=1.2, zorder=5)
        ax.text(0.01, 0.99, f"{count} value(s) beyond ±1e200 from step {fmt(step)} (not drawn)",
                transform=ax.transAxes, ha="left", va="top", fontsize=8, color=NAN)
    finite = [y for _, _, y in prepared if y.size]
    if not finite:
        _say(ax, panel.empty_note or "nothing to draw")
        return
    raw_x = [np.asarray(line.x, dtype=np.float64) for line in panel.lines]
    raw_x = [x[np.isfinite(x)] for x in raw_x]
    xmax_all = max([float(x.max()) for x in raw_x if x.size] + [s for s, _ in off_scale])
    lo = min(float(y.min()) for y in finite)
    hi = max(float(y.max()) for y in finite)
    xmin = min(float(x.min()) for x in raw_x if x.size)
    xmax = xmax_all
    span = (xmax - xmin) or 1.0
    log = lo > 0 and hi / lo > LOG_SPAN
    limits, outside = _robust_ylim(prepared, log) if len(prepared) > 1 else (None, [])
    if limits is not None:
        lo, hi = limits
        log = lo > 0 and hi / lo > LOG_SPAN
    if log:
        ax.set_yscale("log")
    for i, (line, x, y) in enumerate(prepared):
        color = COLORS[i % len(COLORS)]
        if y.size == 0:
            ax.plot([], [], color=color, label=f"{line.label} (no finite values)")
            continue
        buckets = max(1, int(px * (float(x[-1]) - float(x[0])) / span))
        dx, dy = decimate(x, y, buckets)
        few = dy.size < 60
        ax.plot(dx, dy, color=color, lw=(2.4 if line.bold else 1.1), alpha=(1.0 if line.bold or len(prepared) == 1 else 0.8),
                marker=("o" if few else None), ms=(4 if dy.size > 1 else 7), label=line.label,
                zorder=(4 if line.bold else 2), solid_joinstyle="miter")
        _mark_spikes(ax, line.spikes, ax.get_yscale() == "log")
        if line.best is not None and len(prepared) == 1:
            ax.plot([line.best[0]], [line.best[1]], marker="D", ms=5, color=BEST, zorder=6, ls="none")
        if line.first_nan_step is not None and np.isfinite(line.first_nan_step):
            ax.axvline(line.first_nan_step, color=NAN if len(prepared) == 1 else color, ls="--", lw=1.2, zorder=5)
            xmax = max(xmax, float(line.first_nan_step))
            if len(prepared) == 1:
                # to the right of the line (where the curve has stopped), unless that runs off the panel;
                # a line lower than the top-left notes either way
                right = (float(line.first_nan_step) - xmin) / span < 0.7
                ax.annotate(f"NaN/Inf from {fmt(line.first_nan_step)}", xy=(line.first_nan_step, 1.0),
                            xycoords=("data", "axes fraction"), xytext=(4 if right else -4, -16),
                            textcoords="offset points", ha="left" if right else "right", va="top", fontsize=8,
                            color=NAN)
    if limits is not None:
        pad = (hi / lo) ** 0.04 if log else 0.04 * (hi - lo or 1.0)
        ax.set_ylim(*((lo / pad, hi * pad) if log else (lo - pad, hi + pad)))
        ax.text(0.01, 0.99, "off scale, not shown in full: " + ", ".join(outside[:4]), transform=ax.transAxes,
                ha="left", va="top", fontsize=8, color=NAN)
    if xmax > xmin:
        ax.set_xlim(xmin, xmax)  # exact range: decimation buckets are the pixel columns
    else:
        ax.set_xlim(xmin - 1, xmin + 1)
    ax.grid(True, alpha=0.25, lw=0.6)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: short_step(v)))


def _robust_ylim(prepared, log: bool):
    """For an overlay: y limits that keep every line in its usual range except lines far outside the
    others (a diverged run at 1e30 next to losses near 1). Returns ((lo, hi), names outside) or
    (None, []) when no line is far out. A line is far out when its 2-98% range sits more than 3
    typical line spans (decades on a log axis) beyond the median line's."""
    stats = []
    for line, _, y in prepared:
        if y.size == 0 or (log and np.any(y <= 0)):
            continue
        t = np.log10(y) if log else y
        q = np.percentile(t, [2, 98]) if t.size > 20 else np.array([t.min(), t.max()])
        stats.append((line.label, float(q[0]), float(q[1]), float(t.min()), float(t.max())))
    if len(stats) < 2:
        return None, []
    lows, highs = np.array([s[1] for s in stats]), np.array([s[2] for s in stats])
    scale = max(float(np.median(highs - lows)), 1.0 if log else 1e-12)
    top, bottom = float(np.median(highs)) + 3 * scale, float(np.median(lows)) - 3 * scale
    inside = [s for s in stats if s[2] <= top and s[1] >= bottom]
    outside = [s[0] for s in stats if s not in inside]
    if not outside or not inside:
        return None, []
    lo = min(s[3] for s in inside)
    hi = max(s[4] for s in inside)
    if hi <= lo:
        hi, lo = hi + (1 if log else abs(hi) * 0.1 + 1e-12), lo - (1 if log else abs(lo) * 0.1 + 1e-12)
    return ((10 ** lo, 10 ** hi) if log else (lo, hi)), outside


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
