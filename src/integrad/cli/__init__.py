"""The ``integrad`` command line: explain a prediction, or run the demo."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from .console import check_outputs, console, fail

app = typer.Typer(help="Integrated Gradients: explain a model's predictions.", no_args_is_help=True,
                  add_completion=False)
explain_app = typer.Typer(help="Explain one prediction of a model.", no_args_is_help=True)
app.add_typer(explain_app, name="explain")


def _int_or_str(value: Optional[str]):
    if value is None:
        return None
    return int(value) if value.lstrip("-").isdigit() else value


@explain_app.command("text")
def explain_text_cmd(
    text: str = typer.Argument(..., help="The text to explain."),
    model: Optional[Path] = typer.Option(None, "--model", help="A local Hugging Face sequence-classifier directory "
                                         "(default: the embedded MiniLM IMDB sentiment model)."),
    target: Optional[str] = typer.Option(None, help="Label name or class index to explain (default: the prediction)."),
    baseline: str = typer.Option("pad", help="pad, mask, unk, zero, or a token id."),
    n_steps: Optional[int] = typer.Option(None, "--n-steps", help="Quadrature nodes (default 50 Gauss-Legendre)."),
    method: Optional[str] = typer.Option(None, "--method", help="Quadrature rule (gausslegendre, riemann_left, "
                                         "riemann_right, riemann_middle, trapezoid)."),
    rtol: Optional[float] = typer.Option(None, "--rtol", help="Error-controlled integration to this relative "
                                         "error of the attributions, instead of a fixed rule."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML page here."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the explanation as JSON here."),
    smooth: Optional[int] = typer.Option(None, "--smooth", help="SmoothGrad-IG: average over this many copies "
                                         "with noise in the word embeddings."),
    noise: float = typer.Option(0.15, "--noise", help="With --smooth: noise standard deviation, a fraction of the "
                                "embeddings' range."),
    seed: int = typer.Option(0, "--seed", help="Seed of --smooth's noise."),
) -> None:
    """Colour the words of TEXT by how much they pushed the classifier's decision."""
    from ..text import explain_text, load_text_model

    check_outputs(html=html, json=json_path)
    try:
        mdl, tok = load_text_model(str(model) if model else None)
        ex = explain_text(mdl, tok, text, target=_int_or_str(target), baseline=_int_or_str(baseline),
                          n_steps=n_steps, method=method, rtol=rtol, smooth=smooth, noise=noise, seed=seed)
    except (ValueError, TypeError, FileNotFoundError, OSError) as err:
        fail(str(err))
    console.print(ex)
    _write(ex, html, json_path)


def _write(ex, html: Optional[Path], json_path: Optional[Path]) -> None:
    if html:
        html.write_text(ex.to_html(), encoding="utf-8")
        console.print(f"wrote {html}")
    if json_path:
        json_path.write_text(json.dumps(ex.to_dict(), indent=2), encoding="utf-8")
        console.print(f"wrote {json_path}")


@app.command()
def demo(
    out: Path = typer.Option(Path("integrad-demo.html"), "--out", help="Where to write the HTML report."),
) -> None:
    """Explain real models (sentiment, image, credit), print the results and write one HTML report."""
    from .demo import build

    check_outputs(out=out)
    start = time.perf_counter()
    path = build(out, console.print)
    console.print(f"\nwrote the report {path.resolve()} ({time.perf_counter() - start:.0f} s in all)")


from .image import image  # noqa: E402  (light: heavy imports happen inside the commands)
from .tabular import tabular  # noqa: E402

explain_app.command("image")(image)
explain_app.command("tabular")(tabular)


def main() -> None:  # pragma: no cover
    app()
