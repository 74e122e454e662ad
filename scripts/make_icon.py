"""Draws mcpb/icon.png (256 x 256): a magnifying lens over a falling, spiky loss curve."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "mcpb" / "icon.png"


def main() -> None:
    fig = plt.figure(figsize=(2.56, 2.56), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((0.04, 0.04), 0.92, 0.92, boxstyle="round,pad=0,rounding_size=0.18",
                                facecolor="#1f2430", edgecolor="none"))
    x = np.linspace(0.12, 0.88, 200)
    y = 0.22 + 0.52 * np.exp(-(x - 0.12) * 4.2)
    y[60] += 0.12  # one spike, as the plots mark them
    ax.plot(x, y, color="#ffbe3d", lw=5, solid_capstyle="round")
    ax.add_patch(Circle((0.6, 0.52), 0.2, facecolor=(1, 1, 1, 0.12), edgecolor="#e8ecf4", lw=7))
    ax.plot([0.745, 0.87], [0.375, 0.245], color="#e8ecf4", lw=11, solid_capstyle="round")
    fig.savefig(OUT, transparent=True)
    print(OUT)


if __name__ == "__main__":
    main()
