"""The CLI's one console and its one way to fail: a message, exit code 2, no traceback."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()


def fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)
