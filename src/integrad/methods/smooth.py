"""SmoothGrad, SmoothGrad² and VarGrad around any path method: noisy copies, one engine call."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import torch

from ..core.result import Attribution
from ..core.rules import METHODS
from ._job import vocabulary, Job, check_count, check_number, mean_by, norms, sampling_error, shape_output
from .expected import _references, generator, run_eg
from .ig import placement, run_ig

__all__ = ["smoothgrad"]

MODES = ("mean", "square", "var")
_METHODS = {"integrated_gradients": "integrated_gradients", "ig": "integrated_gradients",
            "expected_gradients": "expected_gradients", "eg": "expected_gradients"}
# options of the wrapped methods, by the name smoothgrad takes them under
_IG_OPTIONS = ("rule", "n_steps", "rtol", "atol", "max_evals", "baseline", "layer_baseline")
_EG_OPTIONS = ("references", "n_samples_per_copy", "sampler")


@vocabulary
def smoothgrad(
    model: Callable[..., Any],
    inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    method: str | Callable = "integrated_gradients",
    n_samples: int = 16,
    noise: float = 0.15,
    noise_scale: str = "relative",
    mode: str = "mean",
    seed: int | torch.Generator = 0,
    target: Any = None,
    targets: Sequence[Any] | str | None = None,
    head: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int | None = None,
    forward_args: Sequence[Any] = (),
    forward_kwargs: dict[str, Any] | None = None,
    layer: torch.nn.Module | Sequence[torch.nn.Module] | None = None,
    layer_input: bool = False,
    neuron: tuple[torch.nn.Module, Any] | None = None,
    multiply_by_inputs: bool = True,
    max_memory: int | None = None,
    **method_options: Any,
) -> Attribution:
    r"""A path method averaged over noisy copies of the input (SmoothGrad and its variants).

    .. math:: \hat\phi(x) = \frac1S \sum_{s=1}^S \phi(x + \varepsilon_s), \qquad
              \varepsilon_s \sim \mathcal N(0, \sigma^2 I)

    ``mode="square"`` averages ``phi**2`` (SmoothGrad²), ``mode="var"`` gives the variance
    of ``phi`` over the copies (VarGrad, >= 0). The noise is added where the path ends: to
    the input, or with ``layer=`` to the layer's activations (for text, the embeddings —
    never to token ids). All ``n_samples`` copies go through one engine call.

    Parameters
    ----------
    method : {"integrated_gradients", "expected_gradients"} or the function itself
        The wrapped method; its options are passed as keywords (``n_steps``, ``rtol``,
        ``baseline``, ... for IG, whose quadrature rule is ``rule=`` here because ``method``
        names the wrapped method; ``references``, ``sampler``, ``n_samples_per_copy`` for EG).
    n_samples : int
        Noisy copies per example.
    noise : float
        Standard deviation of the noise: absolute, or (``noise_scale="relative"``, PAIR's
        ``stdev_spread``) a fraction of each example's range ``max - min`` (per tensor).
    mode : {"mean", "square", "var"}
    seed : int or torch.Generator
        All noise (and EG's draws) come from it.
    target, targets, head, batch_size, forward_args, forward_kwargs, layer, layer_input, neuron, multiply_by_inputs, max_memory
        As in :func:`integrad.integrated_gradients`.

    Returns
    -------
    Attribution
        ``f_x`` is the mean of F over the noisy inputs and ``delta`` the mean completeness gap
        of the copies (``mode="mean"``; NaN for the other modes, which are not additive);
        ``stderr`` is the standard error over the copies.

    Examples
    --------
    >>> import torch, integrad
    >>> f = lambda x: (x ** 2).sum(1)
    >>> res = integrad.smoothgrad(f, torch.ones(1, 2), noise=0.0, n_samples=2)
    >>> res.attributions
    tensor([[1., 1.]])

    References
    ----------
    Smilkov, Thorat, Kim, Viégas & Wattenberg, "SmoothGrad: removing noise by adding noise", 2017.
    Adebayo, Gilmer, Goodfellow & Kim, "Local Explanation Methods for Deep Neural Networks Lack
    Sensitivity to Parameter Randomization", 2018 (VarGrad; SmoothGrad²).
    """
    name = _METHODS.get(getattr(method, "__name__", method)) if isinstance(method, (str, Callable)) else None
    if name is None:
        raise ValueError(f"method: expected one of {', '.join(sorted(set(_METHODS.values())))} (or the function); "
                         f"got {method!r}")
    allowed = _IG_OPTIONS if name == "integrated_gradients" else _EG_OPTIONS
    unknown = sorted(set(method_options) - set(allowed))
    if unknown:
        hint = " (the quadrature rule is rule= here)" if "method" in unknown else ""
        raise TypeError(f"smoothgrad: {', '.join(unknown)} is not an option of {name}{hint}; its options here: "
                        f"{', '.join(allowed)}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(map(repr, MODES))}; got {mode!r}")
    if noise_scale not in ("relative", "absolute"):
        raise ValueError(f"noise_scale: expected 'relative' or 'absolute'; got {noise_scale!r}")
    check_count(n_samples, "n_samples")
    if "rule" in method_options and method_options["rule"] not in METHODS:
        raise ValueError(f"rule: expected one of {', '.join(map(repr, METHODS))} (the wrapped IG's quadrature "
                         f"rule); got {method_options['rule']!r}")
    sigma = check_number(noise, "noise")
    o = dict(method_options)
    job = Job(model, inputs, baseline=o.pop("baseline", 0.0), target=target, targets=targets, head=head,
              forward_args=forward_args, forward_kwargs=forward_kwargs, layer=layer, layer_input=layer_input,
              layer_baseline=o.pop("layer_baseline", None), neuron=neuron, batch_size=batch_size,
              max_memory=max_memory)
    B, S = job.batch, n_samples
    gen = generator(seed)
    origin = torch.arange(B, device=job.xs[0].device).repeat_interleave(S)
    copies = job.copies(origin)
    copies.perturb = _noise(sigma, noise_scale == "relative", gen)
    with job.model.guard():
        job.resolve_targets()
        if name == "integrated_gradients":
            place = placement(o.get("rule"), o.get("n_steps"), o.get("rtol"), o.get("atol", 0.0),
                              o.get("max_evals", 4097))
            # the baseline is the same for every copy of an example: F there is computed once
            rows, info = run_ig(copies, place, multiply_by_inputs, start_key=origin)
            attrs, delta, f_x, f_b, evals = rows.attrs, rows.delta, rows.f_end, rows.f_start, info["n_evals"]
            settings = place.describe()
            # the rule's error may be the same on every copy, so it is not averaged down (a mean of norms)
            quad = mean_by(info["error"].double() * norms(attrs, delta.dim()), origin.cpu(), B) \
                if "error" in info else None
        else:
            if "references" not in o:
                raise TypeError("smoothgrad: method='expected_gradients' needs references=")
            per = check_count(o.get("n_samples_per_copy", 1), "n_samples_per_copy")
            out = run_eg(copies, _references(o["references"], job), per, o.get("sampler", "random"), gen,
                         multiply_by_inputs)
            attrs, delta, f_x, f_b, evals = out["attrs"], out["delta"], out["f_x"], out["f_baseline"], out["n_evals"]
            settings = {"method": "expected_gradients", "n_samples_per_copy": per,
                        "sampler": o.get("sampler", "random")}
            quad = None
    reduced, errs = zip(*(_reduce(a, origin, B, S, mode) for a in attrs))
    nan = torch.full_like(delta[:B], float("nan"))
    settings = settings | copies.describe() | {
        "smoothgrad": {"mode": mode, "n_samples": S, "noise": sigma, "noise_scale": noise_scale,
                       "seed": seed if isinstance(seed, int) else "generator"}}
    return Attribution(
        attributions=shape_output(job, reduced), stderr=shape_output(job, errs),
        delta=mean_by(delta, origin, B) if mode == "mean" else nan,
        f_x=mean_by(f_x, origin, B), f_baseline=mean_by(f_b, origin, B),
        n_evals=torch.zeros(B, dtype=torch.int64).index_add_(0, origin.cpu(), evals.cpu()), settings=settings,
        error=sampling_error(reduced, errs, delta.dim(), quad))


def _noise(sigma: float, relative: bool, gen: torch.Generator) -> Callable:
    """Adds N(0, sigma^2) to each copy's end point (per tensor, scaled by its range if relative)."""

    def perturb(ends: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        out = []
        for e in ends:
            # drawn on the CPU in float64, so a seed gives the same noise on every device and dtype
            eps = torch.randn(e.shape, generator=gen, dtype=torch.float64).to(device=e.device, dtype=e.dtype)
            scale = sigma
            if relative:
                flat = e.reshape(e.shape[0], -1)
                spread = flat.amax(1) - flat.amin(1)
                if sigma > 0 and (spread == 0).any():
                    warnings.warn("noise: some examples have all their values equal (range 0, e.g. one number "
                                  "per example), so relative noise adds nothing to them; pass "
                                  "noise_scale='absolute'", stacklevel=5)
                scale = sigma * spread.view(-1, *[1] * (e.dim() - 1))
            out.append(e + scale * eps)
        return tuple(out)

    return perturb


def _reduce(a: torch.Tensor, origin: torch.Tensor, B: int, S: int, mode: str):
    """Copies -> examples: the statistic of ``mode`` and its standard error over the copies."""
    dtype = a.dtype
    a = a.double()
    x = a.square() if mode == "square" else a
    mean = mean_by(x, origin, B)
    spread = (x - mean.index_select(0, origin)).square()
    var = mean_by(spread, origin, B) * S / max(S - 1, 1)
    if mode == "var":
        value = mean_by((a - mean.index_select(0, origin)).square(), origin, B)
        fourth = mean_by((a - mean.index_select(0, origin)) ** 4, origin, B)
        err = ((fourth - value.square()).clamp_min(0) / S).sqrt()  # delta method, large-sample
        return value.to(dtype), err.to(dtype)
    return mean.to(dtype), (var / S).sqrt().to(dtype)
