"""Which pairs of a tabular row's columns act together: Integrated Hessians, by original column.

:func:`explain_interactions` runs :func:`integrad.integrated_hessians` on one encoded row and
sums the interactions of each column's encoded features (a one-hot group's indicators), so
``matrix[a, b]`` is the part of column ``a``'s attribution due to column ``b``; each row of
the full matrix sums to that column's Integrated Gradients from the same baseline.

Reference: Janizek, Sturmfels & Lee, "Explaining Explanations: Axiomatic Feature Interactions
for Deep Networks", JMLR 2021.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from .core.result import Attribution
from .methods.hessians import integrated_hessians
from .methods._job import check_count
from .tabular import _baselines, _row

__all__ = ["Interactions", "explain_interactions"]


@dataclass(frozen=True, eq=False)
class Interactions:
    """The strongest columns of one row and their pairwise interactions.

    Attributes
    ----------
    model : str
    columns : tuple of str
        The ``top`` columns by the size of their attribution, largest first.
    matrix : ndarray, shape ``(top, top)``
        Interactions between those columns (symmetric; the diagonal holds main effects).
    attributions : tuple of float
        Each shown column's Integrated Gradients: its row of the full matrix, summed.
    baseline : str
    result : Attribution
        The full Integrated Hessians over the encoded features (``row_sum_gap`` is its check).
    """

    model: str
    columns: tuple[str, ...]
    matrix: np.ndarray
    attributions: tuple[float, ...]
    baseline: str
    result: Attribution

    def figure(self):
        """The heatmap (a matplotlib Figure)."""
        from .viz._interactions import plot_interactions

        return plot_interactions(self.matrix, self.columns, output="the logit",
                                 title=f"{self.model}: interactions of the {len(self.columns)} strongest columns "
                                       f"(baseline: {self.baseline})")

    def to_png(self, path: Any, *, dpi: int = 120) -> None:
        self.figure().savefig(path, dpi=dpi, bbox_inches="tight")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "columns": list(self.columns), "matrix": self.matrix.tolist(),
                "attributions": list(self.attributions), "baseline": self.baseline}


def explain_interactions(model: Any, row: int | Mapping[str, Any], *, baseline: str | torch.Tensor = "mean",
                         reference: Any = None, top: int = 8, n_steps: int | None = None) -> Interactions:
    """Integrated Hessians of one row, summed over each original column's encoded features.

    Parameters
    ----------
    model, row, reference
        As in :func:`integrad.tabular.explain_row`.
    baseline : {"mean", "zero"} or Tensor of shape ``(features,)``
        One baseline (Integrated Hessians integrate one path; ``explain_row``'s 128 reference
        rows would cost 128 times as much).
    top : int
        How many columns to show, by the size of their attribution.
    n_steps : int, optional
        Nodes of the ``-ln t`` rule (default :data:`integrad.methods.hessians.DEFAULT_STEPS`).
    """
    check_count(top, "top")
    if isinstance(baseline, str) and baseline not in ("mean", "zero"):
        raise ValueError(f"baseline: expected 'mean', 'zero' or an encoded tensor; got {baseline!r} (Integrated "
                         "Hessians integrate one path, so no set of reference rows)")
    ad, raw, x = _row(model, row)
    base, described = _baselines(ad, model, baseline, reference, None, 0, x)
    if base.shape[0] != 1:
        raise ValueError(f"baseline: Integrated Hessians take one baseline row; got {base.shape[0]}")
    kw = {} if n_steps is None else {"n_steps": n_steps}
    res = integrated_hessians(ad.module, x, baseline=base, **kw)
    groups, column = ad.layout(x.shape[1], raw)
    onehot = torch.zeros(x.shape[1], len(groups), dtype=torch.float64)
    onehot[torch.arange(x.shape[1]), torch.as_tensor(column)] = 1.0
    full = onehot.T @ res.attributions[0].double() @ onehot  # (columns, columns)
    ig = full.sum(1)
    order = ig.abs().argsort(descending=True)[:top]
    names = list(groups)
    return Interactions(model=ad.name, columns=tuple(names[i] for i in order.tolist()),
                        matrix=full[order][:, order].numpy(), attributions=tuple(ig[order].tolist()),
                        baseline=described, result=res)
