"""Image explanations as HTML fragments that carry their own style: image beside overlay, legend."""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING

import numpy as np

from ._image import ColourScale, _rgb, colour_scale, overlay, png_bytes
from ._text import CARD_CSS

if TYPE_CHECKING:  # pragma: no cover
    from ..image import ImageExplanation

__all__ = ["legend_html", "image_html_fragment"]

_CSS = CARD_CSS + """
.ig-pair{display:flex;gap:10px;flex-wrap:wrap;align-items:flex-start}.ig-pair figure{margin:0;width:224px}
.ig-pair img{width:224px;display:block;image-rendering:pixelated}
.ig-pair figcaption{color:#555;font-size:.85em;margin-top:.3em}
.ig-strip{height:12px;border:1px solid #999;border-radius:2px;margin:.3em 0 .1em}
.ig-ticks{display:flex;justify-content:space-between;font-size:.85em;font-variant-numeric:tabular-nums}
"""


def legend_html(scale: ColourScale) -> str:
    """A colour legend as an HTML fragment: the label, a gradient strip, its end values, the clipping.

    Classes as in :func:`image_html_fragment`, whose ``<style>`` they need.
    """
    stops = ",".join("rgb({},{},{})".format(*(round(255 * v) for v in c)) for c in scale.stops)
    lo = ("≤ " if scale.extend in ("min", "both") else "") + (f"{scale.lo:+.3g}" if scale.diverging else "0")
    hi = ("≥ " if scale.extend in ("max", "both") else "") + (f"{scale.hi:+.3g}" if scale.diverging else
                                                             f"{scale.hi:.3g}")
    ticks = [lo, "0", hi] if scale.diverging else [lo, hi]
    return (f"<div class='ig-meta'>{html.escape(scale.label)}</div>"
            f"<div class='ig-strip' role='img' aria-label='colour scale: {html.escape(scale.name)}' "
            f"style='background:linear-gradient(to right,{stops})'></div>"
            f"<div class='ig-ticks'>{''.join(f'<span>{html.escape(t)}</span>' for t in ticks)}</div>"
            f"<div class='ig-meta'>{html.escape(scale.note)}</div>")


def image_html_fragment(ex: "ImageExplanation", *, reduce: str = "sum", sign: str = "both", clip: float = 99.0,
                        alpha: float = 0.8, header: bool = True) -> str:
    """One image explanation as an HTML fragment that carries its own ``<style>``.

    The image beside the overlay (same size), under the overlay its colour legend with the
    clipping stated, then (with ``header``) the top classes, the explained class and the
    accuracy line. A report that states the prediction and the accuracy itself passes
    ``header=False``. All text is escaped.
    """
    pixels = ex.pixel_map(reduce)
    scale = colour_scale(pixels, reduce=reduce, sign=sign, clip=clip, alpha=alpha,
                         output=f"the logit of {ex.target_name!r}")
    tinted = overlay(ex.image, pixels, reduce=reduce, sign=sign, clip=clip, alpha=alpha)
    photo = np.round(_rgb(ex.image) * 255.0).astype(np.uint8)

    def img(rgb: np.ndarray, alt: str) -> str:
        return f"<img src='data:image/png;base64,{base64.b64encode(png_bytes(rgb)).decode('ascii')}' alt='{alt}'>"

    named = "image" if ex.source == "tensor" else f"image ({ex.source})"
    pictures = (f"<div class='ig-pair'><figure>{img(photo, 'image')}<figcaption>{html.escape(named)}"
                f"</figcaption></figure><figure>{img(tinted, 'attribution overlay')}<figcaption>"
                f"{legend_html(scale)}</figcaption></figure></div>")
    if not header:
        return f"<style>{_CSS}</style><div class='ig-card'>{pictures}</div>"
    rows = "".join(f"<tr><td style='text-align:left'>{html.escape(n)}</td><td>{p:.1%}</td></tr>" for n, p in ex.top)
    return (
        f"<style>{_CSS}</style><div class='ig-card'>"
        f"<div class='ig-meta'>explained class: <b>{html.escape(ex.target_name)}</b> "
        f"(p = {ex.target_probability:.1%}) · baseline {html.escape(ex.baseline)} · F(x) = {ex.f_x:.4f}, "
        f"F(baseline) = {ex.f_baseline:.4f}</div>{pictures}"
        f"<div class='ig-meta'>{html.escape(ex.accuracy)} (δ = {ex.delta:+.2e})</div>"
        f"<table class='ig-tok'><tr><th>class</th><th>probability</th></tr>{rows}</table></div>"
    )


