"""Agreement with a known explanation, and prediction gaps, per example (OpenXAI's definitions)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from ..core.checks import shape
from . import _checks as C

__all__ = ["top_k", "feature_agreement", "rank_agreement", "sign_agreement", "pgi", "pgu"]


def _values(a: Any, name: str) -> torch.Tensor:
    """The ``(batch, features)`` values of a tensor or of an integrad ``Attribution``."""
    if hasattr(a, "attributions") and hasattr(a, "delta"):
        a = a.attributions
        if isinstance(a, tuple):
            raise ValueError(f"{name}: an Attribution of several inputs; pass one tensor of shape (batch, features)")
    return C.matrix(a, name)


def top_k(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest ``|values|`` of each row, largest first, shape ``(batch, k)``.

    Ties go to the lower feature index (a stable sort), so features with equal magnitude,
    such as the zeros of a sparse ground truth, are ranked the same way every time.

    >>> import torch
    >>> from integrad.groundtruth import top_k
    >>> top_k(torch.tensor([[0.1, -3.0, 2.0, 0.0]]), 2)
    tensor([[1, 2]])
    """
    v = _values(values, "values")
    k = C.count(k, "k", most=v.shape[1])
    return torch.sort(v.abs(), dim=1, descending=True, stable=True).indices[:, :k]


