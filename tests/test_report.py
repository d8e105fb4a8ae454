"""The HTML report: self-contained, escaped, one verdict per section, and it renders in a real browser."""

import html
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from integrad.report import Section, convergence, convergence_svg, png_data_uri, report_page
from browser import need_browser, render

BLOCKS = {"p", "div", "h1", "h2", "h3", "section", "tr", "caption", "figcaption", "li", "summary", "table", "figure",
          "details", "br", "svg", "text"}


class Lines(HTMLParser):
    """The page as a reader sees it: one line per block element, and the blocks that hold no text."""

    def __init__(self):
        super().__init__()
        self.lines, self.empty, self._open, self._skip = [""], [], [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script", "title"):  # not shown on the page
            self._skip += 1
        if tag in BLOCKS:
            self.lines.append("")
        self._open.append([tag, len(self.lines), tag == "img"])

    def handle_endtag(self, tag):
        if tag in ("style", "script", "title"):
            self._skip -= 1
        if tag in BLOCKS:
            self.lines.append("")
        while self._open:
            name, start, content = self._open.pop()
            if self._open and content:
                self._open[-1][2] = True
            if name == tag:
                if tag in ("p", "caption", "figcaption", "h2", "summary") and not content:
                    self.empty.append(tag)
                break

    def handle_startendtag(self, tag, attrs):
        if self._open:
            self._open[-1][2] = True  # an <img/>, <circle/>: content

    def handle_data(self, data):
        if self._skip or not data.strip():
            return
        self.lines[-1] += " " + " ".join(data.split())
        for entry in self._open:
            entry[2] = True


def read(page):
    parser = Lines()
    parser.feed(page)
    return [line.strip() for line in parser.lines if line.strip()], parser.empty


def repeated(lines):
    return [a for a, b in zip(lines, lines[1:]) if a == b]


def small_report():
    img = np.zeros((32, 48, 3), dtype=np.uint8)
    img[:, :24, 0] = 200
    body = f"<img alt='heatmap' src='{png_data_uri(img)}'>"
    return report_page([
        Section("image <b>", "cat (80.0%)", body, delta=0.01, change=1.5, settings={"method": "gausslegendre"},
                curve=[(2, 1.2), (4, 1.45), (8, 1.49), (16, 1.5)], n_steps=16, error=0.004),
        Section("text", "POSITIVE", "<p>words</p>", delta=-0.2, change=1.0, settings={"n_steps": 50}),
    ], title="a <title>")


def test_report_is_self_contained_and_escaped():
    page = small_report()
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page)
    assert "http" not in page
    assert "a &lt;title&gt;" in page and "image &lt;b&gt;" in page
    assert "data:image/png;base64," in page and "<svg" in page
    assert "verdict-warn" in page  # a 20% gap is flagged, not hidden
    assert "verdict-ok" in page  # the image section: estimated error 0.4%


def test_convergence_curve_reaches_the_change():
    import torch

    f = lambda z: torch.sin(z).sum(1)
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    curve = convergence(f, x, ns=(1, 2, 4, 8))
    assert [n for n, _ in curve] == [1, 2, 4, 8]
    assert abs(curve[-1][1] - (np.sin(1.0) + np.sin(2.0))) < 1e-10
    assert convergence_svg(curve, 1.0).count("<circle") == 4


def test_report_renders_in_headless_chromium(tmp_path):
    need_browser()
    page = tmp_path / "report.html"
    page.write_text(small_report(), encoding="utf-8")
    state = render(page, tmp_path / "report.png", tmp_path / "profile")
    assert state["images"] and all(ok and width > 0 for ok, width, _ in state["images"]), state["images"]
    assert [m for m in state["console"] if m["level"] in ("SEVERE", "WARNING")] == []
    assert not [r for r in state["resources"] if not r.startswith("data:")]
    assert state["svgs"] == 1 and (tmp_path / "report.png").stat().st_size > 1000


def test_demo_report_renders_in_headless_chromium(tmp_path):
    # The real demo: embedded models, one self-contained page, checked in a real browser.
    need_browser()
    from integrad.cli.demo import build

    page = build(tmp_path / "demo.html", lambda *a, **k: None)
    text = page.read_text(encoding="utf-8")
    assert "http" not in text.replace("http-equiv", "")
    state = render(page, tmp_path / "demo.png", tmp_path / "profile")
    assert len(state["images"]) >= 1 and all(ok and width > 0 for ok, width, _ in state["images"]), state["images"]
    assert [m for m in state["console"] if m["level"] in ("SEVERE", "WARNING")] == []
    assert not [r for r in state["resources"] if not r.startswith("data:")]
    assert state["svgs"] >= 2  # a convergence plot per section that has one
    lines, empty = read(text)
    assert empty == [] and repeated(lines) == []
    assert text.count("used: n = ") == state["svgs"]  # every plot marks the steps its explanation used


def test_verdict_follows_the_error_estimate_not_the_gap():
    tiny_gap = dict(delta=1e-6, change=1.0)
    bad = report_page([Section("s", "cat (80.0%)", "<p>map</p>", **tiny_gap, error=0.05)])
    assert "class='verdict-warn'" in bad and "class='verdict-ok'" not in bad
    assert "estimated error 5.00% (more than 1%)" in bad and "completeness gap δ = +1e-06" in bad  # both shown
    good = report_page([Section("s", "cat (80.0%)", "<p>map</p>", delta=0.03, change=1.0, error=0.002)])
    assert "class='verdict-ok'" in good and "estimated error 0.20% (within 1%)" in good and "3.00% of |F(x)" in good


