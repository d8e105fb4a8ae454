"""Blur IG and Guided IG: integrad against PAIR ``saliency`` 0.2.1 and the floor, side by side.

For two models, a batch of 8 images and each method at equal steps ``S``:

- **saliency**: its documented usage, one example at a time on HWC numpy arrays, with a
  PyTorch ``call_model_function`` that returns ``torch.autograd.grad`` of the target logit
  with respect to the images. Blur IG: ``BlurIG().GetMask(steps=S, batch_size=25,
  max_sigma=50, grad_step=0.01)`` (its defaults but steps and batch_size; 25 is half of
  S=50, two equal model calls per image). Guided IG: ``GuidedIG().GetMask(x_steps=S,
  fraction=0.25, max_dist=0.02)`` (its defaults but x_steps), its module given numpy with
  ``np.quantile(interpolation=...)``, which numpy 2.4 removed.
- **integrad** on the batch of 8: ``blur_ig(method="riemann_right", n_steps=S)`` (saliency's
  rule: it sums sigma = i * max_sigma / S for i < S, forward differences in sigma), and
  ``guided_ig(rule="left", n_steps=S)`` (the paper's one-sided sums, saliency's) and
  ``rule="trapezoid"`` (integrad's default, one more gradient per example), both with
  ``batch_size=8``: one block per step, what the automatic size settles on, given because
  the automatic size fails on 224-px rows (see ``integrad_guided``).
- **floor**: a bare forward + backward (``torch.autograd.grad`` of the selected logits
  w.r.t. the points) of the same rows, points computed beforehand, parameters frozen, in
  the block sizes integrad uses: Blur IG's ``8 x S`` rows tiled as integrad tiles them,
  Guided IG's ``S`` blocks of 8 rows (one per step: the path is sequential), ``S + 1``
  blocks for the trapezoid (the same call, timed at both marks).

Every variant of a model is timed in one process, in interleaved rounds whose order rotates;
medians. Agreement, per model and method, is ``max over examples of ||integrad - saliency||
/ ||saliency||``. For Blur IG it is taken against a second saliency run whose blur is given
integrad's radius (``round(4 * max_sigma)`` taps for the whole path; saliency's own
``scipy.ndimage.gaussian_filter`` cuts each blur at ``4 * sigma``), on float64 images with
``grad_step=1e-6``, so the two compute the same sum; saliency is *timed* unpatched. The
agreement of the timed, unpatched run is printed too. For Guided IG it is the timed runs'.
Both are float32 runs; a float64 check (float64 copies of the model, saliency's blur given
integrad's radius) shows how far apart the two implementations are without rounding. Also
printed: the time saliency spends inside its model calls, and the time of integrad's blur
path alone (points and velocities, in integrad's blocks).

Usage::

    .venv/bin/python benchmarks/bench_paths.py            # small CNN and EfficientNet-Lite0, S=50 (~10 min)
    .venv/bin/python benchmarks/bench_paths.py --quick    # small CNN only, S=10 (~15 s on a quiet machine)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import sys
import time
import types
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_core as core  # noqa: E402

import integrad  # noqa: E402
from integrad.core.chunking import PROBE_BYTES, PROBE_ROWS, SMALL_BYTES, blocks  # noqa: E402
from integrad.paths import BlurPath  # noqa: E402

BATCH = 8
MAX_SIGMA = 50.0  # saliency's and integrad's default
SALIENCY_BLUR_BATCH = 25  # saliency BlurIG's batch_size: steps per model call
FRACTION, MAX_DIST = 0.25, 0.02  # Guided IG's defaults in both


# ----------------------------------------------------------------------------- cases
@dataclass
class Case:
    name: str
    model: torch.nn.Module  # as users hand it over (parameters requiring grad)
    frozen: torch.nn.Module  # the floor's copy, parameters frozen
    x: torch.Tensor  # (8, 3, H, W) float32 in [0, 1]
    target: torch.Tensor  # (8,) each example's predicted class
    steps: int  # S, both methods
    rounds: int
    path_examples: int  # examples whose blur path is timed alone
    agree_examples: int  # examples of the radius-patched saliency Blur IG run
    check64: tuple[int, int]  # (examples, steps) of the float64 check


def _case(name: str, model: torch.nn.Module, x: torch.Tensor, steps: int, rounds: int, small: bool) -> Case:
    model.eval()
    frozen = copy.deepcopy(model).requires_grad_(False)
    with torch.no_grad():
        target = model(x).argmax(1)
    # on EfficientNet every model evaluation costs ~0.15 s, so the extra runs are cut down
    extra = dict(path_examples=BATCH, agree_examples=BATCH, check64=(BATCH, min(steps, 20))) if small else \
        dict(path_examples=1, agree_examples=2, check64=(1, 10))
    return Case(name, model, frozen, x, target, steps, rounds, **extra)


def cnn_case(steps: int, rounds: int) -> Case:
    """bench_core's SmallCNN (4 ReLU conv stages, ~1M parameters), seeded, on 3x64x64 noise."""
    torch.manual_seed(0)
    model = core.SmallCNN()
    x = torch.rand(BATCH, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    return _case("small CNN, 3x64x64", model, x, steps, rounds, small=True)


def effnet_case(steps: int, rounds: int) -> Case:
    """EfficientNet-Lite0 on 'chelsea': four 224-px corner crops of the 256-px photo, and their mirror images."""
    from integrad.image import load_image
    from integrad.models import load_imagenet_model

    model, _ = load_imagenet_model()
    big, _ = load_image("chelsea", size=256)
    crops = [big[:, i:i + 224, j:j + 224] for i in (0, 32) for j in (0, 32)]
    x = torch.stack(crops + [c.flip(-1) for c in crops]).contiguous()
    return _case("EfficientNet-Lite0, 3x224x224", model, x, steps, rounds, small=False)


# ----------------------------------------------------------------------------- saliency
def call_model(model: torch.nn.Module, clock: list[float] | None = None) -> Callable:
    """saliency's call_model_function: HWC numpy batch -> gradients of the target logit, HWC.

    The time spent inside it (conversions included) is added to ``clock[0]``.
    """
    from saliency.core.base import INPUT_OUTPUT_GRADIENTS

    dtype = next(model.parameters()).dtype

    def call(batch, call_model_args=None, expected_keys=None):
        t0 = time.perf_counter()
        z = torch.tensor(np.asarray(batch).transpose(0, 3, 1, 2), dtype=dtype).contiguous()
        z.requires_grad_(True)
        out = model(z)[:, call_model_args["target"]]
        (g,) = torch.autograd.grad(out.sum(), z)
        grads = g.permute(0, 2, 3, 1).numpy()
        if clock is not None:
            clock[0] += time.perf_counter() - t0
        return {INPUT_OUTPUT_GRADIENTS: grads}

    return call


@contextlib.contextmanager
def radius_of(radius: int):
    """saliency's blur with one radius for every sigma (integrad's), inside this block only."""
    from scipy import ndimage
    from saliency.core import blur_ig as mod

    def blur(image, sigma):
        if sigma == 0:
            return image
        return ndimage.gaussian_filter(image, sigma=[sigma, sigma, 0], mode="constant", radius=[radius, radius, 0])

    old, mod.gaussian_blur = mod.gaussian_blur, blur
    try:
        yield
    finally:
        mod.gaussian_blur = old


@contextlib.contextmanager
def numpy_24_quantile():
    """saliency 0.2.1's Guided IG calls np.quantile(..., interpolation='lower'); numpy 2.4 calls
    that keyword method= (the same computation). Its module sees the old spelling in this block."""
    from saliency.core import guided_ig as mod

    shim = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    shim.quantile = lambda a, q, interpolation="linear", **kw: np.quantile(a, q, method=interpolation, **kw)
    old, mod.np = mod.np, shim
    try:
        yield
    finally:
        mod.np = old


def saliency_blur(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int, *,
                  radius: int | None = None, dtype=np.float32, grad_step: float = 0.01,
                  clock: list[float] | None = None) -> torch.Tensor:
    """saliency's BlurIG on each image of ``x`` (its own blur, or one of ``radius`` taps)."""
    import saliency.core as sal

    call, blur = call_model(model, clock), sal.BlurIG()
    images = x.permute(0, 2, 3, 1).numpy().astype(dtype)
    with radius_of(radius) if radius else contextlib.nullcontext():
        out = [blur.GetMask(images[i], call, {"target": int(target[i])}, max_sigma=MAX_SIGMA, steps=steps,
                            grad_step=grad_step, batch_size=SALIENCY_BLUR_BATCH) for i in range(len(images))]
    return torch.tensor(np.stack(out)).permute(0, 3, 1, 2)


def saliency_guided(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int, *,
                    clock: list[float] | None = None) -> torch.Tensor:
    """saliency's GuidedIG on each image of ``x`` from a black baseline."""
    import saliency.core as sal

    call, guided = call_model(model, clock), sal.GuidedIG()
    images = x.permute(0, 2, 3, 1).numpy()
    with numpy_24_quantile():
        out = [guided.GetMask(images[i], call, {"target": int(target[i])}, x_steps=steps, fraction=FRACTION,
                              max_dist=MAX_DIST) for i in range(len(images))]
    return torch.tensor(np.stack(out)).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- integrad
def integrad_blur(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int) -> integrad.Attribution:
    return integrad.blur_ig(model, x, max_sigma=MAX_SIGMA, n_steps=steps, method="riemann_right", target=target)


def integrad_guided(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int,
                    rule: str) -> integrad.Attribution:
    # batch_size=8 (one block per step, what the automatic size gives after its probe): with
    # automatic blocks, guided_ig fails when the memory probe block is smaller than the batch
    # (rows over 128 KiB, such as 3x224x224): its block loop keeps the probe's stride
    return integrad.guided_ig(model, x, baseline=0.0, n_steps=steps, fraction=FRACTION, max_dist=MAX_DIST,
                              rule=rule, target=target, batch_size=BATCH)


def block_rows(res: integrad.Attribution) -> int:
    """integrad's rows per block after its probe, from ``settings['batch_size']`` ('auto (N rows)')."""
    text = str(res.settings["batch_size"])
    return int(text.split("(")[1].split()[0]) if "(" in text else int(text)


# ----------------------------------------------------------------------------- floor
def tiles(batch: int, n: int, rows: int, row_bytes: int) -> list[tuple[int, int, int, int]]:
    """(e0, e1, k0, k1): the blocks integrad's fixed rules run (core/fixed.py): a first probe
    block, then ``rows`` (the measured block size) per block."""
    total = batch * n
    if total * row_bytes <= SMALL_BYTES:
        return list(blocks(batch, n, total, 0, 0))
    probe = max(1, min(total, PROBE_ROWS, PROBE_BYTES // row_bytes))
    e0, e1, k0, k1 = next(blocks(batch, n, probe, 0, 0))
    pos = (e1, 0) if k1 == n else (e0, k1)
    return [(e0, e1, k0, k1)] + (list(blocks(batch, n, rows, *pos)) if pos[0] < batch else [])


def floor_pass(frozen: torch.nn.Module, z: torch.Tensor, target: torch.Tensor) -> None:
    z = z.detach().requires_grad_(True)
    out = frozen(z).gather(1, target[:, None])
    torch.autograd.grad(out.sum(), z)


def floor_blur(case: Case, points: torch.Tensor, blocks: list[tuple[int, int, int, int]]) -> None:
    """points (8, S, C, H, W): the Blur IG path's nodes, forward + backward block by block."""
    for e0, e1, k0, k1 in blocks:
        z = points[e0:e1, k0:k1].reshape(-1, *points.shape[2:])
        floor_pass(case.frozen, z, case.target[e0:e1].repeat_interleave(k1 - k0))


def blur_path_only(case: Case, nodes: torch.Tensor, blocks: list[tuple[int, int, int, int]]) -> None:
    """integrad's blur path (points and velocities) alone, block by block as integrad asks for it."""
    path = BlurPath(MAX_SIGMA)
    for e0, e1, k0, k1 in blocks:
        x = case.x[e0:e1]
        path(x, x, nodes[k0:k1].expand(e1 - e0, -1))


def floor_guided(case: Case, points: torch.Tensor, marks: dict[str, float]) -> None:
    """points (S + 1, 8, C, H, W): one block of the 8 examples per step; the time after S
    blocks (the one-sided rule's evaluations) and after S + 1 (the trapezoid's) go to ``marks``."""
    t0 = time.perf_counter()
    for s in range(points.shape[0]):
        if s == points.shape[0] - 1:
            marks["left"] = time.perf_counter() - t0
        floor_pass(case.frozen, points[s], case.target)
    marks["trapezoid"] = time.perf_counter() - t0


# ----------------------------------------------------------------------------- agreement
def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max over examples of ||a - b|| / ||b||."""
    a, b = a.double().flatten(1), b.double().flatten(1)
    return float(((a - b).norm(dim=1) / b.norm(dim=1)).max())


def float64_check(case: Case, examples: int, steps: int) -> dict[str, float]:
    """Both libraries on a float64 copy of the model (saliency's blur given integrad's radius):
    how far apart the two implementations are when rounding is out of the way."""
    m64 = copy.deepcopy(case.model).double()
    x, t = case.x[:examples].double(), case.target[:examples]
    radius = BlurPath(MAX_SIGMA).radius
    blur = rel_diff(integrad_blur(m64, x, t, steps).attributions,
                    saliency_blur(m64, x, t, steps, radius=radius, dtype=np.float64, grad_step=1e-7))
    guided = rel_diff(integrad_guided(m64, x, t, steps, "left").attributions, saliency_guided(m64, x, t, steps))
    return {"blur": blur, "guided": guided}


# ----------------------------------------------------------------------------- one model
def bench_model(case: Case, log: Callable[[str], None]) -> list[dict[str, Any]]:
    S, t0 = case.steps, time.perf_counter()
    m, x, t = case.model, case.x, case.target
    log(f"{case.name}: S={S}, {case.rounds} round(s), targets {t.tolist()}")

    # warm-up at 2 steps: kernels, thread pools and lazily built state, at little cost
    integrad_blur(m, x, t, 2), integrad_guided(m, x, t, 2, "left"), saliency_guided(m, x, t, 2)
    saliency_blur(m, x, t, 2)
    # block sizes and the floor's points (not timed)
    blur_res = integrad_blur(m, x, t, S)
    blur_tiles = tiles(BATCH, S, block_rows(blur_res), x[0].numel() * x.element_size())
    path_tiles = [b for b in blur_tiles if b[0] < case.path_examples]
    nodes = torch.arange(1, S + 1, dtype=torch.float64) / S  # riemann_right
    blur_points, _ = BlurPath(MAX_SIGMA)(x, x, nodes.expand(BATCH, S))
    guided_points = (torch.arange(S + 1, dtype=torch.float32) / S).view(-1, 1, 1, 1, 1) * x
    log(f"  integrad blocks: blur_ig {blur_res.settings['batch_size']} -> floor {len(blur_tiles)} blocks of "
        f"{sorted({(e1 - e0) * (k1 - k0) for e0, e1, k0, k1 in blur_tiles})} rows; guided_ig "
        f"{integrad_guided(m, x, t, 2, 'left').settings['batch_size']}; warm-up and set-up "
        f"{time.perf_counter() - t0:.0f} s")

    out: dict[str, Any] = {}
    marks: list[dict[str, float]] = []
    clocks: dict[str, list[float]] = {"blur": [], "guided": []}

    def keep(key, fn):
        def run():
            out[key] = fn()
        return run

    def timed_saliency(key, fn):
        def run():
            clock = [0.0]
            out[f"{key} saliency"] = fn(clock)
            clocks[key].append(clock[0])
        return run

    def guided_floor():
        marks.append({})
        floor_guided(case, guided_points, marks[-1])

    fns = {
        "blur saliency": timed_saliency("blur", lambda c: saliency_blur(m, x, t, S, clock=c)),
        "blur integrad": keep("blur integrad", lambda: integrad_blur(m, x, t, S)),
        "blur floor": lambda: floor_blur(case, blur_points, blur_tiles),
        "blur path only": lambda: blur_path_only(case, nodes, path_tiles),
        "guided saliency": timed_saliency("guided", lambda c: saliency_guided(m, x, t, S, clock=c)),
        "guided integrad left": keep("guided left", lambda: integrad_guided(m, x, t, S, "left")),
        "guided integrad trapezoid": keep("guided trapezoid", lambda: integrad_guided(m, x, t, S, "trapezoid")),
        "guided floor": guided_floor,
    }
    times = core.time_rounds(fns, case.rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    for rule in ("left", "trapezoid"):
        med[f"guided floor {rule}"] = statistics.median(mk[rule] for mk in marks)
    in_model = {k: statistics.median(v) for k, v in clocks.items()}
    log("  medians: " + ", ".join(f"{k} {v:.2f} s" for k, v in med.items()))
    notes = [
        f"{case.name}: saliency spent {in_model['blur']:.2f} s of its Blur IG's {med['blur saliency']:.2f} s and "
        f"{in_model['guided']:.2f} s of its Guided IG's {med['guided saliency']:.2f} s inside the model calls "
        f"(median over rounds); integrad's blur path alone (points and velocities, in integrad's blocks) took "
        f"{med['blur path only']:.2f} s for {case.path_examples} of the {BATCH} examples; integrad's blocks: blur_ig "
        f"{blur_res.settings['batch_size']} (floor: {len(blur_tiles)} blocks), guided_ig one block of {BATCH} rows "
        f"per step (batch_size=8)"]

    # agreement of the timed float32 runs. Blur IG: saliency again, its blur given integrad's
    # radius, on float64 images (blur and finite difference in float64, model in float32)
    t1 = time.perf_counter()
    radius, n = BlurPath(MAX_SIGMA).radius, case.agree_examples
    same = saliency_blur(m, x[:n], t[:n], S, radius=radius, dtype=np.float64, grad_step=1e-6)
    blur_agree = rel_diff(out["blur integrad"].attributions[:n], same)
    unpatched = rel_diff(out["blur integrad"].attributions, out["blur saliency"])
    g_left = rel_diff(out["guided left"].attributions, out["guided saliency"])
    g_trap = rel_diff(out["guided trapezoid"].attributions, out["guided saliency"])
    log(f"  float32 agreement ({time.perf_counter() - t1:.0f} s): Blur IG {blur_agree:.1e} against saliency with "
        f"radius {radius} ({n} examples), {unpatched:.1e} against the timed, unpatched saliency; Guided IG left "
        f"{g_left:.1e}, trapezoid {g_trap:.1e}")
    t1 = time.perf_counter()
    f64 = float64_check(case, *case.check64)
    log(f"  float64 check ({case.check64[0]} examples, S={case.check64[1]}, {time.perf_counter() - t1:.0f} s): "
        f"Blur IG {f64['blur']:.1e}, Guided IG left {f64['guided']:.1e}; {case.name} done in "
        f"{time.perf_counter() - t0:.0f} s")
    notes.append(f"{case.name}: Blur IG against the timed, unpatched saliency (its own radius, grad_step=0.01): "
                 f"{unpatched:.1e}; float64 check ({case.check64[0]} example(s), S={case.check64[1]}): Blur IG "
                 f"{f64['blur']:.1e}, Guided IG (left) {f64['guided']:.1e}")

    row = lambda method, sal, ours, floor, agree: {  # noqa: E731
        "model": case.name, "method": method, "steps": S, "rounds": case.rounds, "saliency": med[sal],
        "integrad": med[ours], "floor": med[floor], "agree": agree}
    return notes, [
        row("Blur IG (riemann_right)", "blur saliency", "blur integrad", "blur floor",
            f"{blur_agree:.1e}" + (f" ({n} ex.)" if n < BATCH else "")),
        row("Guided IG (left)", "guided saliency", "guided integrad left", "guided floor left", f"{g_left:.1e}"),
        row("Guided IG (trapezoid)", "guided saliency", "guided integrad trapezoid", "guided floor trapezoid",
            f"{g_trap:.1e} (other rule)"),
    ]


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| model | method | steps | saliency s (per batch of 8) | integrad s | floor s | saliency / integrad "
             "| integrad / floor | agreement |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['method']} | {r['steps']} | {r['saliency']:.2f} | {r['integrad']:.2f} "
                     f"| {r['floor']:.2f} | {r['saliency'] / r['integrad']:.2f}x | {r['integrad'] / r['floor']:.2f}x "
                     f"| {r['agree']} |")
    return lines


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: small CNN only, S=10, 3 rounds")
    ap.add_argument("--steps", type=int, default=50, help="S for both methods and models (default 50)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds on the small CNN (default 3)")
    ap.add_argument("--effnet-rounds", type=int, default=1,
                    help="interleaved rounds on EfficientNet-Lite0 (default 1: a round is several minutes on 2 cores)")
    args = ap.parse_args(argv)

    torch.set_num_threads(core.THREADS)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731 (progress, not the report)
    started = time.perf_counter()
    load = lambda: ", ".join(f"{v:.2f}" for v in os.getloadavg())  # noqa: E731
    print(f"load average at start (1, 5, 15 min): {load()}; torch threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}, integrad {integrad.__version__}, numpy {np.__version__}", flush=True)
    if args.quick:
        cases = [lambda: cnn_case(10, 3)]
    else:
        cases = [lambda: cnn_case(args.steps, args.rounds), lambda: effnet_case(args.steps, args.effnet_rounds)]
    rows, notes = [], []
    for make in cases:
        n, r = bench_model(make(), log)
        notes += n
        rows += r
    print()
    print("\n".join(table(rows)))
    print()
    print("rounds (medians of): " + ", ".join(dict.fromkeys(f"{r['model']} {r['rounds']}" for r in rows)) +
          f"; saliency BlurIG batch_size={SALIENCY_BLUR_BATCH}, max_sigma={MAX_SIGMA:g}, grad_step=0.01; "
          f"Guided IG fraction={FRACTION}, max_dist={MAX_DIST}, black baseline")
    for line in notes:
        print(f"- {line}")
    print(f"load average at end (1, 5, 15 min): {load()}; total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
