"""What a language model wrote, token by token: pick a generated token, see the prompt coloured by it.

The page shows the source (prompt) tokens in one line and the generated tokens below.
Hovering, focusing (Tab, arrow keys) or clicking/tapping a generated token colours the
source tokens by their attribution to that token's score (orange raised it, blue lowered it,
the scale symmetric around 0 and set by that token's largest |attribution|), and states its
score, F(baseline), completeness gap and estimated error; a click or Enter keeps it selected.

Tokens are shown one by one, as the model read them (the heatmap is per token, not per word):
subword markers are removed (WordPiece ``##``, SentencePiece ``▁``, byte-level BPE ``Ġ``),
a space stands between words and none between the pieces of one, so the line reads as
text; newlines and tabs show as ``↵`` and ``⇥``; special tokens are grey.

Everything is escaped. The tokens are in the markup (``html.escape``), the numbers travel as
the explanation's ``to_dict()`` in a ``<script type="application/json">`` with ``<``, ``>`` and
``&`` written as ``\\u003c``..., so no token can close the script or open a comment, and the
script sets text only through ``textContent``. Nothing is loaded from outside the page.
"""

from __future__ import annotations

import html
import json
import math
import uuid
from typing import TYPE_CHECKING, Any, Sequence

from ._text import _PAGE_CSS, CARD_CSS, NEGATIVE, POSITIVE

if TYPE_CHECKING:  # pragma: no cover
    from ..generation import GenerationExplanation
    from ..report import Section

_MARKS = ("▁", "Ġ")
_BYTE_LEVEL = str.maketrans({"Ġ": " ", "▁": " ", "Ċ": "\n", "ĉ": "\t"})
_VISIBLE = str.maketrans({"\n": "↵", "\t": "⇥", "\r": "␍"})
TOP_K = 3

_CSS = """
.ig-gen .ig-line{font-size:1.15em;line-height:2.2em;margin:.2em 0 .6em}
.ig-gen .ig-w{white-space:pre;margin:0}
.ig-gen .ig-special{color:#888;border:1px dashed #bbb}
.ig-gen .ig-t{cursor:pointer;border:1px solid #ccc;background:#f6f6f6}
.ig-gen .ig-t:focus{outline:2px solid #1f5fbf;outline-offset:1px}
.ig-gen .ig-t.ig-on{border-color:#222;background:#fff}
.ig-gen .ig-t[aria-pressed=true]{text-decoration:underline;font-weight:600}
.ig-gen>.ig-meta{margin-top:.3em}
.ig-gen .ig-info{min-height:1.4em;margin:.4em 0}
.ig-gen .ig-scroll{overflow-x:auto}
"""

