"""How many gradient evaluations, and how much time, does each way of integrating IG need
to reach a given accuracy on every example of a batch?

For each model and batch of examples:

* **Reference.** The issue asks for Gauss-Legendre with 4096 nodes in float64, but on ReLU
  networks that is not accurate enough: the gradient jumps wherever a ReLU switches, every
  rule then converges like 1/n, and GL-4096 is off by 2e-4 on the tabular MLP. So:
  ReLU MLP: exact (Gauss-Legendre on every linear piece between the switching points, which
  are found by bisection on the ReLU pattern); smooth models: Gauss-Legendre with ``ref_n``
  nodes, which converges exponentially (checked against half as many nodes); the ReLU CNN:
  GL-2048, good to ~1e-3 and so used for 1e-2 only; EfficientNet-Lite0 (float32, a fifth of
  the cost of float64 on this CPU): no affordable reference, so only a Gauss-Legendre ladder
  and one rtol run are reported (not ``method="piecewise"``: it has far too many pieces).
* **Accuracy** of an attribution is, per example, ``||attr - ref|| / ||ref||`` over all
  features (or layer activations).
* **Fixed rules** (Captum's five and integrad's five; four of them are the same rule in both
  libraries) are run at n = 2, 4, 8, ... (one n for the whole batch, what a user without an
  oracle must do); a rule's cost is ``n x batch`` at the smallest n where the worst example is
  within the tolerance.
* **Best n in hindsight**: per example, the smallest n of any rule; summed over the batch.
* **integrad ``rtol=tol``**: its per-example ``n_evals``, summed; and the error it really
  achieved (against the reference).
* **integrad ``method="piecewise"``** (exact IG for piecewise-linear networks): tried on the
  first example of every model with a reference (the bare network, its softmax as ``head=``); where
  integrad refuses the model, the first clause of its message is reported. Where it runs: its
  passes (``n_evals``: one forward-mode forward plus one backward per linear piece), summed, and
  its true error. A pass costs more than one gradient evaluation, so its wall time per pass is
  timed against integrad's fixed Gauss-Legendre per evaluation, with as many nodes as the mean
  passes per example, in interleaved rounds.
* **Wall time at equal accuracy**: integrad ``rtol=tol`` (and ``method="piecewise"``, exact)
  against Captum's cheapest rule at the n it needs for the batch, timed in interleaved rounds in
  the same process.

How fixed rules are evaluated cheaply. A rule with nodes a_k and weights w_k gives
``(x - x') * sum_k w_k grad F(x' + a_k (x - x'))``. Calling each library for every rule and
every n would spend about ten times the evaluations of the whole benchmark, so gradients are
computed once per node and shared: the left, right and middle Riemann sums at n = 2^k reuse
the dyadic points of coarser levels (left_2n = left_n's points + middle_n's points), and the
two trapezoid rules share their nodes (integrad's weights sum to 1, Captum's
``riemann_trapezoid`` weights to (n - 1) / n). The nodes and weights are the libraries' own
(``integrad.rule``; Captum's are the same numbers up to its float32 ``linspace``); a check
compares the shared-gradient results with real calls of both libraries for every rule at
n = 4. A rule stops being swept once it reaches the tightest tolerance on every example, and
(on the expensive models) once n passes both ``sweep_to`` and the n at which the best rule
got there: beyond that it can change neither the cheapest fixed rule nor the hindsight sum,
and its count is reported as ``> n``.

Usage::

    .venv/bin/python benchmarks/bench_adaptive.py                  # full run (~4 min, effnet ~20 min more; 2 cores)
    .venv/bin/python benchmarks/bench_adaptive.py --quick          # smoke run (~1 min)
    .venv/bin/python benchmarks/bench_adaptive.py --out FILE       # also write the Markdown
    .venv/bin/python benchmarks/bench_adaptive.py --models tabular,cnn
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import math
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from bench_core import SmallCNN, TabularMLP, TokenTransformer

TOLS = (1e-2, 1e-3)
N_START, N_CAP = 2, 4096
CAPTUM_DEFAULT_N = 50  # Captum's default: Gauss-Legendre, 50 steps
VALIDATE_N = 4
THREADS = 2
MODEL_NAMES = ("tabular", "transformer", "sentiment", "cnn", "effnet")

# (method name, which libraries have it, which shared nodes it uses). Four rules exist in both
# libraries under the same name with the same nodes and weights; only the trapezoid differs.
RULES = (
    ("gausslegendre", "both", "gl"),
    ("riemann_left", "both", "dyadic"),
    ("riemann_right", "both", "dyadic"),
    ("riemann_middle", "both", "dyadic"),
    ("trapezoid", "integrad", "trap"),
    ("riemann_trapezoid", "Captum", "trap"),
)

def log(msg: str) -> None:
    """Progress goes to stderr; the report goes to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- problems
class SoftmaxOutput(nn.Module):
    """A classifier with a softmax on its logits, so IG attributes a class probability."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, *args, **kwargs):
        out = self.net(*args, **kwargs)
        return getattr(out, "logits", out).softmax(-1)


@dataclass
class Problem:
    """One model, one batch, and how to spend compute on it."""

    key: str
    title: str
    smooth: bool  # smooth activations (GELU) or piecewise linear (ReLU, ReLU6)
    model: nn.Module  # SoftmaxOutput around the network, float64 (EfficientNet: float32), eval mode
    inputs: torch.Tensor
    baseline: Any
    target: torch.Tensor  # attributed class per example (the predicted one)
    note: str
    layer: nn.Module | None = None
    mask: torch.Tensor | None = None  # attention mask, an extra model argument
    ref_n: int = 4096
    exact: bool = False  # exact reference: integrate between the ReLU switching points (MLPs only)
    tols: tuple[float, ...] = TOLS  # tolerances measured (a reference must be well within them)
    # Without tolerances (no affordable reference): Gauss-Legendre at these n, compared with
    # the finest, and one rtol run at `ladder_rtol`, compared with the finest too.
    ladder: tuple[int, ...] = ()
    ladder_rtol: float = 1e-2
    max_evals: int = 4097  # integrad's default, per example
    sweep_to: int = N_CAP  # sweep every rule at least this far (if it has not converged)
    rows: int = 256  # interpolated rows per forward/backward in the shared-gradient sweep
    captum_ibs: int | None = None  # Captum's internal_batch_size (None: all rows at once)
    repeats: int = 3  # timing rounds

    @property
    def batch(self) -> int:
        return self.inputs.shape[0]

    def integrad_kwargs(self, rows: slice = slice(None)) -> dict[str, Any]:
        """integrad's keyword arguments for the examples in ``rows`` (default: all)."""
        base = self.baseline[rows] if isinstance(self.baseline, torch.Tensor) else self.baseline
        kw: dict[str, Any] = {"baseline": base, "target": self.target[rows], "layer": self.layer}
        if self.mask is not None:
            kw["forward_kwargs"] = {"attention_mask": self.mask[rows]}
        return kw

    def captum_call(self, method: str, n: int) -> Callable[[], torch.Tensor]:
        """Captum's attribute() for this problem with ``method`` and ``n`` steps."""
        from captum.attr import IntegratedGradients, LayerIntegratedGradients

        explainer = (LayerIntegratedGradients(self.model, self.layer) if self.layer is not None
                     else IntegratedGradients(self.model))
        extra = (self.mask,) if self.mask is not None else None
        return lambda: explainer.attribute(self.inputs, baselines=self.baseline, target=self.target,
                                           additional_forward_args=extra, n_steps=n, method=method,
                                           internal_batch_size=self.captum_ibs)


