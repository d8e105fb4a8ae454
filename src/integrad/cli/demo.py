"""The demo: real models explained, printed, and gathered into one self-contained report."""

from __future__ import annotations

import html
import io
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..report import Section, png_data_uri, report_page

DEMO_TEXTS = [
    "I love you, but I also kind of dislike you",
    "A wonderful, moving film with a brilliant cast.",
    "The plot was dull and the acting was even worse.",
]
CURVE_STEPS = (2, 4, 8, 16, 32, 64)
SMOOTH_COPIES, SMOOTH_STEPS = 8, 16


def _settings(result) -> dict:
    keep = ("method", "n_steps", "rtol", "baseline", "target", "layer", "batch_size", "dtype")
    return {k: result.settings.get(k) for k in keep if result.settings.get(k) is not None}


def _curve(run: Callable[[int], float]) -> list[tuple[int, float]]:
    """Sum of attributions as the number of Gauss-Legendre steps grows."""
    return [(n, run(n)) for n in CURVE_STEPS]


def _figure_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return png_data_uri(buf.getvalue())


def text_sections(say: Callable) -> list[Section]:
    from ..text import explain_text, load_text_model
    from ..viz import text_html_fragment

    start = time.perf_counter()
    model, tok = load_text_model()
    say(f"[dim]loaded the embedded sentiment model (MiniLM-L6 encoder + IMDB-trained head) in "
        f"{time.perf_counter() - start:.1f} s[/]")
    start = time.perf_counter()
    explanations = explain_text(model, tok, DEMO_TEXTS)
    say(f"[dim]Integrated Gradients for {len(DEMO_TEXTS)} texts ({explanations[0].result.settings['n_steps']} "
        f"Gauss-Legendre steps, [PAD] baseline, "
        f"word embeddings) in {time.perf_counter() - start:.1f} s[/]\n")
    sections = []
    for i, ex in enumerate(explanations):
        say(ex)
        say("")
        curve = _curve(lambda n, t=ex.text: float(explain_text(model, tok, t, n_steps=n).result.total[0])) if i == 0 else ()
        # the section states the prediction, the verdict and the settings: the fragment need not repeat them
        sections.append(Section.from_explanation(ex, f"Text: “{ex.text}”", text_html_fragment(ex, header=False),
                                                 curve=curve, settings=_settings(ex.result)))
    return sections


def tabular_section(say: Callable) -> Section:
    from ..interactions import explain_interactions
    from ..models._tabular import load_tabular_model
    from ..tabular import explain_row

    model = load_tabular_model("german-credit")
    codes = explain_row(model, 0)
    say(f"German credit, row 0: {codes.label} (P = {codes.probability:.1%}); reasons toward: "
        + ", ".join(r.feature for r in codes.toward[:3]) + "; against: " + ", ".join(r.feature for r in codes.against[:3]))
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "reasons.png"
        codes.to_png(png)
        uri = png_data_uri(png.read_bytes())
    eg = explain_row(model, 0, method="expected_gradients", n_samples=1024)
    say(f"  Expected Gradients ({eg.baseline}): "
        + ", ".join(f"{r.feature} {r.attribution:+.3f} ± {r.stderr:.3f}" for r in eg.toward[:3]))
    pairs = explain_interactions(model, 0)
    gap = float(pairs.result.row_sum_gap.abs().max())
    say(f"  Integrated Hessians ({pairs.baseline}): strongest pair "
        + _strongest_pair(pairs) + f"; rows sum to IG within {gap:.1e}")
    body = (f"<img alt='reason codes for German credit row 0' src='{uri}' style='max-width:100%'>"
            + codes._repr_html_()
            + "<h3>Expected Gradients (Erion et al. 2021): every training row as a baseline, 1024 samples, "
              "each attribution ± its standard error</h3>" + eg._repr_html_()
            + "<h3>Integrated Hessians (Janizek, Sturmfels &amp; Lee 2021): which columns act together</h3>"
            + f"<p class='meta'>From {html.escape(pairs.baseline)}: the diagonal holds each column's main effect, "
              "the other cells the part of the row's column due to the other column (one-hot parts summed); each "
              f"row of the full matrix sums to that column's IG from the same baseline (largest difference "
              f"{gap:.1e}). The strongest pair: {html.escape(_strongest_pair(pairs))}.</p>"
            + f"<img alt='interactions of the strongest columns of German credit row 0' "
              f"src='{_figure_uri(pairs.figure())}' style='max-width:100%'>")
    curve = _curve(lambda n: float(explain_row(model, 0, n_steps=n).result.total.mean()))
    return Section.from_explanation(codes, "Tabular: German credit (Statlog), row 0 — reason codes", body,
                                    curve=curve, settings=_settings(codes.result))


def _strongest_pair(pairs) -> str:
    """The largest interaction off the diagonal, both cells added."""
    m = pairs.matrix + pairs.matrix.T
    k = len(pairs.columns)
    i, j = max(((a, b) for a in range(k) for b in range(a + 1, k)), key=lambda ab: abs(m[ab]), default=(0, 0))
    return f"{pairs.columns[i]} x {pairs.columns[j]} ({m[i, j]:+.3f})" if k > 1 else "none (one column)"


