"""``integrad explain tabular``: reason codes for one row of a tabular model.

The plain function :func:`tabular` carries typer defaults; ``integrad.cli`` registers it as
a command. A user's model comes in as ``--model module:factory`` (see :mod:`integrad.tabular`
for what ``factory()`` may return); its rows come from ``--data file.csv``, read as strings.
"""

from __future__ import annotations

import csv
import importlib
import os
import re
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from .console import BATCH_SIZE, HTML, JSON, SAVE, check_outputs, console, fail, print_accuracy
from .console import working, write_outputs


_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class _Bad(Exception):
    """A user error, reported as ``error: <message>``."""


def tabular(
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Embedded model: german-credit or breast-cancer "
                                          "(the default unless --model is given)."),
    row: int = typer.Option(..., "--row", help="Index (from 0) of the row to explain, in the table or in --data."),
    model: Optional[str] = typer.Option(None, "--model", help="Your model as module:factory; factory() returns an "
                                        "nn.Module on the CSV's numeric columns, or an object with .model and "
                                        ".encode(rows). Needs --data."),
    data: Optional[Path] = typer.Option(None, "--data", help="CSV with a header row: the rows to explain (and, "
                                        "with --model, to draw reference baselines from)."),
    k: int = typer.Option(5, "--k", help="Reason codes shown each way."),
    baseline: str = typer.Option("reference", "--baseline", help="reference (sampled training rows, averaged), "
                                 "mean (the mean row) or zero."),
    n_reference: Optional[int] = typer.Option(None, "--n-reference", help="Reference rows drawn for --baseline "
                                              "reference (default 128; all rows with expected_gradients)."),
    n_steps: Optional[int] = typer.Option(None, "--n-steps", help="Quadrature nodes per baseline (default 8 "
                                          "Gauss-Legendre, see docs/accuracy.md)."),
    method: Optional[str] = typer.Option(None, "--method", help="Quadrature rule (gausslegendre, riemann_left, "
                                         "riemann_right, riemann_middle, trapezoid), piecewise (exact), or "
                                         "expected_gradients."),
    rtol: Optional[float] = typer.Option(None, "--rtol", help="Error-controlled integration to this relative "
                                         "error of the attributions, instead of a fixed rule."),
    n_samples: int = typer.Option(256, "--n-samples", help="Samples for --method expected_gradients."),
    batch_size: Optional[int] = BATCH_SIZE,
    target: Optional[int] = typer.Option(None, "--target", help="Class index, for models with several logits."),
    seed: int = typer.Option(0, "--seed", help="Seed for drawing reference rows."),
    html: Optional[Path] = HTML,
    png: Optional[Path] = typer.Option(None, "--png", help="Write a bar chart here (needs matplotlib)."),
    json_path: Optional[Path] = JSON,
    save: Optional[Path] = SAVE,
) -> None:
    """Explain one row of a tabular classifier: which columns pushed its score up or down."""
    from ..tabular import explain_row

    check_outputs(html=html, png=png, json=json_path, save=save)
    try:
        with working("loading the model") as step:
            subject, raw, reference, note = _resolve(dataset, model, data, row)
            step("explaining")
            codes = explain_row(subject, raw, baseline=baseline, reference=reference, n_reference=n_reference, k=k,
                                target=target, method=method, n_steps=n_steps, rtol=rtol, n_samples=n_samples,
                                batch_size=batch_size, seed=seed)
    except _Bad as err:
        fail(str(err))
    except (ValueError, TypeError, IndexError, KeyError, ImportError, OSError, RuntimeError) as err:
        # RuntimeError: a user's model failing on the encoded row (say, a width mismatch)
        fail(str(err) if not isinstance(err, KeyError) else f"missing key {err}")
    _print(codes, note)
    write_outputs(codes, html=html, png=png, json_path=json_path, save=save)


