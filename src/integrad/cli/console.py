"""The CLI's one console and its one way to fail: a message, exit code 2, no traceback."""

from __future__ import annotations

import os
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()


def fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


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


def print_accuracy(ex) -> None:
    """The explanation's accuracy line, in yellow when the estimate is above the verdict's threshold."""
    from ..core.result import ACCURATE

    line = escape(f"accuracy: {ex.accuracy}")
    console.print(f"[yellow]{line}[/]" if ex.error > ACCURATE else line, highlight=False, soft_wrap=True)
