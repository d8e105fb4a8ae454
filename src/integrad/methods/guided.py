"""Guided IG: a path that moves the features with the smallest gradient first
(:mod:`integrad.core.guided` builds it; this is the user's function).

Kapishnikov, Venugopalan, Avci, Wedin, Terry & Bolukbasi, "Guided Integrated Gradients: an
Adaptive Path Method for Removing Noise", CVPR 2021. The paper (and PAIR ``saliency``) take
each step's gradient at its start, a one-sided rule whose error is first order in the step;
the default here is the trapezoid, second order, for one more gradient evaluation (at the
input). The difference of the two sums, which the run has for free, is the error estimate
(an upper estimate for the trapezoid: it is about the one-sided rule's error).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from ..backends.torch import as_dtype
from ..core.guided import walk
from ..core.result import Attribution
from ._job import Job, check_count, sampling_error, vocabulary

__all__ = ["guided_ig"]

@vocabulary
def guided_ig(
    model: Callable[..., Any],
    inputs: torch.Tensor,
    *,
    baseline: float | torch.Tensor = 0.0,
    target: Any = None,
    head: Callable[[torch.Tensor], torch.Tensor] | None = None,
    n_steps: int = 200,
    fraction: float = 0.25,
    max_dist: float = 0.02,
    rule: str = "trapezoid",
    batch_size: int | None = None,
    forward_args: Sequence[Any] = (),
    forward_kwargs: dict[str, Any] | None = None,
    max_memory: int | None = None,
) -> Attribution:
    """Guided Integrated Gradients of ``model`` at ``inputs`` from ``baseline``.

    Parameters
    ----------
    model, inputs, baseline, target, head, batch_size, forward_args, forward_kwargs, max_memory
        As in :func:`integrad.integrated_gradients` (one input tensor, one target).
    n_steps : int
        Steps of the path (the paper's and ``saliency``'s ``x_steps``, default 200); gradient
        evaluations per example: ``n_steps + 1`` with the trapezoid, ``n_steps`` with ``"left"``.
    fraction : float in (0, 1]
        Share of the features moved at a time (those with the smallest ``|gradient|``).
    max_dist : float in [0, 1]
        How far (in alpha) a feature may run ahead of or fall behind the straight line; 0 is IG
        on the straight line (with the rule's nodes ``k / n_steps``), 1 leaves it free.
    rule : {"trapezoid", "left", "idgi"}
        Gradient of each step: the mean of its two ends, or its start (the paper's); or IDGI's
        weighting of the same path (:func:`integrad.idgi`): each step's change of F split in
        proportion to the squared gradient at its start (``n_steps + 1`` evaluations).

    Returns
    -------
    Attribution
        ``delta`` against ``F(x) - F(baseline)``; ``error`` (trapezoid only) the norm of the
        difference between the two rules' sums over the attributions' (about the one-sided
        rule's error, so an upper estimate of the trapezoid's).

    References
    ----------
    Kapishnikov et al., "Guided Integrated Gradients: an Adaptive Path Method for Removing
    Noise", CVPR 2021.
    """
    check_count(n_steps, "n_steps")
    for name, value, low in (("fraction", fraction, 0.0), ("max_dist", max_dist, -1.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low < value <= 1.0 or (name == "max_dist" and value < 0):
            span = "(0, 1]" if name == "fraction" else "[0, 1]"
            raise ValueError(f"{name}: expected a number in {span}; got {value!r}")
    if rule not in ("trapezoid", "left", "idgi"):
        raise ValueError(f"rule: expected 'trapezoid', 'left' or 'idgi'; got {rule!r}")
    job = Job(model, inputs, baseline=baseline, target=target, head=head, forward_args=forward_args,
              forward_kwargs=forward_kwargs, batch_size=batch_size, max_memory=max_memory)
    if len(job.xs) != 1:
        raise ValueError(f"inputs: Guided IG takes one input tensor; got {len(job.xs)}")
    with job.model.guard():
        job.resolve_targets()
        m = job.model
        x = job._input_ends()[0]
        m.plan(job.batch_size, job.max_memory, x.shape[0] * (n_steps + 1), x[:1].numel() * x.element_size())
        attr, other, f_end, f_start, evals = walk(
            m, x, as_dtype(job.baselines[0], m.dtype), n_steps, float(fraction), float(max_dist), rule,
            lambda z: job._scan((as_dtype(z, m.model_dtype),), torch.arange(z.shape[0], device=z.device)))
    x = job.xs[0]
    attr = attr.view(x.shape)
    delta = (attr.reshape(x.shape[0], -1).sum(1, dtype=torch.float64) - (f_end.double() - f_start.double()))
    settings = {"method": f"guided_ig ({rule})", "n_steps": n_steps, "fraction": float(fraction),
                "max_dist": float(max_dist), "rtol": None, "atol": None, "max_evals": None} | job.describe()
    error = None if other is None else sampling_error((attr,), ((attr - other.view(x.shape)),), 1)
    return Attribution(attributions=attr, delta=delta.to(attr.dtype), f_x=f_end, f_baseline=f_start,
                       n_evals=torch.full((x.shape[0],), evals, dtype=torch.int64), settings=settings, error=error)
