"""Time integrad and Captum against the floor of Integrated Gradients, side by side.

The *floor* is what no IG implementation can beat: one bare forward + backward
(``torch.autograd.grad(selected.sum(), z)``) over exactly the interpolated points that IG
needs (``batch x n_steps`` rows), at the fastest chunk size found by a sweep, with the
points already interpolated and the model's parameters frozen. The sweep ranks chunk
sizes by their fastest run; the best few are then timed with everything else, and the one
with the lowest median is the floor (Captum's best internal_batch_size likewise). Every
variant of a case is timed in the same process, in interleaved rounds (the order rotates
each round), so that load from other processes hits all variants alike and the ratios stay
meaningful on a busy machine.

Peak memory is measured for each (case, variant) in a fresh child process: after one
warm-up call the kernel's peak-RSS mark is reset (``/proc/self/clear_refs``) and the peak
RSS of one more call above the RSS just before it is reported. The child pins glibc's
mmap threshold so that large freed tensors go back to the OS instead of lingering in the
heap, which would hide them from an RSS measurement.

Usage::

    .venv/bin/python benchmarks/bench_core.py                 # full run (~8 min on 2 cores)
    .venv/bin/python benchmarks/bench_core.py --quick         # smoke run (~2-3 min)
    .venv/bin/python benchmarks/bench_core.py --out FILE      # also write the Markdown
    .venv/bin/python benchmarks/bench_core.py --sweep-target  # integrad batch_size sweep
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

N_STEPS = 50
METHOD = "gausslegendre"
THREADS = 2
CASE_NAMES = ("tiny1", "tiny16", "tabular", "cnn", "transformer")
# integrad batch_size values (rows per forward/backward block) tried by --sweep-target.
# The tabular case (3200 rows) also gets the larger sizes.
TARGET_SWEEP_ROWS = (1, 2, 4, 5, 8, 10, 16, 25, 32, 50, 100, 200, 400, 800, 1600, 3200)
TARGET_SWEEP_CASES = ("cnn", "transformer", "tabular")


@dataclass
class Budget:
    """How much wall time to spend per measurement; --quick shrinks all of it."""

    main_s: float  # interleaved timing of all variants of one case
    sweep_s: float  # each chunk-size sweep of one case
    min_repeats: int
    max_repeats: int
    warmups: int
    quick: bool


FULL = Budget(main_s=24.0, sweep_s=10.0, min_repeats=7, max_repeats=101, warmups=2, quick=False)
QUICK = Budget(main_s=3.0, sweep_s=1.5, min_repeats=3, max_repeats=15, warmups=1, quick=True)


# ----------------------------------------------------------------------------- models
class TinyMLP(nn.Module):
    """10 -> 16 -> 1 with tanh: so small that per-call overhead is all there is."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)


