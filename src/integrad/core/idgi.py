"""IDGI's weighting: each interval's change of F split by the squared gradient at its start.

Along a path's points ``z_0 .. z_n`` (``z_j = z(j / n)``), the interval's change
``F(z_(j+1)) - F(z_j)`` goes to the features in proportion to ``g_j^2 / |g_j|^2``: only the
gradient's direction counts, not the path's velocity. The attributions sum to
``F(z_n) - F(z_0)`` by construction.

Reference: Yang, Wang & Bilen, "IDGI: A Framework to Eliminate Explanation Noise from
Integrated Gradients", CVPR 2023.
"""

from __future__ import annotations

import torch


def shares(g: torch.Tensor) -> torch.Tensor:
    """``g^2 / |g|^2`` over the last axis in float64 (zero where the gradient is zero)."""
    sq = g.double().square()
    norm = sq.sum(-1, keepdim=True)
    return torch.where(norm > 0, sq / torch.where(norm > 0, norm, 1), 0.0)


def weigh(m, line, n: int) -> torch.Tensor:
    """``sum_j g_j^2 / |g_j|^2 (F_(j+1) - F_j)`` per path row of ``line`` at ``z_j = z(j / n)``,
    the nodes evaluated in blocks through the planned backend model ``m``: ``(P, F)``."""
    P = line.rows
    alphas = torch.arange(n + 1, dtype=m.dtype, device=line.owner.device) / n
    out = torch.zeros(P, line.width, dtype=torch.float64, device=line.owner.device)
    share = f_prev = None
    k0 = 0
    while k0 <= n:
        k1 = min(n + 1, k0 + max(1, m.rows // P))  # nodes per block, all path rows together (re-read: the
        # first block measures the memory per row and sets m.rows)
        rows = torch.arange(P, device=line.owner.device).repeat_interleave(k1 - k0)
        f, g = m.evaluate(line, rows, alphas[k0:k1].repeat(P))
        f, g = f[:, 0].view(P, k1 - k0).double(), g[:, 0].view(P, k1 - k0, -1).double()
        here = shares(g)  # (P, K, F)
        if share is not None:  # the interval from the previous block's last node
            out += share * (f[:, :1] - f_prev)
        out += (here[:, :-1] * (f[:, 1:] - f[:, :-1])[..., None]).sum(1)
        share, f_prev = here[:, -1], f[:, -1:]
        k0 = k1
    return out.to(m.dtype)
