"""Captum's Integrated Gradients classes on integrad's engine: a drop-in that changes one import.

>>> from integrad.compat.captum import IntegratedGradients   # was: from captum.attr import ...
>>> import torch
>>> ig = IntegratedGradients(lambda x: (x ** 2).sum(1))
>>> ig.attribute(torch.tensor([[1.0, 2.0]]))
tensor([[1., 4.]])

The classes take Captum's constructor and ``attribute`` arguments and return what Captum
returns (a tensor for a tensor input, a tuple for tuple inputs or for a layer with several
tensors, a list for a list of layers, and ``(attributions, delta)`` with
``return_convergence_delta=True``). Captum itself is not needed.

Intended differences
--------------------
1. ``method="riemann_trapezoid"`` runs the trapezoid rule with weights summing to 1; Captum's
   weights sum to ``(n_steps - 1) / n_steps``, so its result is that factor times ours.
2. Bad arguments raise ``ValueError`` or ``TypeError`` naming the argument, not ``AssertionError``.
3. ``GradientShap`` and ``NoiseTunnel`` draw from their own generator, seeded by the extra keyword
   ``seed`` (default 0): same distribution as Captum, reproducible, global RNG untouched.
4. ``NoiseTunnel`` over ``LayerIntegratedGradients`` adds the noise where the path ends, to the
   layer's activations, never to the raw inputs: with token ids Captum adds float noise to ids
   and fails (captum#1281). For float inputs too the noise lives in layer space (equal at
   ``stdevs=0``).
5. With ``multiply_by_inputs=False`` the returned delta is still the completeness gap of IG
   (``multiply_by_inputs=True``); Captum sums the unmultiplied gradients into it.
6. ``stdevs`` given per input must hold one value (the noise has one scale).
7. Extra arguments: tensors whose first dimension is the batch follow their example; Captum
   repeats every tensor with a dimension.
8. ``internal_batch_size=None`` chooses the chunk size automatically (Captum: one chunk);
   ``nt_samples_batch_size`` is accepted but has no effect: the engine chunks the copies itself.
9. A layer's non-floating tensors (a mask in its output tuple, say) get no attribution entry.
10. Not supported, with a clear error: ``device_ids`` (DataParallel), ``grad_kwargs``,
    ``attribute_to_neuron_input=True``, and ``NoiseTunnel(GradientShap)`` (GradientShap's
    ``stdevs`` already is its noise tunnel).

References
----------
Kokhlikyan et al., "Captum: A unified and generic model interpretability library for PyTorch", 2020.
"""

from __future__ import annotations

import contextlib
import inspect
import numbers
from typing import Any, Callable

import torch

from ..backends.torch_hooks import Layers, LayerTap
from ..methods.ig import integrated_gradients
from ..methods.smooth import smoothgrad

__all__ = ["IntegratedGradients", "LayerIntegratedGradients", "NeuronIntegratedGradients", "GradientShap",
           "NoiseTunnel"]

_RULES = {"riemann_left": "riemann_left", "riemann_right": "riemann_right", "riemann_middle": "riemann_middle",
          "riemann_trapezoid": "trapezoid", "gausslegendre": "gausslegendre"}
_NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


def _rule(method: Any) -> str:
    if method not in _RULES:
        raise ValueError(f"method: expected one of {', '.join(map(repr, _RULES))}; got {method!r}")
    return _RULES[method]


def _forward_args(args: Any) -> tuple:  # Captum's additional_forward_args: None, one, or a tuple
    return () if args is None else args if isinstance(args, tuple) else (args,)


def _target(target: Any) -> Any:  # a one-element tensor: one index for every example, as in Captum
    return int(target.item()) if isinstance(target, torch.Tensor) and target.numel() == 1 else target


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1; got {value!r}")
    return value


