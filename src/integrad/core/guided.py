"""Guided IG's point placement: a path built step by step from the gradients.

At step ``s`` of ``n`` the L1 distance to the input must fall to ``(1 - s/n)`` of the whole;
the features with the smallest ``|gradient|`` (a ``fraction`` of them at a time, skipping
those already at their upper bound) are moved toward the input until it does, and every
feature stays within ``max_dist`` (in units of alpha) of the straight line: a feature that
falls behind ``alpha - max_dist`` is pulled up to it. The examples of a batch advance
together, one gradient block per step. Along the polyline each step adds ``dx . g``, with
``g`` the mean of the step's two end gradients (``"trapezoid"``), its start's (``"left"``, the
paper's), or IDGI's weighting of the step's change of F (``"idgi"``).

Reference: Kapishnikov et al., "Guided Integrated Gradients: an Adaptive Path Method for
Removing Noise", CVPR 2021 (and PAIR ``saliency``'s ``guided_ig_impl``, which these sums equal
with ``"left"``).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .idgi import shares

_CLOSE = 1e-9  # the L1 target counts as met within this (relative and absolute), as in the paper's code


def walk(m, x: torch.Tensor, baseline: torch.Tensor, n: int, fraction: float, max_dist: float, rule: str,
         value_at: Callable[[torch.Tensor], torch.Tensor]):
    """Every example's Guided IG path from ``baseline`` to ``x`` (``(B, *features)``, the path's
    dtype), all advancing together, through the planned backend model ``m``.

    Returns ``(sums, other, f_end, f_start, evals)``: the rule's sums ``(B, F)``, the one-sided
    sums to compare them with (trapezoid only, else None), F at both ends, and gradient
    evaluations per example. ``value_at(z)``: F at points, for the end of ``rule="left"``.
    """
    B, shape = x.shape[0], x.shape
    end = x.reshape(B, -1)
    start = baseline.reshape(B, -1)
    total = end - start
    moving = total != 0
    l1_total = total.abs().sum(1)
    example = torch.arange(B, device=end.device)

    def gradients(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, grads = [], []
        lo = 0
        while lo < B:  # m.rows is re-read: the first block measures the memory per row and sets it
            hi = min(B, lo + m.rows)
            v, (g,) = m.gradients((z[lo:hi].view(-1, *shape[1:]),), example[lo:hi])
            values.append(v.to(m.dtype))
            grads.append(g.to(m.dtype).reshape(v.shape[0], -1))
            lo = hi
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
            idgi += shares(g) * (f_now.double() - f_prev.double())[:, None]
            f_prev = f_now
        left += dx * g.double()
        if g_now is not None:
            trap += dx * (g.double() + g_now.double()) / 2
            g = g_now
    if f_now is None:  # "left": F at the input, without its gradient
        f_now = value_at(x.view(shape))
    if rule == "left":  # no gradient at the input, so no trapezoid to compare with
        return left.to(m.dtype), None, f_now.to(m.dtype), f_start, n
    if rule == "idgi":  # complete by construction; no error estimate
        return idgi.to(m.dtype), None, f_now.to(m.dtype), f_start, n + 1
    return trap.to(m.dtype), left.to(m.dtype), f_now.to(m.dtype), f_start, n + 1
