"""Sampled point placement: Monte Carlo and randomised quasi-Monte Carlo over (reference, alpha).

Expected Gradients draws, for each sample, a reference (a baseline) and a position alpha on
the path. ``"random"`` draws both independently; ``"sobol"`` takes them from a Sobol
sequence in two dimensions, in *replicates* that each get an independent random digital shift
(XOR of the points' binary digits with a random vector), so that the spread of the replicate
means gives an honest standard error (one randomised sequence alone has no variance
estimate). Draws come from a ``torch.Generator``, never global state.

References
----------
Sobol', "On the distribution of points in a cube and the approximate evaluation of integrals", 1967.
L'Ecuyer & Lemieux, "Recent advances in randomized quasi-Monte Carlo methods", 2002.
"""

from __future__ import annotations

import math

import torch

from . import checks as C

SAMPLERS = ("sobol", "random")
_REPLICATES = 8


def draw(batch: int, n_samples: int, n_refs: int, sampler: str, generator: torch.Generator):
    """Reference indices and alphas ``(batch, n_samples)``, and each sample's replicate ``(n_samples,)``."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler: expected one of {', '.join(map(repr, SAMPLERS))}; got {sampler!r}")
    if sampler == "random":
        u = torch.rand(batch, n_samples, 2, generator=generator, dtype=torch.float64)
        group = torch.zeros(n_samples, dtype=torch.long)
    else:
        reps = min(_REPLICATES, n_samples)
        sizes = [n_samples // reps + (i < n_samples % reps) for i in range(reps)]
        base = torch.quasirandom.SobolEngine(2).draw(batch * max(sizes), dtype=torch.float64)
        bits = (base * 2.0 ** 32).long()  # Sobol points are dyadic: exact as 32-bit integers
        parts = []
        for size in sizes:
            # a random digital shift per replicate keeps the points' net structure and makes
            # every point uniform on [0, 1)^2, so replicates are independent and unbiased
            shift = torch.randint(0, 2 ** 32, (1, 2), generator=generator, dtype=torch.long)
            pts = ((bits[:batch * size] ^ shift).double() + 0.5) / 2.0 ** 32
            parts.append(pts.view(batch, size, 2))
        u = torch.cat(parts, 1)
        group = torch.cat([torch.full((s,), i, dtype=torch.long) for i, s in enumerate(sizes)])
    ref = (u[..., 0] * n_refs).long().clamp_(max=n_refs - 1)
    return ref, u[..., 1], group


def integrate_sampled(model, path, alphas: torch.Tensor, group: torch.Tensor, n_groups: int, batch: int,
                      multiply: bool = True):
    """Per-sample attributions ``velocity * grad`` at each (row, alpha), summed per example.

    Returns the mean ``(B, k, F)``, its standard error ``(B, k, F)``, F along the rows
    ``(P, k)`` and each row's slope ``velocity . grad`` ``(P, k)`` (whose mean is the
    completeness sum also when ``multiply=False`` returns bare gradients). With one group
    per example the standard error is the i.i.d. one; with several (independent
    replicates), the spread of the replicate means.
    """
    P, k = path.rows, model.k
    width = sum(e[0].numel() for e in path.ends)
    sums = torch.zeros(batch * n_groups, k, width, dtype=model.dtype, device=alphas.device)
    # i.i.d. variance from data shifted by each example's first sample, so that a spread much
    # smaller than the mean is not lost to cancellation (and equal samples give exactly 0)
    squares = torch.zeros(batch, k, width, dtype=model.dtype, device=alphas.device) if n_groups == 1 else None
    shifted = torch.zeros_like(squares) if squares is not None else None
    shift = torch.zeros_like(squares) if squares is not None else None
    seen = torch.zeros(batch, dtype=torch.bool, device=alphas.device)
    values = torch.empty(P, k, dtype=model.dtype, device=alphas.device)
    slopes = torch.empty(P, k, dtype=torch.float64, device=alphas.device)
    lo = 0
    while lo < P:
        rows = torch.arange(lo, min(P, lo + model.rows), device=alphas.device)
        lo += rows.shape[0]
        zs, vs = path.at(rows, alphas.index_select(0, rows))
        owner = path.owner.index_select(0, rows)
        s, grads = model.gradients(zs, owner, check=False)
        values[rows] = s.to(model.dtype).view(-1, k)
        grads = [g.to(model.dtype).reshape(rows.shape[0], k, *v.shape[1:]) for g, v in zip(grads, vs)]
        contrib = torch.cat([(g * v.unsqueeze(1)).reshape(rows.shape[0], k, -1) for g, v in zip(grads, vs)], 2)
        slopes[rows] = contrib.sum(2, dtype=torch.float64)
        if not multiply:
            contrib = torch.cat([g.reshape(rows.shape[0], k, -1) for g in grads], 2)
        sums.index_add_(0, owner * n_groups + group.index_select(0, rows), contrib)
        if squares is not None:
            new = ~seen.index_select(0, owner)
            if new.any():
                first = torch.zeros(batch, dtype=torch.long, device=owner.device)
                idx = torch.arange(owner.shape[0], device=owner.device)
                first.scatter_reduce_(0, owner[new], idx[new], "amin", include_self=False)
                fresh = torch.unique(owner[new])
                shift[fresh] = contrib[first[fresh]]
                seen[fresh] = True
            dev = contrib - shift.index_select(0, owner)
            shifted.index_add_(0, owner, dev)
            squares.index_add_(0, owner, dev.square())
    C.check_finite(values, "model output", path.owner)
    C.check_finite(sums, "gradient w.r.t. inputs", torch.arange(batch * n_groups) // n_groups)
    counts = torch.bincount(path.owner * n_groups + group, minlength=batch * n_groups).to(model.dtype)
    per_group = sums / counts.view(-1, 1, 1)
    if squares is not None:
        n = counts.view(batch, 1, 1)
        mean = per_group.view(batch, k, width)
        var = (squares / n - (shifted / n).square()).clamp_min(0) * n / (n - 1).clamp_min(1)
        return mean, (var / n).sqrt(), values, slopes
    g = per_group.view(batch, n_groups, k, width)
    weights = counts.view(batch, n_groups, 1, 1) / counts.view(batch, n_groups).sum(1).view(batch, 1, 1, 1)
    mean = (g * weights).sum(1)
    spread = g.std(1, correction=1) if n_groups > 1 else torch.full_like(mean, math.nan)
    return mean, spread / math.sqrt(n_groups), values, slopes
