"""Token highlighting: orange pushes toward the explained label, blue pushes away.

The two ColorBrewer hues (PuOr's orange, RdBu's blue) stay apart for red-green colour
blindness, as green and red do not; the image views use the same pair.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from ..text import Span, TextExplanation

POSITIVE = (230, 97, 1)  # orange, #e66101
NEGATIVE = (67, 147, 195)  # blue, #4393c3; as light as the orange, so black text reads on both
POSITIVE_HEX, NEGATIVE_HEX = "#e66101", "#4393c3"  # the same, for bar charts

# What every fragment needs, shipped inside it: a notebook shows a fragment without any page.
CARD_CSS = """
.ig-card{border:1px solid #ddd;border-radius:8px;padding:1em 1.2em;margin:1em 0;
  font-family:system-ui,-apple-system,Segoe UI,sans-serif}
.ig-words{font-size:1.25em;line-height:2.1em}
.ig-w{padding:.15em .25em;border-radius:4px;margin:0 .05em;color:#000}
.ig-meta{color:#555;font-size:.9em}
.ig-legend span{padding:.1em .5em;border-radius:4px;margin-right:.5em;color:#000}
table.ig-tok{border-collapse:collapse;font-size:.85em;margin-top:.6em}
table.ig-tok td,table.ig-tok th{border:1px solid #eee;padding:.15em .4em;text-align:right}
"""
_PAGE_CSS = "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;max-width:60em;color:#222}"


def _colour(score: float, scale: float) -> tuple[tuple[int, int, int], float]:
    strength = min(abs(score) / scale, 1.0) if scale > 0 else 0.0
    return (POSITIVE if score >= 0 else NEGATIVE), strength


def _scale(spans: Sequence["Span"]) -> float:
    return max((abs(s.attribution) for s in spans), default=0.0)


def _gap(ex: "TextExplanation") -> str:
    change = ex.f_x - ex.f_baseline
    rel = f" ({abs(ex.delta) / abs(change):.2%} of |F(x) − F(baseline)|)" if change else ""
    return f"completeness gap δ = {ex.delta:+.2e}{rel}; {ex.accuracy.split('; completeness gap')[0]}"


def text_html_fragment(ex: "TextExplanation", *, header: bool = True) -> str:
    """One explanation as an HTML fragment that carries its own ``<style>``.

    Words coloured, a legend, the tokens; with ``header`` also the prediction, the gap and
    accuracy, and the settings (a report that states those itself passes ``header=False``).
    """
    scale = _scale(ex.words)
    words = []
    for w in ex.words:
        (r, g, b), a = _colour(w.attribution, scale)
        words.append(f"<span class='ig-w' style='background:rgba({r},{g},{b},{a:.2f})' "
                     f"title='{w.attribution:+.4f}'>{html.escape(w.text)}</span>")
    rows = "".join(f"<tr><td style='text-align:left'>{html.escape(t.text)}{' (special)' if t.special else ''}</td>"
                   f"<td>{t.attribution:+.4f}</td></tr>" for t in ex.tokens)
    s = ex.result.settings
    top = (f"<div class='ig-meta'>prediction: <b>{html.escape(ex.label)}</b> ({ex.probability:.1%}) · explained "
           f"label: <b>{html.escape(ex.target)}</b> · F(x) = {ex.f_x:.4f}, F(baseline) = {ex.f_baseline:.4f} · "
           f"{html.escape(_gap(ex))}</div>")
    how = (f"<div class='ig-meta'>{html.escape(str(s.get('method')))}, {s.get('n_steps')} steps, baseline "
           f"{html.escape(str(s.get('baseline')))}, attributed at {html.escape(str(s.get('layer')))}</div>")
    return (
        f"<style>{CARD_CSS}</style><div class='ig-card'>{top if header else ''}"
        f"<p class='ig-words'>{' '.join(words)}</p>{_legend(ex.target)}{how if header else ''}"
        f"<details><summary class='ig-meta'>tokens</summary><table class='ig-tok'>"
        f"<tr><th>token</th><th>attribution</th></tr>{rows}</table></details></div>"
    )


def _legend(label: str) -> str:
    (r, g, b), (R, G, B) = POSITIVE, NEGATIVE
    return (f"<div class='ig-meta ig-legend'><span style='background:rgba({r},{g},{b},.8)'>orange: toward "
            f"{html.escape(label)}</span><span style='background:rgba({R},{G},{B},.8)'>blue: away from it</span>"
            "intensity = |attribution| relative to the text's largest</div>")


def text_html_page(explanations: Sequence["TextExplanation"], title: str = "integrad: text attributions") -> str:
    """A self-contained HTML page (no external resources) for several explanations."""
    body = "".join(text_html_fragment(ex) for ex in explanations)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_PAGE_CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def text_rich(ex: "TextExplanation"):
    """A rich renderable: coloured words, then the prediction and the completeness gap."""
    from rich.console import Group
    from rich.text import Text

    scale = _scale(ex.words)
    line = Text()
    for w in ex.words:
        (r, g, b), a = _colour(w.attribution, scale)
        # blend toward white so faint scores stay readable
        bg = tuple(int(255 - a * (255 - c)) for c in (r, g, b))
        line.append(w.text, style=f"black on rgb({bg[0]},{bg[1]},{bg[2]})")
        line.append(" ")
    head = Text.assemble(("prediction: ", "dim"), (ex.label, "bold"), f" ({ex.probability:.1%})",
                         ("   explained label: ", "dim"), (ex.target, "bold"))
    # the numbers and signs in plain text too, so piped output (no colours) still carries them
    top = sorted(ex.words, key=lambda w: -abs(w.attribution))[:_TOP_WORDS]
    numbers = Text("largest: " + ", ".join(f"{w.text} {w.attribution:+.3f}" for w in top), style="dim")
    return Group(head, line, numbers, Text(_gap(ex), style="dim"))


_TOP_WORDS = 8