def test_without_an_estimate_the_verdict_is_the_gap_and_says_so():
    page = report_page([Section("s", "cat", "<p>map</p>", delta=0.2, change=1.0),
                        Section("t", "dog", "<p>map</p>", delta=1e-4, change=1.0)])
    assert page.count("no error estimate") == 2
    assert "⚠ no error estimate; completeness gap 20.00% (more than 1%)" in page
    assert "✓ no error estimate; completeness gap 0.01% (within 1%)" in page


def test_convergence_plot_marks_the_steps_used_with_the_verdicts_estimate():
    curve = [(2, 1.2), (4, 1.45), (8, 1.49), (16, 1.5)]
    plain = convergence_svg(curve, 1.5)
    assert "used:" not in plain and plain.count("<circle") == 4
    svg = convergence_svg(curve, 1.5, n_steps=50, total=1.47, error=0.05)
    assert svg.count("<circle") == 5 and "used: n = 50, estimated error 5.00% (more than 1%)" in svg
    # the mark stands at log2(50) on the axis that now runs from 2 to 50 steps
    x = float(re.search(r"<line x1='([\d.]+)' x2='\1' y1", svg).group(1))
    assert x == pytest.approx(340 - 10, abs=0.1)
    x4 = float(re.search(r"<text x='([\d.]+)'[^>]*>4</text>", svg).group(1))
    assert x4 == pytest.approx(48 + (2 - 1) / (math.log2(50) - 1) * (340 - 58), abs=0.1)
    ok = convergence_svg(curve, 1.5, n_steps=16, total=1.5, error=0.001)
    assert "within 1%" in ok and "#176e2c" in ok and "#a15c00" not in ok


def test_report_has_no_empty_captions_and_no_repeated_lines():
    sections = [Section("text", "POSITIVE (90.0%)", "<p>words</p>", delta=1e-3, change=1.0, error=0.002,
                        settings={"n_steps": 50}, curve=[(2, 0.9), (4, 1.0)], n_steps=50),
                Section("no curve, no settings", "NEGATIVE (60.0%)", "<p>more words</p>", delta=1e-3, change=1.0)]
    lines, empty = read(report_page(sections, title="t"))
    assert empty == [] and repeated(lines) == []
    assert not any(line.startswith("convergence") for line in lines[lines.index("no curve, no settings"):])
    # the parser sees what it should: an empty caption and a repeated line are caught
    assert read("<p></p><figcaption> </figcaption>")[1] == ["p", "figcaption"]
    assert repeated(read("<p>a</p><p>a</p>")[0]) == ["a"]


def test_section_from_an_image_explanation_carries_error_steps_and_styled_fragments():
    torch = pytest.importorskip("torch")
    from integrad.image import explain_image
    from integrad.viz import image_html_fragment

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.AdaptiveAvgPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(16, 10)).double().eval()
    image = torch.rand((3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fixed = explain_image(net, image, n_steps=8)
    adaptive = explain_image(net, image, rtol=0.01)
    a = Section.from_explanation(fixed, "fixed", image_html_fragment(fixed, header=False))
    b = Section.from_explanation(adaptive, "rtol", image_html_fragment(adaptive, header=False))
    assert a.n_steps == 8 and a.error == fixed.error and a.change == pytest.approx(fixed.f_x - fixed.f_baseline)
    assert b.n_steps == float(adaptive.result.n_evals.double().mean()) and b.settings["rtol"] == 0.01
    assert all(s.body_html.startswith("<style>") and ".ig-card{" in s.body_html for s in (a, b))
    page = report_page([a, b])
    lines, empty = read(page)
    assert empty == [] and repeated(lines) == []
    assert html.escape(fixed.accuracy) not in page  # the section states the verdict once, in its own words
    assert sum("estimated error" in line for line in lines) == 2


def test_text_fragment_ships_its_style_and_a_legend_in_the_colours_used():
    torch = pytest.importorskip("torch")
    from integrad import Attribution
    from integrad.text import Span, TextExplanation
    from integrad.viz import text_html_fragment

    one = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    res = Attribution(torch.zeros(1, 4, 2), delta=one(1e-4), f_x=one(1.5), f_baseline=one(0.2),
                      n_evals=torch.tensor([8]), settings={"method": "gausslegendre", "n_steps": 8},
                      error=one(0.003))
    words = [Span("a", 0.1), Span("good", 0.9), Span("film", -0.4)]
    ex = TextExplanation(text="a good film", label="POSITIVE", probability=0.8, target="POSITIVE",
                         tokens=[Span("[CLS]", 0.0, True), *words, Span("[SEP]", 0.0, True)], words=words, result=res)
    for fragment in (ex._repr_html_(), text_html_fragment(ex, header=False)):
        assert fragment.startswith("<style>") and ".ig-w{" in fragment and ".ig-card{" in fragment
        assert "orange: toward POSITIVE" in fragment and "blue: away from it" in fragment
        assert "rgba(230,97,1,1.00)" in fragment and "rgba(67,147,195,0.44)" in fragment  # good: orange, film: blue
        assert not re.search(r"\b(green|red)\b", fragment)
    assert "prediction:" in ex._repr_html_() and "prediction:" not in text_html_fragment(ex, header=False)
