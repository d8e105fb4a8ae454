"""Expected Gradients, SmoothGrad-IG and many targets: integrad and Captum against the floor,
and how honest EG's standard error is.

Same methodology as ``bench_core.py`` (whose models, timing rounds, sweeps and memory
probes this file imports): every variant of a case is timed in one process, in interleaved
rounds whose order rotates, and medians after warm-up are reported; torch uses 2 threads,
float32, ``model.eval()``. The *floor* is a bare forward + backward over exactly the rows of
gradient evaluations the method needs, pre-computed (not timed), with frozen parameters, at
the chunk size whose median is lowest among the best few of a sweep. Peak memory is the
peak RSS of one call above the RSS before it, in a fresh child process.

Sections:

1. ``eg``: ``expected_gradients`` (sobol and random) vs Captum's ``GradientShap`` (stdevs=0:
   the same estimator) vs the floor over ``batch x n_samples`` rows (a reference and an alpha
   drawn per row). Correctness: each one's RMS error against the exact expectation (the mean
   over all references of Gauss-Legendre IG), and integrad random vs Captum in units of
   their expected spread.
2. ``smooth``: ``smoothgrad(method="integrated_gradients")`` vs Captum's
   ``NoiseTunnel(IntegratedGradients)`` (default, and at its best swept
   ``nt_samples_batch_size`` / ``internal_batch_size``) vs the floor over
   ``batch x n_samples x n_steps`` rows (noisy copies, Gauss-Legendre nodes, baseline 0).
   Correctness: at noise 0 both are IG (max rel diff); with noise, integrad minus Captum in
   units of their expected spread.
3. ``targets``: ``integrated_gradients(targets=[0..k-1])`` vs k single-target calls vs a floor
   of one forward and k backward passes per row.
4. ``stderr``: EG's reported stderr and its true error against the exact expectation, random
   vs sobol, on the embedded German-credit MLP and MNIST CNN.

Usage::

    .venv/bin/python benchmarks/bench_family.py                # full run (~10 min on 2 cores)
    .venv/bin/python benchmarks/bench_family.py --quick        # smoke run (~2-3 min; no memory for targets)
    .venv/bin/python benchmarks/bench_family.py --out FILE     # also write the Markdown
    .venv/bin/python benchmarks/bench_family.py --sections eg,stderr --no-memory
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_core as bc  # noqa: E402

SECTIONS = ("eg", "smooth", "targets", "stderr")
SPECS = {"eg": ("eg:tabular", "eg:cnn"), "smooth": ("smooth:tabular", "smooth:cnn"),
         "targets": ("targets:tabular:2", "targets:tabular:10", "targets:cnn:2", "targets:cnn:10")}
TARGET_RATIO = 1.10
MAX_CHUNKS = 256  # floor sweep: sizes that need more blocks than this are not tried


def floor_sizes(rows: int, quick: bool) -> list[int]:
    """bench_core's floor chunk sizes, less those needing over MAX_CHUNKS blocks (slowest to try, never best)."""
    return [c for c in bc.floor_sizes(rows, quick) if -(-rows // c) <= MAX_CHUNKS]


# ----------------------------------------------------------------------------- cases
def tabular10() -> bc.Case:
    """bench_core's tabular MLP with a 10-class head (30-256-256-10), same inputs."""
    base = bc.build_case("tabular")
    torch.manual_seed(0)
    model = bc.TabularMLP()
    model.net[-1] = nn.Linear(256, 10)
    model.eval()
    return dataclasses.replace(base, title="tabular MLP 30-256-256-10, 64 rows", model=model,
                               head=copy.deepcopy(model).requires_grad_(False))


def first(case: bc.Case, n: int) -> bc.Case:
    """The case on its first ``n`` examples (same model and frozen copy)."""
    tgt = case.target[:n] if isinstance(case.target, torch.Tensor) else case.target
    title = case.title.replace(f"{case.batch} x", f"{n} x")
    return dataclasses.replace(case, title=title, inputs=case.inputs[:n], baseline=case.baseline[:n], target=tgt)


def gl_nodes(n: int) -> torch.Tensor:
    """Gauss-Legendre nodes on [0, 1]."""
    x, _ = np.polynomial.legendre.leggauss(n)
    return torch.tensor((x + 1) / 2, dtype=torch.float32)


def per_row(target: int | torch.Tensor, repeats: int) -> int | torch.Tensor:
    return target.repeat_interleave(repeats) if isinstance(target, torch.Tensor) else target


@dataclass
class Bench:
    """One timed problem: the floor's rows, and the contenders as zero-argument calls."""

    spec: str
    title: str
    case: bc.Case
    fwd_rows: int  # rows through the floor's forward
    points: Callable[[int, int], torch.Tensor]  # floor rows lo:hi
    row_target: Any  # the floor's target per row (k == 1)
    contenders: dict[str, Callable[[], Any]]
    captum_grid: dict[str, Callable[[], Any]] = field(default_factory=dict)
    k: int = 1  # backward passes per floor row
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Gradient evaluations: forward rows x backward passes."""
        return self.fwd_rows * self.k


def build_bench(spec: str) -> Bench:
    """The seeded bench of ``spec`` ("eg:tabular", "smooth:cnn", "targets:cnn:10", ...)."""
    import integrad
    from captum.attr import GradientShap, IntegratedGradients, NoiseTunnel

    section, name, *rest = spec.split(":")
    g = torch.Generator().manual_seed(1)
    if section == "eg":
        case = bc.build_case(name)
        K, S = (128, 64) if name == "tabular" else (16, 32)
        refs = (torch.randn(K, 30, generator=g) if name == "tabular" else torch.rand(K, 3, 64, 64, generator=g))
        B, x = case.batch, case.inputs
        idx, alpha = torch.randint(0, K, (B * S,), generator=g), torch.rand(B * S, generator=g)
        owner = torch.arange(B).repeat_interleave(S)

        def points(lo, hi):
            r = refs[idx[lo:hi]]
            return r + alpha[lo:hi].view(-1, *[1] * (r.dim() - 1)) * (x[owner[lo:hi]] - r)

        def eg(sampler):
            return lambda: integrad.expected_gradients(case.model, x, references=refs, n_samples=S, sampler=sampler,
                                                       target=case.target)

        gs = GradientShap(case.model)
        contenders = {"integrad sobol": eg("sobol"), "integrad random": eg("random"),
                      "captum": lambda: gs.attribute(x, baselines=refs, n_samples=S, stdevs=0.0, target=case.target)}
        return Bench(spec, f"{case.title}, {K} references, S={S}", case, B * S, points, per_row(case.target, S),
                     contenders, extra={"refs": refs, "S": S})
    if section == "smooth":
        case = bc.build_case(name) if name == "tabular" else first(bc.build_case(name), 2)
        S, n = (16, 16) if name == "tabular" else (8, 16)
        B, x = case.batch, case.inputs
        sigma = 0.15 * float(x.max() - x.min())
        noisy = x.repeat_interleave(S, 0) + sigma * torch.randn(B * S, *x.shape[1:], generator=g)
        nodes = gl_nodes(n)

        def points(lo, hi):
            r = torch.arange(lo, hi)
            return nodes[r % n].view(-1, *[1] * (x.dim() - 1)) * noisy[r // n]

        nt = NoiseTunnel(IntegratedGradients(case.model))

        def captum(nb=None, ibs=None, stdevs=sigma, samples=S):
            return nt.attribute(x, nt_type="smoothgrad", nt_samples=samples, stdevs=stdevs, n_steps=n,
                                method="gausslegendre", target=case.target, nt_samples_batch_size=nb,
                                internal_batch_size=ibs)

        def smooth(noise=sigma, samples=S):
            return integrad.smoothgrad(case.model, x, method="integrated_gradients", n_samples=samples, noise=noise,
                                       noise_scale="absolute", target=case.target, n_steps=n, rule="gausslegendre")

        # Captum's knobs: noisy copies per IG call x steps per forward (internal_batch_size counts rows)
        grid, corners = {}, []
        for nb in (1, S):
            for st in (1, 4, n):
                key = f"nt_samples_batch_size={nb}, internal_batch_size={B * nb * st}"
                grid[key] = lambda nb=nb, st=st: captum(nb, B * nb * st)
                corners += [key] if st != 4 else []
        return Bench(spec, f"{case.title}, S={S}, n_steps={n}, sigma={sigma:.3g}", case, B * S * n, points,
                     per_row(case.target, S * n), {"integrad": lambda: smooth().attributions, "captum": captum},
                     grid, extra={"smooth": smooth, "captum": captum, "corners": corners})
    if section == "targets":
        k = int(rest[0])
        case = tabular10() if name == "tabular" else first(bc.build_case(name), 2)
        n = 50 if name == "tabular" else 16
        B, x, nodes = case.batch, case.inputs, gl_nodes(n)

        def points(lo, hi):
            r = torch.arange(lo, hi)
            return nodes[r % n].view(-1, *[1] * (x.dim() - 1)) * x[r // n]

        def ig(**kw):
            return integrad.integrated_gradients(case.model, x, n_steps=n, method="gausslegendre", **kw).attributions

        contenders = {"many": lambda: ig(targets=list(range(k))),
                      "singles": lambda: torch.stack([ig(target=t) for t in range(k)], 1)}
        return Bench(spec, f"{case.title}, n_steps={n}, k={k}", case, B * n, points, None, contenders, k=k)
    raise ValueError(f"unknown bench {spec!r}")


# ----------------------------------------------------------------------------- floor
def floor_block(b: Bench, z: torch.Tensor, lo: int) -> None:
    """Bare forward + backward(s) on floor rows ``z`` (starting at row ``lo``)."""
    if b.k == 1:
        bc.floor_chunk(b.case, z, b.row_target, lo)
        return
    z = z.detach().requires_grad_(True)
    out = b.case.head(z)
    for j in range(b.k):
        torch.autograd.grad(out[:, j].sum(), z, retain_graph=j < b.k - 1)


def run_floor(b: Bench, pts: torch.Tensor, chunk: int) -> None:
    for lo in range(0, b.fwd_rows, chunk):
        floor_block(b, pts[lo:lo + chunk], lo)


def run_floor_streaming(b: Bench, chunk: int) -> None:
    """The floor as a memory measurement: each chunk's points made when needed."""
    for lo in range(0, b.fwd_rows, chunk):
        floor_block(b, b.points(lo, min(b.fwd_rows, lo + chunk)), lo)


# ----------------------------------------------------------------------------- memory
def memory_child(spec: str, variant: str, param: Any) -> dict[str, Any]:
    """bench_core.memory_child's measurement, for any variant of any bench."""
    import resource

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", bc.THREADS)))
    b = build_bench(spec)
    if variant == "floor":
        call = lambda: run_floor_streaming(b, param)  # noqa: E731
    elif variant == "grid":
        call = b.captum_grid[param]
    else:
        call = b.contenders[variant]
    call()
    reset = bc._reset_peak_rss()
    before = bc._status_kib("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    call()
    peak = bc._status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"mb": max(0, peak - before) / 1024, "exact": reset}


def measure_memory(spec: str, variant: str, param: Any = None) -> float:
    """This file's ``memory_child`` in a fresh interpreter, run as bench_core runs its own (MB; NaN on failure)."""
    return bc.measure_memory(spec, variant, param, script=os.path.abspath(__file__))


# ----------------------------------------------------------------------------- timing
@dataclass
class Timed:
    bench: Bench
    ms: dict[str, float]  # median per variant ("floor", contenders, "captum best")
    ms_min: dict[str, float]
    chunk: int
    best_grid: str | None
    repeats: int
    mem: dict[str, float]


def time_bench(b: Bench, budget: bc.Budget, memory: bool, log: Callable[[str], None]) -> Timed:
    """bench_core.bench_case's procedure: sweep floor (and Captum's knobs), then time side by side."""
    t0 = time.perf_counter()
    pts = b.points(0, b.fwd_rows)
    _, fsweep = bc.sweep({c: (lambda c=c: run_floor(b, pts, c)) for c in floor_sizes(b.fwd_rows, budget.quick)},
                         budget)
    log("  floor sweep (rows: min ms): " + ", ".join(f"{c}: {1e3 * t:.2f}" for c, t in fsweep.items()))
    chunks = sorted(fsweep, key=fsweep.get)[:2 if budget.quick else 3]
    fns: dict[str, Callable[[], Any]] = {f"floor@{c}": (lambda c=c: run_floor(b, pts, c)) for c in chunks}
    fns.update(b.contenders)
    grid_keys: list[str] = []
    if b.captum_grid:
        grid = b.captum_grid
        if budget.quick:  # a smoke run tries the four corners of the grid
            grid = {key: grid[key] for key in b.extra["corners"]}
        _, gsweep = bc.sweep(grid, budget)
        log("  captum sweep (min ms): " + "; ".join(f"{key}: {1e3 * t:.1f}" for key, t in gsweep.items()))
        grid_keys = sorted(gsweep, key=gsweep.get)[:1 if budget.quick else 2]
        fns.update({f"grid {key}": b.captum_grid[key] for key in grid_keys})
    warm = bc.time_rounds(fns, budget.warmups)
    rounds = bc.repeats_for(sum(min(v) for v in warm.values()), budget.main_s, budget)
    times = bc.time_rounds(fns, rounds)
    med = {key: 1e3 * statistics.median(v) for key, v in times.items()}
    low = {key: 1e3 * min(v) for key, v in times.items()}
    log(f"  {rounds} rounds in {time.perf_counter() - t0:.1f}s: "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in med.items()))
    chunk = min(chunks, key=lambda c: med[f"floor@{c}"])
    chosen = {"floor": f"floor@{chunk}"} | {key: key for key in b.contenders}
    best_grid = min(grid_keys, key=lambda key: med[f"grid {key}"]) if grid_keys else None
    if best_grid:
        chosen["captum best"] = f"grid {best_grid}"
    mem = {}
    if memory:
        for variant, src in chosen.items():
            if variant == "floor":
                mem[variant] = measure_memory(b.spec, "floor", chunk)
            elif variant == "captum best":
                mem[variant] = measure_memory(b.spec, "grid", best_grid)
            else:
                mem[variant] = measure_memory(b.spec, variant)
        log("  peak extra RSS (MB): " + ", ".join(f"{k} {v:.1f}" for k, v in mem.items()))
    return Timed(b, {k: med[v] for k, v in chosen.items()}, {k: low[v] for k, v in chosen.items()}, chunk, best_grid,
                 rounds, mem)


# ----------------------------------------------------------------------------- correctness
def rms(t: torch.Tensor) -> float:
    return float(t.double().square().mean().sqrt())


def exact_eg(model, x, refs, target, n: int) -> tuple[torch.Tensor, float]:
    """The exact expectation of EG over ``refs``: mean over all of them of Gauss-Legendre IG with
    ``n`` nodes; and that rule's own error estimate, RMS(GL-n - GL-n/2) / RMS(GL-n)."""
    from integrad.baselines import averaged

    ref = averaged(model, x, refs, target=target, n_steps=n, method="gausslegendre").attributions
    half = averaged(model, x, refs, target=target, n_steps=n // 2, method="gausslegendre").attributions
    return ref, rms(ref - half) / rms(ref)


def eg_checks(b: Bench, quick: bool) -> dict[str, float]:
    """RMS error vs the exact expectation of each contender, and integrad random - Captum in spread units."""
    import integrad

    case, refs, S = b.case, b.extra["refs"], b.extra["S"]
    n = 64 if case.name != "cnn" else 16 if quick else 32
    exact, rule_err = exact_eg(case.model, case.inputs, refs, case.target, n)
    out = {"n": n, "rule_err": rule_err}
    res = {}
    for sampler in ("sobol", "random"):
        res[sampler] = integrad.expected_gradients(case.model, case.inputs, references=refs, n_samples=S,
                                                   sampler=sampler, target=case.target)
        out[sampler] = rms(res[sampler].attributions - exact) / rms(exact)
    torch.manual_seed(0)
    np.random.seed(0)  # Captum draws from the global RNGs
    cap = b.contenders["captum"]()
    out["captum"] = rms(cap - exact) / rms(exact)
    out["spread"] = rms(res["random"].attributions - cap) / (2 ** 0.5 * rms(res["random"].stderr))
    return out


def smooth_checks(b: Bench) -> dict[str, float]:
    """Noise 0: max rel diff to Captum (both are IG). Noise sigma: integrad - Captum in spread units."""
    smooth, captum = b.extra["smooth"], b.extra["captum"]
    zero = bc.max_rel_diff(smooth(noise=0.0, samples=2).attributions, captum(stdevs=0.0, samples=2))
    res = smooth()
    torch.manual_seed(0)
    return {"zero": zero, "spread": rms(res.attributions - captum()) / (2 ** 0.5 * rms(res.stderr))}


# ----------------------------------------------------------------------------- stderr study
def stderr_study(quick: bool, log: Callable[[str], None]) -> list[str]:
    """Mean / RMS reported stderr vs true RMS error against the exact expectation, random vs sobol."""
    import integrad
    from integrad.models import load_tabular_model
    from integrad.models._mnist import load_mnist_digits, load_mnist_model

    seeds = range(3 if quick else 10)
    credit = load_tabular_model("german-credit")
    x_c = credit.encode([credit.data[i] for i in credit.test_index[:64]])
    mnist = load_mnist_model()
    digits, _ = load_mnist_digits(72)
    x_m, refs_m = digits[:8], digits[8:]
    with torch.no_grad():
        y_m = mnist(x_m).argmax(1)
    problems = [
        ("German credit MLP (61-16-1 GELU), 64 test rows, 256 training rows as references", credit.model, x_c,
         credit.reference(256, seed=0), None, 64),
        ("MNIST CNN (ReLU), 8 digits, 64 other digits as references, predicted class", mnist, x_m, refs_m, y_m,
         32 if quick else 64),
    ]
    lines = ["| model | S | sampler | mean stderr | RMS stderr | RMS true error | error / stderr (RMS) "
             "| per-seed error / stderr (min-max) | \\|err\\| <= 2 stderr | sobol / random error |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for title, model, x, refs, target, n in problems:
        t0 = time.perf_counter()
        exact, rule_err = exact_eg(model, x, refs, target, n)
        notes.append(f"- {title}: exact = mean over the {refs.shape[0]} references of Gauss-Legendre IG with {n} "
                     f"nodes (RMS {rms(exact):.3g}; RMS(GL-{n} - GL-{n // 2}) / RMS = {rule_err:.1e}).")
        for S in (16, 64, 256):
            err = {}
            for sampler in ("random", "sobol"):
                mse, var, mean_se, cover = [], [], [], []
                for seed in seeds:
                    r = integrad.expected_gradients(model, x, references=refs, n_samples=S, sampler=sampler,
                                                    seed=seed, target=target)
                    e, se = (r.attributions - exact).double(), r.stderr.double()
                    mse.append(float(e.square().mean()))
                    var.append(float(se.square().mean()))
                    mean_se.append(float(se.mean()))
                    cover.append(float((e.abs() <= 2 * se).double().mean()))
                err[sampler] = statistics.fmean(mse) ** 0.5
                rms_se = statistics.fmean(var) ** 0.5
                per_seed = [(a / b) ** 0.5 for a, b in zip(mse, var)]
                ratio = f"{err['sobol'] / err['random']:.2f}" if sampler == "sobol" else ""
                lines.append(f"| {title.split(' (')[0]} | {S} | {sampler} | {statistics.fmean(mean_se):.4f} "
                             f"| {rms_se:.4f} | {err[sampler]:.4f} | {err[sampler] / rms_se:.2f} "
                             f"| {min(per_seed):.2f}-{max(per_seed):.2f} | {100 * statistics.fmean(cover):.0f}% "
                             f"| {ratio} |")
        log(f"  stderr: {title.split(' (')[0]} in {time.perf_counter() - t0:.1f}s")
    notes.append(f"- {len(seeds)} seeds ({seeds.start}-{seeds.stop - 1}); RMS values pool the squared error and "
                 "stderr² over seeds, examples and features. Entries whose stderr is 0 (a feature equal in x and "
                 "every reference) count as covered only if their error is 0. sobol's stderr comes from 8 "
                 "replicates, so even an exact one covers +-2 stderr only ~91% of the time (Student t, 7 dof).")
    return lines + [""] + notes


# ----------------------------------------------------------------------------- report
def fmt_mem(t: Timed, key: str) -> str:
    return f"{t.mem[key]:.1f}" if key in t.mem else "-"


def eg_tables(results: list[tuple[Timed, dict]]) -> list[str]:
    lines = ["| case | rows (batch x S) | floor ms (chunk) | EG sobol ms | EG random ms | Captum GradientShap ms "
             "| sobol/floor | random/floor | Captum/floor |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t, _ in results:
        f = t.ms["floor"]
        lines.append(f"| {t.bench.title} | {t.bench.rows} | {f:.1f} ({t.chunk}) | {t.ms['integrad sobol']:.1f} "
                     f"| {t.ms['integrad random']:.1f} | {t.ms['captum']:.1f} | **{t.ms['integrad sobol'] / f:.2f}x** "
                     f"| {t.ms['integrad random'] / f:.2f}x | {t.ms['captum'] / f:.2f}x |")
    lines += ["", "| case | repeats | sobol/floor by min | peak MB floor | peak MB sobol | peak MB random "
              "| peak MB Captum | rel RMS error vs exact: sobol / random / Captum | random - Captum, in spread units |",
              "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for t, c in results:
        lines.append(f"| {t.bench.title} | {t.repeats} | {t.ms_min['integrad sobol'] / t.ms_min['floor']:.2f}x "
                     f"| {fmt_mem(t, 'floor')} | {fmt_mem(t, 'integrad sobol')} | {fmt_mem(t, 'integrad random')} "
                     f"| {fmt_mem(t, 'captum')} | {c['sobol']:.3f} / {c['random']:.3f} / {c['captum']:.3f} "
                     f"(GL-{c['n']}, rule error {c['rule_err']:.0e}) | {c['spread']:.2f} |")
    return lines


def smooth_tables(results: list[tuple[Timed, dict]]) -> list[str]:
    lines = ["| case | rows (batch x S x n) | floor ms (chunk) | integrad ms | Captum ms | Captum best ms "
             "| integrad/floor | Captum/floor | Captum best/floor |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t, _ in results:
        f = t.ms["floor"]
        lines.append(f"| {t.bench.title} | {t.bench.rows} | {f:.1f} ({t.chunk}) | {t.ms['integrad']:.1f} "
                     f"| {t.ms['captum']:.1f} | {t.ms['captum best']:.1f} | **{t.ms['integrad'] / f:.2f}x** "
                     f"| {t.ms['captum'] / f:.2f}x | {t.ms['captum best'] / f:.2f}x |")
    lines += ["", "| case | Captum best setting | repeats | integrad/floor by min | peak MB floor | peak MB integrad "
              "| peak MB Captum | peak MB Captum best | noise 0: max rel diff vs Captum | integrad - Captum, in spread "
              "units |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t, c in results:
        by_min = t.ms_min["integrad"] / t.ms_min["floor"]
        lines.append(f"| {t.bench.title} | {t.best_grid} | {t.repeats} | {by_min:.2f}x "
                     f"| {fmt_mem(t, 'floor')} | {fmt_mem(t, 'integrad')} | {fmt_mem(t, 'captum')} "
                     f"| {fmt_mem(t, 'captum best')} | {c['zero']:.1e} | {c['spread']:.2f} |")
    return lines


def targets_table(results: list[tuple[Timed, float]]) -> list[str]:
    lines = ["| case | gradient rows (batch x n x k) | floor ms (chunk) | targets= ms | k singles ms "
             "| targets= / k singles | targets= / floor | k singles / floor | repeats | peak MB floor "
             "| peak MB targets= | peak MB singles | max rel diff |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t, diff in results:
        f = t.ms["floor"]
        lines.append(f"| {t.bench.title} | {t.bench.rows} | {f:.1f} ({t.chunk}) | {t.ms['many']:.1f} "
                     f"| {t.ms['singles']:.1f} | **{t.ms['many'] / t.ms['singles']:.2f}x** | {t.ms['many'] / f:.2f}x "
                     f"| {t.ms['singles'] / f:.2f}x | {t.repeats} | {fmt_mem(t, 'floor')} | {fmt_mem(t, 'many')} "
                     f"| {fmt_mem(t, 'singles')} | {diff:.1e} |")
    return lines


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: short budgets, coarse sweeps")
    ap.add_argument("--out", metavar="FILE", help="also write the Markdown report to FILE")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    ap.add_argument("--threads", type=int, default=bc.THREADS, help="torch intra-op threads (default 2)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS child processes")
    ap.add_argument("--_memory-child", dest="memory_child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(*json.loads(args.memory_child))), flush=True)
        return 0

    torch.set_num_threads(args.threads)
    os.environ["BENCH_THREADS"] = str(args.threads)
    budget = bc.QUICK if args.quick else bc.FULL
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        ap.error(f"--sections: unknown {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    header = bc.machine_lines(["benchmarks/bench_family.py"] + argv)
    memory = not args.no_memory
    body: list[str] = []
    if "eg" in sections:
        results = []
        for spec in SPECS["eg"]:
            log(f"{spec}:")
            b = build_bench(spec)
            checks = eg_checks(b, args.quick)
            results.append((time_bench(b, budget, memory, log), checks))
        body += ["## Expected Gradients vs Captum GradientShap vs the floor (equal gradient evaluations)", ""]
        body += eg_tables(results) + [""]
    if "smooth" in sections:
        results = []
        for spec in SPECS["smooth"]:
            log(f"{spec}:")
            b = build_bench(spec)
            results.append((time_bench(b, budget, memory, log), smooth_checks(b)))
        body += ["## SmoothGrad-IG vs Captum NoiseTunnel(IntegratedGradients) vs the floor "
                 "(Gauss-Legendre, equal gradient evaluations)", ""]
        body += smooth_tables(results) + [""]
    if "targets" in sections:
        results = []
        for spec in SPECS["targets"]:
            log(f"{spec}:")
            b = build_bench(spec)
            diff = bc.max_rel_diff(b.contenders["many"](), b.contenders["singles"]())
            # a smoke run skips these memory children (12 of them) to stay within a few minutes
            results.append((time_bench(b, budget, memory and not args.quick, log), diff))
        body += ["## Many targets: integrated_gradients(targets=[0..k-1]) vs k single-target calls "
                 "(Gauss-Legendre)", ""]
        body += targets_table(results) + [""]
    if "stderr" in sections:
        log("stderr:")
        body += ["## Expected Gradients: reported stderr vs true error, random vs sobol", ""]
        body += stderr_study(args.quick, log) + [""]
    footer = [f"- load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"total {time.perf_counter() - started:.0f} s"]
    report = "\n".join(body + header + footer) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