def predicted(model: nn.Module, *args, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(*args, **kwargs).argmax(-1)


def build_tabular(quick: bool) -> Problem:
    torch.manual_seed(0)
    model = SoftmaxOutput(TabularMLP()).double().eval()
    x = torch.randn(6 if quick else 12, 30, dtype=torch.float64)
    return Problem("tabular", f"tabular MLP 30-256-256-2 (ReLU), {x.shape[0]} rows", False, model, x, 0.0,
                   predicted(model, x), "random init (bench_core.TabularMLP), baseline 0", exact=True,
                   rows=4096, captum_ibs=None)


def build_cnn(quick: bool) -> Problem:
    torch.manual_seed(0)
    model = SoftmaxOutput(SmallCNN()).double().eval()
    x = torch.rand(1 if quick else 2, 3, 64, 64, dtype=torch.float64)
    # ~80,000 ReLU switches along each path make every rule converge like 1/n (Gauss-Legendre
    # with 1024 and 2048 nodes differ by 2e-3), so no affordable reference is good to 1e-3.
    return Problem("cnn", f"CNN 4 conv (ReLU, max-pool), {x.shape[0]} x 3x64x64", False, model, x, 0.0,
                   predicted(model, x), "random init (bench_core.SmallCNN), black baseline", ref_n=2048,
                   tols=(1e-2,), sweep_to=0, rows=64, captum_ibs=64 * x.shape[0], repeats=2)


def build_transformer(quick: bool) -> Problem:
    torch.manual_seed(0)
    net = TokenTransformer()
    model = SoftmaxOutput(net).double().eval()
    batch, length = (2, 16) if quick else (4, 32)
    ids = torch.randint(1, 1000, (batch, length))
    return Problem("transformer", f"transformer 4L d128 (GELU), {batch} x {length} tokens, layer IG", True, model,
                   ids, torch.zeros_like(ids), predicted(model, ids),
                   "random init (bench_core.TokenTransformer), layer IG on tok_emb, baseline id 0",
                   layer=net.tok_emb, ref_n=256 if quick else 512, sweep_to=64 if quick else 128, rows=128,
                   captum_ibs=128)


SENTENCES = (
    "The film was wonderful and the acting superb.",
    "A dull, predictable plot and wooden performances.",
    "I expected little, but it surprised me in the best way.",
    "Not the worst movie I have seen, but close.",
)


def build_sentiment(quick: bool) -> Problem:
    from integrad.models._sentiment import WEIGHTS_PATH, load_sentiment_model

    net, tok = load_sentiment_model()
    model = SoftmaxOutput(net).double().eval()
    texts = SENTENCES[:2] if quick else SENTENCES
    enc = tok(list(texts), padding=True, return_tensors="pt", return_special_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    # PAD everywhere except [CLS]/[SEP] (and the padding itself, which is PAD already)
    baseline = torch.where(enc["special_tokens_mask"].bool(), ids, tok.pad_token_id)
    digest = hashlib.sha256(WEIGHTS_PATH.read_bytes()).hexdigest()[:12]
    return Problem("sentiment", f"sentiment MiniLM-L6 + MLP head (GELU), {len(texts)} sentences x "
                   f"{ids.shape[1]} tokens, layer IG", True, model, ids, baseline,
                   predicted(model, ids, attention_mask=mask),
                   f"integrad.models sentiment model (head.safetensors sha256 {digest}), layer IG on the word "
                   "embeddings, baseline PAD except [CLS]/[SEP]", layer=net.get_input_embeddings(), mask=mask,
                   ref_n=512, sweep_to=128, rows=128, captum_ibs=128)


def build_effnet(quick: bool) -> Problem:
    from integrad.models._imagenet import load_imagenet_model, load_sample

    net, names = load_imagenet_model()
    # float32: a float64 evaluation costs ~5x more on this CPU (no oneDNN kernels for float64
    # convolutions); rounding (~1e-6) is far below the errors measured here.
    model = SoftmaxOutput(net).float().eval()
    x = torch.stack([load_sample(name) for name in ("chelsea", "coffee")])
    target = predicted(model, x)
    # Gauss-Legendre with 32, 64, 128 nodes differ from GL-256 by 7e-2, 4e-2, 2e-2 (chelsea):
    # errors fall like 1/n, so a reference good to 1e-3 needs ~5000 nodes per image, an hour
    # or more here. Measured without one; max_evals bounds the run time.
    return Problem("effnet", f"EfficientNet-Lite0 (ReLU6), {x.shape[0]} x 3x224x224, float32", False, model, x, 0.0,
                   target, f"integrad.models ImageNet model, photos chelsea, coffee (classes "
                   f"{', '.join(names[int(t)] for t in target)}), black baseline", tols=(), ladder=(32, 64, 128, 256),
                   max_evals=1025, rows=16, captum_ibs=32, repeats=1)


BUILDERS = {"tabular": build_tabular, "cnn": build_cnn, "effnet": build_effnet,
            "transformer": build_transformer, "sentiment": build_sentiment}


# ----------------------------------------------------------------------------- gradients along the path
@contextlib.contextmanager
def frozen(model: nn.Module):
    """Parameters need no gradient here; frozen, autograd keeps less alive (restored after)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)


class PathGradients:
    """Gradients of the attributed probability at any (example, alpha) on the straight paths.

    With a layer, the path runs between the layer's outputs on the baseline and on the input,
    and the layer's output is swapped for the interpolated point (as both libraries do).
    """

    def __init__(self, p: Problem):
        self.p = p
        if p.layer is None:
            start = torch.as_tensor(p.baseline, dtype=p.inputs.dtype).expand_as(p.inputs)
            end = p.inputs
        else:
            start, end = self._layer_output(p.baseline), self._layer_output(p.inputs)
        self.dtype = end.dtype  # the model's own precision for its inputs; sums are kept in float64
        self.start = start.reshape(p.batch, -1).double()
        self.diff = end.reshape(p.batch, -1).double() - self.start
        self.shape = end.shape[1:]
        self.evals = 0

    def _forward(self, rows: torch.Tensor, z: torch.Tensor | None):
        p = self.p
        kwargs = {} if p.mask is None else {"attention_mask": p.mask[rows]}
        if p.layer is None:
            return p.model(z, **kwargs)
        handle = p.layer.register_forward_hook(lambda m, a, out: z)
        try:
            return p.model(p.inputs[rows], **kwargs)
        finally:
            handle.remove()

    def _layer_output(self, ids: torch.Tensor) -> torch.Tensor:
        seen = []
        handle = self.p.layer.register_forward_hook(lambda m, a, out: seen.append(out.detach()))
        try:
            with torch.no_grad():
                kwargs = {} if self.p.mask is None else {"attention_mask": self.p.mask}
                self.p.model(ids, **kwargs)
        finally:
            handle.remove()
        return seen[0]

    def __call__(self, example: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Flattened gradients, shape (len(example), features), float64."""
        out = []
        with frozen(self.p.model), torch.enable_grad():
            for lo in range(0, example.shape[0], self.p.rows):
                e, a = example[lo:lo + self.p.rows], alpha[lo:lo + self.p.rows]
                z = (self.start[e] + a[:, None] * self.diff[e]).view(-1, *self.shape).to(self.dtype)
                z.requires_grad_(True)
                prob = self._forward(e, z).gather(1, self.p.target[e][:, None]).sum()
                out.append(torch.autograd.grad(prob, z)[0].reshape(e.shape[0], -1).double())
        self.evals += example.shape[0]
        return torch.cat(out)

    def integrate(self, nodes: np.ndarray, weights: np.ndarray) -> torch.Tensor:
        """``sum_k w_k grad(a_k)`` for every example, shape (batch, features).

        Nodes are taken in chunks so that at most ~64 MB of gradients are held at once.
        """
        B, F = self.diff.shape
        acc = torch.zeros(B, F, dtype=torch.float64)
        nodes_t, w_t = torch.as_tensor(nodes, dtype=torch.float64), torch.as_tensor(weights, dtype=torch.float64)
        chunk = max(1, (64 << 20) // (8 * F * B))
        for lo in range(0, len(nodes), chunk):
            a, w = nodes_t[lo:lo + chunk], w_t[lo:lo + chunk]
            K = a.shape[0]
            g = self(torch.arange(B).repeat_interleave(K), a.repeat(B)).view(B, K, F)
            acc += torch.einsum("k,bkf->bf", w, g)
        return acc

    def attributions(self, integral: torch.Tensor) -> torch.Tensor:
        return self.diff * integral


def rel_errors(attr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per example ||attr - ref|| / ||ref|| over all features."""
    a, r = attr.reshape(ref.shape[0], -1).double(), ref.reshape(ref.shape[0], -1).double()
    return (a - r).norm(dim=1) / r.norm(dim=1)


# ----------------------------------------------------------------------------- reference
def gl(n: int) -> tuple[np.ndarray, np.ndarray]:
    from integrad import rule

    r = rule("gausslegendre", n)
    return np.array(r.nodes), np.array(r.weights)  # writable copies (torch warns on read-only arrays)


class Pattern:
    """Which linear piece a piecewise-linear network is on: the sign of every ReLU's input.

    Along a straight path the gradient of such a network (softmax on top included) is smooth
    between the points where some ReLU switches, and jumps there.
    """

    def __init__(self, p: Problem):
        self.p = p
        self.relus = [m for m in p.model.modules() if isinstance(m, nn.ReLU)]
        if not self.relus or any(isinstance(m, (nn.ReLU6, nn.MaxPool2d, nn.GELU)) for m in p.model.modules()):
            raise ValueError(f"{p.key}: exact reference needs a network whose only kinks are nn.ReLU")

    def __call__(self, grads: "PathGradients", example: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        handles = [m.register_forward_hook(lambda m, a, o: seen.append((a[0] > 0).flatten(1))) for m in self.relus]
        try:
            with torch.no_grad():
                z = (grads.start[example] + alpha[:, None] * grads.diff[example]).view(-1, *grads.shape)
                z = z.to(grads.dtype)
                grads._forward(example, z)
        finally:
            for h in handles:
                h.remove()
        return torch.cat(seen, 1)


def breakpoints(p: Problem, grads: "PathGradients", cells: int = 4096, width: float = 1e-13) -> list[list[float]]:
    """Per example, the alphas where the ReLU pattern changes, located to ``width`` by bisection.

    Cells of a uniform grid whose end patterns differ are bisected (all examples' intervals
    together, one batch per round). A unit switching twice within one grid cell would go
    unseen; on the tabular batch a grid of 512 cells finds the very same points as 4096 cells,
    and the resulting attributions are complete to 1e-13 (checked when this was written).
    """
    pattern = Pattern(p)
    B = p.batch
    a = torch.linspace(0, 1, cells + 1, dtype=torch.float64)
    ends = pattern(grads, torch.arange(B).repeat_interleave(cells + 1), a.repeat(B)).view(B, cells + 1, -1)
    e, k = (ends[:, 1:] != ends[:, :-1]).any(-1).nonzero(as_tuple=True)
    lo, hi = a[k], a[k + 1]
    p_lo, p_hi = ends[e, k], ends[e, k + 1]
    found: list[list[float]] = [[] for _ in range(B)]
    while e.numel():
        mid = (lo + hi) / 2
        narrow = hi - lo < width
        for i in narrow.nonzero().flatten().tolist():
            found[int(e[i])].append(float(mid[i]))
        keep = ~narrow
        e, lo, hi, mid, p_lo, p_hi = e[keep], lo[keep], hi[keep], mid[keep], p_lo[keep], p_hi[keep]
        if not e.numel():
            break
        p_mid = pattern(grads, e, mid)
        left, right = (p_lo != p_mid).any(1), (p_mid != p_hi).any(1)
        e = torch.cat([e[left], e[right]])
        lo, hi = torch.cat([lo[left], mid[right]]), torch.cat([mid[left], hi[right]])
        p_lo, p_hi = torch.cat([p_lo[left], p_mid[right]]), torch.cat([p_mid[left], p_hi[right]])
    return [sorted(f) for f in found]


def piecewise_integral(grads: "PathGradients", cuts: list[list[float]], k: int) -> torch.Tensor:
    """Gauss-Legendre with ``k`` nodes on every smooth piece between consecutive cuts."""
    x, w = gl(k)
    example, alpha, weight = [], [], []
    for e, c in enumerate(cuts):
        edges = np.array([0.0] + c + [1.0])
        h = np.diff(edges)
        alpha.append((edges[:-1, None] + h[:, None] * x).ravel())
        weight.append((h[:, None] * w).ravel())
        example.append(np.full(alpha[-1].shape, e))
    example_t = torch.as_tensor(np.concatenate(example))
    alpha_t, weight_t = torch.as_tensor(np.concatenate(alpha)), torch.as_tensor(np.concatenate(weight))
    acc = torch.zeros_like(grads.diff)
    chunk = max(1, (64 << 20) // (8 * grads.diff.shape[1]))
    for lo in range(0, example_t.numel(), chunk):
        e = example_t[lo:lo + chunk]
        acc.index_add_(0, e, weight_t[lo:lo + chunk, None] * grads(e, alpha_t[lo:lo + chunk]))
    return acc


@dataclass
class Reference:
    attr: torch.Tensor  # (batch, features)
    label: str  # what the reference is
    check: str  # how far it is from a coarser version of itself
    gl_error: float | None  # exact references: worst error of Gauss-Legendre with 4096 nodes against it
    seconds: float


def reference(p: Problem, grads: PathGradients) -> Reference:
    """Gauss-Legendre with ``p.ref_n`` nodes, checked against half as many; or, for ReLU MLPs
    (``p.exact``), Gauss-Legendre on every smooth piece between the ReLU switching points."""
    t0 = time.perf_counter()
    if not p.exact:
        ref = grads.attributions(grads.integrate(*gl(p.ref_n)))
        half = grads.attributions(grads.integrate(*gl(p.ref_n // 2)))
        worst = float(rel_errors(half, ref).max())
        return Reference(ref, f"GL-{p.ref_n}", f"GL-{p.ref_n // 2} vs GL-{p.ref_n}: {worst:.1e}", None,
                         time.perf_counter() - t0)
    cuts = breakpoints(p, grads)
    ref = grads.attributions(piecewise_integral(grads, cuts, 8))
    coarse = grads.attributions(piecewise_integral(grads, cuts, 4))
    gl_4096 = grads.attributions(grads.integrate(*gl(4096)))
    sizes = [len(c) for c in cuts]
    return Reference(ref, f"exact: GL-8 on each of {min(sizes) + 1}-{max(sizes) + 1} linear pieces",
                     f"GL-4 vs GL-8 per piece: {float(rel_errors(coarse, ref).max()):.1e}",
                     float(rel_errors(gl_4096, ref).max()), time.perf_counter() - t0)


# ----------------------------------------------------------------------------- fixed-rule sweep
def first_n(errors: dict[int, torch.Tensor], tol: float) -> int | None:
    """Smallest n whose worst example is within ``tol``."""
    return next((n for n, e in sorted(errors.items()) if float(e.max()) <= tol), None)


@dataclass
class Sweep:
    errors: dict[str, dict[int, torch.Tensor]]  # rule -> n -> per-example relative error
    last_n: dict[str, int]  # the largest n swept per rule
    snapshots: dict[str, torch.Tensor]  # rule -> attributions at VALIDATE_N
    evals: int
    seconds: float

    def batch_n(self, rule: str, tol: float) -> int | None:
        """Smallest swept n where every example is within ``tol`` (None: not within the sweep)."""
        return first_n(self.errors[rule], tol)

    def example_n(self, rule: str, tol: float, batch: int) -> torch.Tensor:
        """Per example, the smallest swept n within ``tol`` (inf where none)."""
        out = torch.full((batch,), math.inf, dtype=torch.float64)
        for n, e in sorted(self.errors[rule].items(), reverse=True):
            out[e <= tol] = n
        return out


def sweep_rules(p: Problem, grads: PathGradients, ref: torch.Tensor, tight: float) -> Sweep:
    """All six rules at n = 2, 4, 8, ..., level by level, sharing gradients between rules.

    A rule stops when every example is within ``tight``; all stop at ``N_CAP``; a rule also
    stops once n exceeds both ``p.sweep_to`` and the smallest n at which some rule got every
    example within ``tight`` (it could no longer be the cheapest, nor lower any example's
    best n).
    """
    t0, evals0 = time.perf_counter(), grads.evals
    errors: dict[str, dict[int, torch.Tensor]] = {r: {} for r, _, _ in RULES}
    snapshots: dict[str, torch.Tensor] = {}
    done: set[str] = set()
    best = math.inf  # smallest n at which some rule reached `tight` on every example

    def record(rule: str, n: int, integral: torch.Tensor) -> None:
        attr = grads.attributions(integral)
        errors[rule][n] = rel_errors(attr, ref)
        if n == VALIDATE_N:
            snapshots[rule] = attr
        if float(errors[rule][n].max()) <= tight:
            done.add(rule)

    def active(rule: str, n: int) -> bool:
        return rule not in done and n <= min(N_CAP, max(best, p.sweep_to))

    B = p.batch
    g0 = grads(torch.arange(B), torch.zeros(B, dtype=torch.float64))
    g1 = grads(torch.arange(B), torch.ones(B, dtype=torch.float64))
    left_sum = g0 + grads(torch.arange(B), torch.full((B,), 0.5, dtype=torch.float64))  # sum of g(i/n), n=2
    n = N_START
    while n <= N_CAP:
        # Gauss-Legendre: fresh nodes at every n
        if active("gausslegendre", n):
            record("gausslegendre", n, grads.integrate(*gl(n)))
        # Riemann left/right come free from the dyadic sums; middle needs n new points,
        # which are also what left/right need at 2n.
        if left_sum is not None:
            for rule, s in (("riemann_left", left_sum), ("riemann_right", left_sum - g0 + g1)):
                if active(rule, n):
                    record(rule, n, s / n)
            more = active("riemann_middle", n) or any(active(r, 2 * n) for r in ("riemann_left", "riemann_right"))
            if more:
                mid = grads.integrate((np.arange(n) + 0.5) / n, np.ones(n))
                if active("riemann_middle", n):
                    record("riemann_middle", n, mid / n)
                left_sum = left_sum + mid
            else:
                left_sum = None
        # Trapezoid on n equally spaced points; integrad's step is 1/(n-1), Captum's 1/n.
        if active("trapezoid", n) or active("riemann_trapezoid", n):
            inner = grads.integrate(np.linspace(0, 1, n)[1:-1], np.ones(n - 2)) if n > 2 else 0 * g0
            trap_sum = inner + (g0 + g1) / 2
            for rule, step in (("trapezoid", 1 / (n - 1)), ("riemann_trapezoid", 1 / n)):
                if active(rule, n):
                    record(rule, n, trap_sum * step)
        best = min([best] + [first_n(errors[r], tight) for r in done])
        log(f"  n={n}: {grads.evals - evals0} sweep evals so far; "
            + ", ".join(f"{r} {float(errors[r][n].max()):.1e}" for r, _, _ in RULES if n in errors[r]))
        if not any(active(r, 2 * n) for r, _, _ in RULES):
            break
        n *= 2
    last = {r: max(errors[r]) if errors[r] else 0 for r, _, _ in RULES}
    return Sweep(errors, last, snapshots, grads.evals - evals0, time.perf_counter() - t0)


# ----------------------------------------------------------------------------- library runs
def run_integrad(p: Problem, **kw):
    import integrad

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-convergence is reported in the table instead
        return integrad.integrated_gradients(p.model, p.inputs, **p.integrad_kwargs(), **kw)


def run_piecewise(p: Problem, rows: slice = slice(None)):
    """integrad's exact mode: the bare network (it refuses the softmax inside the model), the
    softmax as ``head``."""
    import integrad

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pieces beyond max_evals show as not converged
        return integrad.integrated_gradients(p.model.net, p.inputs[rows], method="piecewise",
                                             head=lambda out: out.softmax(-1), **p.integrad_kwargs(rows))


@dataclass
class PiecewiseRun:
    refused: str | None  # why integrad refuses the model (the first clause of its message), or None
    passes: torch.Tensor | None = None  # per example
    true_error: torch.Tensor | None = None  # per example, against the reference
    converged: torch.Tensor | None = None
    gl_n: int = 0  # Gauss-Legendre nodes timed against it (the mean passes per example, rounded up)
    seconds: list[float] = field(default_factory=list)  # piecewise, whole batch, per round
    gl_seconds: list[float] = field(default_factory=list)  # integrad GL-gl_n, whole batch, per round

    def per_pass_ratio(self, batch: int) -> float:
        """Wall time per piecewise pass / wall time per Gauss-Legendre evaluation."""
        per_pass = statistics.median(self.seconds) / float(self.passes.sum())
        return per_pass / (statistics.median(self.gl_seconds) / (self.gl_n * batch))


def bench_piecewise(p: Problem, ref: torch.Tensor) -> PiecewiseRun:
    """Try the exact mode on one example; where integrad accepts the model, run the batch and
    time it against fixed Gauss-Legendre with about as many evaluations as it has passes."""
    try:
        run_piecewise(p, slice(0, 1))
    except (ValueError, NotImplementedError) as err:  # NotImplementedError: PyTorch's, not integrad's
        clause = str(err).removeprefix("method='piecewise': ").split(";")[0].split("\n")[0].strip()
        return PiecewiseRun(clause if isinstance(err, ValueError) else f"{type(err).__name__}: {clause}")
    holder: dict[str, Any] = {}

    def piecewise():
        holder["res"] = run_piecewise(p)

    piecewise()  # untimed: the passes decide the Gauss-Legendre n
    res = holder["res"]
    gl_n = math.ceil(float(res.n_evals.double().mean()))
    times = time_rounds({"piecewise": piecewise,
                         "gl": lambda: run_integrad(p, method="gausslegendre", n_steps=gl_n)}, p.repeats)
    return PiecewiseRun(None, res.n_evals.clone(), rel_errors(res.attributions, ref), res.converged.clone(), gl_n,
                        times["piecewise"], times["gl"])


def validate(p: Problem, sweep: Sweep) -> dict[str, float]:
    """Max relative difference between the shared-gradient results and real library calls."""
    out = {}
    for rule, libs, _ in RULES:
        if rule not in sweep.snapshots:
            continue
        mine = sweep.snapshots[rule]
        if libs in ("both", "integrad"):
            res = run_integrad(p, method=rule, n_steps=VALIDATE_N).attributions
            out[f"integrad {rule}"] = float(rel_errors(res, mine).max())
        if libs in ("both", "Captum"):
            res = p.captum_call(rule, VALIDATE_N)()
            out[f"Captum {rule}"] = float(rel_errors(res, mine).max())
    return out


@dataclass
class RtolRun:
    tol: float
    evals: torch.Tensor  # per example
    true_error: torch.Tensor  # per example, against the reference
    est_error: torch.Tensor  # per example, integrad's estimate
    converged: torch.Tensor
    seconds: list[float] = field(default_factory=list)


def time_rounds(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Wall time of each function per round, interleaved, the order rotating each round."""
    keys = list(fns)
    times: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
    return times


# ----------------------------------------------------------------------------- one problem
@dataclass
class Outcome:
    p: Problem
    ref: Reference
    sweep: Sweep
    default_err: torch.Tensor  # Captum's default (GL-50), per example
    rtol: dict[float, RtolRun]
    captum_rule: dict[float, tuple[str, int] | None]  # Captum's cheapest rule and its n
    captum_s: dict[float, list[float]]
    validation: dict[str, float]
    seconds: float
    piecewise: PiecewiseRun
    piecewise_s: dict[float, list[float]]  # exact mode, in the same rounds as captum_s (where it runs)


@dataclass
class LadderOutcome:
    p: Problem
    errors: dict[int, float]  # n -> worst ||GL_n - GL_finest|| / ||GL_finest||
    default_err: float
    rtol: RtolRun
    seconds: float


def bench_ladder(p: Problem) -> LadderOutcome:
    """Without a reference: how Gauss-Legendre converges, and where one rtol run ends up."""
    t0 = time.perf_counter()
    grads = PathGradients(p)
    log(f"{p.key}: {p.title} (no reference; Gauss-Legendre ladder {p.ladder})")
    gl_n = {}
    for n in p.ladder:
        gl_n[n] = grads.attributions(grads.integrate(*gl(n)))
        log(f"  GL-{n} done ({time.perf_counter() - t0:.0f} s)")
    top = max(p.ladder)
    errors = {n: float(rel_errors(a, gl_n[top]).max()) for n, a in gl_n.items() if n != top}
    default_err = float(rel_errors(grads.attributions(grads.integrate(*gl(CAPTUM_DEFAULT_N))), gl_n[top]).max())
    t1 = time.perf_counter()
    res = run_integrad(p, rtol=p.ladder_rtol, max_evals=p.max_evals)
    run = RtolRun(p.ladder_rtol, res.n_evals.clone(), rel_errors(res.attributions, gl_n[top]), res.error.clone(),
                  res.converged.clone(), [time.perf_counter() - t1])
    log(f"  rtol={p.ladder_rtol:g}: {run.evals.tolist()} evals, est. {run.est_error.tolist()}, "
        f"vs GL-{top} {run.true_error.tolist()}, {run.seconds[0]:.0f} s")
    return LadderOutcome(p, errors, default_err, run, time.perf_counter() - t0)


def ladder_table(outs: list[LadderOutcome]) -> list[str]:
    """Distances to the finest Gauss-Legendre, worst example; the rtol run per example."""
    lines = []
    for o in outs:
        top = max(o.p.ladder)
        cols = [n for n in o.p.ladder if n != top]
        r = o.rtol
        lines += [f"**{o.p.key}**: {o.p.title}; {o.p.note}. No reference: distances to GL-{top} "
                  "(worst example).", "",
                  "| " + " | ".join(f"GL-{n}" for n in cols) + f" | Captum default GL-{CAPTUM_DEFAULT_N} "
                  f"| integrad rtol={o.p.ladder_rtol:g} (max_evals={o.p.max_evals}): evals per example "
                  f"| converged | est. err | distance to GL-{top} | s |",
                  "|" + "---:|" * (len(cols) + 6),
                  "| " + " | ".join(f"{o.errors[n]:.1e}" for n in cols) + f" | {o.default_err:.1e} "
                  f"| {', '.join(str(int(v)) for v in r.evals)} "
                  f"| {', '.join('yes' if c else 'no' for c in r.converged.tolist())} "
                  f"| {', '.join(f'{v:.1e}' for v in r.est_error.tolist())} "
                  f"| {', '.join(f'{v:.1e}' for v in r.true_error.tolist())} | {r.seconds[0]:.0f} |", ""]
    return lines


def bench(p: Problem) -> Outcome:
    t0 = time.perf_counter()
    grads = PathGradients(p)
    log(f"{p.key}: {p.title}")
    ref = reference(p, grads)
    log(f"  reference {ref.label}: {ref.seconds:.0f} s, {ref.check}"
        + (f"; GL-4096 against it: {ref.gl_error:.1e}" if ref.gl_error is not None else ""))
    sweep = sweep_rules(p, grads, ref.attr, min(p.tols))
    log(f"  sweep: {sweep.evals} evals, {sweep.seconds:.0f} s")
    default_err = rel_errors(grads.attributions(grads.integrate(*gl(CAPTUM_DEFAULT_N))), ref.attr)
    validation = validate(p, sweep)
    log("  validation (max rel diff to real calls): "
        + ", ".join(f"{k} {v:.0e}" for k, v in validation.items()))
    pw = bench_piecewise(p, ref.attr)
    log(f"  piecewise: refused ({pw.refused})" if pw.refused else
        f"  piecewise: {int(pw.passes.sum())} passes, true max err {float(pw.true_error.max()):.1e}, "
        f"{statistics.median(pw.seconds):.2f} s; GL-{pw.gl_n} {statistics.median(pw.gl_seconds):.2f} s; "
        f"s per pass / s per eval {pw.per_pass_ratio(p.batch):.2f}")

    rtol, captum_rule, captum_s, piecewise_s = {}, {}, {}, {}
    for tol in p.tols:
        # the first timed integrad call is also the measured one
        holder: dict[str, Any] = {}

        def integrad_rtol(tol=tol):
            holder["res"] = run_integrad(p, rtol=tol, max_evals=p.max_evals)

        fns = {"integrad": integrad_rtol}
        captum = [(sweep.batch_n(r, tol), r) for r, libs, _ in RULES if libs in ("both", "Captum")]
        captum = [(n, r) for n, r in captum if n is not None]
        captum_rule[tol] = None
        if captum:
            # cheapest n; among equal n prefer Gauss-Legendre (Captum's default), then the listed order
            n, rule = min(captum, key=lambda c: c[0])
            captum_rule[tol] = (rule, n)
            fns["captum"] = p.captum_call(rule, n)
        if pw.refused is None:
            fns["piecewise"] = lambda: run_piecewise(p)
        times = time_rounds(fns, p.repeats)
        res = holder["res"]
        rtol[tol] = RtolRun(tol, res.n_evals.clone(), rel_errors(res.attributions, ref.attr), res.error.clone(),
                            res.converged.clone(), times["integrad"])
        captum_s[tol] = times.get("captum", [])
        piecewise_s[tol] = times.get("piecewise", [])
        log(f"  rtol={tol:g}: {int(res.n_evals.sum())} evals, true max err "
            f"{float(rtol[tol].true_error.max()):.1e}, integrad {statistics.median(times['integrad']):.2f} s"
            + (f", Captum {captum_rule[tol]} {statistics.median(captum_s[tol]):.2f} s" if captum_s[tol] else ""))
    return Outcome(p, ref, sweep, default_err, rtol, captum_rule, captum_s, validation, time.perf_counter() - t0,
                   pw, piecewise_s)


# ----------------------------------------------------------------------------- report
def fmt_n(s: Sweep, rule: str, tol: float) -> str:
    n = s.batch_n(rule, tol)
    if n is not None:
        return str(n)
    return f">{s.last_n[rule]}" if s.last_n[rule] else "-"


def cheapest(o: Outcome, tol: float, libs: tuple[str, ...]) -> tuple[str, int] | None:
    found = [(o.sweep.batch_n(r, tol), r) for r, lib, _ in RULES if lib in libs]
    found = [(n, r) for n, r in found if n is not None]
    return (min(found)[1], min(found)[0]) if found else None


def hindsight(o: Outcome, tol: float) -> float:
    per_rule = torch.stack([o.sweep.example_n(r, tol, o.p.batch) for r, _, _ in RULES])
    return float(per_rule.min(0).values.sum())


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if math.isfinite(b) and b > 0 else "n/a"


def tol_tables(all_outcomes: list[Outcome], tol: float) -> list[str]:
    """The evaluation counts and ratios for one tolerance, then the wall times."""
    outcomes = [o for o in all_outcomes if tol in o.p.tols]
    skipped = [o.p.key for o in all_outcomes if tol not in o.p.tols]
    rule_cols = " | ".join(f"{r} ({lib})" for r, lib, _ in RULES)
    lines = [f"### Tolerance {tol:g}: evaluations to reach relative error <= {tol:g} on every example", "",
             f"Fixed rules: smallest n (of 2, 4, ..., {N_CAP}) at which every example is within {tol:g}; "
             "cost = n x batch.", "",
             f"| model | batch | {rule_cols} |", "|---|---:|" + "---:|" * len(RULES)]
    if skipped:
        lines[2:2] = [f"Not measured at {tol:g} (no affordable reference is accurate enough): "
                      f"{', '.join(skipped)}.", ""]
    for o in outcomes:
        lines.append(f"| {o.p.key} | {o.p.batch} | " + " | ".join(fmt_n(o.sweep, r, tol) for r, _, _ in RULES) + " |")
    lines += ["", "| model | kind | cheapest fixed (evals) | hindsight | Captum default GL-50 (evals, max err) "
              "| integrad rtol (evals) | rtol max true err | all converged | max est. err "
              "| rtol / cheapest | rtol / hindsight | rtol / default | target |",
              "|---|---|---|---:|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for o in outcomes:
        B = o.p.batch
        c = cheapest(o, tol, ("both", "integrad", "Captum"))
        swept = max(o.sweep.last_n.values()) * B
        c_evals = c[1] * B if c else math.inf  # unknown beyond the sweep: more than `swept`
        h = hindsight(o, tol)
        run = o.rtol[tol]
        r = float(run.evals.sum())
        default = CAPTUM_DEFAULT_N * B
        ok_acc = float(run.true_error.max()) <= tol
        checks = []
        if o.p.smooth:
            checks.append(("<= default", r <= default))
        else:
            checks.append(("<= 1/3 cheapest", r <= (c_evals if c else swept) / 3))
        checks.append(("<= 2x hindsight", r <= 2 * h))
        verdict = ", ".join(f"{name} {'met' if ok else '**missed**'}" for name, ok in checks)
        if not ok_acc:
            verdict += "; **true error above tol**"
        lines.append(
            f"| {o.p.key} | {'smooth' if o.p.smooth else 'ReLU'} "
            f"| {f'{c_evals:.0f} ({c[0]} n={c[1]})' if c else f'>{swept} (none)'} "
            f"| {h:.0f}{'' if math.isfinite(h) else ' (some example never)'} "
            f"| {default} ({float(o.default_err.max()):.1e}) | {r:.0f} | {float(run.true_error.max()):.1e} "
            f"| {'yes' if bool(run.converged.all()) else 'no (' + str(int((~run.converged).sum())) + ')'} "
            f"| {float(run.est_error.max()):.1e} | {ratio(r, c_evals)} | {ratio(r, h)} | {ratio(r, default)} "
            f"| {verdict} |")
    lines += piecewise_table(outcomes, tol)
    lines += ["", f"Wall time at equal accuracy ({tol:g}): integrad `rtol={tol:g}` and `method=\"piecewise\"` "
              "(exact) against Captum's cheapest rule at the n it needs for the batch, medians of interleaved "
              "rounds in the same process.", "",
              "| model | Captum rule (n) | Captum s | integrad rtol s | rtol / Captum | integrad piecewise s "
              "| piecewise / Captum | rounds |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for o in outcomes:
        cr = o.captum_rule[tol]
        it = statistics.median(o.rtol[tol].seconds)
        pw = statistics.median(o.piecewise_s[tol]) if o.piecewise_s[tol] else None
        pw_cell = "n/a" if pw is None else f"{pw:.2f}"
        if cr and o.captum_s[tol]:
            cs = statistics.median(o.captum_s[tol])
            lines.append(f"| {o.p.key} | {cr[0]} (n={cr[1]}) | {cs:.2f} | {it:.2f} | {it / cs:.2f} | {pw_cell} "
                         f"| {'-' if pw is None else f'{pw / cs:.2f}'} | {o.p.repeats} |")
        else:
            swept = max(o.sweep.last_n.values())
            lines.append(f"| {o.p.key} | none reached {tol:g} by n={swept} | - | {it:.2f} | - | {pw_cell} | - "
                         f"| {o.p.repeats} |")
    return lines + [""]


def piecewise_table(outcomes: list[Outcome], tol: float) -> list[str]:
    """integrad's exact mode against the same fixed rules: passes, and passes weighted by their cost."""
    lines = ["", f"integrad `method=\"piecewise\"` (exact, so the same run serves every tolerance): passes = one "
             "forward-mode forward plus one backward per linear piece, summed over the batch. Weighted = passes x "
             "(s per pass / s per evaluation of integrad's Gauss-Legendre with about as many nodes, same process), "
             "in evaluations. n/a: integrad refuses the model (first clause of its error on one example).", "",
             "| model | piecewise passes | max true err | all converged | passes / cheapest | passes / hindsight "
             "| s per pass / s per eval | weighted / cheapest | target |",
             "|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for o in outcomes:
        pw = o.piecewise
        if pw.refused:
            lines.append(f"| {o.p.key} | n/a: {pw.refused} | - | - | - | - | - | - | - |")
            continue
        c = cheapest(o, tol, ("both", "integrad", "Captum"))
        c_evals = c[1] * o.p.batch if c else math.inf
        passes, cost = float(pw.passes.sum()), pw.per_pass_ratio(o.p.batch)
        ok = passes <= c_evals / 3
        lines.append(f"| {o.p.key} | {passes:.0f} | {float(pw.true_error.max()):.1e} "
                     f"| {'yes' if bool(pw.converged.all()) else 'no (' + str(int((~pw.converged).sum())) + ')'} "
                     f"| {ratio(passes, c_evals)} | {ratio(passes, hindsight(o, tol))} | {cost:.2f} "
                     f"| {ratio(passes * cost, c_evals)} | <= 1/3 cheapest {'met' if ok else '**missed**'} (passes) |")
    return lines


def pass_cost_table(outcomes: list[Outcome]) -> list[str]:
    """Wall time of the exact mode per pass against fixed Gauss-Legendre per evaluation."""
    lines = ["| model | piecewise passes per example | piecewise s | integrad GL-n s (n) | s per pass "
             "| s per eval | pass / eval | rounds |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for o in outcomes:
        pw, B = o.piecewise, o.p.batch
        if pw.refused:
            lines.append(f"| {o.p.key} | n/a: {pw.refused} | - | - | - | - | - | - |")
            continue
        ps, gs = statistics.median(pw.seconds), statistics.median(pw.gl_seconds)
        lines.append(f"| {o.p.key} | {int(pw.passes.min())}-{int(pw.passes.max())} | {ps:.2f} | {gs:.2f} "
                     f"(n={pw.gl_n}) | {ps / float(pw.passes.sum()):.1e} | {gs / (pw.gl_n * B):.1e} "
                     f"| {pw.per_pass_ratio(B):.2f} | {o.p.repeats} |")
    return lines + [""]


def setup_table(outcomes: list[Outcome]) -> list[str]:
    lines = ["| model | what | reference | its convergence (max over batch) | sweep evals | shared-gradient check "
             "(max rel diff to real calls, integrad / Captum) | time |",
             "|---|---|---|---|---:|---|---:|"]
    for o in outcomes:
        v_i = max((v for k, v in o.validation.items() if k.startswith("integrad")), default=math.nan)
        v_c = max((v for k, v in o.validation.items() if k.startswith("Captum")), default=math.nan)
        gl_note = f"; GL-4096 against it: {o.ref.gl_error:.1e}" if o.ref.gl_error is not None else ""
        lines.append(f"| {o.p.key} | {o.p.title}; {o.p.note} | {o.ref.label} | {o.ref.check}{gl_note} "
                     f"| {o.sweep.evals} | {v_i:.0e} / {v_c:.0e} | {o.seconds:.0f} s |")
    return lines + [""]


def convergence_table(outcomes: list[Outcome]) -> list[str]:
    """Worst-example error of every rule at every swept n (where the full picture is)."""
    lines = []
    for o in outcomes:
        ns = sorted({n for r, _, _ in RULES for n in o.sweep.errors[r]})
        lines += [f"**{o.p.key}**: max relative error over the batch", "",
                  "| rule | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|" + "---:|" * len(ns)]
        for r, lib, _ in RULES:
            cells = [f"{float(o.sweep.errors[r][n].max()):.1e}" if n in o.sweep.errors[r] else "" for n in ns]
            lines.append(f"| {r} ({lib}) | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def machine_lines(argv: list[str], started: float) -> list[str]:
    import captum

    import integrad

    cpu = platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return [
        f"- machine: {cpu}, {os.cpu_count()} logical cores (shared), torch threads {torch.get_num_threads()}",
        f"- software: Python {platform.python_version()}, torch {torch.__version__}, captum {captum.__version__}, "
        f"integrad {integrad.__version__}",
        f"- date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{' '.join(['.venv/bin/python', 'benchmarks/bench_adaptive.py'] + argv)}`",
        f"- load average at end (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"total {time.perf_counter() - started:.0f} s",
    ]


def report(outcomes: list[Any], argv: list[str], started: float) -> str:
    ladders = [o for o in outcomes if isinstance(o, LadderOutcome)]
    outcomes = [o for o in outcomes if isinstance(o, Outcome)]
    lines = ["## Error-controlled integration (rtol): evaluations to reach an accuracy", "",
             "Float64 unless stated, eval mode, seeded; IG of the softmax probability of the predicted class; "
             "relative error = ||attr - ref|| / ||ref|| per example.", ""]
    if outcomes:
        lines += setup_table(outcomes)
        for tol in TOLS:
            lines += tol_tables(outcomes, tol)
        lines += ["### Cost of a piecewise pass", "", "integrad `method=\"piecewise\"` on the whole batch against "
                  "integrad's fixed Gauss-Legendre with n = the mean passes per example, medians of interleaved "
                  "rounds.", ""] + pass_cost_table(outcomes)
    if ladders:
        lines += ["### Without a reference", ""] + ladder_table(ladders)
    if outcomes:
        lines += ["### Convergence of the fixed rules", ""] + convergence_table(outcomes)
    lines += machine_lines(argv, started)
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: tabular and transformer, fewer examples")
    ap.add_argument("--out", metavar="FILE", help="also write the Markdown report to FILE")
    ap.add_argument("--models", help=f"comma-separated subset of {', '.join(MODEL_NAMES)}")
    args = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    names = (args.models.split(",") if args.models else
             ["tabular", "transformer"] if args.quick else list(MODEL_NAMES))
    outcomes = []
    for name in names:
        p = BUILDERS[name.strip()](args.quick)
        if args.quick:
            p.repeats = 1  # a smoke run times each contender once
        outcomes.append(bench(p) if p.tols else bench_ladder(p))
    text = report(outcomes, argv, started)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
