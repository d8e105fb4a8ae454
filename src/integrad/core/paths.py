"""Paths from a start to an end point, for many path rows at once.

A *path row* is one path of one example: plain IG has one per example; IG averaged over K
baselines has K; Expected Gradients one per drawn sample; SmoothGrad one per noisy copy.
``owner[p]`` is the example a path row belongs to, which is what targets and extra model
arguments follow. A path gives its points ``z(alpha)`` for any rows and alphas, and its
velocity ``dz/dalpha``; the straight line's velocity is constant (``end - start``), so its
gradient integral is multiplied by it once, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(eq=False)
class StraightLine:
    """``start + alpha * (end - start)`` for each path row; tuples hold one tensor per input.

    Attributes
    ----------
    starts, diffs : tuple of Tensor, shapes ``(P, *features_i)``
    owner : Tensor of int64, shape ``(P,)``
        The example of each path row.
    """

    starts: tuple[torch.Tensor, ...]
    diffs: tuple[torch.Tensor, ...]
    owner: torch.Tensor
    example_ends: tuple[torch.Tensor, ...] | None = None  # each example's end point, when known

    @property
    def rows(self) -> int:
        return self.owner.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.diffs[0].dtype

    @property
    def width(self) -> int:
        """Features per path row, all inputs together."""
        return sum(d[0].numel() for d in self.diffs)

    def at(self, rows: torch.Tensor, alphas: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Points for arbitrary (path row, alpha) pairs, shapes ``(N, *features_i)``."""
        return tuple(st.index_select(0, rows) + alphas.view(-1, *[1] * (st.dim() - 1)) * d.index_select(0, rows)
                     for st, d in zip(self.starts, self.diffs))

    def grid(self, p0: int, p1: int, alphas: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Points of path rows ``p0:p1`` at every alpha, row ``(p - p0) * K + k``: a broadcast."""
        E, K = p1 - p0, alphas.shape[0]
        return tuple((st[p0:p1].unsqueeze(1) + alphas.view(1, K, *[1] * (st.dim() - 1)) * d[p0:p1].unsqueeze(1))
                     .reshape(E * K, *st.shape[1:]) for st, d in zip(self.starts, self.diffs))

    def ends(self) -> tuple[torch.Tensor, ...]:
        return tuple(st + d for st, d in zip(self.starts, self.diffs))

    def flat_diff(self) -> torch.Tensor:
        """``(P, F)``: the velocity of every path row, all inputs together."""
        return torch.cat([d.reshape(d.shape[0], -1) for d in self.diffs], 1)


@dataclass(eq=False)
class IndexedLine:
    """Straight lines between shared end and start points: row ``p`` runs from
    ``starts[start_index[p]]`` to ``ends[owner[p]]``; nothing is stored per row.

    For many rows over few distinct points (Expected Gradients: samples x references), so
    memory is that of the points, not of the rows.
    """

    ends: tuple[torch.Tensor, ...]
    starts: tuple[torch.Tensor, ...]
    owner: torch.Tensor
    start_index: torch.Tensor

    @property
    def rows(self) -> int:
        return self.owner.shape[0]

    def at(self, rows: torch.Tensor, alphas: torch.Tensor):
        """Points and velocities ``dz/dalpha`` for (row, alpha) pairs."""
        si, ei = self.start_index.index_select(0, rows), self.owner.index_select(0, rows)
        zs, vs = [], []
        for e, s in zip(self.ends, self.starts):
            st = s.index_select(0, si)
            d = e.index_select(0, ei) - st
            zs.append(st + alphas.view(-1, *[1] * (st.dim() - 1)) * d)
            vs.append(d)
        return tuple(zs), tuple(vs)


@dataclass(eq=False)
class CurvedPath:
    """A path given by a function: ``fn(ends, starts, alphas) -> (z, dz/dalpha)``.

    ``ends``, ``starts``: ``(E, *features)`` for E path rows; ``alphas``: ``(E, K)``; ``z`` and
    its velocity: ``(E, K, *features)``. One input tensor. The engine multiplies each gradient
    by the velocity at its node, so the weighted sums are the attributions themselves; ``diffs``
    is all ones, which makes every straight-line step that multiplies by ``x - x'`` (the
    attributions, the error estimate's integrand, ``dF/dalpha``) the identity.

    Attributes
    ----------
    fn : callable
    ends, starts : Tensor, shape ``(P, *features)``
    owner : Tensor of int64, shape ``(P,)``
    name : str
        How errors name the path (the user's argument).
    """

    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    ends: torch.Tensor
    starts: torch.Tensor
    owner: torch.Tensor
    name: str = "path"
    curved = True

    def __post_init__(self) -> None:
        self.diffs = (torch.ones_like(self.ends),)

    @property
    def rows(self) -> int:
        return self.owner.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.ends.dtype

    @property
    def width(self) -> int:
        return self.ends[0].numel()

    def points(self, rows: torch.Tensor, alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z`` and ``dz/dalpha`` for path rows ``rows`` at ``alphas (len(rows), K)``, each
        ``(len(rows) * K, *features)``, checked."""
        E, K = alphas.shape
        out = self.fn(self.ends.index_select(0, rows), self.starts.index_select(0, rows), alphas)
        want = (E, K, *self.ends.shape[1:])
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
            raise TypeError(f"{self.name}: expected a pair of tensors (points, velocities) of shape "
                            f"{want}; got {type(out).__name__}")
        for what, t in zip(("points", "velocities"), out):
            if tuple(t.shape) != want:
                raise ValueError(f"{self.name}: its {what} for {E} path row(s) at {K} alpha(s) should have shape "
                                 f"{want} (rows, alphas, *features); got {tuple(t.shape)}")
        z, v = (t.to(self.dtype).reshape(E * K, *want[2:]) for t in out)
        return z, v

    def grid_points(self, p0: int, p1: int, alphas: torch.Tensor) -> tuple[tuple[torch.Tensor], tuple[torch.Tensor]]:
        """Points and velocities of rows ``p0:p1`` at every alpha (row ``(p - p0) * K + k``)."""
        rows = torch.arange(p0, p1, device=self.owner.device)
        z, v = self.points(rows, alphas.view(1, -1).expand(p1 - p0, -1))
        return (z,), (v,)

    def at(self, rows: torch.Tensor, alphas: torch.Tensor) -> tuple[torch.Tensor]:
        """Points for (path row, alpha) pairs (the adaptive integrator's requests)."""
        return (self.points(rows, alphas.view(-1, 1))[0],)

    def velocity_at(self, rows: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
        """``(N, F)``: flattened velocities for (path row, alpha) pairs."""
        return self.points(rows, alphas.view(-1, 1))[1].reshape(rows.shape[0], -1)

    def flat_diff(self) -> torch.Tensor:
        return self.diffs[0].reshape(self.rows, -1)
