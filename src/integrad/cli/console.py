"""The CLI's consoles, its one way to fail, and what every ``explain`` command shares.

Results go to stdout; the progress spinner goes to stderr, and only when stderr is a
terminal, so piped output holds nothing but the explanation.
"""

from __future__ import annotations

import dataclasses
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
progress_console = Console(stderr=True)

# The output flags of every explain command: the same names, the same help.
HTML = typer.Option(None, "--html", help="Write a self-contained HTML page here.")
JSON = typer.Option(None, "--json", help="Write the explanation as JSON here.")
SAVE = typer.Option(None, "--save", help="Write the attributions as safetensors here "
                    "(read back with integrad.Attribution.load).")
BATCH_SIZE = typer.Option(None, "--batch-size", help="Rows per model call (default: sized to the memory).")
METHOD = typer.Option(None, "--method", help="Quadrature rule (gausslegendre, riemann_left, riemann_right, "
                      "riemann_middle, trapezoid).")


def fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def note(message: str) -> None:
    console.print(f"[yellow]note:[/] {escape(message)}", highlight=False, soft_wrap=True)


def check_outputs(**paths) -> None:
    """Fail before any work when an output file could not be written (``--json=path``, ...)."""
    for flag, path in paths.items():
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        if not os.path.isdir(folder):
            fail(f"--{flag.replace('_', '-')}: the folder {folder} does not exist; create it first")
        if os.path.isdir(os.fspath(path)):
            fail(f"--{flag.replace('_', '-')}: {os.fspath(path)} is a folder; give a file name")


@contextmanager
def working(description: str) -> Iterator[Callable[[str], None]]:
    """A spinner with the elapsed time on stderr while the block runs (when stderr is a terminal).

    Yields a function that changes the description (``step("explaining")``).
    """
    if not progress_console.is_terminal:
        yield lambda _: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=progress_console, transient=True) as progress:
        task = progress.add_task(description, total=None)
        yield lambda text: progress.update(task, description=text)


def with_model(ex: Any, model: str) -> Any:
    """``ex`` with ``model`` (a name or description) recorded in its settings, and so in its JSON."""
    result = dataclasses.replace(ex.result, settings=dict(ex.result.settings) | {"model": model})
    return dataclasses.replace(ex, result=result)


def write_outputs(ex: Any, *, html: Optional[Path] = None, png: Optional[Path] = None,
                  json_path: Optional[Path] = None, save: Optional[Path] = None) -> None:
    """Write the files asked for, and no others; ``--json`` names the ``--save`` file."""
    def done(flag: str, path: Path, write: Callable[[], Any]) -> None:
        try:
            write()
        except ImportError:
            fail(f"--{flag}: drawing needs matplotlib; pip install 'integrad[viz]'")
        except OSError as err:
            fail(f"--{flag}: cannot write {path}: {err}")
        console.print(f"wrote {escape(str(path))}", highlight=False, soft_wrap=True)

    if html:
        done("html", html, lambda: html.write_text(ex.to_html(), encoding="utf-8"))
    if png:
        done("png", png, lambda: ex.to_png(png))
    if save:
        done("save", save, lambda: ex.save(save))
    if json_path:
        data = ex.to_dict() | ({"attributions_file": os.fspath(save)} if save else {})
        done("json", json_path, lambda: json_path.write_text(json.dumps(data, indent=2), encoding="utf-8"))


def print_accuracy(ex) -> None:
    """The explanation's accuracy line, in yellow when the estimate is above the verdict's threshold."""
    from ..core.result import ACCURATE

    line = escape(f"accuracy: {ex.accuracy}")
    console.print(f"[yellow]{line}[/]" if ex.error > ACCURATE else line, highlight=False, soft_wrap=True)