class TabularMLP(nn.Module):
    """30 -> 256 -> 256 -> 2 with ReLU, a typical tabular classifier."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                 nn.Linear(256, 2))

    def forward(self, x):
        return self.net(x)


class SmallCNN(nn.Module):
    """Four ReLU conv + max-pool stages (64x64 -> 4x4) and a two-layer head, ~1M parameters."""

    def __init__(self, classes: int = 10):
        super().__init__()
        chans = (3, 32, 64, 128, 256)
        stages = []
        for a, b in zip(chans, chans[1:]):
            stages += [nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(256 * 4 * 4, 144), nn.ReLU(), nn.Linear(144, classes))

    def forward(self, x):
        return self.head(self.features(x))


class TokenTransformer(nn.Module):
    """Token ids -> embedding + learned positions -> 4 GELU encoder layers -> mean pool -> 2 classes.

    ``from_embeddings`` is the model after its token embedding: the floor differentiates it
    directly at interpolated embeddings, which is what layer IG on ``tok_emb`` needs.
    """

    def __init__(self, vocab: int = 1000, d_model: int = 128, heads: int = 4, layers: int = 4,
                 max_len: int = 64, classes: int = 2):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, d_model)
        self.pos_emb = nn.Embedding(max_len, d_model)
        block = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=4 * d_model, activation="gelu",
                                           batch_first=True)
        # enable_nested_tensor only matters for padded batches; off avoids a warning.
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, ids):
        return self.from_embeddings(self.tok_emb(ids))

    def from_embeddings(self, emb):
        pos = self.pos_emb(torch.arange(emb.shape[1], device=emb.device))
        return self.head(self.encoder(emb + pos).mean(1))


# ----------------------------------------------------------------------------- cases
@dataclass
class Case:
    """One benchmark problem: a model, inputs and what IG is asked for."""

    name: str
    title: str
    model: nn.Module
    inputs: torch.Tensor
    baseline: torch.Tensor
    target: int | torch.Tensor
    layer: nn.Module | None = None
    # What the floor differentiates: a frozen copy of the model (or of its part after the
    # attributed layer). A copy, so the floor pays nothing to toggle requires_grad while
    # Captum still sees the model as users hand it over (parameters requiring grad).
    head: Callable[[torch.Tensor], torch.Tensor] = field(default=None)  # type: ignore[assignment]

    @property
    def batch(self) -> int:
        return self.inputs.shape[0]

    @property
    def rows(self) -> int:
        return self.batch * N_STEPS

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def build_case(name: str) -> Case:
    """The seeded, eval-mode model and inputs of case ``name`` (identical in every process)."""
    torch.manual_seed(0)
    if name in ("tiny1", "tiny16"):
        batch = 1 if name == "tiny1" else 16
        model = TinyMLP()
        x = torch.randn(batch, 10)
        case = Case(name, f"tiny MLP 10-16-1, {batch} example{'s' * (batch > 1)}", model, x,
                    torch.zeros_like(x), target=0)
    elif name == "tabular":
        model = TabularMLP()
        x = torch.randn(64, 30)
        case = Case(name, "tabular MLP 30-256-256-2, 64 rows", model, x, torch.zeros_like(x), target=1)
    elif name == "cnn":
        model = SmallCNN()
        x = torch.rand(8, 3, 64, 64)
        case = Case(name, "CNN ~1M params, 8 x 3x64x64", model, x, torch.zeros_like(x),
                    target=torch.randint(0, 10, (8,)))
    elif name == "transformer":
        model = TokenTransformer()
        ids = torch.randint(1, 1000, (8, 64))
        case = Case(name, "transformer 4L d128, 8 x 64 tokens, layer IG", model, ids,
                    torch.zeros_like(ids), target=1, layer=model.tok_emb)
    else:
        raise ValueError(f"unknown case {name!r}; choose from {', '.join(CASE_NAMES)}")
    case.model.eval()
    frozen_copy = copy.deepcopy(case.model).requires_grad_(False)
    case.head = frozen_copy.from_embeddings if case.layer is not None else frozen_copy
    return case


# ----------------------------------------------------------------------------- the contenders
def run_integrad(case: Case, batch_size: int | None = None):
    """integrad with no knob set (or an explicit ``batch_size``)."""
    import integrad

    return integrad.integrated_gradients(case.model, case.inputs, baseline=case.baseline, target=case.target,
                                         method=METHOD, n_steps=N_STEPS, layer=case.layer,
                                         batch_size=batch_size).attributions


def make_captum(case: Case):
    """Captum's IG object for the case: layer IG on the embedding, or plain IG."""
    from captum.attr import IntegratedGradients, LayerIntegratedGradients

    if case.layer is not None:
        return LayerIntegratedGradients(case.model, case.layer)
    return IntegratedGradients(case.model)


def run_captum(case: Case, explainer, internal_batch_size: int | None = None):
    """Captum's ``attribute`` with the same rule and steps; None keeps all rows in one pass."""
    return explainer.attribute(case.inputs, baselines=case.baseline, target=case.target, n_steps=N_STEPS,
                               method=METHOD, internal_batch_size=internal_batch_size)


