"""The ``integrad`` command line: explain a prediction, or run the demo.

Every ``explain`` command takes the same output flags (``--html``, ``--png``, ``--json``,
``--save``; nothing is written unasked) and the same integration options (``--method``,
``--n-steps``, ``--rtol``, ``--batch-size``, ``--seed``, ``--target``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .console import BATCH_SIZE, HTML, JSON, SAVE, check_outputs, console, fail, print_accuracy, with_model
from .console import METHOD, working, write_outputs

_HELP = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(help="Integrated Gradients: explain a model's predictions.", no_args_is_help=True,
                  add_completion=False, context_settings=_HELP)
explain_app = typer.Typer(help="Explain one prediction of a model.", no_args_is_help=True, context_settings=_HELP)
app.add_typer(explain_app, name="explain")


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(f"integrad {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    pass


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
    n_steps: Optional[int] = typer.Option(None, "--n-steps", help="Quadrature nodes (default 32 Gauss-Legendre, see docs/accuracy.md)."),
    method: Optional[str] = METHOD,
    rtol: Optional[float] = typer.Option(None, "--rtol", help="Error-controlled integration to this relative "
                                         "error of the attributions, instead of a fixed rule."),
    batch_size: Optional[int] = BATCH_SIZE,
    html: Optional[Path] = HTML,
    png: Optional[Path] = typer.Option(None, "--png", help="Write a bar chart of the word attributions here "
                                       "(needs matplotlib)."),
    json_path: Optional[Path] = JSON,
    save: Optional[Path] = SAVE,
    smooth: Optional[int] = typer.Option(None, "--smooth", help="SmoothGrad-IG: average over this many copies "
                                         "with noise in the word embeddings."),
    noise: float = typer.Option(0.15, "--noise", help="With --smooth: noise standard deviation, a fraction of the "
                                "embeddings' range."),
    seed: int = typer.Option(0, "--seed", help="Seed of --smooth's noise."),
) -> None:
    """Colour the words of TEXT by how much they pushed the classifier's decision."""
    from ..text import explain_text, load_text_model

    check_outputs(html=html, png=png, json=json_path, save=save)
    try:
        with working("loading the model") as step:
            mdl, tok = load_text_model(str(model) if model else None)
            step("explaining")
            ex = explain_text(mdl, tok, text, target=_int_or_str(target), baseline=_int_or_str(baseline),
                              n_steps=n_steps, method=method, rtol=rtol, batch_size=batch_size, smooth=smooth,
                              noise=noise, seed=seed)
    except (ValueError, TypeError, FileNotFoundError, OSError) as err:
        fail(str(err))
    ex = with_model(ex, str(model) if model else "embedded MiniLM IMDB sentiment model")
    console.print(ex, soft_wrap=True)
    if not console.is_terminal:
        # piped: the words' colours are gone, so every word gets its signed number
        words = ", ".join(f"{w.text} {w.attribution:+.3f}" for w in ex.words)
        console.print(escape(f"words: {words}"), highlight=False, soft_wrap=True)
    print_accuracy(ex)
    write_outputs(ex, html=html, png=png, json_path=json_path, save=save)


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


from .audit import audit_cmd  # noqa: E402  (light: heavy imports happen inside the commands)
from .generate import generate  # noqa: E402
from .image import image  # noqa: E402
from .tabular import tabular  # noqa: E402

app.command("audit")(audit_cmd)

explain_app.command("image")(image)
explain_app.command("tabular")(tabular)
explain_app.command("generate")(generate)


def main() -> None:  # pragma: no cover
    app()
