"""Baselines: where the path of Integrated Gradients starts, and how to average over several.

Every function here returns a plain tensor shaped like its input, ready for ``baseline=``;
random ones take ``seed`` (an int or a ``torch.Generator``) and never touch the global RNG.
:func:`averaged` runs IG from several baselines and averages the results, the groundwork
of Expected Gradients; :func:`baseline_report` says how far a baseline is from "no signal".

>>> import torch, integrad
>>> from integrad import baselines
>>> x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
>>> baselines.blurred(x, 2.0).shape
torch.Size([2, 3, 8, 8])
>>> res = baselines.averaged(lambda z: z.flatten(1).sum(1), x, [0.0, baselines.constant(x, 0.5)])
>>> torch.allclose(res.total, (res.f_x - res.f_baseline).double(), atol=1e-4)
True

References
----------
Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
Sturmfels, Lundberg & Lee, "Visualizing the Impact of Feature Attribution Baselines",
Distill, 2020.
Erion, Janizek, Sturmfels, Lundberg & Lee, "Improving performance of deep learning models
with axiomatic attribution priors and expected gradients", Nature Machine Intelligence, 2021.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from .core import checks as C
from .methods._job import Job, mean_by, norms, shape_output
from .methods.ig import placement, run_ig
from .core.result import Attribution

__all__ = ["zero", "constant", "uniform", "gaussian", "blurred", "max_distance", "from_data", "averaged",
           "baseline_report", "BaselineReport"]

# A Gaussian kernel cut at this many sigmas keeps all but ~6e-5 of its mass (scipy's default).
_TRUNCATE = 4.0


# ---------------------------------------------------------------------------- single baselines
def zero(x: torch.Tensor) -> torch.Tensor:
    """All zeros: the black image, or every standardised feature at its mean."""
    return torch.zeros_like(_tensor(x, "x"))


def constant(x: torch.Tensor, value: float | torch.Tensor) -> torch.Tensor:
    """``value`` everywhere: a number (grey is 0.5) or one value per channel.

    A 1-d ``value`` of length ``C`` is read as per-channel for ``x`` of shape
    ``(B, C, ...)`` (e.g. the dataset's mean colour); any other tensor must broadcast to ``x``.
    """
    x = _tensor(x, "x")
    v = _finite(value, "value")
    if isinstance(v, torch.Tensor):
        v = v.to(device=x.device, dtype=x.dtype)
        if v.dim() == 1 and x.dim() > 2 and v.shape[0] == x.shape[1]:
            v = v.view(1, -1, *[1] * (x.dim() - 2))
        try:
            return v.expand(x.shape).clone()
        except RuntimeError:
            raise ValueError(f"value: shape {C.shape(v)} neither broadcasts to x {C.shape(x)} nor is one value "
                             f"per channel ({x.shape[1] if x.dim() > 1 else '?'},)") from None
    return torch.full_like(x, v)


def uniform(x: torch.Tensor, low: float = 0.0, high: float = 1.0, *,
            seed: int | torch.Generator = 0) -> torch.Tensor:
    """Independent uniform noise in ``[low, high)`` per feature (the "uniform" baseline)."""
    x = _tensor(x, "x")
    low, high = _finite(low, "low"), _finite(high, "high")
    if not isinstance(low, numbers.Real) or not isinstance(high, numbers.Real) or not low < high:
        raise ValueError(f"low, high: expected numbers with low < high; got {low!r}, {high!r}")
    u = torch.rand(x.shape, generator=_generator(seed), dtype=torch.float64)
    return (low + (high - low) * u).to(device=x.device, dtype=x.dtype)


def gaussian(x: torch.Tensor, sigma: float, *, seed: int | torch.Generator = 0) -> torch.Tensor:
    """The input plus independent normal noise of standard deviation ``sigma``.

    Clamp the result to the valid range yourself where the model expects one (pixels in
    ``[0, 1]``, say).
    """
    x = _tensor(x, "x")
    sigma = _nonnegative(sigma, "sigma")
    noise = torch.randn(x.shape, generator=_generator(seed), dtype=torch.float64)
    return x + (sigma * noise).to(device=x.device, dtype=x.dtype)


def blurred(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of the last two dimensions (images ``(B, C, H, W)``, or ``(C, H, W)``).

    A separable kernel cut at 4 sigma, reflect padding (so edges are not darkened); the
    kernel sums to one, so a constant image stays constant and the total intensity of an
    image away from its border is kept. ``sigma=0`` returns a copy.
    """
    x = _tensor(x, "x")
    sigma = _nonnegative(sigma, "sigma")
    if x.dim() < 2:
        raise ValueError(f"x: expected images of shape (..., H, W); got shape {C.shape(x)}")
    if sigma == 0:
        return x.clone()
    h, w = x.shape[-2:]
    y = x.reshape(-1, 1, h, w)
    for axis, size in ((3, w), (2, h)):
        # reflect padding needs radius < size; a cut kernel is renormalised below
        radius = min(math.ceil(_TRUNCATE * sigma), size - 1)
        if radius == 0:
            continue
        t = torch.arange(-radius, radius + 1, dtype=torch.float64)
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        k = (k / k.sum()).to(device=x.device, dtype=x.dtype)
        shape = (1, 1, 1, -1) if axis == 3 else (1, 1, -1, 1)
        pad = (radius, radius, 0, 0) if axis == 3 else (0, 0, radius, radius)
        y = torch.nn.functional.conv2d(torch.nn.functional.pad(y, pad, mode="reflect"), k.view(shape))
    return y.reshape(x.shape)


def max_distance(x: torch.Tensor, low: float | torch.Tensor, high: float | torch.Tensor) -> torch.Tensor:
    """Per feature, whichever of ``low`` and ``high`` is farther from ``x`` (ties: ``low``)."""
    x = _tensor(x, "x")
    lo, hi = (torch.as_tensor(_finite(b, n), dtype=x.dtype, device=x.device) for b, n in ((low, "low"), (high, "high")))
    try:
        if (lo > hi).any():
            raise ValueError("low, high: expected low <= high everywhere")
        return torch.where((x - lo).abs() >= (hi - x).abs(), lo, hi).expand(x.shape).clone()
    except RuntimeError:
        raise ValueError(f"low, high: shapes {C.shape(lo)} and {C.shape(hi)} do not broadcast to x "
                         f"{C.shape(x)}") from None


def from_data(reference: torch.Tensor, k: int, *, seed: int | torch.Generator = 0) -> torch.Tensor:
    """``k`` rows of ``reference`` (shape ``(N, ...)``) drawn without replacement: shape ``(k, ...)``.

    Pass the result to :func:`averaged` for Expected Gradients with a fixed reference set.
    """
    reference = _tensor(reference, "reference")
    if reference.dim() == 0 or reference.shape[0] == 0:
        raise ValueError(f"reference: expected a dataset of shape (N, ...) with N >= 1; got {C.shape(reference)}")
    n = reference.shape[0]
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n:
        raise ValueError(f"k: expected an int in 1..{n} (rows of reference); got {k!r}")
    pick = torch.randperm(n, generator=_generator(seed))[:k]
    return reference[pick.to(reference.device)].clone()


# ---------------------------------------------------------------------------- several baselines
def averaged(
    model: Callable[..., Any],
    inputs: torch.Tensor | Sequence[torch.Tensor],
    baselines: Sequence[Any] | torch.Tensor,
    **ig_kwargs: Any,
) -> Attribution:
    r"""Integrated Gradients from each of ``K`` baselines, averaged.

    .. math:: \bar\phi_i(x) = \frac1K \sum_k \mathrm{IG}_i(x; x'_k), \qquad
              \sum_i \bar\phi_i(x) = F(x) - \frac1K \sum_k F(x'_k) + \bar\delta

    Parameters
    ----------
    model, inputs
        As in :func:`integrad.integrated_gradients`.
    baselines : list of baselines, or Tensor of shape ``(K, ...)``
        Each entry is anything ``baseline=`` accepts (a number, one example, the whole batch);
        a tensor is split along its first dimension (e.g. :func:`from_data`'s output).
    **ig_kwargs
        Passed on to :func:`integrad.integrated_gradients` (``target``, ``n_steps``, ...).

    Returns
    -------
    Attribution
        ``attributions``, ``f_baseline`` and ``delta`` are means over the baselines (so
        completeness holds against the mean ``F(baseline)``); ``n_evals`` is their total.

    References
    ----------
    Erion et al., "Improving performance of deep learning models with axiomatic attribution
    priors and expected gradients", Nature Machine Intelligence, 2021 (Expected Gradients
    draws the baselines and the path position at random; here both are fixed).
    """
    if "baseline" in ig_kwargs:
        raise TypeError("baseline: averaged() takes its baselines as the third argument (a list or a (K, ...) "
                        "tensor), not as baseline=")
    if isinstance(baselines, torch.Tensor):
        if baselines.dim() == 0 or baselines.shape[0] == 0:
            raise ValueError(f"baselines: expected a tensor of shape (K, ...) with K >= 1; got {C.shape(baselines)}")
        items: Any = baselines  # split along its first dimension (in _averaged)
    elif isinstance(baselines, (list, tuple)) and baselines:
        items = list(baselines)
    else:
        raise TypeError(f"baselines: expected a non-empty list of baselines or a (K, ...) tensor; got "
                        f"{type(baselines).__name__}{' (empty)' if isinstance(baselines, (list, tuple)) else ''}")
    return _averaged(model, inputs, items, **ig_kwargs)


def _averaged(model, inputs, items, *, method=None, n_steps=None, rtol=None, atol=0.0, max_evals=4097,
              multiply_by_inputs=True, **job_kwargs) -> Attribution:
    # One engine call: K path rows per example (row k * B + b pairs example b with baseline
    # k), so the K paths share blocks; targets and extra arguments follow each row's example.
    job = Job(model, inputs, **job_kwargs)
    B, K = job.batch, len(items)
    x = job.xs[0]
    if isinstance(items, torch.Tensor) and len(job.xs) == 1 and items.shape[1:] == x.shape[1:]:
        # K baselines of one example's shape: checked once, broadcast to (K * B) rows without a loop
        b = C.one_baseline(items, x.new_empty(K, *x.shape[1:]), "baselines", "inputs")
        starts = (b.unsqueeze(1).expand(K, B, *x.shape[1:]).reshape(K * B, *x.shape[1:]),)
    else:
        parts = list(items.unbind(0)) if isinstance(items, torch.Tensor) else items
        per = [C.broadcast_baselines(p, job.xs, job.was_tuple) for p in parts]
        starts = tuple(torch.cat([p[i] for p in per]) for i in range(len(job.xs)))
    owner = torch.arange(B, device=job.xs[0].device).repeat(K)
    place = placement(method, n_steps, rtol, atol, max_evals)
    with job.model.guard():
        job.resolve_targets()
        rows, info = run_ig(job, place, multiply_by_inputs, owner=owner, starts=starts)
    attrs = tuple(mean_by(a, owner, B) for a in rows.attrs)
    settings = place.describe() | job.describe() | {"baseline": f"average of {K} baselines", "n_baselines": K}
    extra = {}
    if "converged" in info:
        extra["converged"] = info["converged"].view(K, B).all(0)
    if "error" in info:
        lead = info["error"].shape  # (K * B,) or (K * B, targets)
        per_path = (info["error"].double() * norms(rows.attrs, len(lead))).view(K, B, *lead[1:])
        if place.kind == "adaptive":  # a bound: the mean's error is at most the mean of the paths' (triangle)
            combined = per_path.mean(0)
        else:  # an estimate: the paths' errors come from unrelated jumps and add in quadrature
            combined = per_path.square().sum(0).sqrt() / K
        extra["error"] = combined / norms(attrs, len(lead))
    return Attribution(
        attributions=shape_output(job, attrs), delta=mean_by(rows.delta, owner, B),
        f_x=rows.f_end[:B], f_baseline=mean_by(rows.f_start, owner, B),
        n_evals=_evals(info["n_evals"], owner, B),
        settings=settings, **extra,
    )


def _evals(n_evals: torch.Tensor, owner: torch.Tensor, B: int) -> torch.Tensor:
    """Evaluations per example: the sum over its path rows (fixed rules count per example already)."""
    if n_evals.shape[0] == B and owner.shape[0] != B:
        return n_evals
    return torch.zeros(B, dtype=torch.int64).index_add_(0, owner.cpu(), n_evals.cpu())


# ---------------------------------------------------------------------------- is it neutral?
@dataclass(frozen=True)
class BaselineReport:
    """How much a classifier "sees" in a baseline, per row of the baseline batch.

    Attributes
    ----------
    top_class : list of int
        The class the model predicts for the baseline.
    max_probability : list of float
        Its probability; ``1 / classes`` for a perfectly neutral baseline.
    entropy_ratio : list of float
        Entropy of the predicted distribution over ``log(classes)``: 1 is uniform, 0 certain.
    f_baseline : list of float, or None
        The ``target`` logit at the baseline (when ``target`` was given).
    neutral : list of bool
        ``entropy_ratio >= threshold``: the prediction is close to uniform.
    """

    top_class: list[int]
    max_probability: list[float]
    entropy_ratio: list[float]
    f_baseline: list[float] | None
    neutral: list[bool]


def baseline_report(
    model: Callable[..., Any],
    baseline: torch.Tensor,
    *,
    target: int | None = None,
    threshold: float = 0.9,
) -> BaselineReport:
    """Is ``baseline`` (batch first, as the model takes it) neutral for a classifier?

    IG explains ``F(x) - F(baseline)``; a baseline the model already finds meaningful (a black
    image scored as "night sky") makes that difference, and the attributions, less telling.
    Softmax probabilities of the baseline are compared with the uniform distribution; a model
    with one output column is read as a binary classifier (sigmoid).

    References
    ----------
    Sturmfels, Lundberg & Lee, "Visualizing the Impact of Feature Attribution Baselines",
    Distill, 2020.
    """
    baseline = _tensor(baseline, "baseline")
    if baseline.dim() == 0:
        raise ValueError("baseline: expected a batch-first tensor (use b.unsqueeze(0) for one example)")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: expected an entropy ratio in [0, 1]; got {threshold!r}")
    with torch.no_grad():
        out = C.output_tensor(model(baseline), baseline.shape[0]).double()
    logits = out.reshape(out.shape[0], -1)
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        probs = torch.cat([1 - p, p], dim=1)
    else:
        probs = logits.softmax(1)
    n = probs.shape[1]
    entropy = -(probs * probs.clamp_min(1e-300).log()).sum(1)
    ratio = entropy / math.log(n)
    f_b = None
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, numbers.Integral) or not 0 <= target < logits.shape[1]:
            raise ValueError(f"target: expected a class index in 0..{logits.shape[1] - 1}; got {target!r}")
        f_b = logits[:, target].tolist()
    return BaselineReport(top_class=probs.argmax(1).tolist(), max_probability=probs.max(1).values.tolist(),
                          entropy_ratio=ratio.tolist(), f_baseline=f_b, neutral=(ratio >= threshold).tolist())


# ---------------------------------------------------------------------------- checks
def _tensor(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating point tensor; got dtype {x.dtype} (convert with .float())")
    return x


def _finite(v: Any, name: str) -> Any:
    if isinstance(v, torch.Tensor):
        if not torch.isfinite(v).all():
            raise ValueError(f"{name}: contains NaN or Inf")
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise TypeError(f"{name}: expected a finite number or a tensor; got {v!r}")
    return float(v)


def _nonnegative(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name}: expected a finite number >= 0; got {v!r}")
    return float(v)


def _generator(seed: int | torch.Generator) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed: expected an int or a torch.Generator; got {type(seed).__name__}")
    # noise is drawn on the CPU so a seed gives the same numbers on every device
    return torch.Generator().manual_seed(int(seed))