def _stdev(stdevs: Any, n_inputs: int) -> float:
    """One noise scale from Captum's ``stdevs`` (a number, or one per input)."""
    values = stdevs if isinstance(stdevs, tuple) else (stdevs,)
    if isinstance(stdevs, tuple) and len(stdevs) != n_inputs:
        raise ValueError(f"stdevs: {len(stdevs)} values for {n_inputs} inputs; give one number or one per input")
    if not values or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise TypeError(f"stdevs: expected a number >= 0 (or a tuple of them); got {stdevs!r}")
    if len(set(values)) > 1:
        raise ValueError(f"stdevs: integrad adds noise of one scale to every input; got different values {stdevs!r}")
    return float(values[0])


def _flat(a: Any) -> tuple[torch.Tensor, ...]:
    return a if isinstance(a, tuple) else (a,)


def _like(inputs: Any) -> Callable:  # input attributions: a tuple for tuple inputs, else one tensor
    was_tuple = isinstance(inputs, tuple)
    return lambda flat: flat if was_tuple else flat[0]


class _Rows:
    """Each example's row repeated ``S`` times, example by example (Captum's order of samples)."""

    def __init__(self, inputs: Any, S: int):
        if not (_flat(inputs) and all(isinstance(x, torch.Tensor) and x.dim() > 0 for x in _flat(inputs))):
            raise TypeError(f"inputs: expected a batch-first tensor or a tuple of them; got {type(inputs).__name__}")
        self.B, self.S = _flat(inputs)[0].shape[0], S

    def repeat(self, t: Any, dim: int | None = None) -> Any:
        """Tensors (alone or in a tuple) whose first dimension is the batch, of ``dim`` dimensions if given."""
        if isinstance(t, tuple):
            return tuple(map(self.repeat, t))
        if isinstance(t, torch.Tensor) and t.dim() > 0 and t.shape[0] == self.B and dim in (None, t.dim()):
            return t.repeat_interleave(self.S, 0)
        return t

    def target(self, t: Any) -> Any:
        return [v for v in t for _ in range(self.S)] if isinstance(t, list) else self.repeat(t)

    def split(self, res: Any) -> tuple[torch.Tensor, ...]:
        """Per-row attributions -> one ``(batch, S, ...)`` tensor per attributed tensor."""
        return tuple(a.reshape(self.B, self.S, *a.shape[1:]) for a in _flat(res.attributions))


class _Problem:
    """One Captum call as integrad options, and ``shape``: integrad's flat tuple of tensors -> Captum's structure."""

    def __init__(self, model: Callable, inputs: Any, options: dict[str, Any], shape: Callable):
        self.model, self.inputs, self.options, self.shape = model, inputs, options, shape

    def run(self, with_delta: bool) -> Any:
        res = integrated_gradients(self.model, self.inputs, **self.options)
        out = self.shape(_flat(res.attributions))
        return (out, res.delta) if with_delta else out


class _Method:
    def __init__(self, forward_func: Callable, multiply_by_inputs: bool = True):
        if not callable(forward_func):
            raise TypeError(f"forward_func: expected the model or a callable; got {type(forward_func).__name__}")
        if not isinstance(multiply_by_inputs, bool):
            raise TypeError(f"multiply_by_inputs: expected a bool; got {multiply_by_inputs!r}")
        self.forward_func, self.multiplies_by_inputs = forward_func, multiply_by_inputs

    def _options(self, baselines: Any, additional_forward_args: Any, n_steps: Any, method: Any,
                 internal_batch_size: Any) -> dict[str, Any]:
        return {"baseline": 0.0 if baselines is None else baselines, "method": _rule(method), "n_steps": n_steps,
                "forward_args": _forward_args(additional_forward_args), "batch_size": internal_batch_size,
                "multiply_by_inputs": self.multiplies_by_inputs}


class _LayerMethod(_Method):
    def __init__(self, forward_func: Callable, layer: Any, device_ids: Any = None, multiply_by_inputs: bool = True):
        super().__init__(forward_func, multiply_by_inputs)
        if device_ids is not None:
            raise ValueError(f"device_ids: integrad runs the model on one device (no DataParallel); got {device_ids!r}")
        Layers(layer)  # checks the modules
        self.layer = layer


