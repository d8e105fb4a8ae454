"""Infidelity and max-sensitivity of explanations (Yeh et al., NeurIPS 2019)."""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..core import checks as C
from . import _common as M

__all__ = ["infidelity", "sensitivity_max"]

PERTURBATIONS = ("noise", "subset")


def infidelity(model: Callable[..., Any], inputs: torch.Tensor, attributions: Any, *,
               perturb: str | Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = "noise",
               n_perturb: int = 10, scale: float | None = None, baseline: float | torch.Tensor = 0.0,
               target: Any = None, head: Callable[[torch.Tensor], torch.Tensor] | None = None,
               normalize: bool = False, batch_size: int | None = None, seed: int = 0) -> torch.Tensor:
    r"""Explanation infidelity: how well ``I . attributions`` predicts the output change a perturbation ``I`` makes.

    .. math:: \mathrm{INFD}(\Phi, F, x) = \mathbb{E}_{I}\Big[\big(I^\top \Phi(x)
              - (F(x) - F(x - I))\big)^2\Big]

    estimated by the mean over ``n_perturb`` perturbations per example, the definition of
    ``captum.metrics.infidelity`` (with ``perturb`` returning ``(I, x - I)``, it gives the
    same numbers). **Lower is better.**

    Parameters
    ----------
    model : nn.Module or callable
        Maps ``(rows, *features)`` to outputs; called without autograd, left as found.
    inputs : Tensor, shape (batch, *features)
    attributions : Tensor or Attribution, shape (batch, *features)
    perturb : {"noise", "subset"} or callable
        ``"noise"``: ``I`` is Gaussian with standard deviation ``scale`` (default 0.1), drawn
        independently for every element, and the perturbed input is ``x - I``; for local
        attributions (gradients, ``multiply_by_inputs=False``). ``"subset"``: every feature
        is set to ``baseline`` independently with probability ``scale`` (default 0.5), and
        ``I`` is the 0/1 mask of the features set; for attributions that add up to
        ``F(x) - F(baseline)``, such as Integrated Gradients (Yeh et al.'s link to
        sensitivity-n). Both are drawn from a ``torch.Generator`` seeded with ``seed``,
        never from the global RNG, in blocks of ``batch_size`` rows (the same seed and
        ``batch_size`` give the same numbers).
        A callable ``perturb(x, baseline) -> (I, x_perturbed)`` gets ``x`` of shape
        ``(rows, *features)``, each example repeated ``n_perturb`` times in a row (example
        0's copies first), and the baseline expanded to the same shape; it is called once
        when ``batch_size`` is None, else on consecutive blocks of at most ``batch_size``
        rows. Captum calls its ``perturb_func(inputs, baselines)`` the same way.
    n_perturb : int
        Perturbations per example.
    scale : float, optional
        See ``perturb``; not with a callable.
    baseline : number or Tensor
        Where ``"subset"`` sets the removed features; passed to a callable ``perturb``.
    target, head
        The attributed scalar, as in :func:`integrad.integrated_gradients`.
    normalize : bool
        Rescale the attributions by the least-squares factor
        :math:`\beta = \mathbb{E}[I^\top\Phi\,\Delta F] / \mathbb{E}[(I^\top\Phi)^2]` first,
        which makes the score invariant to the scale of the attributions.
    batch_size : int, optional
        Perturbed rows per model call (``None``: about 4M input elements a call).
    seed : int

    Returns
    -------
    Tensor, shape (batch,)

    Examples
    --------
    >>> import torch
    >>> from integrad.metrics import infidelity
    >>> w = torch.tensor([1.0, -2.0, 3.0])
    >>> x = torch.ones(2, 3)
    >>> infidelity(lambda z: z @ w, x, w * x, perturb="subset")  # IG of a linear model is exact
    tensor([0., 0.])

    References
    ----------
    Yeh, Hsieh, Suggala, Inouye & Ravikumar, "On the (In)fidelity and Sensitivity of
    Explanations", NeurIPS 2019.
    """
    C.check_model(model)
    x = M.check_tensor(inputs, "inputs")
    a = M.check_attributions(attributions, x)
    draw = _perturbation(perturb, scale)
    n = M.check_count(n_perturb, "n_perturb")
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize: expected True or False; got {type(normalize).__name__}")
    base = C.one_baseline(baseline, x, "baseline", "inputs")
    B = x.shape[0]
    tgt = C.Target(target, B, x.device, head)
    f_x = M.scores(model, x, torch.arange(B, device=x.device), tgt).to(x.dtype)
    gen = torch.Generator(device=x.device).manual_seed(M.check_seed(seed))
    sums = torch.zeros(4, B, dtype=x.dtype, device=x.device)  # (I.a - dF)^2, (I.a)^2, I.a dF, dF^2
    for rows in M.chunks(B * n, batch_size, x[0].numel()):
        ex = (rows // n).to(x.device)
        xr = x.index_select(0, ex)
        I, z = draw(xr, base.index_select(0, ex), gen)
        ia = (I.to(x.dtype) * a.index_select(0, ex)).reshape(len(ex), -1).sum(1)
        df = f_x.index_select(0, ex) - M.scores(model, z, ex, tgt).to(x.dtype)
        sums.index_add_(1, ex, torch.stack([(ia - df) ** 2, ia ** 2, ia * df, df ** 2]))
    if not normalize:
        return sums[0] / n
    beta = sums[2] / torch.where(sums[1] == 0, torch.ones_like(sums[1]), sums[1])
    return (beta ** 2 * sums[1] - 2 * beta * sums[2] + sums[3]) / n


def sensitivity_max(explain_fn: Callable[[torch.Tensor], Any], inputs: torch.Tensor, *,
                    perturb_radius: float | None = None,
                    perturb: Callable[[torch.Tensor], torch.Tensor] | None = None, n_perturb: int = 10,
                    batch_size: int | None = None, seed: int = 0) -> torch.Tensor:
    r"""Max-sensitivity: the largest relative change of the explanation under a small perturbation.

    .. math:: \mathrm{SENS}_{\max}(\Phi, x) = \max_{\|y - x\|_\infty \le r}
              \frac{\|\Phi(y) - \Phi(x)\|_2}{\|\Phi(x)\|_2}

    estimated by the maximum over ``n_perturb`` perturbed copies per example, the definition
    of ``captum.metrics.sensitivity_max`` (Frobenius norm of the whole explanation; an
    explanation of norm 0 divides by 1). **Lower is better.**

    Parameters
    ----------
    explain_fn : callable
        ``explain_fn(x)`` with ``x`` of shape ``(rows, *features)`` returns attributions of
        shape ``(rows, ...)`` (a Tensor or an Attribution), e.g.
        ``lambda x: integrad.integrated_gradients(model, x, target=0)``. It is called once on
        ``inputs`` and then on the perturbed rows, with autograd on.
    inputs : Tensor, shape (batch, *features)
    perturb_radius : float, optional
        The default perturbation adds noise uniform in ``[-perturb_radius, perturb_radius]``
        (default 0.02) to every element, drawn from a ``torch.Generator`` seeded with
        ``seed``, never from the global RNG.
    perturb : callable, optional
        Instead, ``perturb(x) -> x_perturbed`` on ``x`` of shape ``(rows, *features)``: each
        example repeated ``n_perturb`` times in a row, in blocks of at most ``batch_size``
        rows (one block when ``batch_size`` is None), as Captum calls its ``perturb_func``.
    n_perturb : int
        Perturbed copies per example.
    batch_size : int, optional
        Perturbed rows per ``explain_fn`` call.
    seed : int

    Returns
    -------
    Tensor, shape (batch,)

    Examples
    --------
    >>> import torch
    >>> from integrad.metrics import sensitivity_max
    >>> s = sensitivity_max(lambda x: 2 * x, torch.ones(2, 3))  # linear: |noise| / |x| <= radius
    >>> s.shape, bool((s <= 0.02).all())
    (torch.Size([2]), True)

    References
    ----------
    Yeh, Hsieh, Suggala, Inouye & Ravikumar, "On the (In)fidelity and Sensitivity of
    Explanations", NeurIPS 2019.
    """
    M.check_callable(explain_fn, "explain_fn", "explain_fn(x) -> attributions of shape (rows, ...)")
    x = M.check_tensor(inputs, "inputs")
    if perturb is not None:
        M.check_callable(perturb, "perturb", "perturb(x) -> x_perturbed")
        if perturb_radius is not None:
            raise ValueError("perturb_radius: sets the default uniform noise only; a perturb callable draws its own "
                             "(drop one of them)")
    radius = M.check_positive(0.02 if perturb_radius is None else perturb_radius, "perturb_radius")
    n = M.check_count(n_perturb, "n_perturb")
    gen = torch.Generator(device=x.device).manual_seed(M.check_seed(seed))
    B = x.shape[0]
    ref = _explain(explain_fn, x).reshape(B, -1)
    norm = torch.linalg.vector_norm(ref, dim=1)
    norm = torch.where(norm == 0, torch.ones_like(norm), norm)
    worst = torch.full((B,), -torch.inf, dtype=ref.dtype, device=x.device)
    for rows in M.chunks(B * n, batch_size, x[0].numel()):
        ex = (rows // n).to(x.device)
        xr = x.index_select(0, ex)
        if perturb is None:
            z = xr + (torch.rand(xr.shape, generator=gen, dtype=x.dtype, device=x.device) * 2 - 1) * radius
        else:
            z = _check_like(perturb(xr), xr, "perturb", "its input")
        e = _explain(explain_fn, z).reshape(len(ex), -1)
        if e.shape[1] != ref.shape[1]:
            raise ValueError(f"explain_fn: returned {e.shape[1]} values per perturbed row, but {ref.shape[1]} per "
                             "example of inputs")
        change = torch.linalg.vector_norm(e.to(ref.dtype) - ref.index_select(0, ex), dim=1) / norm.index_select(0, ex)
        worst.scatter_reduce_(0, ex, change, "amax")
    return worst


def _perturbation(perturb: Any, scale: Any) -> Callable:
    """``draw(x, baseline, generator) -> (I, x_perturbed)`` for ``perturb=``."""
    if callable(perturb):
        if scale is not None:
            raise ValueError("scale: sets the built-in perturbations only; a perturb callable draws its own "
                             "(drop one of them)")

        def user(x, base, gen):
            out = perturb(x, base)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise TypeError(f"perturb: expected a callable returning (perturbation, perturbed inputs); got "
                                f"{type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list))
                                                           else ""))
            return (_check_like(out[0], x, "perturb", "the rows it was given (perturbation)"),
                    _check_like(out[1], x, "perturb", "the rows it was given (perturbed inputs)"))
        return user
    if perturb == "noise":
        std = M.check_positive(0.1 if scale is None else scale, "scale")

        def noise(x, base, gen):
            I = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device) * std
            return I, x - I
        return noise
    if perturb == "subset":
        p = M.check_positive(0.5 if scale is None else scale, "scale", upper=1.0)

        def subset(x, base, gen):
            mask = torch.rand(x.shape, generator=gen, dtype=x.dtype, device=x.device) < p
            return mask.to(x.dtype), torch.where(mask, base, x)
        return subset
    raise ValueError(f"perturb: expected one of {', '.join(map(repr, PERTURBATIONS))} or a callable "
                     f"perturb(x, baseline) -> (perturbation, perturbed inputs); got {perturb!r}")


def _check_like(t: Any, x: torch.Tensor, name: str, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected tensors of shape {C.shape(x)}, like {what}; got {type(t).__name__}")
    if t.shape != x.shape:
        raise ValueError(f"{name}: expected shape {C.shape(x)}, like {what}; got {C.shape(t)}")
    if t.is_floating_point() and not torch.isfinite(t).all():
        raise ValueError(f"{name}: returned NaN or Inf")
    return t.detach()


def _explain(explain_fn: Callable, x: torch.Tensor) -> torch.Tensor:
    e = M.values_of(explain_fn(x), "explain_fn")
    if e.dim() == 0 or e.shape[0] != x.shape[0]:
        raise ValueError(f"explain_fn: expected attributions with one row per input row, shape ({x.shape[0]}, ...); "
                         f"got {C.shape(e)}")
    return e.detach()
