"""Layers x step-bucket heatmaps of gradient histograms (log colour scale).

Each cell is the mean of a per-histogram statistic over the histograms of that layer logged in
that step bucket. Cells where the layer logged nothing are blank; cells whose value is exactly 0
(a dead layer) get their own colour, so dead layers and late widening are visible at a glance.
"""

from __future__ import annotations

import numpy as np

from .render import DPI, MAX_SIDE, new_figure, to_png

STATS = ("mean_abs", "max_abs", "std")
DEAD = "#222222"


def hist_stat(counts, edges, stat: str) -> float:
    """One statistic of one histogram (bin counts + edges), from bin centres."""
    c = np.asarray(counts, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    if c.size == 0 or e.size != c.size + 1:
        return float("nan")
    total = c.sum()
    if not total > 0:
        return float("nan")
    mid = (e[:-1] + e[1:]) / 2
    if stat == "mean_abs":
        return float((c * np.abs(mid)).sum() / total)
    if stat == "max_abs":
        nz = c > 0
        return float(np.abs(mid[nz]).max())
    if stat == "std":
        mean = (c * mid).sum() / total
        return float(np.sqrt(max(0.0, (c * (mid - mean) ** 2).sum() / total)))
    raise ValueError(stat)


def bucket_matrix(per_layer: dict[str, tuple[np.ndarray, np.ndarray]], n_buckets: int = 60):
    """(matrix layers x buckets, bucket edges) from {layer: (steps, values)}; NaN where nothing was logged."""
    all_steps = np.concatenate([s for s, _ in per_layer.values() if len(s)] or [np.zeros(1)])
    lo, hi = float(all_steps.min()), float(all_steps.max())
    distinct = np.unique(all_steps).size
    n_buckets = max(1, min(n_buckets, distinct))
    if hi <= lo:
        edges = np.array([lo - 0.5, lo + 0.5])
        n_buckets = 1
    else:
        edges = np.linspace(lo, hi, n_buckets + 1)
    mat = np.full((len(per_layer), n_buckets), np.nan)
    for i, (steps, vals) in enumerate(per_layer.values()):
        ok = np.isfinite(vals)
        if not ok.any():
            continue
        b = np.clip(np.searchsorted(edges, steps[ok], side="right") - 1, 0, n_buckets - 1)
        sums = np.bincount(b, weights=vals[ok], minlength=n_buckets)
        cnt = np.bincount(b, minlength=n_buckets)
        with np.errstate(invalid="ignore", divide="ignore"):
            mat[i] = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)
    return mat, edges


def render(mat: np.ndarray, edges: np.ndarray, layers: list[str], *, title: str, xlabel: str, stat: str,
           footer: str = "") -> tuple[bytes, int, int]:
    from matplotlib import colors

    n = max(1, len(layers))
    width = 1200
    height = min(MAX_SIDE, 150 + max(260, 18 * n))
    fig = new_figure(width, height)
    label_px = min(320, 40 + 7 * max((len(s) for s in layers), default=4))
    fig.subplots_adjust(left=label_px / width, right=1 - 150 / width, top=1 - 56 / height, bottom=62 / height)
    ax = fig.add_subplot(1, 1, 1)
    positive = mat[np.isfinite(mat) & (mat > 0)]
    if positive.size:
        vmin, vmax = float(positive.min()), float(positive.max())
        if vmax <= vmin:
            vmin, vmax = vmin / 10, vmax * 10
        norm = colors.LogNorm(vmin=vmin, vmax=vmax)
    else:
        norm = colors.Normalize(0, 1)
    cmap = colors.ListedColormap(_viridis()).with_extremes(bad="white", under=DEAD)
    shown = np.where(mat == 0, vmin_under(norm), mat)
    mesh = ax.pcolormesh(edges, np.arange(n + 1), np.ma.masked_invalid(shown), cmap=cmap, norm=norm,
                         shading="flat")
    ax.set_yticks(np.arange(n) + 0.5)
    ax.set_yticklabels(layers, fontsize=8 if n <= 40 else 6)
    ax.set_ylim(n, 0)  # first layer on top
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left", fontweight="bold", fontsize=10)
    cb = fig.colorbar(mesh, ax=ax, fraction=0.04, pad=0.02, extend="min" if (mat == 0).any() else "neither")
    cb.set_label(f"{stat} (log scale)" + ("; black = exactly 0" if (mat == 0).any() else ""), fontsize=8)
    if not positive.size:
        ax.text(0.5, 0.5, "every histogram is empty or all zeros", transform=ax.transAxes, ha="center",
                va="center", color="#a00000")
    if footer:
        fig.text(label_px / width, 8 / height, footer, fontsize=8, color="#444444")
    return to_png(fig)


def vmin_under(norm) -> float:
    return float(norm.vmin) / 10 if norm.vmin and norm.vmin > 0 else -1.0


def _viridis():
    from matplotlib import colormaps

    return colormaps["viridis"](np.linspace(0, 1, 256))


__all__ = ["STATS", "hist_stat", "bucket_matrix", "render", "DPI"]
