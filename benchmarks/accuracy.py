"""How accurate are integrad's attributions on the embedded models, and how honest is the estimate?

For each of the four embedded models, through the call a user makes (``explain_row``,
``explain_text``, ``integrated_gradients`` for the MNIST CNN, ``explain_image``):

* **true error** per example: ``||a - a_ref|| / ||a_ref||`` over all features, against a
  reference (smooth models: Gauss-Legendre with 256 nodes; ReLU models: Gauss-Legendre with
  4096 nodes). Each reference is checked against a second one with fewer nodes (192 and 2048);
  their worst difference is reported (on ReLU models, where rules converge like 1/n, the
  reference's own error is about half of it);
* **estimate**: the ``error`` every result carries, and its ratio to the true error (it
  should be >= 1, bounding the error, and at most 3);
* **cost**: gradient evaluations per example (``n_evals``; per baseline path for
  ``explain_row``, which averages 128 paths and so costs 128 times that);
* **cheapest fixed rule in hindsight**: per example, the fewest Gauss-Legendre nodes (on a
  ladder 4, 6, 8, 12, 16, ... growing by 1.5x and 4/3x alternately; EfficientNet: powers of 2)
  whose true error meets the tolerance, averaged over the examples;
* the **default** setting (checked against 1%) and ``rtol`` at 1e-1, 3e-2 and 1e-2.

References are cached under ``benchmarks/.cache`` (keyed by model, inputs and reference
rule), so reruns only repeat the cheap settings.

Usage::

    .venv/bin/python benchmarks/accuracy.py                      # all four (EfficientNet: ~40 min on 2 cores)
    .venv/bin/python benchmarks/accuracy.py --models credit,text,mnist
    .venv/bin/python benchmarks/accuracy.py --out docs/accuracy.md   # the table between its markers
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

import integrad
from integrad.core.result import ACCURATE

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
TOLS = (1e-1, 3e-2, 1e-2)
LADDER = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
POW2 = (4, 8, 16, 32, 64, 128, 256, 512, 1024)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Case:
    """One embedded model and the examples it is measured on."""

    key: str
    title: str
    run: Callable[[dict[str, Any]], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # -> attrs, est, evals
    default: dict[str, Any]
    ref: dict[str, Any]
    check: dict[str, Any]
    ref_note: str
    ladder: tuple[int, ...] = LADDER
    fingerprint: str = ""


def _flat(result) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a = torch.cat([t.reshape(t.shape[0], -1) for t in result.attributions_tuple], 1).double()
    est = result.error.double() if result.error is not None else torch.full((a.shape[0],), math.nan)
    return a, est, result.n_evals.double()


def _stack(parts) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(torch.cat(p) for p in zip(*parts))


def credit_case(n_rows: int) -> Case:
    from integrad.models import load_tabular_model
    from integrad.tabular import N_STEPS, explain_row

    model = load_tabular_model("german-credit", dtype=torch.float64)
    rows = model.test_index[:n_rows]

    def run(setting):
        parts = []
        for r in rows:
            res = explain_row(model, int(r), **setting).result
            a, est, ev = _flat(res)
            parts.append((a, est, ev / res.settings["n_baselines"]))  # per baseline path
        return _stack(parts)

    return Case("credit", f"German credit MLP (GELU), `explain_row`, {n_rows} test rows, 128 reference baselines",
                run, {"n_steps": N_STEPS}, {"n_steps": 256}, {"n_steps": 192}, "Gauss-Legendre 256 (smooth model)",
                fingerprint=f"{list(map(int, rows))}")


SENTENCES = [
    "A gripping, beautifully acted film that stayed with me for days.",
    "The plot was dull and the acting even worse.",
    "Not bad at all; I enjoyed it far more than I expected.",
    "An utter waste of two hours.",
    "The soundtrack is lovely but the story goes nowhere.",
    "I laughed, I cried, and I would watch it again tomorrow.",
    "Wooden dialogue, a predictable twist and a lazy ending.",
    "It is a masterpiece of quiet, patient storytelling.",
    "The first half drags, yet the finale is worth the wait.",
    "Nothing in this movie works, from the script to the editing.",
    "Charming, funny and surprisingly moving.",
    "I wanted to like it, but it was simply boring.",
]


def text_case(n: int) -> Case:
    from integrad.models import load_sentiment_model
    from integrad.text import N_STEPS, explain_text

    model, tok = load_sentiment_model()
    texts = SENTENCES[:n]

    def run(setting):
        parts = [_flat(ex.result) for ex in explain_text(model, tok, texts, **setting)]
        return _stack(parts)

    return Case("text", f"MiniLM-L6 sentiment (GELU, attention), `explain_text`, {len(texts)} sentences, PAD baseline",
                run, {"n_steps": N_STEPS}, {"n_steps": 256}, {"n_steps": 192}, "Gauss-Legendre 256 (smooth model)",
                fingerprint="|".join(texts))


def mnist_case(n: int) -> Case:
    from integrad.models import load_mnist_digits, load_mnist_model

    model = load_mnist_model().eval()
    x, _ = load_mnist_digits(n)
    with torch.no_grad():
        target = model(x).argmax(-1)

    def run(setting):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _flat(integrad.integrated_gradients(model, x, target=target, **setting))

    return Case("mnist", f"MNIST CNN (ReLU, max-pool), `integrated_gradients`, {n} digits, black baseline, "
                "predicted logit", run, {}, {"n_steps": 4096}, {"n_steps": 2048}, "Gauss-Legendre 4096 (ReLU model)",
                fingerprint=f"{n}")


def effnet_case(names: tuple[str, ...]) -> Case:
    from integrad.image import N_STEPS, explain_image
    from integrad.models import load_imagenet_model

    model, classes = load_imagenet_model()

    def run(setting):
        parts = []
        for name in names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parts.append(_flat(explain_image(model, name, class_names=classes, **setting).result))
        return _stack(parts)

    return Case("effnet", f"EfficientNet-Lite0 (ReLU6), `explain_image`, photos {', '.join(names)}, black baseline, "
                "predicted logit", run, {"n_steps": N_STEPS}, {"n_steps": 4096}, {"n_steps": 2048},
                "Gauss-Legendre 4096 (ReLU model)", ladder=POW2, fingerprint=",".join(names))


def cached(case: Case, setting: dict[str, Any]) -> torch.Tensor:
    """Attributions of ``case`` at ``setting``, computed once and kept under benchmarks/.cache."""
    key = hashlib.sha1(f"{case.key}|{case.fingerprint}|{sorted(setting.items())}|{integrad.__version__}"
                       .encode()).hexdigest()[:12]
    path = os.path.join(CACHE, f"accuracy-{case.key}-{key}.pt")
    if os.path.exists(path):
        return torch.load(path)["attrs"]
    log(f"{case.key}: {setting} (cached for later runs)")
    t = time.perf_counter()
    a, _, _ = case.run(setting)
    log(f"{case.key}: done in {time.perf_counter() - t:.0f} s")
    os.makedirs(CACHE, exist_ok=True)
    torch.save({"attrs": a}, path)
    return a


def errors(a: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (a - ref).norm(dim=1) / ref.norm(dim=1)


def measure(case: Case) -> dict[str, Any]:
    R = cached(case, case.ref)
    check = float(errors(cached(case, case.check), R).max())
    out: dict[str, Any] = {"case": case, "ref_check": check, "rows": []}
    # the ladder: true error per example at each n (for the cheapest fixed rule in hindsight)
    need = {tol: torch.full((R.shape[0],), math.inf, dtype=torch.float64) for tol in (ACCURATE, *TOLS)}
    for n in case.ladder:
        a, _, _ = case.run({"n_steps": n})
        e = errors(a, R)
        for tol in need:
            need[tol] = torch.where((e <= tol) & ~torch.isfinite(need[tol]), torch.tensor(float(n), dtype=torch.float64),
                                    need[tol])
        log(f"{case.key}: GL-{n} worst error {float(e.max()):.2e}")
        if all(bool(torch.isfinite(v).all()) for v in need.values()):
            break
    settings = [("default " + (", ".join(f"{k}={v}" for k, v in case.default.items()) or "n_steps=50"),
                 case.default, ACCURATE)]
    settings += [(f"rtol={tol:g}", {"rtol": tol}, tol) for tol in TOLS]
    for label, setting, tol in settings:
        t = time.perf_counter()
        a, est, evals = case.run(setting)
        e = errors(a, R)
        ratio = est / e
        hind = need[tol]
        row = {"setting": label, "tol": tol, "evals": float(evals.mean()), "err_median": float(e.median()),
               "err_worst": float(e.max()), "within": int((e <= tol).sum()), "n": e.numel(),
               "est_worst": float(est.max()), "ratio_min": float(ratio.min()), "ratio_max": float(ratio.max()),
               "bounded": int((est >= e).sum()), "hindsight": float(hind.mean()),
               "seconds": time.perf_counter() - t}
        row["cost_ratio"] = row["evals"] / row["hindsight"] if math.isfinite(row["hindsight"]) else math.nan
        out["rows"].append(row)
        log(f"{case.key}: {label}: error {row['err_worst']:.2e}, estimate/true {row['ratio_min']:.2f}-"
            f"{row['ratio_max']:.2f}, {row['evals']:.0f} evals (hindsight {row['hindsight']:.0f})")
    return out


def _hind(x: float, ladder: tuple[int, ...]) -> str:
    return f"> {ladder[-1]}" if not math.isfinite(x) else f"{x:.0f}"


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| model | setting | evaluations per example | true error: median / worst | examples within tol "
        "| estimate / true: min - max | estimate bounds the error | cheapest fixed rule in hindsight "
        "(evaluations) | cost / hindsight |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        c = res["case"]
        for r in res["rows"]:
            cost = "" if math.isnan(r["cost_ratio"]) else f"{r['cost_ratio']:.2f}"
            lines.append(
                f"| {c.key} | {r['setting']} (tol {r['tol']:g}) | {r['evals']:.0f} | {r['err_median']:.1e} / "
                f"{r['err_worst']:.1e} | {r['within']} of {r['n']} | {r['ratio_min']:.2f} - {r['ratio_max']:.2f} | "
                f"{r['bounded']} of {r['n']} | {_hind(r['hindsight'], c.ladder)} | "
                f"{cost} |")
    lines.append("")
    for res in results:
        c = res["case"]
        lines.append(f"- **{c.key}**: {c.title}; reference: {c.ref_note}, which differs from Gauss-Legendre "
                     f"{c.check['n_steps']} by at most {res['ref_check']:.1e}.")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="credit,text,mnist,effnet")
    p.add_argument("--out", default=None)
    p.add_argument("--quick", action="store_true", help="fewer examples (a smoke run)")
    args = p.parse_args()
    torch.set_num_threads(2)
    q = args.quick
    build = {"credit": lambda: credit_case(4 if q else 16), "text": lambda: text_case(3 if q else 12),
             "mnist": lambda: mnist_case(4 if q else 16),
             "effnet": lambda: effnet_case(("chelsea",) if q else ("chelsea", "coffee"))}
    results = []
    start = time.perf_counter()
    for key in args.models.split(","):
        results.append(measure(build[key]()))
    table = markdown(results)
    head = (f"Measured {_dt.date.today()} on {platform.machine()} with {torch.get_num_threads()} threads, torch "
            f"{torch.__version__}, integrad {integrad.__version__}; {time.perf_counter() - start:.0f} s.\n\n"
            f"Command: `.venv/bin/python benchmarks/accuracy.py --models {args.models}`\n\n")
    print(head + table)
    if args.out:
        write(args.out, head + table)


START, END = "<!-- accuracy table: written by benchmarks/accuracy.py -->", "<!-- end of the accuracy table -->"


def write(path: str, text: str) -> None:
    """Replace the table between the markers of ``path`` (or write a new file with them)."""
    old = open(path, encoding="utf-8").read() if os.path.exists(path) else f"{START}\n{END}\n"
    if START not in old or END not in old:
        raise SystemExit(f"--out: {path} has no table markers ({START!r} ... {END!r})")
    before, rest = old.split(START, 1)
    after = rest.split(END, 1)[1]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{before}{START}\n{text}\n{END}{after}")


if __name__ == "__main__":
    main()
