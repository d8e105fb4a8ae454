"""Attributions scored against known truths: OpenXAI's synthetic clusters and XAI-Units-style models.

For each model, every method explains the same rows from the same baseline (zero; Expected
Gradients draws its baselines from reference rows instead) and is scored on:

* FA / RA / SA at ``k``: top-``k`` feature, rank and sign agreement with the truth (on the
  synthetic data OpenXAI's truth, the cluster's masked weights; on the unit models the
  closed-form attribution);
* PGI / PGU at ``k``: mean change of the output under N(0, 0.1^2) noise on the top-``k`` /
  the other features (100 draws per row, the same draws for every method);
* max |err|: the largest deviation from the method's own closed form (IG from the zero
  baseline; for EG, the average of that over its references; SmoothGrad-IG is compared to IG
  at the unperturbed input, which it is not meant to equal);
* model gradient evaluations per explained row (the cost; speed is bench_core's subject).

Rows "truth" and "gradient x input" are references: the best the agreement columns can be,
and the one-gradient shortcut. float64 throughout, so the error column shows integration
error, not rounding.

Usage::

    .venv/bin/python benchmarks/bench_groundtruth.py          # ~20 s on 2 cores
"""

from __future__ import annotations

from typing import Any, Callable

import torch

N_ROWS, N_FEATURES, N_CLUSTERS, N_EXPLAINED, N_REFS = 1000, 20, 5, 300, 100
DT = torch.float64


def methods(model: Callable, refs: torch.Tensor, args: tuple, baseline: torch.Tensor) -> dict[str, Callable]:
    """Each method as ``x -> (attributions, evaluations per row)``."""
    import integrad
    from captum.attr import IntegratedGradients

    def ig(**kw):
        def run(x):
            r = integrad.integrated_gradients(model, x, baseline=baseline, forward_args=args, **kw)
            return r.attributions, float(r.n_evals.double().mean())
        return run

    def eg(x):
        r = integrad.expected_gradients(model, x, references=refs, n_samples=64, seed=0, forward_args=args)
        return r.attributions, float(r.n_evals.double().mean())

    def sg(x):
        r = integrad.smoothgrad(model, x, n_samples=16, noise=0.15, seed=0, baseline=baseline, n_steps=50,
                                forward_args=args)
        return r.attributions, float(r.n_evals.double().mean())

    def captum(x):
        a = IntegratedGradients(model).attribute(x, baselines=baseline.expand_as(x),
                                                 additional_forward_args=args or None, n_steps=50)
        return a.detach(), 50.0

    def grad_x_input(x):
        z = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(model(z, *args).sum(), z)
        return (g * (x - baseline)).detach(), 1.0

    return {"integrad IG, Gauss-Legendre 50": ig(n_steps=50), "integrad IG, rtol=1e-2": ig(rtol=1e-2),
            "integrad Expected Gradients (64)": eg, "integrad SmoothGrad-IG (16 x 50)": sg,
            "Captum IntegratedGradients (GL 50)": captum, "gradient x input": grad_x_input}


def score(name: str, model: Callable, x: torch.Tensor, args: tuple, k: int, truth: torch.Tensor,
          exact: dict[str, torch.Tensor], refs: torch.Tensor, baseline: torch.Tensor) -> list[list[str]]:
    from integrad import groundtruth as gt

    rows = []
    runs = {"truth": lambda x: (truth, 0.0)} | methods(model, refs, args, baseline)
    for method, run in runs.items():
        attr, evals = run(x)
        ref = exact["eg"] if "Expected" in method else exact["ig"]
        err = "—" if method == "truth" else f"{(attr - ref).abs().max().item():.2g}"
        cells = [gt.feature_agreement(attr, truth, k), gt.rank_agreement(attr, truth, k),
                 gt.sign_agreement(attr, truth, k), gt.pgi(model, x, attr, k, seed=0, forward_args=args),
                 gt.pgu(model, x, attr, k, seed=0, forward_args=args)]
        rows.append([name if not rows else "", method, *(f"{c.mean().item():.3f}" for c in cells), err,
                     "—" if method == "truth" else f"{evals:.0f}"])
    return rows


def main() -> int:
    from integrad import groundtruth as gt

    torch.set_num_threads(2)
    table = []

    data = gt.synthetic(N_ROWS, N_FEATURES, N_CLUSTERS, seed=0, dtype=DT)
    f = data.model(probability=True)
    x, c = data.X[:N_EXPLAINED], data.cluster[:N_EXPLAINED]
    refs = data.X[-N_REFS:]
    zero = torch.zeros(N_FEATURES, dtype=DT)
    print(f"synthetic: {N_ROWS} rows, {N_FEATURES} features, {N_CLUSTERS} clusters (seed 0), label balance "
          f"{data.balance:.3f}; the first {N_EXPLAINED} rows explained, EG's {N_REFS} references are the last rows; "
          f"explained output: P(y = 1)")
    # EG's closed form: the mean over its references of the exact IG from each (the references are
    # shared by every row, while the truth depends on the row's cluster)
    eg_exact = torch.stack([f.exact_ig(x, c, r) for r in refs]).mean(0)
    table += score("synthetic (OpenXAI), k=5", f, x, (c,), 5, data.true_attr[:N_EXPLAINED],
                   {"ig": f.exact_ig(x, c, zero), "eg": eg_exact}, refs, zero)

    units = [(gt.weighted_features(), None), (gt.pertinent_negative(), None), (gt.pertinent_negative(), "present"),
             (gt.shattered_gradients(), None), (gt.interacting_pair(), None)]
    for model, variant in units:
        model = model.to(DT)
        x = model.sample(N_EXPLAINED, seed=1, dtype=DT)
        refs = model.sample(N_REFS, seed=2, dtype=DT)
        base = torch.zeros(model.n_features, dtype=DT)
        if variant == "present":  # the pertinent negatives' baseline: present (1), so absence is credited
            base = (model.negative != 0).to(DT)
        truth = model.truth(x, base)
        eg_exact = torch.stack([model.truth(x, r) for r in refs]).mean(0)
        label = f"{model.name}{', baseline x_k=1' if variant else ''}, k={model.k}"
        table += score(label, model, x, (), model.k, truth, {"ig": truth, "eg": eg_exact}, refs, base)

    head = ["model", "method", "FA", "RA", "SA", "PGI", "PGU", "max abs err", "evals/row"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
