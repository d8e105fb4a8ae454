"""One self-contained HTML report: sections with prediction, picture, gap, settings, convergence.

Everything is inline (images as base64 PNG, plots as SVG, styles in the page), so the file
can be mailed or attached to a ticket and opens anywhere without network access.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Any, Sequence

__all__ = ["Section", "convergence", "convergence_svg", "png_data_uri", "report_page"]


@dataclass(frozen=True)
class Section:
    """One explained prediction in the report.

    Attributes
    ----------
    title : str
    prediction : str
        One line, e.g. ``"POSITIVE (97.1%)"``.
    body_html : str
        The picture: coloured words, an ``<img>`` with a data URI, a table (trusted HTML,
        built by integrad's renderers, which escape their text).
    delta, change : float
        Completeness gap and ``F(x) - F(baseline)``.
    settings : dict
    curve : sequence of (n_steps, sum of attributions), optional
    """

    title: str
    prediction: str
    body_html: str
    delta: float
    change: float
    settings: dict = field(default_factory=dict)
    curve: Sequence[tuple[int, float]] = ()


def convergence(model: Any, inputs: Any, *, ns: Sequence[int] = (2, 4, 8, 16, 32, 64, 128), example: int = 0,
                **ig_kwargs: Any) -> list[tuple[int, float]]:
    """Sum of attributions of one example as the number of steps grows (Gauss-Legendre)."""
    from .methods.ig import integrated_gradients

    curve = []
    for n in ns:
        res = integrated_gradients(model, inputs, n_steps=n, **ig_kwargs)
        curve.append((int(n), float(res.total[example])))
    return curve


def convergence_svg(curve: Sequence[tuple[int, float]], change: float, width: int = 340, height: int = 170) -> str:
    """A small line plot (log2 steps vs sum of attributions) with the target F(x) - F(x')."""
    if not curve:
        return ""
    import math

    xs = [math.log2(n) for n, _ in curve]
    ys = [v for _, v in curve] + [change]
    lo, hi = min(ys), max(ys)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad
    left, right, top, bottom = 48, 10, 10, 30
    sx = lambda x: left + (x - xs[0]) / ((xs[-1] - xs[0]) or 1) * (width - left - right)
    sy = lambda y: top + (hi - y) / (hi - lo) * (height - top - bottom)
    pts = " ".join(f"{sx(x):.1f},{sy(v):.1f}" for x, (_, v) in zip(xs, curve))
    dots = "".join(f"<circle cx='{sx(x):.1f}' cy='{sy(v):.1f}' r='2.5' fill='#1f5fbf'/>" for x, (_, v) in zip(xs, curve))
    ticks = "".join(f"<text x='{sx(x):.1f}' y='{height - 12}' font-size='10' text-anchor='middle'>{n}</text>"
                    for x, (n, _) in zip(xs, curve))
    y_target = sy(change)
    return (
        f"<svg width='{width}' height='{height}' role='img' "
        f"aria-label='sum of attributions against number of steps'>"
        f"<rect x='{left}' y='{top}' width='{width - left - right}' height='{height - top - bottom}' fill='#fafafa' "
        f"stroke='#ddd'/>"
        f"<line x1='{left}' x2='{width - right}' y1='{y_target:.1f}' y2='{y_target:.1f}' stroke='#c33' "
        f"stroke-dasharray='4 3'/>"
        f"<text x='{width - right - 2}' y='{y_target - 4:.1f}' font-size='10' text-anchor='end' fill='#c33'>"
        f"F(x) − F(x′) = {change:.4g}</text>"
        f"<polyline points='{pts}' fill='none' stroke='#1f5fbf' stroke-width='1.5'/>{dots}{ticks}"
        f"<text x='{left - 4}' y='{sy(hi - pad):.1f}' font-size='10' text-anchor='end'>{hi - pad:.3g}</text>"
        f"<text x='{left - 4}' y='{sy(lo + pad):.1f}' font-size='10' text-anchor='end'>{lo + pad:.3g}</text>"
        f"<text x='{(left + width) / 2:.0f}' y='{height - 1}' font-size='10' text-anchor='middle'>steps</text>"
        "</svg>"
    )


def png_data_uri(image: Any) -> str:
    """A ``data:image/png;base64,...`` URI for PNG bytes or an RGB uint8 array (H, W, 3)."""
    if not isinstance(image, (bytes, bytearray)):
        from .viz._image import png_bytes

        image = png_bytes(image)
    return "data:image/png;base64," + base64.b64encode(bytes(image)).decode("ascii")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:64em;color:#222;padding:0 1em}
section{border:1px solid #ddd;border-radius:8px;padding:1em 1.4em;margin:1.4em 0}
h2{margin:.2em 0 .5em}.meta{color:#555;font-size:.9em}.row{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}
table.settings{font-size:.85em;border-collapse:collapse}table.settings td{padding:.1em .6em;border-bottom:1px solid #eee}
.ig-w{padding:.15em .25em;border-radius:4px;margin:0 .05em}.ig-words{font-size:1.2em;line-height:2em}
.gap-ok{color:#176e2c}.gap-warn{color:#a15c00}
"""


def _gap_html(delta: float, change: float) -> str:
    rel = abs(delta) / abs(change) if change else float("inf")
    cls = "gap-ok" if rel <= 0.05 else "gap-warn"
    pct = f" = {rel:.2%} of |F(x) − F(baseline)|" if change else ""
    return f"<span class='{cls}'>completeness gap δ = {delta:+.3g}{html.escape(pct)}</span>"


def report_page(sections: Sequence[Section], title: str = "integrad report", intro: str = "") -> str:
    """The whole report as one HTML string (no external resources)."""
    parts = []
    for s in sections:
        settings = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                           for k, v in s.settings.items() if v is not None)
        plot = convergence_svg(s.curve, s.change)
        parts.append(
            f"<section><h2>{html.escape(s.title)}</h2>"
            f"<p class='meta'>prediction: <b>{html.escape(s.prediction)}</b> · F(x) − F(baseline) = {s.change:.4g} · "
            f"{_gap_html(s.delta, s.change)}</p>"
            f"<div>{s.body_html}</div>"
            f"<div class='row'><div><p class='meta'>convergence: sum of attributions vs steps</p>{plot}</div>"
            f"<div><p class='meta'>settings</p><table class='settings'>{settings}</table></div></div></section>"
        )
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(intro)}</p>{''.join(parts)}</body></html>")