class IntegratedGradients(_Method):
    """Captum's ``IntegratedGradients``: attributions to the inputs along the straight path.

    Parameters
    ----------
    forward_func : callable
        The model, mapping ``inputs`` (then ``additional_forward_args``) to outputs.
    multiply_by_inputs : bool
        ``False``: the path-integrated gradient without the ``(x - x')`` factor.

    References
    ----------
    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
    """

    def attribute(self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
                  n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int | None = None,
                  return_convergence_delta: bool = False) -> Any:
        """IG of ``inputs`` from ``baselines`` (default zero), shaped like ``inputs``; with
        ``return_convergence_delta`` also the completeness gap per example, ``(batch,)``."""
        return self._problem(inputs, baselines, target, additional_forward_args, n_steps, method,
                             internal_batch_size).run(return_convergence_delta)

    def _problem(self, inputs, baselines=None, target=None, additional_forward_args=None, n_steps=50,
                 method="gausslegendre", internal_batch_size=None) -> _Problem:
        options = self._options(baselines, additional_forward_args, n_steps, method, internal_batch_size)
        return _Problem(self.forward_func, inputs, options | {"target": _target(target)}, _like(inputs))


class LayerIntegratedGradients(_LayerMethod):
    """Captum's ``LayerIntegratedGradients``: attributions to a layer's output (or input).

    Parameters
    ----------
    forward_func, multiply_by_inputs : as in :class:`IntegratedGradients`
    layer : nn.Module or list of nn.Module
        A list is interpolated together and gives a list of attributions, one entry per
        layer (a tuple for a layer with several tensors).
    device_ids : None
        Only None: integrad runs the model on one device.

    References
    ----------
    Dhamdhere, Sundararajan & Yan, "How Important Is a Neuron?", ICLR 2019.
    """

    def attribute(self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
                  n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int | None = None,
                  return_convergence_delta: bool = False, attribute_to_layer_input: bool = False,
                  grad_kwargs: dict | None = None) -> Any:
        """Layer IG, ``baselines`` in input space (e.g. PAD token ids): the layer's attributions
        (a tensor, a tuple, or a list for a list of layers), and the gap per example if asked."""
        return self._problem(inputs, baselines, target, additional_forward_args, n_steps, method,
                             internal_batch_size, attribute_to_layer_input,
                             grad_kwargs).run(return_convergence_delta)

    def _problem(self, inputs, baselines=None, target=None, additional_forward_args=None, n_steps=50,
                 method="gausslegendre", internal_batch_size=None, attribute_to_layer_input=False,
                 grad_kwargs=None) -> _Problem:
        if grad_kwargs is not None:
            raise ValueError("grad_kwargs: not supported; integrad takes plain first-order gradients")
        options = self._options(baselines, additional_forward_args, n_steps, method, internal_batch_size)
        options |= {"target": _target(target), "layer": self.layer, "layer_input": bool(attribute_to_layer_input)}

        def shape(flat):
            if not isinstance(self.layer, list):
                return flat if len(flat) > 1 else flat[0]
            counts = [1] * len(flat) if len(flat) == len(self.layer) else \
                self._counts(inputs, options["forward_args"], attribute_to_layer_input)
            ends = [sum(counts[:i + 1]) for i in range(len(counts))]
            return [flat[e - 1] if n == 1 else flat[e - n:e] for n, e in zip(counts, ends)]

        return _Problem(self.forward_func, inputs, options, shape)

    def _counts(self, inputs: Any, args: tuple, use_input: bool) -> list[int]:
        """Tensors per layer, in the order of ``self.layer``, from one no-grad forward pass."""
        with torch.no_grad(), contextlib.ExitStack() as stack:
            taps = [stack.enter_context(LayerTap(Layers(m, use_input))) for m in self.layer]
            self.forward_func(*_flat(inputs), *args)
        return [len(t.tensors) for t in taps]


