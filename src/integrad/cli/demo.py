"""The demo: real models explained, printed, and gathered into one self-contained report."""

from __future__ import annotations

import html
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
    keep = ("method", "n_steps", "baseline", "target", "layer", "batch_size", "dtype")
    return {k: result.settings.get(k) for k in keep}


def _curve(run: Callable[[int], float]) -> list[tuple[int, float]]:
    """Sum of attributions as the number of Gauss-Legendre steps grows."""
    return [(n, run(n)) for n in CURVE_STEPS]


def text_sections(say: Callable) -> list[Section]:
    from ..text import explain_text, load_text_model
    from ..viz import text_html_fragment

    start = time.perf_counter()
    model, tok = load_text_model()
    say(f"[dim]loaded the embedded sentiment model (MiniLM-L6 encoder + IMDB-trained head) in "
        f"{time.perf_counter() - start:.1f} s[/]")
    start = time.perf_counter()
    explanations = explain_text(model, tok, DEMO_TEXTS)
    say(f"[dim]Integrated Gradients for {len(DEMO_TEXTS)} texts (50 Gauss-Legendre steps, [PAD] baseline, "
        f"word embeddings) in {time.perf_counter() - start:.1f} s[/]\n")
    sections = []
    for i, ex in enumerate(explanations):
        say(ex)
        say("")
        curve = _curve(lambda n, t=ex.text: float(explain_text(model, tok, t, n_steps=n).result.total[0])) if i == 0 else ()
        sections.append(Section(f"Text: “{ex.text}”", f"{ex.label} ({ex.probability:.1%})", text_html_fragment(ex),
                                ex.delta, ex.f_x - ex.f_baseline, _settings(ex.result), curve))
    return sections


def tabular_section(say: Callable) -> Section:
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
    body = (f"<img alt='reason codes for German credit row 0' src='{uri}' style='max-width:100%'>"
            + codes._repr_html_()
            + "<h3>Expected Gradients (Erion et al. 2021): every training row as a baseline, 1024 samples, "
              "each attribution ± its standard error</h3>" + eg._repr_html_())
    curve = _curve(lambda n: float(explain_row(model, 0, n_steps=n).result.total.mean()))
    return Section("Tabular: German credit (Statlog), row 0 — reason codes", f"{codes.label} ({codes.probability:.1%})",
                   body, codes.delta, codes.f_x - codes.f_baseline, _settings(codes.result), curve)


def image_section(say: Callable) -> list[Section]:
    from ..image import explain_image
    from ..models._imagenet import load_imagenet_model, load_sample

    model, names = load_imagenet_model()
    photo = load_sample("chelsea")
    start = time.perf_counter()
    ex = explain_image(model, photo, class_names=names)
    say("ImageNet (EfficientNet-Lite0), skimage 'chelsea': " + ", ".join(f"{n} {p:.1%}" for n, p in ex.top[:3])
        + f"; explained {ex.target_name}; gap {ex.relative_delta:.1%} ({time.perf_counter() - start:.0f} s)")
    body = (f"<p class='meta'>top classes: {html.escape(', '.join(f'{n} ({p:.1%})' for n, p in ex.top[:5]))}</p>"
            f"<img alt='attribution overlay for chelsea' src='{png_data_uri(ex.overlay())}' style='max-width:100%'>")
    curve = _curve(lambda n: float(explain_image(model, photo, class_names=names, n_steps=n).result.total[0]))
    plain = Section("Image: scikit-image 'chelsea' — where the classifier looked",
                    f"{ex.label} ({ex.probability:.1%})", body, ex.delta, ex.f_x - ex.f_baseline,
                    _settings(ex.result), curve)
    start = time.perf_counter()
    sg = explain_image(model, photo, class_names=names, smooth=SMOOTH_COPIES, n_steps=SMOOTH_STEPS)
    say(f"  SmoothGrad-IG ({SMOOTH_COPIES} noisy copies x {SMOOTH_STEPS} steps): gap {sg.relative_delta:.1%} "
        f"({time.perf_counter() - start:.0f} s)")
    body = (f"<p class='meta'>Magnitude of the attributions (|sum over channels|), IG on the left, SmoothGrad-IG "
            f"(Smilkov et al. 2017: IG averaged over {SMOOTH_COPIES} copies with Gaussian noise of 15% of the "
            f"image's range, {SMOOTH_STEPS} steps each) on the right. Averaging removes part of IG's speckle; "
            f"the gap is the mean over the noisy copies, whose paths cross more ReLU6 kinks than the clean "
            f"one, so {SMOOTH_STEPS} steps per copy integrate them coarsely.</p>"
            f"<img alt='IG magnitude for chelsea' src='{png_data_uri(ex.overlay(reduce='abs'))}' "
            f"style='max-width:49%'> <img alt='SmoothGrad-IG magnitude for chelsea' "
            f"src='{png_data_uri(sg.overlay(reduce='abs'))}' style='max-width:49%'>")
    settings = _settings(sg.result) | {"smoothgrad": sg.result.settings.get("smoothgrad")}
    smooth = Section("Image: SmoothGrad-IG next to IG", f"{sg.label} ({sg.probability:.1%})", body, sg.delta,
                     sg.f_x - sg.f_baseline, settings, ())
    return [plain, smooth]


def build(out: Path, say: Callable) -> Path:
    """Run every demo section and write the report to ``out``."""
    sections = text_sections(say)
    sections.extend(image_section(say))
    sections.append(tabular_section(say))
    intro = ("Integrated Gradients on real models shipped inside pip packages: a sentiment classifier, a credit "
             "model and an ImageNet classifier. Each section shows the prediction, the attributions, the completeness gap "
             "Σ attributions − (F(x) − F(baseline)), the settings, and how the sum of attributions converges "
             "as the number of steps grows.")
    out.write_text(report_page(sections, title="integrad demo report", intro=intro), encoding="utf-8")
    return out