def path_ends(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end of the straight line, in the space that is interpolated."""
    if case.layer is None:
        return case.baseline, case.inputs
    with torch.no_grad():
        return case.layer(case.baseline), case.layer(case.inputs)


def node_alphas() -> torch.Tensor:
    """The Gauss-Legendre nodes on [0, 1] (the floor only needs where, not the weights)."""
    import numpy as np

    x, _ = np.polynomial.legendre.leggauss(N_STEPS)
    return torch.tensor((x + 1) / 2, dtype=torch.float32)


def interpolate(case: Case, lo: int = 0, hi: int | None = None) -> torch.Tensor:
    """Interpolated rows ``lo:hi`` (example-major: example e, step k is row e * n + k)."""
    start, end = path_ends(case)
    hi = case.rows if hi is None else hi
    r = torch.arange(lo, hi)
    e, k = r // N_STEPS, r % N_STEPS
    a = node_alphas()[k].view(-1, *[1] * (start.dim() - 1))
    return start[e] + a * (end[e] - start[e])


def row_targets(case: Case) -> torch.Tensor | int:
    """The class attributed for each interpolated row."""
    if isinstance(case.target, torch.Tensor):
        return case.target.repeat_interleave(N_STEPS)
    return case.target


def floor_chunk(case: Case, z: torch.Tensor, tgt, lo: int) -> torch.Tensor:
    """One bare forward + backward on rows ``z`` (starting at row ``lo``)."""
    z = z.detach().requires_grad_(True)
    out = case.head(z)
    sel = out[:, tgt] if isinstance(tgt, int) else out.gather(1, tgt[lo:lo + z.shape[0], None])[:, 0]
    return torch.autograd.grad(sel.sum(), z)[0]


def run_floor(case: Case, points: torch.Tensor, chunk: int) -> None:
    """The floor: forward + backward over all pre-interpolated points, ``chunk`` rows at a time."""
    tgt = row_targets(case)
    for lo in range(0, case.rows, chunk):
        floor_chunk(case, points[lo:lo + chunk], tgt, lo)


def run_floor_streaming(case: Case, chunk: int) -> None:
    """The floor as a memory measurement: interpolate each chunk as it is needed."""
    tgt = row_targets(case)
    for lo in range(0, case.rows, chunk):
        floor_chunk(case, interpolate(case, lo, min(case.rows, lo + chunk)), tgt, lo)


# ----------------------------------------------------------------------------- timing
def time_rounds(fns: dict[Any, Callable[[], Any]], rounds: int) -> dict[Any, list[float]]:
    """Wall time of each function, ``rounds`` times, interleaved with a rotating order."""
    keys = list(fns)
    times: dict[Any, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        shift = r % len(keys)
        for k in keys[shift:] + keys[:shift]:
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
    return times


def repeats_for(seconds_per_round: float, budget_s: float, budget: Budget) -> int:
    """How many rounds fit the budget, within the configured bounds."""
    n = int(budget_s / max(seconds_per_round, 1e-6))
    return max(budget.min_repeats, min(budget.max_repeats, n))


def sweep(fns: dict[Any, Callable[[], Any]], budget: Budget) -> tuple[Any, dict[Any, float]]:
    """Fastest key and each key's time: the minimum over rounds, as the least disturbed by load.

    Two rounds for every candidate (the first also warms up new shapes), then more rounds
    only for candidates within 1.5x of the best so far: a sweep is a search, and the winner
    is timed again, side by side with the others, afterwards.
    """
    times = time_rounds(fns, 1 if budget.quick else 2)
    best = {k: min(v) for k, v in times.items()}
    if budget.quick:  # a smoke run takes the warm-up round as the measurement
        return min(best, key=best.get), best
    fastest = min(best.values())
    live = {k: f for k, f in fns.items() if best[k] <= 1.5 * fastest}
    rounds = max(2, min(budget.max_repeats, int(budget.sweep_s / max(sum(best[k] for k in live), 1e-6))))
    for k, v in time_rounds(live, rounds).items():
        best[k] = min(best[k], min(v))
    return min(best, key=best.get), best


def floor_sizes(rows: int, quick: bool) -> list[int]:
    """Chunk sizes for the floor sweep: powers of two and all rows.

    A quick run tries every fourth power of two from 4 (one-row chunks never win, and they
    are the slowest to try).
    """
    sizes, c = [], 4 if quick else 1
    while c < rows:
        sizes.append(c)
        c *= 4 if quick else 2
    return sizes + [rows]


def captum_sizes(batch: int, quick: bool) -> list[int]:
    """Captum's internal_batch_size counts rows but is always a multiple of the batch (whole steps)."""
    steps = (1, 5, 25, 50) if quick else (1, 2, 5, 10, 25, 50)
    return [batch * s for s in steps]


# ----------------------------------------------------------------------------- correctness
def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| relative to max |b| (a scale-free error that ignores tiny entries)."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


# ----------------------------------------------------------------------------- memory (child side)
def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (and ru_maxrss) to the current RSS
        return True
    except OSError:
        return False


def memory_child(name: str, variant: str, param: int | None) -> dict[str, Any]:
    """Peak RSS (MB) of one call of ``variant`` above the RSS just before it."""
    import resource

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", THREADS)))
    case = build_case(name)
    if variant == "integrad":
        call = lambda: run_integrad(case)  # noqa: E731
    elif variant.startswith("captum"):
        explainer = make_captum(case)
        call = lambda: run_captum(case, explainer, param)  # noqa: E731
    elif variant == "floor":
        call = lambda: run_floor_streaming(case, param)  # noqa: E731
    else:
        raise ValueError(variant)
    call()  # loads kernels and lazily built state, so the measured call is a steady-state one
    reset = _reset_peak_rss()
    before = _status_kib("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    call()
    peak = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"mb": max(0, peak - before) / 1024, "exact": reset}


def measure_memory(name: str, variant: str, param: Any, script: str | None = None) -> float:
    """Run ``memory_child`` of ``script`` (default this file) in a fresh interpreter; returns peak
    extra RSS in MB (NaN on failure)."""
    env = dict(os.environ)
    # A fixed threshold stops glibc from raising it (up to 32 MiB) after large frees, so big
    # tensors are always mmap'd and unmapped: RSS then tracks live tensors.
    env["MALLOC_MMAP_THRESHOLD_"] = str(256 * 1024)
    cmd = [sys.executable, script or os.path.abspath(__file__), "--_memory-child", json.dumps([name, variant, param])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)["mb"]
    sys.stderr.write(f"memory child {name}/{variant} failed:\n{proc.stderr[-2000:]}\n")
    return float("nan")


# ----------------------------------------------------------------------------- one case
@dataclass
class Result:
    """One case's numbers: median (and minimum) ms per variant, peak MB, agreement with Captum."""

    case: Case
    floor_chunk: int
    captum_ibs: int
    ms: dict[str, float]
    ms_min: dict[str, float]
    repeats: int
    rel_diff: float
    auto_rows: str
    mem_mb: dict[str, float]


def bench_case(name: str, budget: Budget, memory: bool, log: Callable[[str], None]) -> Result:
    """Sweep the floor's and Captum's chunk sizes, then time every variant side by side."""
    case = build_case(name)
    explainer = make_captum(case)
    t0 = time.perf_counter()

    # Correctness first: a fast wrong answer must not pass unnoticed.
    import integrad

    res = integrad.integrated_gradients(case.model, case.inputs, baseline=case.baseline, target=case.target,
                                        method=METHOD, n_steps=N_STEPS, layer=case.layer)
    ref = run_captum(case, explainer)
    rel = max_rel_diff(res.attributions, ref)
    auto_rows = str(res.settings["batch_size"])

    points = interpolate(case)
    _, floor_sweep = sweep({c: (lambda c=c: run_floor(case, points, c))
                            for c in floor_sizes(case.rows, budget.quick)}, budget)
    log("  floor sweep (rows: min ms): " + ", ".join(f"{c}: {1e3 * t:.2f}" for c, t in floor_sweep.items()))
    _, cap_sweep = sweep({b: (lambda b=b: run_captum(case, explainer, b))
                          for b in captum_sizes(case.batch, budget.quick)}, budget)
    log("  captum sweep (internal_batch_size: min ms): "
        + ", ".join(f"{b}: {1e3 * t:.2f}" for b, t in cap_sweep.items()))

    # The sweeps rank by minimum time, which favours sizes that are fast only sometimes (a
    # block that crosses the allocator's mmap threshold, say). So the few best sizes all go
    # into the side-by-side timing, and the best *median* among them is the reference.
    chunks = sorted(floor_sweep, key=floor_sweep.get)[:2 if budget.quick else 3]
    sizes = sorted(cap_sweep, key=cap_sweep.get)[:1 if budget.quick else 2]
    fns: dict[str, Callable[[], Any]] = {f"floor@{c}": (lambda c=c: run_floor(case, points, c)) for c in chunks}
    fns["integrad"] = lambda: run_integrad(case)
    fns["captum"] = lambda: run_captum(case, explainer)
    fns.update({f"captum@{b}": (lambda b=b: run_captum(case, explainer, b)) for b in sizes})
    warm = time_rounds(fns, budget.warmups)
    per_round = sum(min(v) for v in warm.values())  # min: a stall in warm-up must not cut the rounds
    rounds = repeats_for(per_round, budget.main_s, budget)
    times = time_rounds(fns, rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    log(f"  {rounds} rounds in {time.perf_counter() - t0:.1f}s: "
        + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in med.items()))
    best_chunk = min(chunks, key=lambda c: med[f"floor@{c}"])
    best_ibs = min(sizes, key=lambda b: med[f"captum@{b}"])
    chosen = {"floor": f"floor@{best_chunk}", "integrad": "integrad", "captum": "captum",
              "captum_best": f"captum@{best_ibs}"}
    ms = {k: 1e3 * med[v] for k, v in chosen.items()}
    ms_min = {k: 1e3 * min(times[v]) for k, v in chosen.items()}

    mem = {}
    if memory:
        params = {"floor": best_chunk, "integrad": None, "captum": None, "captum_best": best_ibs}
        for variant, p in params.items():
            mem[variant] = measure_memory(name, variant, p)
        log("  peak extra RSS (MB): " + ", ".join(f"{k} {v:.1f}" for k, v in mem.items()))
    return Result(case, best_chunk, best_ibs, ms, ms_min, rounds, rel, auto_rows, mem)


# ----------------------------------------------------------------------------- report
def machine_lines(argv: list[str]) -> list[str]:
    """Where and when the numbers were taken (and how loaded the machine was)."""
    import captum

    import integrad

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- machine: {cpu}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}",
        f"- software: Python {platform.python_version()}, torch {torch.__version__}, "
        f"captum {captum.__version__}, integrad {integrad.__version__}",
        f"- date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{' '.join(['.venv/bin/python'] + argv)}`",
        f"- load average at start (1, 5, 15 min): {load}",
    ]


