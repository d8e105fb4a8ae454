"""Fixed point placement: the same nodes and weights on every path row, evaluated in blocks.

Blocks are whole path rows times all nodes, or one path row times a window of nodes, so that
interpolation is a broadcast and accumulation a small matrix product per block. Values and
slopes along the path are kept for convergence plots, and every block feeds the rule's error
estimate (:mod:`.estimate`): a few more weighted sums of the same gradients, and the changes
of the integrand between consecutive nodes.
"""

from __future__ import annotations

import torch

from . import checks as C
from .chunking import blocks
from .estimate import RoughPart, estimate, extra_weights


def integrate_fixed(model, path, alphas: torch.Tensor, weights: torch.Tensor, extra=None, method: str = ""):
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
    error : Tensor of float64 on the CPU, shape ``(P, k)`` or ``(P,)``
        Estimated relative error of each row's attribution vector ``(x - x') * integral``
        (:func:`.estimate.estimate` over the vector's norm, never below a few units of
        rounding), for the rule ``method`` whose nodes and weights these are.
    """
    n, P, k = alphas.shape[0], path.rows, model.k
    axis = (k,) if model.targets.many else ()
    acc = tuple(d.new_zeros(d.shape[0], *axis, *d.shape[1:]) for d in path.diffs)
    W = torch.cat([weights[None], extra_weights(method, n, weights.dtype, weights.device)])
    side = tuple(d.new_zeros(d.shape[0], W.shape[0] - 1, *axis, d[0].numel()) for d in path.diffs)
    rough = RoughPart(method, n, P, axis, alphas.device)
    trace = torch.empty(2, P, n, *axis, dtype=model.dtype, device=alphas.device)
    state = {"extra": None}
    pos = (0, 0)
    while pos[0] < P:
        rows = model.rows
        for e0, e1, k0, k1 in blocks(P, n, rows, *pos):
            _block(model, path, e0, e1, k0, k1, alphas, W, acc, side, rough, trace, extra, state)
            extra = None
            pos = (e1, 0) if k1 == n else (e0, k1)
            if model.rows != rows:  # the probe was measured: re-plan the remaining blocks
                break
    # Not checked per block: a NaN or Inf anywhere reaches the completeness gap, which the
    # caller checks once (``explain_non_finite`` then finds where it came from).
    lead = (1,) * (1 + len(axis))
    terms = torch.cat([s * d.reshape(d.shape[0], *lead, -1) for s, d in zip(side, path.diffs)], -1)
    size = sum((a.reshape(*a.shape[:1 + len(axis)], -1) * d.reshape(d.shape[0], *lead[1:], -1)).double().square().sum(-1)
               for a, d in zip(acc, path.diffs)).sqrt()
    err = estimate(method, n, terms, rough.total, size)
    rel = torch.where(size > 0, err / size, torch.where(err > 0, torch.inf, 0.0))
    return acc, trace, state["extra"], rel.clamp_min(4 * torch.finfo(acc[0].dtype).eps).cpu()


def explain_non_finite(path, acc, trace, extra) -> None:
    """Raise the clearest error for a non-finite result: model output, then gradients."""
    every = path.owner
    C.check_finite(trace[0].reshape(path.rows, -1), "model output", every)
    if extra is not None:  # F(x) and F(baseline), when they rode along
        C.check_finite(extra[0], "model output", extra[1])
    for i, a in enumerate(acc):
        C.check_finite(a, f"gradient w.r.t. inputs[{i}]", every)


def _block(model, path, e0, e1, k0, k1, alphas, W, acc, side, rough, trace, extra, state) -> None:
    E, K, k = e1 - e0, k1 - k0, model.k
    axis = (k,) if model.targets.many else ()
    curved = getattr(path, "curved", False)
    if curved:  # a user path: each gradient is multiplied by the velocity at its node
        zs, vs = path.grid_points(e0, e1, alphas[k0:k1])
    else:
        zs, vs = path.grid(e0, e1, alphas[k0:k1]), None
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
    w_blk = W[:, k0:k1]
    integrand = []
    for i, (a, s, d, g) in enumerate(zip(acc, side, path.diffs, grads)):
        # gradients are (rows, k, *features), or (rows, *features) for one target
        g = (g if g.dtype == model.dtype else g.to(model.dtype)).reshape(E, K, -1)
        if vs is not None:
            v = vs[i].reshape(E, K, 1, -1)
            g = (g.view(E, K, k if axis else 1, -1) * v).view(E, K, -1)
        part = a[e0:e1]
        # (J, K) @ (E, K, k*F) -> (E, J, k*F): the rule's weighted sum over this block's nodes
        # (row 0) and the error estimate's (the others)
        sums = torch.matmul(w_blk, g)
        part += sums[:, 0].view_as(part)
        s[e0:e1] += sums[:, 1:].view_as(s[e0:e1])
        integrand.append(g.view(E, K, *axis, -1) * d[e0:e1].reshape(E, 1, *[1] * len(axis), -1))
        # dF(path)/dalpha = grad . (x - x'): the completeness integrand, kept for plots
        if axis:
            dot = torch.matmul(g.view(E, K * k, -1), d[e0:e1].reshape(E, -1, 1)).view(E, K, k)
        else:
            dot = torch.matmul(g, d[e0:e1].reshape(E, -1, 1)).squeeze(-1)
        if i == 0:
            slope.copy_(dot)
        else:
            slope += dot
    rough.add(e0, e1, k0, k1, torch.cat(integrand, -1) if len(integrand) > 1 else integrand[0], W.shape[1], trace)
