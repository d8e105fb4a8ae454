"""``integrad explain image``: which pixels made the embedded ImageNet model see what it saw.

The plain function :func:`image` carries typer defaults; ``integrad.cli`` registers it
as a command. The model is the embedded EfficientNet-Lite0 (:mod:`integrad.models._imagenet`).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .console import BATCH_SIZE, HTML, JSON, SAVE, check_outputs, console, fail, note, print_accuracy
from .console import with_model, working, write_outputs


def image(
    image: str = typer.Argument(..., help="A sample photo (astronaut, camera, chelsea, coffee, coins, "
                                "hubble_deep_field, rocket) or an image file."),
    baseline: str = typer.Option("black", "--baseline", help="black, grey, blur, uniform or gaussian."),
    target: Optional[str] = typer.Option(None, "--target", help="Class index or name to explain "
                                         "(default: the prediction)."),
    n_steps: Optional[int] = typer.Option(None, "--n-steps", help="Quadrature nodes, gradient evaluations "
                                          "(default 50 Gauss-Legendre)."),
    method: Optional[str] = typer.Option(None, "--method", help="Quadrature rule (gausslegendre, riemann_left, "
                                         "riemann_right, riemann_middle, trapezoid), piecewise (exact), or a path "
                                         "method: blur_ig, guided_ig, idgi."),
    rtol: Optional[float] = typer.Option(None, "--rtol", help="Error-controlled integration to this relative "
                                         "error of the attributions (e.g. 0.01), instead of a fixed rule."),
    batch_size: Optional[int] = BATCH_SIZE,
    seed: int = typer.Option(0, "--seed", help="Seed of the uniform and gaussian baselines and of --smooth."),
    smooth: Optional[int] = typer.Option(None, "--smooth", help="SmoothGrad-IG: average over this many noisy "
                                         "copies of the image (costs that many times --n-steps)."),
    noise: float = typer.Option(0.15, "--noise", help="With --smooth: noise standard deviation, a fraction of the "
                                "image's range."),
    html: Optional[Path] = HTML,
    png: Optional[Path] = typer.Option(None, "--png", help="Write the image, the overlay and a colour bar here "
                                       "(needs matplotlib)."),
    json_path: Optional[Path] = JSON,
    save: Optional[Path] = SAVE,
    out: Optional[Path] = typer.Option(None, "--out", help="Deprecated: the same as --png."),
) -> None:
    """Colour the pixels of IMAGE by how much they pushed the ImageNet classifier's logit."""
    from ..image import explain_image, load_image
    from ..models._imagenet import load_imagenet_model

    if out is not None and png is not None:
        fail("--out and --png: give one (--out is the old name of --png)")
    check_outputs(html=html, png=png, out=out, json=json_path, save=save)
    if out is not None:
        note("--out is deprecated; use --png")
        png = out
    try:
        # read first: a bad path or file fails before the model loads
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always")
            pixels, source = load_image(image)
        for n in notes:
            note(str(n.message))
        with working("loading the model") as step:
            model, names = load_imagenet_model()
            step("explaining")
            ex = explain_image(model, pixels, class_names=names, target=_index_or_name(target), baseline=baseline,
                               n_steps=n_steps, method=method, rtol=rtol, batch_size=batch_size, seed=seed,
                               smooth=smooth, noise=noise)
    except (ValueError, TypeError, FileNotFoundError, ImportError, OSError) as err:
        fail(str(err))
    ex = with_model(dataclasses.replace(ex, source=source), "embedded EfficientNet-Lite0 (ImageNet)")
    _print(ex)
    write_outputs(ex, html=html, png=png, json_path=json_path, save=save)


def _index_or_name(value: Optional[str]) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.strip().lstrip("-").isdigit() else value


def _print(ex) -> None:
    from rich.table import Table

    table = Table(title=escape(f"what the model sees in {ex.source}"), title_justify="left", show_edge=False)
    table.add_column("class", overflow="fold")
    table.add_column("probability", justify="right")
    for name, p in ex.top:
        style = "bold" if name == ex.target_name else ""
        table.add_row(escape(name), f"{p:.1%}", style=style)
    console.print(table)
    console.print(escape(f"explained class: {ex.target_name} (index {ex.target}); baseline: {ex.baseline}"),
                  highlight=False, soft_wrap=True)
    console.print(escape(f"F(x) = {ex.f_x:.4f}; F(baseline) = {ex.f_baseline:.4f}; sum of attributions = "
                         f"{float(ex.result.total[0]):.4f}"), highlight=False, soft_wrap=True)
    console.print(f"completeness gap: {ex.delta:+.2e} ({ex.relative_delta:.2%} of |F(x) - F(baseline)|)",
                  highlight=False, soft_wrap=True)
    print_accuracy(ex)
