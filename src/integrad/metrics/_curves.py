"""Deletion and insertion curves: the model output as the most important features go or come."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..core import checks as C
from . import _common as M

__all__ = ["Curve", "deletion_auc", "insertion_auc"]


@dataclass(frozen=True, eq=False)
class Curve:
    """A deletion or insertion curve per example and the area under it.

    Attributes
    ----------
    auc : Tensor, shape (batch,)
        Trapezoidal area under ``values`` over ``fractions`` (x-axis in [0, 1]).
    fractions : Tensor, shape (steps + 1,)
        ``k / steps``: the nominal fraction of the features removed (deletion) or inserted
        (insertion) at point ``k`` (exactly ``round(k * D / steps)`` of the ``D`` features).
    values : Tensor, shape (batch, steps + 1)
        The attributed output (target logit, or what ``head`` makes of it) at each point.
    """

    auc: torch.Tensor
    fractions: torch.Tensor
    values: torch.Tensor


def deletion_auc(model: Callable[..., Any], inputs: torch.Tensor, attributions: Any, *,
                 baseline: float | torch.Tensor = 0.0, target: Any = None,
                 head: Callable[[torch.Tensor], torch.Tensor] | None = None, steps: int = 20,
                 batch_size: int | None = None) -> Curve:
    """Area under the curve of the model output as features are set to ``baseline``, most important first.

    Point ``k`` of ``steps + 1`` sets the ``round(k * D / steps)`` features with the largest
    (signed) attributions to the baseline, ``D`` the number of attributed features; ties go
    in index order. Point 0 is ``F(inputs)``, the last ``F(baseline)``. A faithful
    attribution makes the output fall fast: **lower is better**.

    Parameters
    ----------
    model : nn.Module or callable
        Maps ``(rows, *features)`` to outputs ``(rows, ...)`` (or an object with ``.logits``);
        called without autograd, its mode and parameters untouched.
    inputs : Tensor, shape (batch, *features)
    attributions : Tensor or Attribution, shape (batch, *features)
        Or a shape that broadcasts to one example, e.g. ``(batch, 1, H, W)`` for an image:
        then each attributed element is one feature (all channels of a pixel go together).
        Pass ``attributions.abs()`` to rank by magnitude.
    baseline : number or Tensor
        The value of a removed feature; a tensor broadcasts to one example or the batch
        (e.g. a blurred copy of the image).
    target, head
        As in :func:`integrad.integrated_gradients`: the curve follows the target's raw
        output (a logit) by default; ``head=lambda out: out.softmax(-1)`` follows the
        probability, as Petsiuk et al. do.
    steps : int
        Equal fractions of the features, ``1 / steps`` each.
    batch_size : int, optional
        Rows per model call (``None``: about 4M input elements a call).

    Returns
    -------
    Curve

    Examples
    --------
    >>> import torch
    >>> from integrad.metrics import deletion_auc
    >>> w = torch.tensor([3.0, 1.0])
    >>> deletion_auc(lambda x: x @ w, torch.ones(1, 2), w[None], steps=2).values
    tensor([[4., 1., 0.]])

    References
    ----------
    Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
    Models", BMVC 2018 (deletion and insertion).
    Samek, Binder, Montavon, Lapuschkin & Müller, "Evaluating the Visualization of What a Deep
    Neural Network Has Learned", IEEE TNNLS 2017 (most relevant first perturbation).
    """
    return _curve(model, inputs, attributions, baseline, target, head, steps, batch_size, insert=False)


def insertion_auc(model: Callable[..., Any], inputs: torch.Tensor, attributions: Any, *,
                  baseline: float | torch.Tensor = 0.0, target: Any = None,
                  head: Callable[[torch.Tensor], torch.Tensor] | None = None, steps: int = 20,
                  batch_size: int | None = None) -> Curve:
    """Area under the curve of the model output as features of ``inputs`` replace ``baseline``, most important first.

    The mirror of :func:`deletion_auc`: point 0 is ``F(baseline)``, point ``k`` puts back the
    ``round(k * D / steps)`` features with the largest attributions, the last is
    ``F(inputs)``. **Higher is better.** Same arguments as :func:`deletion_auc`; for
    images Petsiuk et al. start from a blurred copy (``baseline=blurred``).

    Examples
    --------
    >>> import torch
    >>> from integrad.metrics import insertion_auc
    >>> w = torch.tensor([3.0, 1.0])
    >>> insertion_auc(lambda x: x @ w, torch.ones(1, 2), w[None], steps=2).auc
    tensor([2.5000])

    References
    ----------
    Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
    Models", BMVC 2018.
    """
    return _curve(model, inputs, attributions, baseline, target, head, steps, batch_size, insert=True)


def _curve(model, inputs, attributions, baseline, target, head, steps, batch_size, *, insert: bool) -> Curve:
    C.check_model(model)
    x = M.check_tensor(inputs, "inputs")
    a = M.check_attributions(attributions, x, broadcast=True)
    steps = M.check_count(steps, "steps")
    base = C.one_baseline(baseline, x, "baseline", "inputs")
    B, S = x.shape[0], steps + 1
    flat = a.reshape(B, -1)
    D = flat.shape[1]
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(D, device=x.device).expand(B, D))
    k = torch.arange(S, device=x.device)
    counts = (2 * k * D + steps) // (2 * steps)  # round(k * D / steps), halves up, in integers
    tgt = C.Target(target, B, x.device, head)
    values = torch.empty(B * S, dtype=x.dtype, device=x.device)
    for rows in M.chunks(B * S, batch_size, x[0].numel()):
        rows = rows.to(x.device)
        ex, step = rows // S, rows % S
        chosen = (rank.index_select(0, ex) < counts[step, None]).reshape(-1, *a.shape[1:])
        first, second = (base, x) if insert else (x, base)
        z = torch.where(chosen, second.index_select(0, ex), first.index_select(0, ex))
        values[rows] = M.scores(model, z, ex, tgt).to(x.dtype)
    values = values.reshape(B, S)
    auc = (values[:, 1:] + values[:, :-1]).sum(1) / (2 * steps)
    return Curve(auc=auc, fractions=k.to(x.dtype) / steps, values=values)
