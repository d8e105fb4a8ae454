"""Image attributions as matplotlib figures (imported only when drawing): panels and colour bars."""

from __future__ import annotations

import textwrap
from typing import Any, Mapping

from ._image import _OUTPUT, ColourScale, _rgb, colour_scale, overlay

__all__ = ["plot_overlay", "plot_baselines"]

def plot_overlay(image: Any, pixels: Any, *, title: str | None = None, reduce: str = "sum", sign: str = "both",
                 clip: float = 99.0, alpha: float = 0.8, output: str = _OUTPUT):
    """A matplotlib ``Figure``: the image beside the overlay, and a labelled colour bar.

    The two panels have the same size; the colour bar under the overlay is in attribution
    units (symmetric about 0 for a signed map, from 0 for positive-only, negative-only and
    magnitude views) and its label says what the colour means and where the map was clipped
    (:func:`colour_scale`). Save it with ``fig.savefig("why.png")``. Needs matplotlib
    (``pip install 'integrad[viz]'``).

    Parameters
    ----------
    image, pixels, reduce, sign, clip, alpha, output
        As in :func:`overlay` and :func:`colour_scale`.
    title : str, optional
        Above both panels, e.g. the class and the accuracy line.
    """
    return _plot(image, {"attribution": pixels}, title, (9.0, 5.8), 80,
                 dict(reduce=reduce, sign=sign, clip=clip, alpha=alpha), output)


def plot_baselines(image: Any, maps: Mapping[str, Any], *, title: str | None = None, reduce: str = "sum",
                   sign: str = "both", clip: float = 99.0, alpha: float = 0.8, output: str = _OUTPUT):
    """Side by side: the image, then one overlay per map (``{"black": map, ...}``), all the same size.

    Each overlay has its own labelled colour bar: baselines (or methods) change
    ``F(x) - F(baseline)`` and so the size of the attributions; compare where the colour is,
    and read magnitudes off the bars.
    """
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError("maps: expected a non-empty mapping of name to (H, W) map")
    return _plot(image, maps, title, (3.3 * (len(maps) + 1), 4.6), 48,
                 dict(reduce=reduce, sign=sign, clip=clip, alpha=alpha), output)


def _plot(image: Any, maps: Mapping[str, Any], title: str | None, size: tuple[float, float], width: int,
          view: dict, output: str):
    """The image and one overlay per map in a row of equal panels, a colour bar under each overlay."""
    scales = [colour_scale(m, output=output, **view) for m in maps.values()]  # bad options fail before drawing
    fig = _figure(size)
    grid = fig.add_gridspec(2, len(maps) + 1, height_ratios=[1.0, 0.045])
    panels = [fig.add_subplot(grid[0, i]) for i in range(len(maps) + 1)]
    panels[0].imshow(_rgb(image))
    panels[0].set_title("image", fontsize=10)
    for i, ((name, m), scale) in enumerate(zip(maps.items(), scales), start=1):
        panels[i].imshow(overlay(image, m, **view))
        panels[i].set_title(str(name), fontsize=10)
        _colourbar(fig, fig.add_subplot(grid[1, i]), scale, width)
    for ax in panels:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _figure(size: tuple[float, float]):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("drawing figures needs matplotlib; pip install 'integrad[viz]'") from None
    # a bare Figure, not pyplot: no global figure registry, no GUI backend
    return Figure(figsize=size, layout="constrained")


def _colourbar(fig, cax, scale: ColourScale, width: int) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    cmap = LinearSegmentedColormap.from_list(scale.name, list(scale.stops))
    bar = fig.colorbar(ScalarMappable(Normalize(scale.lo, scale.hi), cmap), cax=cax, orientation="horizontal",
                       extend=scale.extend)
    ticks = [scale.lo, 0.0, scale.hi] if scale.diverging else [0.0, scale.hi]
    bar.set_ticks(ticks, labels=[f"{v:+.3g}" if v and scale.diverging else f"{v:.3g}" for v in ticks])
    bar.ax.tick_params(labelsize=7)
    bar.set_label("\n".join(textwrap.wrap(scale.label, width) + textwrap.wrap(scale.note, width)), fontsize=7)


