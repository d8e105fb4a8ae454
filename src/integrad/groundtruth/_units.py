"""XAI-Units-style unit-test models: small functions whose attributions are known in closed form."""

from __future__ import annotations

from typing import Sequence

import torch

from ..core.checks import shape
from . import _checks as C

__all__ = ["UnitModel", "weighted_features", "pertinent_negative", "shattered_gradients", "interacting_pair"]


class UnitModel(torch.nn.Module):
    r"""A model with known attributions, the sum of four kinds of term:

    .. math:: F(x) = \sum_i a_i x_i + \sum_i b_i \sin(\omega_i x_i) + \sum_i u_i (1 - x_i)
              + \sum_p c_p\, x_{i_p} x_{j_p}

    **The truth** (:meth:`truth`) is the Integrated Gradients of ``F`` from ``baseline``
    ``x'``, and also its baseline Shapley value. IG is linear in ``F``, so it is the sum
    of each term's IG; with ``d = x - x'``:

    * ``a_i x_i`` gives ``a_i d_i`` (the path's gradient is constant);
    * ``b_i sin(omega_i x_i)`` depends on ``x_i`` alone, so along the line its gradient is
      ``b_i omega_i cos(omega_i x_i(alpha)) d_i``, whose integral is
      ``b_i (sin(omega_i x_i) - sin(omega_i x'_i))`` to feature ``i``, 0 to the others;
    * ``u_i (1 - x_i)`` gives ``-u_i d_i``: the attribution of absence is ``u_i`` exactly
      when the feature is absent (``x_i = 0``) and the baseline has it present (``x'_i = 1``);
    * ``c x_i x_j``: the gradient in ``x_i`` is ``c x_j(alpha) = c (x'_j + alpha d_j)``,
      whose integral times ``d_i`` is ``c d_i (x_j + x'_j) / 2`` (and symmetrically for ``j``):
      from a zero baseline each gets ``c x_i x_j / 2``.

    Every term involves at most two features, and for those terms baseline Shapley gives
    the same numbers (a one-feature term goes wholly to its feature; the pair's
    ``1/2[(F(x_i, x'_j) - F(x')) + (F(x) - F(x'_i, x_j))]`` is ``c d_i (x_j + x'_j) / 2``), so
    the truth does not depend on which of the two axiomatic definitions one prefers.

    Build one with :func:`weighted_features`, :func:`pertinent_negative`,
    :func:`shattered_gradients` or :func:`interacting_pair`; the coefficients are buffers
    (``model.double()`` converts them).

    Parameters
    ----------
    linear : Tensor ``(n_features,)``
        ``a``.
    amplitude, frequency, negative : Tensor ``(n_features,)``, optional
        ``b``, ``omega`` and ``u`` (zeros when omitted).
    pairs : sequence of ``(i, j)``, optional; coefficients : Tensor ``(n_pairs,)``
        The interacting pairs (``i != j``) and their ``c``.
    k : int
        How many features the agreement metrics should look at for this model.
    name : str
    """

    def __init__(self, linear: torch.Tensor, *, amplitude: torch.Tensor | None = None,
                 frequency: torch.Tensor | None = None, negative: torch.Tensor | None = None,
                 pairs: Sequence[tuple[int, int]] = (), coefficients: torch.Tensor | None = None,
                 k: int = 1, name: str = "unit"):
        super().__init__()
        if not isinstance(linear, torch.Tensor) or linear.dim() != 1:
            got = shape(linear) if isinstance(linear, torch.Tensor) else type(linear).__name__
            raise ValueError(f"linear: expected a tensor of shape (n_features,); got {got}")
        a = C.matrix(linear[None], "linear")[0]
        d = a.shape[0]
        vecs = {}
        for key, v in (("amplitude", amplitude), ("frequency", frequency), ("negative", negative)):
            vecs[key] = torch.zeros_like(a) if v is None else C.like(v, a, key, "linear")
        pair_index = _pairs(pairs, d)
        c = torch.zeros(0, dtype=a.dtype) if coefficients is None else coefficients.to(a.dtype).reshape(-1)
        if c.shape[0] != pair_index.shape[0]:
            raise ValueError(f"coefficients: expected one per pair ({pair_index.shape[0]}); got shape {shape(c)}")
        self.register_buffer("linear", a)
        for key, v in vecs.items():
            self.register_buffer(key, v)
        self.register_buffer("pairs", pair_index)
        self.register_buffer("coefficients", c)
        self.k, self.name = C.count(k, "k", most=d), str(name)

    @property
    def n_features(self) -> int:
        return self.linear.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``F(x)`` per row, shape ``(batch,)``."""
        p = self._params(x.dtype)
        out = x @ p["linear"] + (p["amplitude"] * torch.sin(p["frequency"] * x)).sum(-1) \
            + (p["negative"] * (1 - x)).sum(-1)
        if self.pairs.shape[0]:
            out = out + (x[:, self.pairs[:, 0]] * x[:, self.pairs[:, 1]] * p["coefficients"]).sum(-1)
        return out

    def _params(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        # the model follows its input's dtype: float32 rows are not silently promoted to float64
        return {k: getattr(self, k).to(dtype) for k in ("linear", "amplitude", "frequency", "negative",
                                                         "coefficients")}

    def truth(self, x: torch.Tensor, baseline: float | torch.Tensor = 0.0) -> torch.Tensor:
        """The exact IG (= baseline Shapley value) of every feature, shape of ``x``; see the class notes."""
        x = C.matrix(x, "x")
        if x.shape[1] != self.n_features:
            raise ValueError(f"x: expected {self.n_features} features; got shape {shape(x)}")
        b = C.like(baseline, x, "baseline", "x")
        p = self._params(x.dtype)
        d = x - b
        out = (p["linear"] - p["negative"]) * d + p["amplitude"] * (torch.sin(p["frequency"] * x)
                                                                   - torch.sin(p["frequency"] * b))
        if self.pairs.shape[0]:
            i, j, c = self.pairs[:, 0], self.pairs[:, 1], p["coefficients"]
            out = out.index_add(1, i, c * d[:, i] * (x[:, j] + b[:, j]) / 2)
            out = out.index_add(1, j, c * d[:, j] * (x[:, i] + b[:, i]) / 2)
        return out

    def sample(self, n: int, *, seed: int | torch.Generator = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``n`` inputs: ``N(0, 1)`` features, and ``{0, 1}`` (absent / present, equally likely)
        where a pertinent negative ``u_i != 0`` is."""
        n = C.count(n, "n")
        g = C.generator(seed)
        x = torch.randn(n, self.n_features, generator=g, dtype=torch.float64)
        flags = (torch.rand(n, self.n_features, generator=g, dtype=torch.float64) < 0.5).double()
        return torch.where(self.negative != 0, flags, x).to(dtype)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, n_features={self.n_features}, k={self.k}"