# Plain ES5, one closure per fragment: several fragments can share a notebook page.
_SCRIPT = """(function(){
var root=document.getElementById(%(id)s);if(!root||root.getAttribute('data-ready'))return;
root.setAttribute('data-ready','1');
var d=JSON.parse(root.querySelector('script.ig-data').textContent),POS=%(pos)s,NEG=%(neg)s,score=%(score)s;
var src=root.querySelectorAll('.ig-s'),gen=root.querySelectorAll('.ig-t'),info=root.querySelector('.ig-info'),
 scale=root.querySelector('.ig-scale'),pinned=0;
function num(x,p){return x===null||x===undefined?'n/a':x.toFixed(p);}
function sig(x){return x===null||x===undefined?'n/a':(x>=0?'+':'')+x.toExponential(2);}
function pct(x){return x<5e-5?'< 0.01%%':(100*x).toFixed(2)+'%%';}
function show(t){
 var row=d.matrix[t],m=0,s,sum=0;
 for(s=0;s<row.length;s++){if(row[s]!==null){sum+=row[s];if(!d.source[s].special)m=Math.max(m,Math.abs(row[s]));}}
 for(s=0;s<src.length;s++){
  var v=row[s],el=src[s];
  el.title=v===null?'':(v>=0?'+':'')+v.toFixed(4);
  if(d.source[s].special||v===null||m===0){el.style.background='';continue;}
  var c=v>=0?POS:NEG;el.style.background='rgba('+c.join(',')+','+Math.min(Math.abs(v)/m,1).toFixed(2)+')';
 }
 for(s=0;s<gen.length;s++)gen[s].classList.toggle('ig-on',s===t);
 var fx=d.f_x[t],fb=d.f_baseline[t],dl=d.delta[t],ch=fx===null||fb===null?0:fx-fb,
  er=d.error===null?null:d.error[t];
 info.textContent='\\u201c'+d.generated[t].text+'\\u201d (token '+(t+1)+' of '+gen.length+', id '+
  d.generated[t].id+'): '+score+' = '+num(fx,4)+' \\u00b7 F(baseline) = '+num(fb,4)+
  ' \\u00b7 \\u03a3 attributions = '+sum.toFixed(4)+' \\u00b7 completeness gap \\u03b4 = '+sig(dl)+
  (ch&&dl!==null?' ('+pct(Math.abs(dl/ch))+' of |F(x) \\u2212 F(baseline)|)':'')+' \\u00b7 '+
  (er===null?'no error estimate':'estimated error '+pct(er));
 scale.textContent='\\u00b1'+(m?m.toPrecision(3):'0');
}
function pin(t){pinned=t;for(var i=0;i<gen.length;i++)gen[i].setAttribute('aria-pressed',i===t?'true':'false');show(t);}
Array.prototype.forEach.call(gen,function(el,t){
 el.addEventListener('mouseenter',function(){show(t);});
 el.addEventListener('mouseleave',function(){show(pinned);});
 el.addEventListener('focus',function(){show(t);});
 el.addEventListener('blur',function(){show(pinned);});
 el.addEventListener('click',function(){pin(t);});
 el.addEventListener('keydown',function(e){
  if(e.key==='Enter'||e.key===' '){e.preventDefault();pin(t);}
  else if(e.key==='ArrowRight'&&t+1<gen.length){e.preventDefault();gen[t+1].focus();}
  else if(e.key==='ArrowLeft'&&t>0){e.preventDefault();gen[t-1].focus();}
 });
});
if(gen.length)pin(0);
})();"""


def _pieces(tokens: Sequence[str], marked: bool, special: Sequence[bool] | None = None) -> list[tuple[str, bool]]:
    """(text to show, starts a word) per token: markers removed, whitespace made visible.

    ``marked``: the tokenizer marks word starts (``▁``, ``Ġ``); else ``##`` marks continuations.
    Decoded text (generated tokens) has no markers, and a leading space starts a word.
    """
    out = []
    for i, tok in enumerate(tokens):
        if special is not None and special[i]:
            out.append((tok, True))
            continue
        if not marked and tok.startswith("##") and len(tok) > 2:
            out.append((tok[2:].translate(_VISIBLE), False))
            continue
        text = tok.translate(_BYTE_LEVEL) if marked else tok
        new = not marked or text[:1].isspace() or not out
        shown = (text.strip(" ") or text).translate(_VISIBLE)
        out.append(((shown if shown.strip() else "␣" * len(shown)) or "∅", new))
    return out


def _joined(pieces: list[tuple[str, bool]]) -> str:
    """The pieces as one line of text: a space before each word."""
    return "".join((" " if new and i else "") + text for i, (text, new) in enumerate(pieces))


def _is_marked(ex: "GenerationExplanation") -> bool:
    return any(t.startswith(_MARKS) for t, sp in zip(ex.source, ex.special) if not sp)


def _score_name(ex: "GenerationExplanation") -> str:
    """``log p`` or ``p``: a log-probability is never above 0, a probability never below."""
    return "log p" if all(float(v) <= 0 for v in ex.f_x if v == v) else "p"