def _pair(attributions: Any, truth: Any, k: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    a = _values(attributions, "attributions")
    if isinstance(truth, torch.Tensor) and truth.dim() == 1:
        truth = truth[None].expand(a.shape[0], -1)
    t = _values(truth, "truth")
    if t.shape != a.shape:
        raise ValueError(f"truth: expected the shape of attributions {shape(a)} (or ({a.shape[1]},)); "
                         f"got {shape(t)}")
    k = C.count(k, "k", most=a.shape[1])
    return a, t.to(a.dtype), k


def _in_top(values: torch.Tensor, k: int) -> torch.Tensor:
    """A ``(batch, features)`` mask of each row's top-``k`` features."""
    return torch.zeros_like(values, dtype=torch.bool).scatter_(1, top_k(values, k), True)


def feature_agreement(attributions: Any, truth: Any, k: int) -> torch.Tensor:
    r"""The fraction of the top-``k`` features (by ``|value|``) that the two explanations share.

    .. math:: \mathrm{FA} = |\mathrm{top}_k(E) \cap \mathrm{top}_k(E^*)| / k

    Parameters
    ----------
    attributions : Tensor ``(batch, features)`` or an integrad Attribution
    truth : Tensor ``(batch, features)`` or ``(features,)`` (the same for every row)
    k : int, in ``[1, features]``

    Returns
    -------
    Tensor ``(batch,)`` in ``[0, 1]``

    Examples
    --------
    >>> import torch
    >>> from integrad.groundtruth import feature_agreement
    >>> feature_agreement(torch.tensor([[3.0, 2.0, 1.0, 0.0]]), torch.tensor([0.0, 2.0, 1.0, 3.0]), 2)
    tensor([0.5000])

    References
    ----------
    Krishna, Han, Gu, Pombra, Jabbari, Wu & Lakkaraju, "The Disagreement Problem in
    Explainable Machine Learning: A Practitioner's Perspective", 2022.
    Agarwal et al., "OpenXAI: Towards a Transparent Evaluation of Model Explanations", NeurIPS 2022.
    """
    a, t, k = _pair(attributions, truth, k)
    return (_in_top(a, k) & _in_top(t, k)).sum(1).to(a.dtype) / k


def rank_agreement(attributions: Any, truth: Any, k: int) -> torch.Tensor:
    r"""The fraction of the ``k`` rank positions that hold the same feature in both explanations.

    .. math:: \mathrm{RA} = \frac1k \sum_{r=1}^k
              \mathbb 1[\mathrm{top}_k(E)_r = \mathrm{top}_k(E^*)_r]

    Arguments and returns as :func:`feature_agreement` (same references).

    >>> import torch
    >>> from integrad.groundtruth import rank_agreement
    >>> rank_agreement(torch.tensor([[3.0, 2.0, 1.0]]), torch.tensor([[3.0, 1.0, 2.0]]), 3)
    tensor([0.3333])
    """
    a, t, k = _pair(attributions, truth, k)
    return (top_k(a, k) == top_k(t, k)).sum(1).to(a.dtype) / k


def sign_agreement(attributions: Any, truth: Any, k: int) -> torch.Tensor:
    r"""The fraction of the top-``k`` features that both explanations share *and* sign alike.

    .. math:: \mathrm{SA} = |\{i \in \mathrm{top}_k(E) \cap \mathrm{top}_k(E^*) :
              \operatorname{sign} E_i = \operatorname{sign} E^*_i\}| / k

    Arguments and returns as :func:`feature_agreement` (same references).

    >>> import torch
    >>> from integrad.groundtruth import sign_agreement
    >>> sign_agreement(torch.tensor([[3.0, -2.0, 0.1]]), torch.tensor([[3.0, 2.0, 0.1]]), 2)
    tensor([0.5000])
    """
    a, t, k = _pair(attributions, truth, k)
    same = torch.sign(a) == torch.sign(t)
    return (_in_top(a, k) & _in_top(t, k) & same).sum(1).to(a.dtype) / k


def pgi(model: Callable[..., torch.Tensor], inputs: torch.Tensor, attributions: Any, k: int, *,
        noise: float = 0.1, n_samples: int = 100, seed: int | torch.Generator = 0,
        forward_args: Sequence[Any] = ()) -> torch.Tensor:
    r"""Prediction gap on important features: how much the output moves when the top-``k``
    features of the explanation are perturbed (higher is better).

    .. math:: \mathrm{PGI}(x) = \mathop{\mathbb E}_{\varepsilon \sim \mathcal N(0, \sigma^2 I)}
              \big|f(x) - f(x + \varepsilon \odot \mathbb 1_{\mathrm{top}_k})\big|

    estimated from ``n_samples`` draws per example. ``f`` is what ``model`` returns: give it
    the predicted probability (OpenXAI's choice) rather than a logit to compare with their numbers.

    Parameters
    ----------
    model : callable
        ``model(inputs, *forward_args)`` returns one number per row, ``(rows,)`` or ``(rows, 1)``.
    inputs : Tensor ``(batch, features)``
    attributions : Tensor ``(batch, features)`` or an integrad Attribution
        Ranked by ``|value|``, ties to the lower index (:func:`top_k`).
    k : int, in ``[1, features]``
    noise : float
        ``sigma``, the noise's standard deviation (OpenXAI's tabular default is 0.1).
    n_samples : int
    seed : int or torch.Generator
        The same seed draws the same noise for every explanation of the same inputs (only
        which features it reaches differs), so two methods are compared on common draws.
    forward_args : sequence
        Extra arguments of ``model``; tensors whose first dimension is ``batch`` (a cluster id,
        say) are repeated for each noisy copy of their row.

    Returns
    -------
    Tensor ``(batch,)``

    Examples
    --------
    >>> import torch
    >>> from integrad.groundtruth import pgi
    >>> f = lambda x: x[:, 0]
    >>> pgi(f, torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 1.0]]), 1)   # perturbs x_2: f does not move
    tensor([0.])

    References
    ----------
    Agarwal et al., "OpenXAI: Towards a Transparent Evaluation of Model Explanations", NeurIPS 2022.
    Dai, Upadhyay, Aivodji, Bach & Lakkaraju, "Fairness via Explanation Quality", AIES 2022.
    """
    return _gap(model, inputs, attributions, k, True, noise, n_samples, seed, forward_args)


def pgu(model: Callable[..., torch.Tensor], inputs: torch.Tensor, attributions: Any, k: int, *,
        noise: float = 0.1, n_samples: int = 100, seed: int | torch.Generator = 0,
        forward_args: Sequence[Any] = ()) -> torch.Tensor:
    r"""Prediction gap on unimportant features: as :func:`pgi`, perturbing every feature
    *outside* the top-``k`` instead (lower is better; 0 when ``k`` is every feature).

    .. math:: \mathrm{PGU}(x) = \mathop{\mathbb E}_{\varepsilon}
              \big|f(x) - f(x + \varepsilon \odot (1 - \mathbb 1_{\mathrm{top}_k}))\big|

    >>> import torch
    >>> from integrad.groundtruth import pgu
    >>> pgu(lambda x: x[:, 0], torch.zeros(1, 3), torch.tensor([[1.0, 0.0, 0.0]]), 1)
    tensor([0.])
    """
    return _gap(model, inputs, attributions, k, False, noise, n_samples, seed, forward_args)


def _gap(model: Callable[..., torch.Tensor], inputs: Any, attributions: Any, k: int, important: bool,
         noise: float, n_samples: int, seed: int | torch.Generator, forward_args: Sequence[Any]) -> torch.Tensor:
    if not callable(model):
        raise TypeError(f"model: expected a callable model(inputs, *forward_args); got {type(model).__name__}")
    x = C.matrix(inputs, "inputs")
    a = _values(attributions, "attributions")
    if a.shape != x.shape:
        raise ValueError(f"attributions: expected the shape of inputs {shape(x)}; got {shape(a)}")
    n, d = x.shape
    k = C.count(k, "k", most=d)
    sigma = C.positive(noise, "noise")
    S = C.count(n_samples, "n_samples")
    g = C.generator(seed)
    if not isinstance(forward_args, (tuple, list)):
        raise TypeError(f"forward_args: expected a tuple of extra arguments; got {type(forward_args).__name__}")
    reach = _in_top(a, k) if important else ~_in_top(a, k)
    eps = torch.randn(n, S, d, generator=g, dtype=torch.float64).to(device=x.device, dtype=x.dtype) * sigma
    noisy = (x[:, None] + eps * reach[:, None]).reshape(n * S, d)
    repeated = tuple(t.repeat_interleave(S, 0) if isinstance(t, torch.Tensor) and t.dim() and t.shape[0] == n
                     else t for t in forward_args)
    with torch.no_grad():
        f0 = _scalar(model(x, *forward_args), n)
        f1 = _scalar(model(noisy, *repeated), n * S).reshape(n, S)
    return (f1 - f0[:, None]).abs().mean(1)


def _scalar(out: Any, rows: int) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or out.shape not in ((rows,), (rows, 1)):
        got = shape(out) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model: expected one number per row, shape ({rows},) or ({rows}, 1); got {got} "
                         "(wrap the model to pick the class probability, e.g. lambda x: net(x).softmax(-1)[:, 1])")
    return out.reshape(rows)
