"""Image heatmaps a reader can trust: labelled colour bars, stated clipping, colour-blind-safe palettes."""

import html
import io
import re

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")

from integrad.image import explain_image  # noqa: E402
from integrad.viz import colour_scale, image_html_fragment, overlay, plot_baselines, plot_overlay  # noqa: E402

# Machado, Oliveira & Fernandes 2009, severity 1.0, acting on linear RGB
CVD = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
}
RED_GREEN = {"RdYlGn", "RdGn", "PiYG", "PRGn", "brg", "jet", "hsv", "rainbow", "gist_rainbow", "nipy_spectral"}


def seen_as(rgb, deficiency):
    """sRGB colour in [0, 1] as someone with the deficiency sees it."""
    c = np.asarray(rgb, dtype=np.float64)[:3]
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    out = np.clip(np.array(CVD[deficiency]) @ lin, 0.0, 1.0)
    return np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055)


def ends_stay_apart(low, high, min_distance=0.4):
    """Both ends of a diverging scale stay distinct (sRGB distance) under each common deficiency."""
    return all(np.linalg.norm(seen_as(low, d) - seen_as(high, d)) > min_distance for d in CVD)


def tiny_model():
    """(B, 3, 32, 32) -> (B, 10) logits, seeded, float64."""
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.AdaptiveAvgPool2d(4),
                              torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return net.double().eval()


