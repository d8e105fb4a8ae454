"""One self-contained HTML report: sections with prediction, picture, verdict, settings, convergence.

Everything is inline (images as base64 PNG, plots as SVG, styles in the page and in every
fragment), so the file can be mailed or attached to a ticket and opens anywhere without
network access. Each section's verdict is the estimated error of its attributions against
:data:`integrad.core.result.ACCURATE` (1%) where the method estimates one, else the
completeness gap against the same threshold; the convergence plot marks the number of steps
the explanation used, labelled with that same estimate.

>>> page = report_page([Section("x", "cat (80.0%)", "<p>map</p>", delta=1e-3, change=1.0, error=0.002)])
>>> "verdict-ok" in page and "estimated error 0.20% (within 1%)" in page
True
"""

from __future__ import annotations

import base64
import html
import math
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
        built by integrad's renderers, which escape their text and ship their styles).
    delta, change : float
        Completeness gap and ``F(x) - F(baseline)``.
    error : float
        Estimated relative error of the attributions (NaN when the method has none); the
        section's verdict.
    settings : dict
    curve : sequence of (n_steps, sum of attributions), optional
    n_steps : float, optional
        The steps the explanation used, marked on the convergence plot (for error-controlled
        results the mean evaluations per example).
    """

    title: str
    prediction: str
    body_html: str
    delta: float
    change: float
    error: float = float("nan")
    settings: dict = field(default_factory=dict)
    curve: Sequence[tuple[int, float]] = ()
    n_steps: float | None = None

    @classmethod
    def from_explanation(cls, ex: Any, title: str, body_html: str, *, curve: Sequence[tuple[int, float]] = (),
                         settings: dict | None = None) -> "Section":
        """A section for a text, image or tabular explanation (anything with ``.result``, ``.label``...).

        ``settings`` defaults to the result's settings without the empty ones.
        """
        res = ex.result
        n = res.settings.get("n_steps")
        n = float(res.n_evals.double().mean()) if n is None else float(n)
        shown = {k: v for k, v in res.settings.items() if v is not None} if settings is None else settings
        return cls(title, f"{ex.label} ({ex.probability:.1%})", body_html, delta=ex.delta,
                   change=ex.f_x - ex.f_baseline, error=ex.error, settings=shown, curve=tuple(curve), n_steps=n)


def convergence(model: Any, inputs: Any, *, ns: Sequence[int] = (2, 4, 8, 16, 32, 64, 128), example: int = 0,
                **ig_kwargs: Any) -> list[tuple[int, float]]:
    """Sum of attributions of one example as the number of steps grows (Gauss-Legendre)."""
    from .methods.ig import integrated_gradients

    curve = []
    for n in ns:
        res = integrated_gradients(model, inputs, n_steps=n, **ig_kwargs)
        curve.append((int(n), float(res.total[example])))
    return curve


def convergence_svg(curve: Sequence[tuple[int, float]], change: float, *, n_steps: float | None = None,
                    total: float | None = None, error: float = float("nan"), width: int = 340,
                    height: int = 180) -> str:
    """A small line plot (log2 steps vs sum of attributions) with the target F(x) - F(x').

    With ``n_steps``, the steps the explanation used are marked by a vertical line and a dot
    at ``total`` (its sum of attributions), labelled with ``error`` (the estimated error) and
    coloured by the same verdict as the report's.
    """
    if not curve:
        return ""
    xs = [math.log2(n) for n, _ in curve]
    ys = [v for _, v in curve] + [change] + ([] if total is None else [total])
    marked = n_steps is not None and n_steps > 0
    x_lo, x_hi = min(xs + ([math.log2(n_steps)] if marked else [])), max(xs + ([math.log2(n_steps)] if marked else []))
    lo, hi = min(ys), max(ys)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad
    left, right, top, bottom = 48, 10, 24, 30
    sx = lambda x: left + (x - x_lo) / ((x_hi - x_lo) or 1) * (width - left - right)  # noqa: E731
    sy = lambda y: top + (hi - y) / (hi - lo) * (height - top - bottom)  # noqa: E731
    pts = " ".join(f"{sx(x):.1f},{sy(v):.1f}" for x, (_, v) in zip(xs, curve))
    dots = "".join(f"<circle cx='{sx(x):.1f}' cy='{sy(v):.1f}' r='2.5' fill='#1f5fbf'/>" for x, (_, v) in zip(xs, curve))
    ticks = "".join(f"<text x='{sx(x):.1f}' y='{height - 12}' font-size='10' text-anchor='middle'>{n}</text>"
                    for x, (n, _) in zip(xs, curve))
    y_target = sy(change)
    mark = ""
    if marked:
        ok, what = _verdict(error, abs(total - change) / abs(change) if total is not None and change else math.inf)
        colour = "#176e2c" if ok else "#a15c00"
        x = sx(math.log2(n_steps))
        dot = "" if total is None else f"<circle cx='{x:.1f}' cy='{sy(total):.1f}' r='4' fill='{colour}'/>"
        anchor = "end" if x > (left + width) / 2 else "start"
        mark = (f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top}' y2='{height - bottom}' stroke='{colour}' "
                f"stroke-width='1.5'/>{dot}<text x='{x + (-3 if anchor == 'end' else 3):.1f}' y='{top - 8}' "
                f"font-size='10' text-anchor='{anchor}' fill='{colour}'>used: n = {n_steps:.4g}, "
                f"{html.escape(what)}</text>")
    return (
        f"<svg width='{width}' height='{height}' role='img' "
        f"aria-label='sum of attributions against number of steps'>"
        f"<rect x='{left}' y='{top}' width='{width - left - right}' height='{height - top - bottom}' fill='#fafafa' "
        f"stroke='#ddd'/>"
        f"<line x1='{left}' x2='{width - right}' y1='{y_target:.1f}' y2='{y_target:.1f}' stroke='#555' "
        f"stroke-dasharray='4 3'/>"
        f"<text x='{width - right - 2}' y='{y_target - 4:.1f}' font-size='10' text-anchor='end' fill='#555'>"
        f"F(x) − F(x′) = {change:.4g}</text>"
        f"<polyline points='{pts}' fill='none' stroke='#1f5fbf' stroke-width='1.5'/>{dots}{ticks}{mark}"
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
.verdict-ok{color:#176e2c}.verdict-warn{color:#a15c00}
"""


def _verdict(error: float, relative_delta: float) -> tuple[bool, str]:
    """(accurate?, why): the error estimate against ACCURATE, or the gap where there is no estimate."""
    from .core.result import ACCURATE

    if error == error:
        return error <= ACCURATE, (f"estimated error {_pct(error)} "
                                   f"({'within' if error <= ACCURATE else 'more than'} {ACCURATE:.0%})")
    return relative_delta <= ACCURATE, (f"no error estimate; completeness gap {_pct(relative_delta)} "
                                        f"({'within' if relative_delta <= ACCURATE else 'more than'} {ACCURATE:.0%})")


def _pct(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:.2%}" if x >= 5e-5 else "< 0.01%"


def _verdict_html(s: Section) -> str:
    rel = abs(s.delta) / abs(s.change) if s.change else math.inf
    ok, what = _verdict(s.error, rel)
    gap = f"completeness gap δ = {s.delta:+.3g}" + (f" ({_pct(rel)} of |F(x) − F(baseline)|)" if s.change else "")
    if s.error != s.error:
        gap = f"δ = {s.delta:+.3g}"  # the verdict already states the gap
    mark = "✓" if ok else "⚠"
    return f"<span class='verdict-{'ok' if ok else 'warn'}'>{mark} {html.escape(what)}</span> · {html.escape(gap)}"


def _section_html(s: Section) -> str:
    settings = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                       for k, v in s.settings.items() if v is not None)
    total = s.change + s.delta
    plot = convergence_svg(s.curve, s.change, n_steps=s.n_steps, total=total, error=s.error)
    side = []
    if plot:
        side.append("<div style='max-width:340px'><p class='meta'>convergence: sum of attributions against "
                    f"Gauss-Legendre steps; dashed: F(x) − F(baseline), which it should reach</p>{plot}</div>")
    if settings:
        side.append(f"<div><p class='meta'>settings</p><table class='settings'>{settings}</table></div>")
    return (f"<section><h2>{html.escape(s.title)}</h2>"
            f"<p class='meta'>prediction: <b>{html.escape(s.prediction)}</b> · F(x) − F(baseline) = {s.change:.4g} · "
            f"{_verdict_html(s)}</p><div>{s.body_html}</div>"
            + (f"<div class='row'>{''.join(side)}</div>" if side else "") + "</section>")


def report_page(sections: Sequence[Section], title: str = "integrad report", intro: str = "") -> str:
    """The whole report as one HTML string (no external resources)."""
    head = f"<p>{html.escape(intro)}</p>" if intro else ""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{head}{''.join(_section_html(s) for s in sections)}</body></html>")