def _pairs(pairs: Sequence[tuple[int, int]], d: int) -> torch.Tensor:
    try:
        index = torch.as_tensor([tuple(p) for p in pairs], dtype=torch.int64).reshape(-1, 2)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"pairs: expected a sequence of (i, j) feature indices; got {pairs!r}") from None
    if index.numel() and (index.min() < 0 or index.max() >= d or (index[:, 0] == index[:, 1]).any()):
        raise ValueError(f"pairs: each (i, j) needs i != j, both in [0, {d - 1}]; got {index.tolist()}")
    return index


def _uniform(g: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)


def weighted_features(n_features: int = 10, *, seed: int | torch.Generator = 0, k: int | None = None) -> UnitModel:
    """A linear model ``F(x) = w . x``, ``w ~ U(-1, 1)``: the truth is ``w * (x - x')``.

    Examples
    --------
    >>> import torch
    >>> from integrad.groundtruth import weighted_features
    >>> f = weighted_features(3, seed=0)
    >>> torch.allclose(f.truth(torch.ones(1, 3)), f.linear.float()[None])
    True
    """
    d = C.count(n_features, "n_features")
    w = _uniform(C.generator(seed), d, -1.0, 1.0)
    return UnitModel(w, k=min(5, d) if k is None else k, name="weighted features")