def _resolve(dataset: Optional[str], model: Optional[str], data: Optional[Path], row: int):
    """(model for explain_row, the raw row, reference rows or None, a line describing the row)."""
    from ..models._tabular import DATASETS
    from ..tabular import load_tabular_model

    if model is not None and dataset is not None:
        raise _Bad("--model and --dataset: give one (your model, or an embedded one), not both")
    if model is not None:
        if data is None:
            raise _Bad("--model: needs --data FILE.csv, the rows to explain and to draw baselines from")
        subject = _load_factory(model)
        rows = _read_csv(data)
        return subject, rows[_index(row, len(rows), str(data))], rows, f"{data} row {row}"
    if dataset is not None and dataset not in DATASETS:
        raise _Bad(f"--dataset: unknown tabular model {dataset!r}; expected one of {', '.join(DATASETS)}")
    tm = load_tabular_model(dataset or "german-credit")
    if data is not None:
        rows = _read_csv(data)
        return tm, rows[_index(row, len(rows), str(data))], None, f"{data} row {row}"
    i = _index(row, len(tm.data), f"the {tm.name} table")
    split = "held-out" if i in set(tm.test_index) else "training"
    return tm, i, None, f"row {i} ({split} row; actual class: {tm.labels[i]})"


def _index(row: int, n: int, where: str) -> int:
    if not 0 <= row < n:
        raise _Bad(f"--row: {row} is out of range; {where} has {n} rows (0..{n - 1})")
    return row


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise _Bad(f"--data: {path} is empty; expected a header row of column names, then rows")
            header = [h.strip() for h in header]
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes or "" in header:
                raise _Bad(f"--data: {path} has {'duplicate' if dupes else 'empty'} column names "
                           f"{', '.join(map(repr, dupes)) if dupes else ''}".rstrip())
            rows = []
            for values in reader:
                if not values:
                    continue
                if len(values) != len(header):
                    raise _Bad(f"--data: {path} line {reader.line_num} has {len(values)} values for "
                               f"{len(header)} columns")
                rows.append(dict(zip(header, values)))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise _Bad(f"--data: cannot read {path}: {err}") from None
    if not rows:
        raise _Bad(f"--data: {path} has a header but no rows")
    return rows


def _load_factory(spec: str) -> Any:
    if not _SPEC.match(spec):
        raise _Bad(f"--model: expected 'module:factory' (e.g. mypackage.models:build); got {spec!r}")
    module_name, attr = spec.split(":")
    # Console scripts do not put the working directory on sys.path; `python -m` would.
    here = os.getcwd()
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        importlib.invalidate_caches()
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise _Bad(f"--model: cannot import module {module_name!r}: {err}") from None
    except Exception as err:  # the user's module: any error in it is theirs to see, without a traceback
        raise _Bad(f"--model: importing {module_name!r} raised {type(err).__name__}: {err}") from None
    finally:
        if added:
            sys.path.remove(here)
    factory: Any = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise _Bad(f"--model: module {module_name!r} has no attribute {attr!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise _Bad(f"--model: {spec} is a {type(factory).__name__}, not a callable factory")
    try:
        return factory()
    except Exception as err:
        raise _Bad(f"--model: {spec}() raised {type(err).__name__}: {err}") from None


def _print(codes, note: str) -> None:
    from rich.table import Table

    table = Table(title=escape(f"why {codes.model} scored {note}"), title_justify="left", show_edge=False)
    table.add_column("")
    table.add_column("feature", overflow="fold")
    table.add_column("value", overflow="fold", max_width=48)
    table.add_column(f"attribution to {codes.target}", justify="right")
    shown = [("+", "green", r) for r in codes.toward] + [("-", "red", r) for r in codes.against]
    for sign, colour, r in shown:
        value = f"{r.value:.4g}" if isinstance(r.value, float) else str(r.value)
        err = "" if r.stderr is None else f" ± {r.stderr:.4f}"
        table.add_row(f"[{colour}]{sign}[/]", escape(r.feature), escape(value),
                      f"[{colour}]{r.attribution:+.4f}[/]{err}")
    listed = {id(r) for r in (*codes.toward, *codes.against)}
    rest = [r for r in codes.features if id(r) not in listed]
    if rest:
        table.add_row("", f"[dim]{len(rest)} other features[/]", "",
                      f"[dim]{sum(r.attribution for r in rest):+.4f}[/]")
    console.print(table)
    total = sum(r.attribution for r in codes.features)
    console.print(f"prediction: [bold]{escape(codes.label)}[/] "
                  + escape(f"({codes.probability:.1%}); P({codes.target}) = {codes.target_probability:.3f}"), highlight=False)
    console.print(escape(f"F(x) = {codes.f_x:.4f} (logit of {codes.target!r}); F(baseline) = {codes.f_baseline:.4f} "
                         f"({codes.baseline}); sum of attributions = {total:.4f}"), highlight=False, soft_wrap=True)
    console.print(f"completeness gap: {codes.delta:+.2e}", highlight=False)
    print_accuracy(codes)
