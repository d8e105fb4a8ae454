"""Guided IG: a path that moves the features with the smallest gradient first.

Kapishnikov, Venugopalan, Avci, Wedin, Terry & Bolukbasi, "Guided Integrated Gradients: an
Adaptive Path Method for Removing Noise", CVPR 2021.

The path is built step by step from the gradients, so its steps are sequential per example;
the examples of a batch advance together, one gradient block per step. At step ``s`` of
``n`` the L1 distance to the input must fall to ``(1 - s/n)`` of the whole; the features
with the smallest ``|gradient|`` (a ``fraction`` of them at a time, skipping those already
at their upper bound) are moved toward the input until it does, and every feature stays
within ``max_dist`` (in units of alpha) of the straight line: a feature that falls behind
``alpha - max_dist`` is pulled up to it. ``max_dist=0`` is the straight line.

Along that polyline each step adds ``dx . g``. The paper (and PAIR ``saliency``) take ``g``
at the step's start, a one-sided rule whose error is first order in the step. Here the
default is the trapezoid ``(g_start + g_end) / 2``, second order, for one more gradient
evaluation (at the input): the gradient at a step's end is the next step's start anyway.
``rule="left"`` gives the paper's sums. The difference of the two sums, which the run has
for free, is reported as the error estimate (an upper estimate for the trapezoid: it is
about the one-sided rule's error).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from ..backends.torch import as_dtype
from ..core.result import Attribution
from ._job import Job, check_count, sampling_error, vocabulary

__all__ = ["guided_ig"]

_CLOSE = 1e-9  # the L1 target counts as met within this (relative and absolute), as in the paper's code


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
        attr, other, f_end, f_start, evals = _walk(job, n_steps, float(fraction), float(max_dist), rule)
    x = job.xs[0]
    attr = attr.view(x.shape)
    delta = (attr.reshape(x.shape[0], -1).sum(1, dtype=torch.float64) - (f_end.double() - f_start.double()))
    settings = {"method": f"guided_ig ({rule})", "n_steps": n_steps, "fraction": float(fraction),
                "max_dist": float(max_dist), "rtol": None, "atol": None, "max_evals": None} | job.describe()
    error = None if other is None else sampling_error((attr,), ((attr - other.view(x.shape)),), 1)
    return Attribution(attributions=attr, delta=delta.to(attr.dtype), f_x=f_end, f_baseline=f_start,
                       n_evals=torch.full((x.shape[0],), evals, dtype=torch.int64), settings=settings, error=error)


def _walk(job: Job, n: int, fraction: float, max_dist: float, rule: str):
    """Every example's Guided IG path, all advancing together: both rules' sums, F at the ends."""
    m, B = job.model, job.batch
    x_in = job._input_ends()[0]
    shape = x_in.shape
    end = x_in.reshape(B, -1)
    start = as_dtype(job.baselines[0], m.dtype).reshape(B, -1)
    total = end - start
    moving = total != 0
    l1_total = total.abs().sum(1)
    m.plan(job.batch_size, job.max_memory, B * (n + 1), end[:1].numel() * end.element_size())
    example = torch.arange(B, device=end.device)

    def gradients(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, grads = [], []
        for lo in range(0, B, m.rows):
            v, (g,) = m.gradients((z[lo:lo + m.rows].view(-1, *shape[1:]),), example[lo:lo + m.rows])
            values.append(as_dtype(v, m.dtype))
            grads.append(as_dtype(g, m.dtype).reshape(v.shape[0], -1))
        return torch.cat(values), torch.cat(grads)

    k = int(math.floor(fraction * (end.shape[1] - 1))) + 1  # numpy's "lower" quantile, as a rank
    x = start.clone()
    f_start, g = gradients(x)
    left = torch.zeros_like(end, dtype=torch.float64)
    trap, idgi, f_prev = torch.zeros_like(left), torch.zeros_like(left), f_start
    for step in range(n):
        alpha = (step + 1) / n
        lo_a, hi_a = max(alpha - max_dist, 0.0), min(alpha + max_dist, 1.0)
        x_min, x_max = start + total * lo_a, start + total * hi_a
        goal = l1_total * (1 - alpha)
        before = x.clone()
        active = l1_total > 0
        for _ in range(int(4 / fraction) + 8):  # each pass moves a fraction, or closes the step
            if not bool(active.any()):
                break
            where = torch.where(moving, (x - start) / torch.where(moving, total, 1), hi_a)
            x = torch.where((where < lo_a) & active[:, None], x_min, x)  # the laggards catch up
            now = (x - end).abs().sum(1)
            active = active & ~((now - goal).abs() <= torch.maximum(_CLOSE * torch.maximum(now.abs(), goal.abs()),
                                                                        torch.full_like(now, _CLOSE)))
            size = torch.where(x == x_max, torch.inf, g.abs())
            threshold = size.kthvalue(k, dim=1).values
            pick = (g.abs() <= threshold[:, None]) & torch.isfinite(size) & active[:, None]
            room = ((x - x_max).abs() * pick).sum(1)
            gamma = torch.where(room > 0, (now - goal) / room.clamp_min(torch.finfo(room.dtype).tiny), torch.inf)
            full = gamma > 1
            x = torch.where(pick & full[:, None], x_max,
                            torch.where(pick, x + gamma.clamp(max=1)[:, None] * (x_max - x), x))
            active = active & full
        f_now, g_now = gradients(x) if (rule != "left" or step < n - 1) else (None, None)
        dx = (x - before).double()
        if rule == "idgi":
            sq = g.double().square()
            norm = sq.sum(1, keepdim=True)
            weights = torch.where(norm > 0, sq / torch.where(norm > 0, norm, 1), 0.0)
            idgi += weights * (f_now.double() - f_prev.double())[:, None]
            f_prev = f_now
        left += dx * g.double()
        if g_now is not None:
            trap += dx * (g.double() + g_now.double()) / 2
            g = g_now
    if f_now is None:  # "left": F at the input, without its gradient
        f_now = job._scan((as_dtype(x.view(shape), m.model_dtype),), example)
    if rule == "left":  # no gradient at the input, so no trapezoid to compare with
        return left.to(m.dtype), None, as_dtype(f_now, m.dtype), f_start, n
    if rule == "idgi":  # complete by construction; no error estimate
        return idgi.to(m.dtype), None, as_dtype(f_now, m.dtype), f_start, n + 1
    return trap.to(m.dtype), left.to(m.dtype), as_dtype(f_now, m.dtype), f_start, n + 1
