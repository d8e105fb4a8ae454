"""Signed horizontal bar charts (word and column attributions), drawn with matplotlib on demand."""

from __future__ import annotations

from typing import Any, Sequence

from ._text import NEGATIVE_HEX, POSITIVE_HEX


def save_bars(path: Any, names: Sequence[str], values: Sequence[float], *, xlabel: str, title: str,
              width: float, row_height: float, max_label: int, dpi: int) -> None:
    """One bar per value, top to bottom, orange for positive and blue for negative; saved to ``path``."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend
    except ImportError:
        raise ImportError("drawing figures needs matplotlib; pip install 'integrad[viz]'") from None
    fig = Figure(figsize=(width, row_height * len(values) + 1.7))
    ax = fig.subplots()
    pos = list(range(len(values)))[::-1]
    ax.barh(pos, values, color=[POSITIVE_HEX if v > 0 else NEGATIVE_HEX for v in values])
    ax.set_yticks(pos, [n if len(n) <= max_label else n[:max_label - 3] + "..." for n in names], fontsize=8)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
