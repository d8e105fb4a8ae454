"""Interaction heatmaps (Integrated Hessians), drawn with matplotlib on demand."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._text import NEGATIVE_HEX, POSITIVE_HEX


def plot_interactions(matrix: Any, names: Sequence[str], *, title: str | None = None,
                      output: str = "the explained output"):
    """A ``(k, k)`` interaction matrix as a heatmap with its values written in the cells.

    Orange raises ``output``, blue lowers it (the palette of every integrad figure); the colour
    scale is symmetric around zero, labelled, and spans the interactions (off the diagonal).
    The diagonal holds the main effects, written in bold on grey; each pair's total
    interaction is its cell plus the mirror cell.
    """
    try:
        from matplotlib.colors import LinearSegmentedColormap
        from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend
    except ImportError:
        raise ImportError("drawing figures needs matplotlib; pip install 'integrad[viz]'") from None
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(names) or not len(names):
        raise ValueError(f"matrix: expected a square (k, k) array with k = len(names) = {len(names)} >= 1; got "
                         f"shape {m.shape}")
    k = m.shape[0]
    # the colours are for the interactions: main effects (the diagonal) are often far larger and
    # would wash them out, so the diagonal is left uncoloured and only written
    off = m.copy()
    np.fill_diagonal(off, np.nan)
    limit = float(np.nanmax(np.abs(off))) if k > 1 else 0.0
    limit = limit or 1.0
    cmap = LinearSegmentedColormap.from_list("integrad", [NEGATIVE_HEX, "#f2f2f2", POSITIVE_HEX]).with_extremes(
        bad="#d9d9d9")
    fig = Figure(figsize=(1.6 + 0.75 * k, 1.0 + 0.6 * k))
    ax = fig.subplots()
    im = ax.imshow(off, cmap=cmap, vmin=-limit, vmax=limit)
    short = [n if len(n) <= 28 else n[:25] + "..." for n in names]
    ax.set_xticks(range(k), short, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), short, fontsize=8)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{m[i, j]:+.2g}", ha="center", va="center", fontsize=7,
                    fontweight="bold" if i == j else "normal")
    bar = fig.colorbar(im, ax=ax, shrink=0.8)
    bar.set_label(f"interaction (off the diagonal), in units of {output};\ngrey diagonal: main effects, "
                  "written only", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
