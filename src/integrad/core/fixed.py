"""Fixed point placement: the same nodes and weights on every path row, evaluated in blocks.

Blocks are whole path rows times all nodes, or one path row times a window of nodes, so that
interpolation is a broadcast and accumulation a small matrix product per block. Values and
slopes along the path are kept for convergence plots.
"""

from __future__ import annotations

import torch

from . import checks as C
from .chunking import blocks


def integrate_fixed(model, path, alphas: torch.Tensor, weights: torch.Tensor, extra=None):
    """Weighted sums of gradients per path row, and the trace (F, dF/dalpha) at the nodes.

    Parameters
    ----------
    model : backend model (``gradients``, ``rows``, ``k``, ``dtype``)
        Already planned (``model.plan``).
    path : StraightLine
    alphas, weights : Tensor, shape ``(n,)``
    extra : (points, example), optional
        Input-space points whose values ride along in the one block (only when everything
        fits in it): F(x) and F(baseline) for small models, one model call instead of two.
        ``points`` holds, per input, the tensors to append (concatenated with the block's).

    Returns
    -------
    acc : tuple of Tensor, shapes ``(P, k, *features_i)``, or ``(P, *features_i)`` without
        ``targets=`` (no target axis)
    trace : Tensor, shape ``(2, P, n, k)`` or ``(2, P, n)``
    extra_values : Tensor ``(m, k)`` or None
    """
    n, P, k = alphas.shape[0], path.rows, model.k
    axis = (k,) if model.targets.many else ()
    acc = tuple(d.new_zeros(d.shape[0], *axis, *d.shape[1:]) for d in path.diffs)
    trace = torch.empty(2, P, n, *axis, dtype=model.dtype, device=alphas.device)
    state = {"extra": None}
    pos = (0, 0)
    while pos[0] < P:
        rows = model.rows
        for e0, e1, k0, k1 in blocks(P, n, rows, *pos):
            _block(model, path, e0, e1, k0, k1, alphas, weights, acc, trace, extra, state)
            extra = None
            pos = (e1, 0) if k1 == n else (e0, k1)
            if model.rows != rows:  # the probe was measured: re-plan the remaining blocks
                break
    # Not checked per block: a NaN or Inf anywhere reaches the completeness gap, which the
    # caller checks once (``explain_non_finite`` then finds where it came from).
    return acc, trace, state["extra"]


def explain_non_finite(path, acc, trace, extra) -> None:
    """Raise the clearest error for a non-finite result: model output, then gradients."""
    every = path.owner
    C.check_finite(trace[0].reshape(path.rows, -1), "model output", every)
    if extra is not None:  # F(x) and F(baseline), when they rode along
        C.check_finite(extra[0], "model output", extra[1])
    for i, a in enumerate(acc):
        C.check_finite(a, f"gradient w.r.t. inputs[{i}]", every)


def _block(model, path, e0, e1, k0, k1, alphas, w, acc, trace, extra, state) -> None:
    E, K, k = e1 - e0, k1 - k0, model.k
    axis = (k,) if model.targets.many else ()
    zs = path.grid(e0, e1, alphas[k0:k1])
    example = path.owner[e0:e1].repeat_interleave(K)
    if extra is not None:
        points, ex = extra
        zs = tuple(torch.cat([z, *parts]) for z, parts in zip(zs, points))
        example = torch.cat([example, ex])
    values, grads = model.gradients(zs, example, check=False)
    if values.dtype != model.dtype:
        values = values.to(model.dtype)
    if extra is not None:
        state["extra"] = values[E * K:]
        values, grads = values[:E * K], tuple(g[:E * K] for g in grads)
    trace[0, e0:e1, k0:k1] = values.view(E, K, *axis)
    slope = trace[1, e0:e1, k0:k1]
    w_blk = w[k0:k1]
    for i, (a, d, g) in enumerate(zip(acc, path.diffs, grads)):
        # gradients are (rows, k, *features), or (rows, *features) for one target
        g = (g if g.dtype == model.dtype else g.to(model.dtype)).reshape(E, K, -1)
        part = a[e0:e1]
        # (K,) @ (E, K, k*F) -> (E, k*F): the weighted sum over this block's nodes
        part += torch.matmul(w_blk, g).view_as(part)
        # dF(path)/dalpha = grad . (x - x'): the completeness integrand, kept for plots
        if axis:
            dot = torch.matmul(g.view(E, K * k, -1), d[e0:e1].reshape(E, -1, 1)).view(E, K, k)
        else:
            dot = torch.matmul(g, d[e0:e1].reshape(E, -1, 1)).squeeze(-1)
        if i == 0:
            slope.copy_(dot)
        else:
            slope += dot