def pertinent_negative(n_features: int = 10, *, n_negative: int = 2, seed: int | torch.Generator = 0,
                       k: int | None = None) -> UnitModel:
    r"""Weighted features plus ``n_negative`` pertinent negatives: features (the last ones)
    whose **absence** raises the output, ``F(x) = w . x + \sum_k u_k (1 - x_k)`` with
    ``u ~ U(0.5, 1.5)`` and ``x_k`` in ``{0, 1}`` (see :meth:`UnitModel.sample`).

    The truth of a pertinent negative is ``u_k (x'_k - x_k)``: from the zero baseline
    ("absent") an absent feature gets 0 although its absence adds ``u_k`` to the output;
    from a baseline with it present (``x'_k = 1``) it gets ``u_k``. The truth is known,
    but which one is meant depends on the baseline the user chose.
    """
    d = C.count(n_features, "n_features", least=2)
    n_neg = C.count(n_negative, "n_negative", most=d - 1)
    g = C.generator(seed)
    w = _uniform(g, d, -1.0, 1.0)
    u = torch.zeros(d, dtype=torch.float64)
    u[d - n_neg:] = _uniform(g, n_neg, 0.5, 1.5)
    w[d - n_neg:] = 0.0
    return UnitModel(w, negative=u, k=min(5, d) if k is None else k, name="pertinent negative")


def shattered_gradients(n_features: int = 10, *, amplitude: float = 0.1, frequency: float = 100.0,
                        seed: int | torch.Generator = 0, k: int | None = None) -> UnitModel:
    r"""Shattered gradients: ``F(x) = w . x + b \sum_i \sin(\omega x_i)``, ``w ~ U(-1, 1)``.

    With the defaults (``b = 0.1``, ``omega = 100``) ``F`` moves at most 0.1 per feature
    away from the linear ``w . x``, but its gradient ``w_i + b omega cos(omega x_i)``
    swings by +-10 within 0.03 of any point: gradient times input is noise, while the truth
    ``w_i d_i + b (sin(omega x_i) - sin(omega x'_i))`` is close to the linear one. IG
    recovers it only with enough nodes to resolve ``cos(omega alpha d_i)`` on [0, 1]:
    about ``omega |d_i| / 2`` or more (a 50-node rule is not enough for ``|d_i| ~ 2``).
    """
    d = C.count(n_features, "n_features")
    b = C.positive(amplitude, "amplitude", zero_ok=True)
    omega = C.positive(frequency, "frequency")
    w = _uniform(C.generator(seed), d, -1.0, 1.0)
    return UnitModel(w, amplitude=torch.full((d,), b, dtype=torch.float64),
                     frequency=torch.full((d,), omega, dtype=torch.float64),
                     k=min(5, d) if k is None else k, name="shattered gradients")


def interacting_pair(n_features: int = 4, *, pair: tuple[int, int] = (0, 1), coefficient: float = 1.0,
                     linear: float = 0.5, seed: int | torch.Generator = 0, k: int | None = None) -> UnitModel:
    r"""An interacting pair ``F(x) = c x_i x_j + w . x``, ``w ~ linear * U(-1, 1)``.

    The product is split equally: from a zero baseline ``x_i`` and ``x_j`` each get
    ``c x_i x_j / 2`` (plus their linear terms); ``linear=0`` leaves the pure product. The
    other features' linear terms are there so the top-``k`` (``k=2`` by default) has
    something to get wrong.
    """
    d = C.count(n_features, "n_features", least=2)
    scale = C.positive(linear, "linear", zero_ok=True)
    if isinstance(coefficient, bool) or not isinstance(coefficient, (int, float)):
        raise TypeError(f"coefficient: expected a number; got {type(coefficient).__name__}")
    w = _uniform(C.generator(seed), d, -1.0, 1.0) * scale
    return UnitModel(w, pairs=[tuple(pair)], coefficients=torch.tensor([float(coefficient)], dtype=torch.float64),
                     k=2 if k is None else k, name="interacting pair")