class NeuronIntegratedGradients(_LayerMethod):
    """Captum's ``NeuronIntegratedGradients``: attributions of one unit of ``layer``'s output.

    Parameters
    ----------
    forward_func, device_ids, multiply_by_inputs : as in :class:`LayerIntegratedGradients`
    layer : nn.Module
        Its output holds the neuron that ``neuron_selector`` picks: an int, a tuple of ints or
        slices (slices are summed), or a callable on the output.
    """

    def attribute(self, inputs: Any, neuron_selector: Any, baselines: Any = None, additional_forward_args: Any = None,
                  n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int | None = None,
                  attribute_to_neuron_input: bool = False) -> Any:
        """Neuron IG of the selected unit, shaped like ``inputs``."""
        return self._problem(inputs, neuron_selector, baselines, additional_forward_args, n_steps, method,
                             internal_batch_size, attribute_to_neuron_input).run(False)

    def _problem(self, inputs, neuron_selector, baselines=None, additional_forward_args=None, n_steps=50,
                 method="gausslegendre", internal_batch_size=None, attribute_to_neuron_input=False) -> _Problem:
        if attribute_to_neuron_input:
            raise ValueError("attribute_to_neuron_input: only False (a neuron of the layer's output) is supported")
        if not isinstance(self.layer, torch.nn.Module):
            raise TypeError(f"layer: expected one torch.nn.Module; got {type(self.layer).__name__}")
        options = self._options(baselines, additional_forward_args, n_steps, method, internal_batch_size)
        return _Problem(self.forward_func, inputs, options | {"neuron": (self.layer, neuron_selector)}, _like(inputs))


class GradientShap(_Method):
    """Captum's ``GradientShap``: Expected Gradients with one random draw per sample.

    Each of ``n_samples`` samples per example adds ``N(0, stdevs^2)`` noise to the input,
    draws a baseline from ``baselines`` and a point ``alpha ~ U(0, 1)`` on the path, and
    costs one gradient; the attribution is their mean.

    References
    ----------
    Lundberg & Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
    Erion et al., "Improving performance of deep learning models with axiomatic attribution
    priors and expected gradients", Nature Machine Intelligence 3, 2021.
    """

    def attribute(self, inputs: Any, baselines: Any, n_samples: int = 5, stdevs: float | tuple = 0.0,
                  target: Any = None, additional_forward_args: Any = None, return_convergence_delta: bool = False,
                  *, seed: int = 0) -> Any:
        """GradientSHAP, shaped like ``inputs``; ``baselines``: a ``(K, *features)`` distribution per
        input, or a callable returning it; ``seed``: integrad's addition. With
        ``return_convergence_delta`` also the gap of every sample, ``(batch * n_samples,)``."""
        if callable(baselines):
            baselines = baselines(inputs) if inspect.signature(baselines).parameters else baselines()
        rows = _Rows(inputs, _count(n_samples, "n_samples"))
        # one row per sample, so that delta is per sample as in Captum
        res = smoothgrad(self.forward_func, rows.repeat(inputs), method="expected_gradients", n_samples=1,
                         noise=_stdev(stdevs, len(_flat(inputs))), noise_scale="absolute", seed=seed,
                         references=baselines, n_samples_per_copy=1, sampler="random",
                         target=rows.target(_target(target)),
                         forward_args=rows.repeat(_forward_args(additional_forward_args)),
                         multiply_by_inputs=self.multiplies_by_inputs)
        out = _like(inputs)(tuple(a.mean(1) for a in rows.split(res)))
        return (out, res.delta) if return_convergence_delta else out