def image_section(say: Callable) -> list[Section]:
    from ..image import explain_image
    from ..models._imagenet import load_imagenet_model, load_sample
    from ..viz import image_html_fragment, plot_baselines

    model, names = load_imagenet_model()
    photo = load_sample("chelsea")
    start = time.perf_counter()
    ex = explain_image(model, "chelsea", class_names=names)  # the same pixels as photo, and named
    say("ImageNet (EfficientNet-Lite0), skimage 'chelsea': " + ", ".join(f"{n} {p:.1%}" for n, p in ex.top[:3])
        + f"; explained {ex.target_name}; {ex.accuracy} ({time.perf_counter() - start:.0f} s)")
    body = (f"<p class='meta'>top classes: {html.escape(', '.join(f'{n} ({p:.1%})' for n, p in ex.top[:5]))}</p>"
            + image_html_fragment(ex, header=False))
    curve = _curve(lambda n: float(explain_image(model, photo, class_names=names, n_steps=n).result.total[0]))
    plain = Section.from_explanation(ex, "Image: scikit-image 'chelsea' — where the classifier looked", body,
                                     curve=curve, settings=_settings(ex.result))
    start = time.perf_counter()
    sg = explain_image(model, photo, class_names=names, smooth=SMOOTH_COPIES, n_steps=SMOOTH_STEPS)
    say(f"  SmoothGrad-IG ({SMOOTH_COPIES} noisy copies x {SMOOTH_STEPS} steps): {sg.accuracy} "
        f"({time.perf_counter() - start:.0f} s)")
    fig = plot_baselines(ex.image, {"IG": ex.pixel_map("abs"), "SmoothGrad-IG": sg.pixel_map("abs")}, reduce="abs",
                         output=f"the logit of {ex.target_name!r}")
    body = (f"<p class='meta'>Magnitude of the attributions (sum of |attribution| over the colour channels), IG "
            f"in the middle, SmoothGrad-IG (Smilkov et al. 2017: IG averaged over {SMOOTH_COPIES} copies with "
            f"Gaussian noise of 15% of the image's range, {SMOOTH_STEPS} steps each) on the right. Averaging removes "
            f"part of IG's speckle; the gap is the mean over the noisy copies, whose paths cross more ReLU6 kinks "
            f"than the clean one, so {SMOOTH_STEPS} steps per copy integrate them coarsely.</p>"
            f"<img alt='the image, IG and SmoothGrad-IG magnitudes for chelsea' src='{_figure_uri(fig)}' "
            f"style='max-width:100%'>")
    settings = _settings(sg.result) | {"smoothgrad": sg.result.settings.get("smoothgrad")}
    smooth = Section.from_explanation(sg, "Image: SmoothGrad-IG next to IG", body, settings=settings)
    return [plain, smooth, _path_family(model, photo, names, ex, sg, say)]


def _path_family(model, photo, names, ex, sg, say) -> Section:
    """IG, SmoothGrad-IG, Blur IG, Guided IG and IDGI of the same photo, side by side."""
    from ..image import BLUR_SIGMA, GUIDED_STEPS, explain_image
    from ..viz import plot_baselines

    runs = {"IG": ex, "SmoothGrad-IG": sg}
    for name, method in (("Blur IG", "blur_ig"), ("Guided IG", "guided_ig"), ("IDGI", "idgi")):
        start = time.perf_counter()
        runs[name] = explain_image(model, photo, class_names=names, method=method)
        say(f"  {name}: {runs[name].accuracy} ({time.perf_counter() - start:.0f} s)")
    fig = plot_baselines(ex.image, {k: v.pixel_map("abs") for k, v in runs.items()}, reduce="abs",
                         output=f"the logit of {ex.target_name!r}")
    papers = {"IG": "Sundararajan et al. 2017; black baseline, 50 Gauss-Legendre nodes",
              "SmoothGrad-IG": f"Smilkov et al. 2017; {SMOOTH_COPIES} noisy copies x {SMOOTH_STEPS} nodes",
              "Blur IG": f"Xu et al. 2020; from the image blurred with sigma = {BLUR_SIGMA:g} px, no baseline",
              "Guided IG": f"Kapishnikov et al. 2021; {GUIDED_STEPS} steps, fraction 0.25, max_dist 0.02, "
                           "trapezoid steps",
              "IDGI": "Yang et al. 2023; important-direction weights on IG's path, 50 steps"}
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(papers[k])}</td>"
                   f"<td>{int(v.result.n_evals[0])}</td><td>{html.escape(v.accuracy)}</td></tr>" for k, v in runs.items())
    body = ("<p class='meta'>The same photo and class by five members of the path family: magnitude of the "
            "attributions (sum of |attribution| over the colour channels), each with its own colour bar. "
            "Completeness holds for each against its own start (Blur IG: the blurred image; IDGI: exactly, by "
            "construction, which says nothing about its accuracy).</p>"
            f"<img alt='chelsea explained by IG, SmoothGrad-IG, Blur IG, Guided IG and IDGI' src='{_figure_uri(fig)}' "
            "style='max-width:100%'><table><tr><th>method</th><th>paper; settings</th><th>gradient evaluations"
            f"</th><th>accuracy</th></tr>{rows}</table>")
    gig = runs["Guided IG"]
    return Section.from_explanation(gig, "Image: the path family side by side (IG, SmoothGrad-IG, Blur IG, "
                                         "Guided IG, IDGI)", body, settings=_settings(gig.result))


def build(out: Path, say: Callable) -> Path:
    """Run every demo section and write the report to ``out``."""
    sections = text_sections(say)
    sections.extend(image_section(say))
    sections.append(tabular_section(say))
    intro = ("Integrated Gradients on real models shipped inside pip packages: a sentiment classifier, a credit "
             "model and an ImageNet classifier. Each section shows the prediction, the attributions, a verdict (the "
             "estimated error of the attributions against 1%) with the completeness gap Σ attributions − (F(x) − "
             "F(baseline)), the settings, and for one example per model how the sum of attributions converges as "
             "the number of steps grows, with the number the explanation used marked.")
    out.write_text(report_page(sections, title="integrad demo report", intro=intro), encoding="utf-8")
    return out

