"""OpenXAI's synthetic data: Gaussian clusters, each with its own sparse linear rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..core.checks import shape
from . import _checks as C

__all__ = ["synthetic", "SyntheticData", "ClusterLinear"]


class ClusterLinear(torch.nn.Module):
    r"""The ground-truth model of :func:`synthetic`: row ``n`` in cluster ``c`` gets the logit
    :math:`x_n \cdot (m_c \odot w_c)`.

    The cluster is a forward argument, not inferred from ``x``, so the model is exactly the
    rule that labelled the data and is differentiable in ``x`` everywhere (integrad's
    ``forward_args=(cluster,)`` and Captum's ``additional_forward_args`` carry it along the path).
    We chose it over an MLP trained on the data because its explanation is then known
    exactly; a trained model is only as right as its accuracy.

    Parameters
    ----------
    weights, masks : Tensor ``(n_clusters, n_features)``
        ``w_c`` and the Bernoulli masks ``m_c`` (bool or 0/1).
    probability : bool
        Return ``sigmoid(logit)``, the probability of label 1, instead of the logit.

    Examples
    --------
    >>> import torch
    >>> from integrad.groundtruth import ClusterLinear
    >>> f = ClusterLinear(torch.tensor([[1.0, -2.0], [3.0, 4.0]]), torch.tensor([[1, 1], [0, 1]]))
    >>> f(torch.ones(2, 2), torch.tensor([0, 1]))
    tensor([-1.,  4.])
    """

    def __init__(self, weights: torch.Tensor, masks: torch.Tensor, *, probability: bool = False):
        super().__init__()
        weights = C.matrix(weights, "weights")
        if not isinstance(masks, torch.Tensor) or masks.shape != weights.shape:
            got = shape(masks) if isinstance(masks, torch.Tensor) else type(masks).__name__
            raise ValueError(f"masks: expected shape {shape(weights)} (that of weights); got {got}")
        self.register_buffer("coef", weights * masks.to(weights.dtype))
        self.probability = bool(probability)

    def logits(self, x: torch.Tensor, cluster: torch.Tensor) -> torch.Tensor:
        """``x . (m_c * w_c)`` per row, shape ``(batch,)``."""
        cluster = _cluster(cluster, x.shape[0], self.coef.shape[0])
        return (x * self.coef.to(x.dtype)[cluster]).sum(-1)

    def forward(self, x: torch.Tensor, cluster: torch.Tensor) -> torch.Tensor:
        z = self.logits(x, cluster)
        return torch.sigmoid(z) if self.probability else z

    def exact_ig(self, x: torch.Tensor, cluster: torch.Tensor, baseline: float | torch.Tensor = 0.0) -> torch.Tensor:
        r"""Integrated Gradients of this model in closed form, shape of ``x``.

        With ``v = m_c * w_c`` and ``d = x - x'`` the logit along the straight line is
        ``v.x' + alpha v.d``, so the logit's IG is ``v * d`` (exact for any linear model), and
        the probability's is

        .. math:: \mathrm{IG}_i = v_i d_i\, \frac{\sigma(v\cdot x) - \sigma(v\cdot x')}{v\cdot d}
                  = v_i d_i \int_0^1 \sigma'(v\cdot x' + \alpha\, v\cdot d)\, d\alpha,

        with the limit ``v_i d_i sigma'(v.x')`` where ``v.d = 0``.
        """
        x = C.matrix(x, "x")
        if x.shape[1] != self.coef.shape[1]:
            raise ValueError(f"x: expected {self.coef.shape[1]} features; got shape {shape(x)}")
        b = C.like(baseline, x, "baseline", "x")
        v = self.coef.to(x.dtype)[_cluster(cluster, x.shape[0], self.coef.shape[0])]
        d = x - b
        direct = v * d
        if not self.probability:
            return direct
        s, s0 = (x * v).sum(-1), (b * v).sum(-1)
        run = s - s0
        small = run.abs() < 1e-12
        slope = torch.where(small, torch.sigmoid(s0) * torch.sigmoid(-s0),
                            (torch.sigmoid(s) - torch.sigmoid(s0)) / torch.where(small, torch.ones_like(run), run))
        return direct * slope[:, None]


def _cluster(cluster: Any, rows: int, n_clusters: int) -> torch.Tensor:
    if not isinstance(cluster, torch.Tensor) or cluster.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"cluster: expected an int64 tensor of shape ({rows},); got "
                        f"{cluster.dtype if isinstance(cluster, torch.Tensor) else type(cluster).__name__}")
    if cluster.shape != (rows,):
        raise ValueError(f"cluster: expected shape ({rows},) (one cluster id per row of x); got {shape(cluster)}")
    if rows and (cluster.min() < 0 or cluster.max() >= n_clusters):
        raise ValueError(f"cluster: ids must be in [0, {n_clusters - 1}]; got {int(cluster.min())}..{int(cluster.max())}")
    return cluster.long()


@dataclass(frozen=True, eq=False)
class SyntheticData:
    """Rows, labels and the known explanation of :func:`synthetic`.

    Attributes
    ----------
    X : Tensor ``(n_rows, n_features)``
    y : Tensor of int64 ``(n_rows,)``
        ``1`` where the ground-truth logit is positive.
    cluster : Tensor of int64 ``(n_rows,)``
    true_attr : Tensor ``(n_rows, n_features)``
        The masked weight vector ``m_c * w_c`` of each row's cluster: OpenXAI's ground-truth
        explanation (what the metrics compare to).
    weights, masks, centres : Tensor ``(n_clusters, n_features)``
        ``w_c ~ U(-1, 1)``, ``m_c ~ Bernoulli(0.5)`` (bool) and the cluster means.
    """

    X: torch.Tensor
    y: torch.Tensor
    cluster: torch.Tensor
    true_attr: torch.Tensor
    weights: torch.Tensor
    masks: torch.Tensor
    centres: torch.Tensor

    @property
    def balance(self) -> float:
        """The fraction of rows labelled 1."""
        return float(self.y.double().mean())

    def model(self, *, probability: bool = False) -> ClusterLinear:
        """The ground-truth model (logit, or with ``probability=True`` ``sigmoid(logit)``)."""
        return ClusterLinear(self.weights, self.masks, probability=probability)


def synthetic(n_rows: int = 1000, n_features: int = 20, n_clusters: int = 5, *, seed: int | torch.Generator = 0,
              separation: float = 1.0, dtype: torch.dtype = torch.float32) -> SyntheticData:
    r"""OpenXAI's synthetic data generator, re-implemented from its description.

    1. Cluster means ``mu_c ~ N(0, separation^2 I)``; the rows are split over the clusters
       as evenly as possible (in random order) and drawn ``x ~ N(mu_c, I)``.
    2. Per cluster, weights ``w_c ~ U(-1, 1)^d`` and a feature mask ``m_c ~ Bernoulli(0.5)^d``:
       each cluster uses its own random half of the features.
    3. Label ``y = 1[sigmoid(x . (m_c * w_c)) > 0.5]``, the **threshold**, not a Bernoulli
       draw: the ground-truth model (:class:`ClusterLinear`) then labels every row right, so
       an explanation of the model and of the data are the same thing; a Bernoulli draw
       would add label noise that no explanation can account for.
    4. The true attribution of a row is ``m_c * w_c`` of its cluster.

    By the symmetry of ``w`` the labels are balanced in expectation; with few clusters
    the balance of one draw varies (each cluster's share of 1s depends on where its mean
    falls: 1,000 rows, 20 features and 5 clusters give 0.388, 0.638, 0.553, 0.585 and 0.601
    for seeds 0-4, 20,000 rows in 50 clusters 0.535 — see :attr:`SyntheticData.balance`).
    With ``separation=1`` two means are ~6 within-cluster standard deviations apart in 20 dimensions,
    so the clusters are separate regions with their own important features.

    Parameters
    ----------
    n_rows, n_features, n_clusters : int
    seed : int or torch.Generator
        Every draw comes from it; the global RNG is never touched.
    separation : float
        Standard deviation of the cluster means (the rows' own is 1).
    dtype : torch.dtype

    Returns
    -------
    SyntheticData

    Examples
    --------
    >>> from integrad.groundtruth import synthetic
    >>> data = synthetic(200, 6, 2, seed=0)
    >>> data.X.shape, data.true_attr.shape
    (torch.Size([200, 6]), torch.Size([200, 6]))
    >>> bool((data.model()(data.X, data.cluster) > 0).long().eq(data.y).all())
    True

    References
    ----------
    Agarwal, Krishna, Saxena, Pawelczyk, Johnson, Puri, Zitnik & Lakkaraju, "OpenXAI: Towards a
    Transparent Evaluation of Model Explanations", NeurIPS 2022 Datasets and Benchmarks.
    """
    n_clusters = C.count(n_clusters, "n_clusters")
    n_rows = C.count(n_rows, "n_rows", least=n_clusters)
    n_features = C.count(n_features, "n_features")
    separation = C.positive(separation, "separation", zero_ok=True)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating torch.dtype; got {dtype!r}")
    g = C.generator(seed)
    K, d = n_clusters, n_features
    # drawn in float64 and cast once, so float32 and float64 data are the same numbers
    centres = torch.randn(K, d, generator=g, dtype=torch.float64) * separation
    weights = torch.rand(K, d, generator=g, dtype=torch.float64) * 2 - 1
    masks = torch.rand(K, d, generator=g, dtype=torch.float64) < 0.5
    cluster = (torch.arange(n_rows) % K)[torch.randperm(n_rows, generator=g)]
    X = centres[cluster] + torch.randn(n_rows, d, generator=g, dtype=torch.float64)
    X, weights = X.to(dtype), weights.to(dtype)
    # labelled by the model itself, in dtype, so it agrees with them to the last bit
    y = (ClusterLinear(weights, masks).logits(X, cluster) > 0).long()
    return SyntheticData(X=X, y=y, cluster=cluster, true_attr=(weights * masks)[cluster], weights=weights,
                         masks=masks, centres=centres.to(dtype))