class NoiseTunnel:
    """Captum's ``NoiseTunnel`` around one of this module's IG classes: SmoothGrad and variants.

    Each example is repeated ``nt_samples`` times with ``N(0, stdevs^2)`` noise at the path's
    end (the input, or the layer's activations), attributed, and reduced: the mean
    (``"smoothgrad"``), the mean of squares (``"smoothgrad_sq"``) or the variance (``"vargrad"``).

    Parameters
    ----------
    attribution_method : IntegratedGradients, LayerIntegratedGradients or NeuronIntegratedGradients

    References
    ----------
    Smilkov, Thorat, Kim, Viégas & Wattenberg, "SmoothGrad: removing noise by adding noise", 2017.
    Adebayo, Gilmer, Goodfellow & Kim, "Local Explanation Methods for Deep Neural Networks Lack
    Sensitivity to Parameter Randomization", 2018.
    """

    def __init__(self, attribution_method: Any):
        if not hasattr(attribution_method, "_problem"):
            hint = " (GradientShap's stdevs= is its noise tunnel)" if isinstance(attribution_method, GradientShap) \
                else ""
            raise TypeError(f"attribution_method: expected an IntegratedGradients, LayerIntegratedGradients or "
                            f"NeuronIntegratedGradients of integrad.compat.captum{hint}; got "
                            f"{type(attribution_method).__name__}")
        self.attribution_method = attribution_method

    def attribute(self, inputs: Any, nt_type: str = "smoothgrad", nt_samples: int = 5,
                  nt_samples_batch_size: int | None = None, stdevs: float | tuple = 1.0,
                  draw_baseline_from_distrib: bool = False, *, seed: int = 0, **kwargs: Any) -> Any:
        """The wrapped method's ``attribute(inputs, **kwargs)``, smoothed over noisy copies.

        ``draw_baseline_from_distrib=True`` draws each copy's baseline from ``baselines`` given
        as a ``(K, *features)`` distribution; ``seed`` is integrad's addition. The result is
        structured as the wrapped method's; with ``return_convergence_delta=True`` comes the
        gap of every copy, ``(batch * nt_samples,)``, example by example.
        """
        if nt_type not in _NT_TYPES:
            raise ValueError(f"nt_type: expected one of {', '.join(map(repr, _NT_TYPES))}; got {nt_type!r}")
        if nt_samples_batch_size is not None:
            _count(nt_samples_batch_size, "nt_samples_batch_size")
        bound = inspect.signature(self.attribution_method.attribute).bind(inputs, **kwargs)
        with_delta = bool(bound.arguments.pop("return_convergence_delta", False))
        problem = self.attribution_method._problem(**bound.arguments)
        xs, rows = _flat(inputs), _Rows(inputs, _count(nt_samples, "nt_samples"))
        sigma, gen = _stdev(stdevs, len(xs)), torch.Generator().manual_seed(seed)
        o = dict(problem.options)
        base = o.pop("baseline")
        if draw_baseline_from_distrib:
            refs = _flat(base)
            if not all(isinstance(r, torch.Tensor) and r.dim() == x.dim() for r, x in zip(refs, xs)):
                raise ValueError("baselines: draw_baseline_from_distrib=True needs a (K, *features) tensor per input")
            pick = torch.randint(refs[0].shape[0], (rows.B * rows.S,), generator=gen)
            base = _like(inputs)(tuple(r[pick.to(r.device)] for r in refs))
        elif isinstance(base, tuple):
            base = tuple(rows.repeat(b, x.dim()) for b, x in zip(base, xs))
        else:  # a batch of baselines is repeated, one example's broadcasts
            base = rows.repeat(base, xs[0].dim())
        if "target" in o:
            o["target"] = rows.target(o["target"])
        o["forward_args"] = rows.repeat(o["forward_args"])
        res = smoothgrad(problem.model, rows.repeat(inputs), method="integrated_gradients", rule=o.pop("method"),
                         n_samples=1, noise=sigma, noise_scale="absolute", seed=gen, baseline=base, **o)
        reduce = {"smoothgrad": lambda a: a.mean(1), "smoothgrad_sq": lambda a: a.square().mean(1),
                  "vargrad": lambda a: a.var(1, correction=0)}[nt_type]
        out = problem.shape(tuple(map(reduce, rows.split(res))))
        return (out, res.delta) if with_delta else out