def _data_json(data: Any) -> str:
    """JSON that cannot end its ``<script>`` element or open a comment inside it."""
    text = json.dumps(data, default=str, allow_nan=False, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _line(pieces: list[tuple[str, bool]], special: Sequence[bool], cls: str, attr: str) -> str:
    # a space before each word, none inside one: the line reads (and wraps, and copies) as text
    spans = []
    for i, ((text, new), sp) in enumerate(zip(pieces, special)):
        keys = " tabindex='0' role='button' aria-pressed='false'" if cls == "ig-t" else ""
        spans.append(f"{' ' if new and i else ''}<span class='ig-w {cls}{' ig-special' if sp else ''}' "
                     f"data-{attr}='{i}'{keys}>{html.escape(text)}</span>")
    return "".join(spans)


def _fmt(x: float, spec: str) -> str:
    return format(x, spec) if math.isfinite(x) else "n/a"


def _table(ex: "GenerationExplanation", src: list[tuple[str, bool]], gen: list[tuple[str, bool]],
           score: str) -> str:
    """Every number, for readers without JavaScript: one row per generated token."""
    head = "".join(f"<th>{html.escape(t)}</th>" for t, _ in src)
    rows = []
    for t, (text, _) in enumerate(gen):
        err = "" if ex.error is None else _fmt(float(ex.error[t]), ".2%")
        cells = "".join(f"<td>{_fmt(float(v), '+.3f')}</td>" for v in ex.matrix[t])
        rows.append(f"<tr><th style='text-align:left'>{html.escape(text)}</th>"
                    f"<td>{_fmt(float(ex.f_x[t]), '.4f')}</td><td>{_fmt(float(ex.f_baseline[t]), '.4f')}</td>"
                    f"<td>{_fmt(float(ex.delta[t]), '+.2e')}</td><td>{err}</td>{cells}</tr>")
    return (f"<details><summary class='ig-meta'>all attributions (rows: generated tokens; columns: source tokens)"
            f"</summary><div class='ig-scroll'><table class='ig-tok'><tr><th>generated</th><th>{score}</th>"
            f"<th>F(baseline)</th><th>δ</th><th>error</th>{head}</tr>{''.join(rows)}</table></div></details>")


def generation_html_fragment(ex: "GenerationExplanation", *, header: bool = True) -> str:
    """One generation explanation as an interactive HTML fragment with its own style and script.

    With ``header`` also the generated text, the largest gap and the settings (a report that
    states those itself passes ``header=False``).
    """
    marked = _is_marked(ex)
    src = _pieces(ex.source, marked, ex.special)
    gen = _pieces(ex.generated, marked)
    score = _score_name(ex)
    root = f"ig-gen-{uuid.uuid4().hex[:12]}"
    (r, g, b), (R, G, B) = POSITIVE, NEGATIVE
    legend = (f"<div class='ig-meta ig-legend'><span style='background:rgba({r},{g},{b},.8)'>orange: raised "
              f"{score} of the selected token</span><span style='background:rgba({R},{G},{B},.8)'>blue: lowered "
              f"it</span><span class='ig-special'>grey: special, kept in the baseline</span>intensity = "
              f"|attribution| relative to the largest for that token, <b class='ig-scale'>±0</b></div>")
    s = ex.result.settings
    how = "" if not header else (
        f"<div class='ig-meta'>{html.escape(str(s.get('method')))}, "
        + html.escape(f"rtol {s.get('rtol')}" if s.get("rtol") is not None else f"{s.get('n_steps')} steps")
        + f", attributed at {html.escape(str(s.get('layer')))}</div>")
    top = "" if not header else (
        f"<div class='ig-meta'>generated: <b>{html.escape(_joined(gen))}</b> · largest completeness gap "
        f"{html.escape(_largest_gap(ex))}</div>")
    script = _SCRIPT % {"id": json.dumps(root), "pos": json.dumps(list(POSITIVE)), "neg": json.dumps(list(NEGATIVE)),
                        "score": json.dumps(score)}
    return (
        f"<style>{CARD_CSS}{_CSS}</style><div class='ig-card ig-gen' id='{root}'>{top}"
        f"<div class='ig-meta'>source tokens</div><p class='ig-line'>{_line(src, ex.special, 'ig-s', 's')}</p>"
        f"<div class='ig-meta'>generated tokens: hover, focus or click one</div>"
        f"<p class='ig-line'>{_line(gen, [False] * len(gen), 'ig-t', 't')}</p>"
        f"<div class='ig-meta ig-info' aria-live='polite'>each generated token's {score}, attributed to the "
        f"source tokens (needs JavaScript; the table below has every number)</div>{legend}{how}"
        f"{_table(ex, src, gen, score)}"
        f"<script type='application/json' class='ig-data'>{_data_json(ex.to_dict())}</script>"
        f"<script>{script}</script></div>"
    )


def generation_html_page(explanations: Sequence["GenerationExplanation"],
                         title: str = "integrad: what the model wrote, token by token") -> str:
    """A self-contained HTML page (no external resources) for several explanations."""
    body = "".join(f"<p class='ig-meta'>prompt: {html.escape(ex.prompt)}</p>{generation_html_fragment(ex)}"
                   for ex in explanations)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_PAGE_CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _worst(ex: "GenerationExplanation") -> int:
    """The target with the largest relative gap (NaN, a zero change, counts as the largest)."""
    rel = [float(v) if v == v else math.inf for v in ex.relative_delta]
    return max(range(len(rel)), key=rel.__getitem__) if rel else 0


def _largest_gap(ex: "GenerationExplanation") -> str:
    if not ex.generated:
        return "n/a"
    t = _worst(ex)
    rel = float(ex.relative_delta[t])
    return (f"δ = {float(ex.delta[t]):+.2e} ({rel:.2%} of |F(x) − F(baseline)|) at {ex.generated[t]!r}"
            if math.isfinite(rel) else f"δ = {float(ex.delta[t]):+.2e} at {ex.generated[t]!r}")


def generation_rich(ex: "GenerationExplanation"):
    """A rich renderable: per generated token its score, its top prompt tokens (signed) and its gap."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    marked = _is_marked(ex)
    src = [t for t, _ in _pieces(ex.source, marked, ex.special)]
    gen = _pieces(ex.generated, marked)
    score = _score_name(ex)
    pos, neg = (f"rgb({c[0]},{c[1]},{c[2]})" for c in (POSITIVE, NEGATIVE))
    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (("#", "right"), ("generated", "left"), (score, "right"),
                          (f"top {TOP_K} source tokens", "left"), ("gap δ", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    has_error = ex.error is not None
    if has_error:
        table.add_column("error", justify="right")
    for t, text in enumerate(gen):
        row = ex.matrix[t]
        order = [i for i in row.abs().argsort(descending=True).tolist() if float(row[i]) != 0][:TOP_K]
        top = Text()
        for k, i in enumerate(order):
            v = float(row[i])
            top.append(", " if k else "")
            top.append(src[i], style="bold")
            top.append(f" {v:+.3f}", style=pos if v >= 0 else neg)
        rel = float(ex.relative_delta[t])
        gap = f"{float(ex.delta[t]):+.1e}" + (f" ({rel:.2%})" if math.isfinite(rel) else "")
        cells = [str(t + 1), Text(text[0]), _fmt(float(ex.f_x[t]), ".3f"), top, gap]
        table.add_row(*cells, *([_fmt(float(ex.error[t]), ".2%")] if has_error else []))
    head = Text.assemble(("generated: ", "dim"), (_joined(gen), "bold"),
                         (f"   ({len(ex.generated)} tokens from {len(ex.source)} source tokens)", "dim"))
    notes = [f"largest completeness gap: {_largest_gap(ex)}"]
    if has_error:
        notes.append(f"largest estimated error: {float(ex.error.max()):.2%}")
    return Group(head, table, Text("; ".join(notes), style="dim"))


def generation_section(ex: "GenerationExplanation", title: str, *, curve: Sequence[tuple[int, float]] = (),
                       settings: dict | None = None) -> "Section":
    """A report section (:class:`integrad.report.Section`) for one generation explanation.

    The section's verdict is that of its least accurate token: the one with the largest
    estimated error (without estimates, the one with the largest relative gap).
    """
    from ..report import Section

    errors = [] if ex.error is None else [float(e) if e == e else math.inf for e in ex.error]
    t = max(range(len(errors)), key=errors.__getitem__) if errors else _worst(ex)
    error = float(ex.error[t]) if errors else float("nan")
    res = ex.result
    shown = {k: v for k, v in res.settings.items() if v is not None} if settings is None else settings
    body = (f"<p class='meta'>prompt: {html.escape(ex.prompt)}</p>" + generation_html_fragment(ex, header=False))
    n = res.settings.get("n_steps")
    n = float(res.n_evals.double().mean()) if n is None else float(n)
    gen = _pieces(ex.generated, _is_marked(ex))
    return Section(title, f"“{_joined(gen)}” (verdict of its least accurate token, “{gen[t][0]}”)", body,
                   delta=float(ex.delta[t]), change=float(ex.f_x[t] - ex.f_baseline[t]), error=error,
                   settings=shown, curve=tuple(curve), n_steps=n)
