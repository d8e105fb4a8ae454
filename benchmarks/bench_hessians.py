"""Integrated Hessians: integrad against path_explain at equal accuracy, and the cost floor.

For MLPs with 10, 30 and 100 features (two tanh hidden layers of 64, one output, float64,
a batch of 8, zero baseline), each method's error is measured against a float64 reference
(integrad with 256 nodes of the ``-ln t`` Gauss rule; its distance to 512 nodes is printed
too), as ``max over examples of ||Gamma - ref||_F / ||ref||_F``. For each target accuracy
the cheapest setting of each method that reaches it is found:

- integrad: ``n_steps`` from 1, 2, 3, ...;
- path_explain 0.0.7 (``PathExplainerTorch.interactions``, ``use_expectation=False``: its
  deterministic integrated mode, an ``m x m`` grid of ``(alpha, beta)`` with end points,
  ``num_samples = m^2``, first-order accurate): ``m`` from a ladder 4, 5, 7, 10, 14, ..., 40
  (one call took 9 s at m = 40, 10 features: a target of 1e-3, m ~ 100, is out of its reach).
  Its expectation mode draws the points at random and converges more slowly still.

Then both, and the **floor**, are timed in one process, in interleaved rounds whose order
rotates; medians after a warm-up. The floor is what integrad's setting needs at the least:
one forward, one backward with ``create_graph`` and one batched backward of ``F``
Hessian-vector products (``is_grads_batched``) over all ``batch x n_steps`` points at once,
the points pre-computed, parameters frozen.

Usage::

    .venv/bin/python benchmarks/bench_hessians.py               # the table in docs/hessians.md (~1 min)
    .venv/bin/python benchmarks/bench_hessians.py --quick       # 10 and 30 features, one target
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import statistics
import sys
import time

import torch

import integrad
from integrad.core.rules import gauss_log

LADDER = (4, 5, 7, 10, 14, 20, 28, 40)  # path_explain's time grows faster than m^2: 12 s at m = 20, 100 features


def model(F: int, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    sizes, layers = [F, 64, 64, 1], []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        lin = torch.nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g) / a**0.5)
            lin.bias.copy_(torch.randn(b, generator=g) * 0.1)
        layers += [lin] + ([torch.nn.Tanh()] if i < 2 else [])
    return torch.nn.Sequential(*layers).double().eval()


def path_explain():
    spec = importlib.util.find_spec("path_explain")
    if spec is None:
        sys.exit("path-explain is not installed: .venv/bin/pip install --no-deps -c constraints.txt "
                 "path-explain==0.0.7")
    # its package __init__ imports TensorFlow: load the torch explainer file alone
    file = pathlib.Path(spec.submodule_search_locations[0]) / "explainers" / "path_explainer_torch.py"
    s = importlib.util.spec_from_file_location("path_explainer_torch", file)
    module = importlib.util.module_from_spec(s)
    s.loader.exec_module(module)
    return module.PathExplainerTorch


def error(gamma: torch.Tensor, ref: torch.Tensor) -> float:
    diff = (gamma.detach().double() - ref).flatten(1).norm(dim=1)
    return float((diff / ref.flatten(1).norm(dim=1)).max())


def ours(net, x, n):
    return integrad.integrated_hessians(net, x, n_steps=n).attributions


def theirs(explainer, x, m):
    return explainer.interactions(x.clone().requires_grad_(True), torch.zeros(1, x.shape[1], dtype=x.dtype),
                                  num_samples=m * m, use_expectation=False, verbose=False).detach()


def floor_fn(net, x, n):
    """One HVP batch over every point integrad's n nodes need (points built outside the timing)."""
    t = torch.tensor(gauss_log(n).nodes, dtype=x.dtype)
    points = (t[None, :, None] * x[:, None, :]).reshape(-1, x.shape[1])  # zero baseline
    F, P = x.shape[1], points.shape[0]
    eye = torch.eye(F, dtype=x.dtype)[:, None, :].expand(F, P, F)
    for p in net.parameters():
        p.requires_grad_(False)

    def run():
        z = points.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(net(z).sum(), z, create_graph=True)
        return torch.autograd.grad(g, z, grad_outputs=eye, is_grads_batched=True)[0]
    return run


def cheapest(fn, ladder, ref, target):
    for k in ladder:
        e = error(fn(k), ref)
        if e <= target:
            return k, e
    return None, float("nan")


def timed(fns: dict, rounds: int) -> dict:
    """Median seconds of each function, interleaved rounds in rotating order, after one warm-up each."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    sizes, targets = ((10, 30), (1e-2,)) if args.quick else ((10, 30, 100), (3e-2, 1e-2))
    explainer_cls = path_explain()
    print("| features | target error | integrad n_steps (error) | path_explain m, num_samples (error) | "
          "integrad | path_explain | floor | path_explain / integrad | integrad / floor |")
    print("|---|---|---|---|---|---|---|---|---|")
    for F in sizes:
        net = model(F)
        x = torch.randn(8, F, generator=torch.Generator().manual_seed(F), dtype=torch.float64)
        ref = ours(net, x, 256)
        ref_check = error(ours(net, x, 512), ref)
        explainer = explainer_cls(net)
        for target in targets:
            n, e_ours = cheapest(lambda k: ours(net, x, k), range(1, 257), ref, target)
            m, e_theirs = cheapest(lambda k: theirs(explainer, x, k), LADDER, ref, target)
            fns = {"integrad": lambda: ours(net, x, n), "floor": floor_fn(net, x, n)}
            if m is not None:
                fns["path_explain"] = lambda: theirs(explainer, x, m)
            t = timed(fns, args.rounds)
            pe = (f"{m}, {m * m} ({e_theirs:.1e})", f"{t['path_explain'] * 1e3:.1f} ms",
                  f"{t['path_explain'] / t['integrad']:.0f}x") if m is not None else \
                (f"> {LADDER[-1]} (not reached)", "-", "-")
            print(f"| {F} | {target:g} | {n} ({e_ours:.1e}) | {pe[0]} | {t['integrad'] * 1e3:.2f} ms | {pe[1]} | "
                  f"{t['floor'] * 1e3:.2f} ms | {pe[2]} | {t['integrad'] / t['floor']:.2f}x |", flush=True)
        print(f"<!-- F={F}: reference (256 nodes) vs 512 nodes: {ref_check:.1e} -->", flush=True)


if __name__ == "__main__":
    main()
