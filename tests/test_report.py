"""The HTML report: self-contained, escaped, and it renders in a real browser."""

import re

import numpy as np

from integrad.report import Section, convergence, convergence_svg, png_data_uri, report_page
from browser import need_browser, render


def small_report():
    img = np.zeros((32, 48, 3), dtype=np.uint8)
    img[:, :24, 0] = 200
    body = f"<img alt='heatmap' src='{png_data_uri(img)}'>"
    return report_page([
        Section("image <b>", "cat (80.0%)", body, delta=0.01, change=1.5, settings={"method": "gausslegendre"},
                curve=[(2, 1.2), (4, 1.45), (8, 1.49), (16, 1.5)]),
        Section("text", "POSITIVE", "<p>words</p>", delta=-0.2, change=1.0, settings={"n_steps": 50}),
    ], title="a <title>")


def test_report_is_self_contained_and_escaped():
    page = small_report()
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page)
    assert "http" not in page
    assert "a &lt;title&gt;" in page and "image &lt;b&gt;" in page
    assert "data:image/png;base64," in page and "<svg" in page
    assert "gap-warn" in page  # a 20% gap is flagged, not hidden


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