def results_table(results: list[Result]) -> list[str]:
    """Markdown tables: times and ratios to the floor, then peak memory and correctness."""
    lines = [
        "| case | params | rows | floor ms (chunk) | integrad ms | captum ms | captum best ms (ibs) "
        "| integrad/floor | captum/floor | captum best/floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        f = r.ms["floor"]
        lines.append(
            f"| {r.case.title} | {r.case.params:,} | {r.case.rows} | {f:.2f} ({r.floor_chunk}) "
            f"| {r.ms['integrad']:.2f} | {r.ms['captum']:.2f} | {r.ms['captum_best']:.2f} ({r.captum_ibs}) "
            f"| **{r.ms['integrad'] / f:.2f}x** | {r.ms['captum'] / f:.2f}x | {r.ms['captum_best'] / f:.2f}x |")
    # Minimum times are what a quiet machine would show; on a loaded one they differ from medians.
    lines += ["", "| case | integrad rows/block | repeats | integrad/floor by min time | peak MB floor "
              "| peak MB integrad | peak MB captum | peak MB captum best | max rel diff vs captum |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        m = r.mem_mb
        cell = (lambda k: f"{m[k]:.1f}" if k in m else "-")
        by_min = r.ms_min["integrad"] / r.ms_min["floor"]
        lines.append(f"| {r.case.title} | {r.auto_rows} | {r.repeats} | {by_min:.2f}x | {cell('floor')} "
                     f"| {cell('integrad')} | {cell('captum')} | {cell('captum_best')} | {r.rel_diff:.1e} |")
    return lines


# ----------------------------------------------------------------------------- --sweep-target
class SavedBytes(torch.autograd.graph.saved_tensors_hooks):
    """Distinct bytes autograd saves for backward, parameters excluded (as integrad measures it)."""

    def __init__(self, exclude: set[int]):
        self.bytes, self.seen = 0, set(exclude)
        super().__init__(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in self.seen:
            self.seen.add(ptr)
            self.bytes += t.untyped_storage().nbytes()
        return t


def saved_bytes_per_row(case: Case, rows: int) -> float:
    """Autograd-saved bytes per interpolated row for a block of ``rows`` rows."""
    owner = case.head if isinstance(case.head, nn.Module) else case.head.__self__
    params = {t.untyped_storage().data_ptr() for t in (*owner.parameters(), *owner.buffers())}
    z = interpolate(case, 0, rows)
    saved = SavedBytes(params)  # (its __enter__ returns None, so no `as`)
    with saved:
        out = case.head(z.requires_grad_(True))
        s = out[:, 0].sum()
    del out, s
    return saved.bytes / rows


def sweep_target(names: list[str], budget: Budget, log: Callable[[str], None]) -> list[str]:
    """integrad's time for explicit batch_size values, with the saved MiB of such a block."""
    import integrad

    lines = []
    for name in names:
        case = build_case(name)
        sizes = [b for b in TARGET_SWEEP_ROWS if b <= case.rows]
        per_row = {b: saved_bytes_per_row(case, b) for b in sizes}
        res = integrad.integrated_gradients(case.model, case.inputs, baseline=case.baseline,
                                            target=case.target, n_steps=N_STEPS, layer=case.layer)
        auto = res.settings["batch_size"]
        fns: dict[Any, Callable[[], Any]] = {b: (lambda b=b: run_integrad(case, b)) for b in sizes}
        fns["auto"] = lambda: run_integrad(case)
        warm = time_rounds(fns, 1)  # warm-up; also sizes the number of rounds
        per_round = sum(v[0] for v in warm.values())
        rounds = max(3, min(budget.max_repeats, int(4 * budget.main_s / max(per_round, 1e-6))))
        times = time_rounds(fns, rounds)
        med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        low = {k: 1e3 * min(v) for k, v in times.items()}
        best = min(med[b] for b in sizes)
        log(f"  {name}: {rounds} rounds")
        lines += [f"### {case.title} ({case.params:,} params, {case.rows} rows; auto = {auto})", "",
                  "| batch_size (rows/block) | ms (median) | ms (min) | median vs best | saved KiB/row "
                  "| saved MiB/block |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for b in sizes:
            lines.append(f"| {b} | {med[b]:.1f} | {low[b]:.1f} | {med[b] / best:.2f}x | {per_row[b] / 1024:.1f} "
                         f"| {per_row[b] * b / 2**20:.1f} |")
        lines += [f"| {auto} | {med['auto']:.1f} | {low['auto']:.1f} | {med['auto'] / best:.2f}x | | |", ""]
    return lines


# ----------------------------------------------------------------------------- main
def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: short budgets, coarse sweeps")
    ap.add_argument("--out", metavar="FILE", help="also write the Markdown report to FILE")
    ap.add_argument("--cases", default=",".join(CASE_NAMES), help=f"comma-separated subset of {CASE_NAMES}")
    ap.add_argument("--threads", type=int, default=THREADS, help="torch intra-op threads (default 2)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS child processes")
    ap.add_argument("--sweep-target", action="store_true",
                    help="time integrad at explicit batch_size values (cnn, transformer, tabular) instead")
    ap.add_argument("--_memory-child", dest="memory_child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.memory_child:
        print(json.dumps(memory_child(*json.loads(args.memory_child))), flush=True)
        return 0

    torch.set_num_threads(args.threads)
    os.environ["BENCH_THREADS"] = str(args.threads)  # the memory children use the same
    budget = QUICK if args.quick else FULL
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731 (progress, not the report)
    started = time.perf_counter()
    header = machine_lines(["benchmarks/bench_core.py"] + argv)

    if args.sweep_target:
        names = [n for n in names if n in TARGET_SWEEP_CASES] or list(TARGET_SWEEP_CASES)
        body = ["## integrad batch_size sweep", ""] + sweep_target(names, budget, log)
    else:
        results = []
        for name in names:
            log(f"{name}:")
            results.append(bench_case(name, budget, not args.no_memory, log))
        body = ["## integrad vs Captum vs the floor (IG, 50 steps, Gauss-Legendre, float32, CPU)", ""]
        body += results_table(results)
    footer = [f"- load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"total {time.perf_counter() - started:.0f} s"]
    report = "\n".join(body + [""] + header + footer) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