@pytest.fixture(scope="module")
def ex():
    image = torch.rand((3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return explain_image(tiny_model(), image, n_steps=8, class_names=[f"class {i}" for i in range(10)])


def drawn(fig):
    """Lay the figure out (as saving does) and return (image panels, colour bar axes)."""
    fig.savefig(io.BytesIO(), format="png", dpi=50)
    bars = [ax for ax in fig.axes if ax.get_xlabel()]
    return [ax for ax in fig.axes if ax not in bars], bars


def bar_cmap(cax):
    from matplotlib.collections import QuadMesh

    return next(c.get_cmap() for c in cax.collections if isinstance(c, QuadMesh))  # the bar's colours


def test_png_shows_image_and_overlay_at_one_size_and_a_bar_that_states_the_clipping(ex, tmp_path):
    fig = plot_overlay(ex.image, ex.pixel_map(), title=ex.accuracy, output="the logit of 'class 3'")
    panels, bars = drawn(fig)
    assert len(panels) == 2 and len(bars) == 1
    (w0, h0), (w1, h1) = (p.get_position().size for p in panels)
    assert w0 == pytest.approx(w1, rel=1e-3) and h0 == pytest.approx(h1, rel=1e-3)
    label = " ".join(bars[0].get_xlabel().split())
    scale = np.percentile(np.abs(ex.pixel_map()), 99)
    assert "attribution to the logit of 'class 3', per pixel (signed sum over channels)" in label
    assert f"clipped at the 99th percentile of |attribution| = {scale:.3g}" in label
    assert re.search(r"\b1[01] of 1024 pixels saturate", label)  # 1% of the pixels, give or take a tie
    assert fig._suptitle.get_text() == ex.accuracy
    ex.to_png(tmp_path / "why.png")
    assert (tmp_path / "why.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_signed_view_has_a_symmetric_bar_in_a_colour_blind_safe_diverging_palette(ex):
    _, (cax,) = drawn(plot_overlay(ex.image, ex.pixel_map()))
    lo, hi = cax.get_xlim()
    assert lo == pytest.approx(-hi) and hi > 0
    cmap = bar_cmap(cax)
    assert cmap.name not in RED_GREEN and cmap.name == "blue-grey-orange"
    assert ends_stay_apart(cmap(0.0), cmap(1.0))
    # the check is not vacuous: the old green/red pair collapses for deuteranopes
    assert not ends_stay_apart(np.array((205, 38, 38)) / 255, np.array((22, 150, 60)) / 255)
    assert [t.get_text() for t in cax.get_xticklabels()][1] == "0"


@pytest.mark.parametrize("reduce, sign",
                         [("sum", "positive"), ("sum", "negative"), ("abs", "both"), ("l2", "positive")])
def test_positive_negative_and_magnitude_views_have_a_sequential_bar_from_zero(ex, reduce, sign):
    m = ex.pixel_map(reduce)
    _, (cax,) = drawn(plot_overlay(ex.image, m, reduce=reduce, sign=sign))
    lo, hi = cax.get_xlim()
    part = {"positive": np.maximum(m, 0), "negative": np.maximum(-m, 0), "both": m}[sign]
    assert lo == 0.0 and hi == pytest.approx(np.percentile(part, 99))
    cmap = bar_cmap(cax)
    np.testing.assert_allclose(cmap(0.0)[:3], (0.5, 0.5, 0.5), atol=1e-6)  # no attribution: the photo's grey
    steps = np.array([cmap(t)[:3] for t in np.linspace(0, 1, 11)])
    assert (np.diff(np.linalg.norm(steps - 0.5, axis=1)) > 0).all()  # one way only: sequential
    label = " ".join(cax.get_xlabel().split())
    assert ("|attribution|" in label) == (reduce != "sum") and "99th percentile" in label


def test_the_bar_shows_the_colours_the_overlay_paints(ex):
    grey = np.full((1, 3, 3), 0.5)  # (H, W, RGB)
    m = np.array([[-2.0, 0.0, 2.0]])
    painted = overlay(grey, m, clip=100) / 255.0
    cmap = bar_cmap(drawn(plot_overlay(grey, m, clip=100))[1][0])
    for column, t in enumerate((0.0, 0.5, 1.0)):
        np.testing.assert_allclose(painted[0, column], cmap(t)[:3], atol=1 / 255)


def test_clipping_note_counts_the_saturated_pixels():
    m = np.arange(100.0).reshape(10, 10)
    assert colour_scale(m, clip=99).note == ("clipped at the 99th percentile of |attribution| = 98; "
                                             "1 of 100 pixels saturate")
    assert colour_scale(m, clip=90, sign="positive").saturated == 10
    assert colour_scale(m, clip=100).note == "scaled to the maximum of |attribution| = 99 (no clipping)"
    assert colour_scale(np.zeros((2, 2))).note == "|attribution| is zero everywhere: no colour"
    spike = np.zeros((20, 10))
    spike[0, 0] = 3.0
    assert colour_scale(spike, sign="positive").note.startswith("scaled to the maximum of the positive part = 3 "
                                                                "(its 99th percentile is 0)")
    assert colour_scale(m, clip=99.5).note.startswith("clipped at the 99.5th percentile")


def test_legend_words_name_the_colours_painted():
    s = colour_scale(np.array([[-1.0, 1.0]]), alpha=1.0)
    low, high = (np.round(np.array(c) * 255).astype(int) for c in (s.stops[0], s.stops[-1]))
    assert "orange raises it, blue lowers it" in s.label
    assert high[0] > high[2] and low[2] > low[0]  # the high end is orange (red over blue), the low end blue
    purple = np.round(np.array(colour_scale(np.ones((2, 2)), reduce="abs", alpha=1.0).stops[-1]) * 255)
    assert purple[0] > purple[1] and purple[2] > purple[1]  # red and blue over green


def test_magnitude_maps_refuse_negative_values_and_the_negative_view():
    with pytest.raises(ValueError, match=r"pixels: a map reduced with 'abs' is a magnitude, >= 0; got values down"):
        overlay(np.zeros((1, 2)), np.array([[-1.0, 1.0]]), reduce="abs")
    with pytest.raises(ValueError, match=r"sign: a magnitude map \(reduce='l2'\) has no negative part"):
        colour_scale(np.ones((2, 2)), reduce="l2", sign="negative")
    with pytest.raises(ValueError, match="reduce: expected one of sum, abs, l2; got 'max'"):
        colour_scale(np.ones((2, 2)), reduce="max")
    with pytest.raises(ValueError, match=r"alpha: expected an opacity in \[0, 1\]; got 2"):
        colour_scale(np.ones((2, 2)), alpha=2)


def test_html_fragment_carries_its_style_legend_and_accuracy_line(ex):
    page = ex._repr_html_()
    assert page.startswith("<style>") and ".ig-card{" in page and ".ig-strip{" in page
    assert page.count("<img ") == 2 and "linear-gradient(to right," in page
    s = colour_scale(ex.pixel_map())
    assert f"≤ {-s.hi:+.3g}" in page and f"≥ {s.hi:+.3g}" in page  # the ends, clipped values beyond them
    assert "clipped at the 99th percentile of |attribution|" in page and "orange raises it, blue lowers it" in page
    assert html.escape(ex.accuracy) in page and html.escape(ex.target_name) in page
    assert not re.search(r"\b(green|red)\b", page)
    bare = image_html_fragment(ex, header=False)
    assert "<style>" in bare and ex.accuracy not in bare and "<table" not in bare


def test_baseline_panels_each_get_a_labelled_bar(ex):
    maps = {"IG": ex.pixel_map("abs"), "other": 2 * ex.pixel_map("abs")}
    panels, bars = drawn(plot_baselines(ex.image, maps, reduce="abs"))
    assert len(panels) == 3 and len(bars) == 2
    assert len({tuple(np.round(p.get_position().size, 4)) for p in panels}) == 1
    assert bars[1].get_xlim()[1] == pytest.approx(2 * bars[0].get_xlim()[1])
    assert all("99th percentile of the map" in " ".join(b.get_xlabel().split()) for b in bars)

