r"""Integrated Hessians: pairwise feature interactions along the straight line.

Janizek, Sturmfels & Lee define the interaction of features ``i`` and ``j`` as the
Integrated Gradients of feature ``j`` applied to the Integrated Gradients of feature
``i``. On the straight line ``z(t) = x' + t d`` with ``d = x - x'`` that is

.. math:: \Gamma_{ij} = d_i d_j \int_0^1\!\!\int_0^1 \alpha\beta\, H_{ij}(x' + \alpha\beta d)
          \,d\alpha\, d\beta + \delta_{ij}\, d_i \int_0^1\!\!\int_0^1 \partial_i F(x' + \alpha\beta d)
          \,d\alpha\, d\beta .

Both integrands depend on ``alpha * beta`` only, and ``int int g(ab) da db = int_0^1 g(t)
(-ln t) dt`` (the measure of ``{ab <= t}`` is ``t - t ln t``), so one 1-D integral with
the weight ``-ln t`` replaces the double one:

.. math:: \Gamma_{ij} = d_i d_j \int_0^1 t\,(-\ln t)\, H_{ij}(z(t))\, dt
          + \delta_{ij}\, d_i \int_0^1 (-\ln t)\, \partial_i F(z(t))\, dt .

:func:`integrad.core.rules.gauss_log` integrates that weight exactly on polynomials of
degree ``2 n - 1``: ``n`` points per example instead of a grid of ``n^2`` (or a sampled
one) for the pairs ``(alpha, beta)``. At each point one gradient and one batch of
Hessian-vector products (``H e_j`` for every feature, or for one ``j``) are taken.

Row sums: ``sum_j Gamma_ij = d_i int (-ln t) d/dt[t dF_i(z(t))] dt = d_i int dF_i(z(t)) dt
= phi_i`` (integration by parts; the boundary terms vanish), the Integrated Gradients. The
rule gives no exact discrete version of that identity, so it is a check: ``phi`` comes
from the same gradients, weighed by the interpolatory rule for ``int_0^1 g(t) dt`` on the
same nodes (exact to degree ``n - 1``), and ``row_sum_gap`` reports the difference.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..backends.torch import SavedBytes
from ..core import checks as C
from ..core.chunking import PROBE_BYTES
from ..core.result import Attribution
from ..core.rules import gauss_log
from ._job import Job, describe_baseline, vocabulary

__all__ = ["integrated_hessians", "softplus_relus"]

# Block sizes: at most _HVP_ROWS Hessian-vector products per batched backward call, and an
# estimated _HVP_BYTES for them: a batched double backward holds, per product, a few times
# what the first backward saved per point (_HVP_FACTOR, an estimate). The first block of
# at most _PROBE_HVPS products (and PROBE_BYTES of points) is measured with SavedBytes,
# unless it is the whole problem; batch_size= replaces all of this.
_HVP_ROWS = 4096
_HVP_BYTES = 256 << 20
_HVP_FACTOR = 4
_PROBE_HVPS = 1024
_REFERENCE_ROWS = 256
DEFAULT_STEPS = 32


@vocabulary
def integrated_hessians(
    model: Callable[..., Any],
    inputs: torch.Tensor,
    *,
    baseline: float | torch.Tensor = 0.0,
    target: Any = None,
    n_steps: int = DEFAULT_STEPS,
    method: str = "gausslog",
    batch_size: int | None = None,
    interaction_index: int | Sequence[int] | None = None,
    forward_args: Sequence[Any] = (),
    forward_kwargs: dict[str, Any] | None = None,
) -> Attribution:
    r"""Integrated Hessians: interactions ``Gamma (batch, *features, *features)`` of ``model`` at ``inputs``.

    ``Gamma[b, i, j]`` is the part of feature ``i``'s Integrated Gradients that is due to
    feature ``j`` (see the module docstring for the integral); the matrix is symmetric, its
    diagonal holds the main effects, its rows sum to the Integrated Gradients and all its
    entries to ``F(x) - F(baseline)``.

    Parameters
    ----------
    model : nn.Module or callable
        As for :func:`integrad.integrated_gradients`; must be twice differentiable
        (a ReLU network has a zero Hessian almost everywhere: see :func:`softplus_relus`).
    inputs : Tensor, shape ``(batch, *features)``
        One floating-point tensor of any rank; float64 where the numbers matter.
    baseline : number or Tensor
        Start of the path, broadcast to one example or to the whole batch.
    target : None, int, tuple of ints, list of them or callable
        Which scalar to explain, as for :func:`integrad.integrated_gradients`.
    n_steps : int
        Nodes of the ``-ln t`` Gauss rule: gradient evaluations per example, each with one
        batch of Hessian-vector products (default 32; 1 to 1,024).
    method : {"gausslog"}
        The quadrature: the Gauss rule for the weight ``-ln t`` on the substituted integral
        (the only one: Gauss-Legendre or Riemann sums converge slowly on its log singularity).
    batch_size : int, optional
        Hessian-vector products per backward call (points times directions); ``None``
        measures the first block and keeps the rest near 256 MiB.
    interaction_index : int or tuple of ints, optional
        One feature ``j`` (a flat index, or an index into the feature shape): returns the
        column ``Gamma[:, ..., j]``, shape ``(batch, *features)``, from one Hessian-vector
        product per point instead of one per feature.
    forward_args, forward_kwargs
        Extra arguments for ``model``, not interpolated; batch-first tensors follow their rows.

    Returns
    -------
    Attribution
        ``attributions`` is ``Gamma``; ``delta`` is ``sum Gamma - (F(x) - F(baseline))``
        (with ``interaction_index=j``: ``sum_i Gamma_ij - phi_j``); ``row_sum_gap`` is
        ``sum_j Gamma_ij - phi_i`` against the Integrated Gradients ``phi`` of the same
        evaluations; ``settings["symmetry_gap"]`` is ``max |Gamma - Gamma^T|``;
        ``n_evals`` counts gradient evaluations, ``settings["hessian_vector_products"]``
        the products per example.

    Examples
    --------
    >>> import torch, integrad
    >>> res = integrad.integrated_hessians(lambda x: x[:, 0] * x[:, 1], torch.tensor([[2.0, 3.0]]))
    >>> res.attributions  # every entry x1 x2 / 4; rows sum to IG = x1 x2 / 2
    tensor([[[1.5000, 1.5000],
             [1.5000, 1.5000]]])

    References
    ----------
    Janizek, Sturmfels & Lee, "Explaining Explanations: Axiomatic Feature Interactions for
    Deep Networks", JMLR 22(104), 2021.
    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
    """
    if isinstance(inputs, (tuple, list)):
        raise TypeError(f"inputs: expected one tensor of shape (batch, *features); got a {type(inputs).__name__} "
                        f"of {len(inputs)} (interactions between several input tensors are not supported: "
                        "concatenate them)")
    if method != "gausslog":
        raise ValueError(f"method: expected 'gausslog' (the Gauss rule for the weight -ln t of the substituted "
                         f"integral); got {method!r}")
    rule = gauss_log(n_steps)
    job = Job(model, inputs, baseline=baseline, target=target, forward_args=forward_args,
              forward_kwargs=forward_kwargs, batch_size=batch_size)
    if job.framework != "torch":
        raise ValueError(f"model: Integrated Hessians takes second derivatives, which integrad has for PyTorch "
                         f"models only; this one is {job.framework}")
    x, start = job.xs[0], job.baselines[0]
    C.check_inputs_finite(job.xs, False)
    column = _column(interaction_index, tuple(x.shape[1:]))
    m, B, feat = job.model, job.batch, tuple(x.shape[1:])
    with m.guard():
        job.resolve_targets()
        sums = _integrate(m, start, x - start, rule, column, batch_size)
        every = torch.arange(B, device=x.device)
        f = m.scan((torch.cat([x, start]),), torch.cat([every, every]), batch_size or _REFERENCE_ROWS)[0]
    acc = sums["acc"]
    d = (x - start).reshape(B, -1).to(acc)
    f_x, f_b = f[:B].to(acc), f[B:].to(acc)
    phi = d * sums["plain"]
    if column is None:
        gamma = d[:, :, None] * d[:, None, :] * sums["hess"]
        gamma = gamma + torch.diag_embed(d * sums["grad"])
        rows = gamma.sum(-1)
        delta = rows.sum(-1) - (f_x - f_b)
        gap = rows - phi
        symmetry = float((gamma - gamma.transpose(1, 2)).abs().max())
        out = gamma.reshape(B, *feat, *feat)
    else:
        gamma = d * d[:, column, None] * sums["hess"]
        gamma[:, column] += d[:, column] * sums["grad"][:, column]
        delta = gap = gamma.sum(-1) - phi[:, column]
        symmetry = None
        out = gamma.reshape(B, *feat)
    dtype = x.dtype if x.dtype == torch.float64 else torch.float32
    settings = {"method": "gausslog", "n_steps": rule.n, "interaction_index": _describe_index(interaction_index),
                "hessian_vector_products": rule.n * (1 if column is not None else d.shape[1]),
                "symmetry_gap": symmetry, "target": m.targets.describe(), "baseline": describe_baseline(baseline),
                "batch_size": batch_size if batch_size is not None else f"auto ({sums['rows']} products)",
                "dtype": str(x.dtype).replace("torch.", "")}
    return Attribution(attributions=out.to(dtype), delta=delta.to(dtype), f_x=f_x.to(dtype), f_baseline=f_b.to(dtype),
                       n_evals=torch.full((B,), rule.n, dtype=torch.int64), settings=settings,
                       row_sum_gap=gap.reshape(B, *feat).to(dtype) if column is None else gap.to(dtype))


def _integrate(m, start: torch.Tensor, diff: torch.Tensor, rule, column: int | None, batch_size: int | None):
    """Weighted sums over the rule's nodes, per example.

    ``hess``: ``sum_k w_k t_k H(z_k)`` ``(B, F, F)`` (or its column ``(B, F)``); ``grad``:
    ``sum_k w_k g(z_k)``; ``plain``: ``sum_k v_k g(z_k)`` with the interpolatory weights
    ``v`` for ``int_0^1 g dt`` on the same nodes (the Integrated Gradients, over ``d``).
    """
    B, n = start.shape[0], rule.n
    feat, F = tuple(start.shape[1:]), start[0].numel()
    acc = torch.float64 if m.model_dtype == torch.float64 else torch.float32
    dev = start.device
    t = torch.tensor(rule.nodes, dtype=acc, device=dev)
    w = torch.tensor(rule.weights, dtype=acc, device=dev)
    v = torch.tensor(_plain_weights(rule.nodes), dtype=acc, device=dev)
    dirs = 1 if column is not None else F
    hess = torch.zeros(B, F, dtype=acc, device=dev) if column is not None else \
        torch.zeros(B, F, F, dtype=acc, device=dev)
    grad, plain = torch.zeros(B, F, dtype=acc, device=dev), torch.zeros(B, F, dtype=acc, device=dev)
    s0, d0 = start.reshape(B, F), diff.reshape(B, F)
    total = B * n
    hvps = batch_size  # products per backward call; None until the first block is measured
    if batch_size is None:
        point_bytes = start[0].numel() * max(start.element_size(), 4)
        points = max(1, min(total, _PROBE_HVPS // dirs, PROBE_BYTES // point_bytes))
        if points == total:  # all in one block: nothing to plan
            hvps = total * dirs
    else:
        points = max(1, min(total, batch_size // dirs))
    lo = 0
    while lo < total:
        idx = torch.arange(lo, min(total, lo + points), device=dev)
        lo += idx.shape[0]
        e, k = idx // n, idx % n
        z = (s0.index_select(0, e) + t[k, None].to(s0.dtype) * d0.index_select(0, e)).reshape(-1, *feat)
        saved = SavedBytes(m._exclude()) if hvps is None else None
        if saved is not None:
            with saved:
                z, g = _gradient(m, z, e)
            hvps = max(1, min(_HVP_ROWS, int(_HVP_BYTES // max(_HVP_FACTOR * saved.bytes / idx.shape[0], 1.0))))
        else:
            z, g = _gradient(m, z, e)
        # the block's points belong to consecutive examples e0..e1: sums over each one's points
        # are matrix products with its one-hot ownership
        e0, e1 = int(e[0]), int(e[-1]) + 1
        own = (e[None, :] - e0 == torch.arange(e1 - e0, device=dev)[:, None]).to(acc)
        flat = g.detach().reshape(-1, F).to(acc)
        grad[e0:e1] += (own * w[k]) @ flat
        plain[e0:e1] += (own * v[k]) @ flat
        mix = own * (w * t)[k]
        for a, b, h in _products(g, z, column, F, max(1, hvps // idx.shape[0])):
            part = torch.matmul(mix, h.to(acc))  # (directions, examples, F)
            if column is not None:
                hess[e0:e1] += part[0]
            else:
                hess[e0:e1, a:b] += part.transpose(0, 1)
        points = max(1, min(total, hvps // dirs))
    C.check_finite(hess.reshape(B, -1), "Hessian-vector product", torch.arange(B))
    if not bool(hess.any()) and bool(grad.any()):
        warnings.warn("integrated_hessians: the model's Hessian is exactly zero at every point of every path while "
                      "its gradient is not, so only the main effects (the diagonal) are nonzero. A ReLU network is "
                      "piecewise linear (second derivative zero almost everywhere): explain "
                      "integrad.softplus_relus(model) instead, as Janizek et al. do", stacklevel=4)
    return {"hess": hess, "grad": grad, "plain": plain, "acc": acc, "rows": hvps}


def _gradient(m, z: torch.Tensor, example: torch.Tensor):
    """``(z, dF/dz)`` at points ``z`` with the graph kept for a second derivative."""
    z = z.detach().requires_grad_(True)
    s = m._select(m._forward((z,), example)[0], example)
    C.check_finite(s, "model output", example)
    if not s.requires_grad:
        raise ValueError("model output does not depend on the inputs through differentiable operations (no "
                         "gradient); check that the model does not detach, round or index with its inputs")
    (g,) = torch.autograd.grad(s.sum(), z, create_graph=True, allow_unused=True)
    if g is None:
        raise ValueError("model output does not depend on the inputs (autograd found no path); check that the "
                         "model uses its inputs")
    C.check_finite(g, "gradient w.r.t. inputs", example)
    return z, g


def _products(g: torch.Tensor, z: torch.Tensor, column: int | None, F: int, per_call: int):
    """``(a, b, H e_a..e_b)`` in chunks of directions: ``(b - a, P, F)`` (or ``(1, P, F)``).

    All directions of a chunk go through one vectorised backward (``is_grads_batched``);
    a gradient that does not depend on ``z`` (a linear model) has a zero Hessian.
    """
    P = z.shape[0]
    if column is not None:
        if not g.requires_grad:
            yield column, column + 1, z.new_zeros(1, P, F)
            return
        onehot = z.new_zeros(P, F)
        onehot[:, column] = 1
        (h,) = _second(g, z, onehot.reshape(z.shape), batched=False, retain=False)
        yield column, column + 1, (torch.zeros_like(z) if h is None else h).reshape(1, P, F)
        return
    eye = torch.eye(F, dtype=z.dtype, device=z.device)
    for a in range(0, F, per_call):
        b = min(F, a + per_call)
        if not g.requires_grad:
            yield a, b, z.new_zeros(b - a, P, F)
            continue
        vecs = eye[a:b, None, :].expand(b - a, P, F).reshape(b - a, *z.shape)
        (h,) = _second(g, z, vecs, batched=True, retain=b < F)
        yield a, b, z.new_zeros(b - a, P, F) if h is None else h.reshape(b - a, P, F)


def _second(g, z, vecs, batched: bool, retain: bool):
    try:
        return torch.autograd.grad(g, z, grad_outputs=vecs, is_grads_batched=batched, retain_graph=retain,
                                   allow_unused=True)
    except RuntimeError as err:
        raise RuntimeError(f"model: its gradient could not be differentiated a second time (Integrated Hessians "
                           f"needs Hessian-vector products; an operation without a double backward, or a custom "
                           f"autograd.Function without one): {err}") from err


def _plain_weights(nodes: np.ndarray) -> np.ndarray:
    """Interpolatory weights for ``int_0^1 g(t) dt`` on ``nodes`` (exact to degree ``n - 1``).

    Solved in the Legendre basis, where it is well conditioned on Gauss nodes (condition
    number about ``n``): ``sum_k v_k P_j(2 t_k - 1) = int_0^1 P_j(2t - 1) dt = [j == 0]``.
    """
    n = nodes.shape[0]
    basis = np.polynomial.legendre.legvander(2.0 * nodes - 1.0, n - 1)
    return np.linalg.solve(basis.T, np.eye(n)[0])


def _column(index: Any, feat: tuple[int, ...]) -> int | None:
    """``interaction_index`` as a flat feature index (None: the whole matrix)."""
    if index is None:
        return None
    F = math.prod(feat)
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
        if not 0 <= index < F:
            raise ValueError(f"interaction_index: flat index {index} is out of range for {F} features (shape "
                             f"{feat}; valid: 0..{F - 1})")
        return int(index)
    if isinstance(index, (tuple, list)) and all(isinstance(i, (int, np.integer)) and not isinstance(i, bool)
                                                for i in index):
        if len(index) != len(feat) or not all(0 <= i < s for i, s in zip(index, feat)):
            raise ValueError(f"interaction_index: {tuple(index)} is not an index into the feature shape {feat}")
        return int(np.ravel_multi_index(tuple(int(i) for i in index), feat))
    raise TypeError(f"interaction_index: expected None, an int (flat feature index) or a tuple of ints into the "
                    f"feature shape {feat}; got {type(index).__name__} {index!r}")


def _describe_index(index: Any) -> Any:
    return list(index) if isinstance(index, (tuple, list)) else None if index is None else int(index)


def softplus_relus(model: torch.nn.Module, *, beta: float = 10.0) -> torch.nn.Module:
    """A copy of ``model`` with every ``nn.ReLU`` module replaced by ``nn.Softplus(beta)``.

    A ReLU network is piecewise linear: its Hessian is zero almost everywhere, so its
    Integrated Hessians are main effects only. Janizek et al. explain the network with
    softplus activations instead, ``log(1 + exp(beta x)) / beta``, which tends to ReLU as
    ``beta`` grows (larger ``beta``: closer to the original's outputs, sharper curvature,
    more ``n_steps`` needed). ``model`` itself is not changed. Only modules can be replaced:
    a ``forward`` that calls ``torch.relu`` directly keeps it.

    Examples
    --------
    >>> import torch, integrad
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    >>> integrad.softplus_relus(net, beta=5.0)[1]
    Softplus(beta=5.0, threshold=20.0)

    References
    ----------
    Janizek, Sturmfels & Lee, JMLR 22(104), 2021, section on smoothing ReLU networks.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module (its nn.ReLU modules are replaced); got "
                        f"{type(model).__name__}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta: expected a finite number > 0; got {beta!r}")
    new = copy.deepcopy(model)
    found = [(parent, name) for parent in new.modules() for name, child in parent.named_children()
             if isinstance(child, torch.nn.ReLU)]
    if not found:
        raise ValueError(f"model: {type(model).__name__} has no nn.ReLU module to replace (a forward that calls "
                         "torch.relu or F.relu directly cannot be changed from outside)")
    for parent, name in found:
        setattr(parent, name, torch.nn.Softplus(beta=float(beta)))
    return new
