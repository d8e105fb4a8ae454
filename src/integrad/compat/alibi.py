"""Alibi's ``IntegratedGradients`` explainer on integrad's engine: a drop-in that changes one import.

>>> import numpy as np, tf_keras as keras
>>> from integrad.compat.alibi import IntegratedGradients  # was: from alibi.explainers import ...
>>> model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,))])
>>> explanation = IntegratedGradients(model, n_steps=50).explain(np.ones((2, 4), "float32"), target=[0, 2])
>>> explanation.attributions[0].shape, explanation.deltas.shape
((2, 4), (2,))

The explainer takes Alibi 0.9.6's constructor and ``explain`` arguments and returns an
:class:`Explanation` with Alibi's fields: ``attributions`` (a list, one array per input or per
layer tensor), ``deltas`` (``sum(attributions) - (F(x) - F(baseline))`` per example),
``predictions`` (the model's outputs on ``X``), ``baselines`` (in input space), ``target``,
``X``, ``forward_kwargs`` and ``meta``. The model is a Keras model (Keras 2 / ``tf_keras``, or
Keras 3 on the tensorflow or jax backend), as in Alibi; Alibi itself is not needed, and
TensorFlow is imported only by the model's own backend.

Alibi's conventions kept: ``baselines=None`` is zeros at the input, also with a layer (the path
then starts at the layer's output for the all-zero input); a model with one output (a logit or
probability) and a 0/1 ``target`` is explained as ``target + (2 target - 1) F``, i.e. ``F`` for
class 1 and ``1 - F`` for class 0; ``target_fn`` maps the predictions to the target;
attributions to the inputs are float64, to a layer in the layer's dtype.

Intended differences
--------------------
1. ``method="riemann_trapezoid"`` runs the trapezoid rule with weights summing to 1; Alibi's
   weights sum to ``(n_steps - 1) / n_steps``, so its result is that factor times ours.
2. One-output models with a ``target``: the attributions are Alibi's, and ``deltas`` is their
   completeness gap (near 0). Alibi 0.9.6 flips the outputs in its deltas the other way round
   from its gradients, so its deltas there are about ``2 (2 target - 1) (F(x) - F(baseline))``.
3. ``attribute_to_layer_inputs=True`` with a layer raises ``ValueError``: integrad's TensorFlow
   and JAX backends attribute to a layer's output only. (Without a layer it is ignored, as in Alibi.)
4. Gradients are accumulated in the model's dtype (float32 for a float32 model) and returned as
   float64; Alibi accumulates float32 gradients in float64. The two agree to about 1e-7 relative.
5. Bad arguments raise ``TypeError`` or ``ValueError`` naming the argument, its expected and its
   actual type or shape, when the explainer is built or ``explain`` called (Alibi: at ``explain``,
   often an ``AssertionError`` or an error from inside TensorFlow). Integer ``X`` needs a layer.
6. ``internal_batch_size=None`` chooses the chunk size automatically; the Riemann rules accept
   ``n_steps=1`` (Alibi: at least 2).
7. ``meta["version"]`` is integrad's version. Not supported: ``save``/``load`` of the explainer and
   ``reset_predictor`` (build a new explainer for a new model).

References
----------
Klaise, Van Looveren, Vacanti & Coca, "Alibi Explain: Algorithms for Explaining Machine Learning
Models", JMLR 22(181), 2021.
"""

from __future__ import annotations

import copy
import json
import numbers
import warnings
from typing import Any, Callable

import numpy as np

from .. import __version__
from ..backends.foreign import framework_of
from ..methods.ig import integrated_gradients

__all__ = ["IntegratedGradients", "Explanation"]

_RULES = {"gausslegendre": "gausslegendre", "riemann_left": "riemann_left", "riemann_right": "riemann_right",
          "riemann_middle": "riemann_middle", "riemann_trapezoid": "trapezoid"}


class Explanation:
    """Alibi's ``Explanation``: the ``meta`` and ``data`` dicts, their keys also as attributes."""

    def __init__(self, meta: dict, data: dict):
        self.meta, self.data = meta, data
        vars(self).update({**data, **meta})  # meta wins a clash, as in Alibi

    def to_json(self) -> str:
        """``{"meta": ..., "data": ...}`` as JSON, arrays as nested lists."""
        def plain(value: Any) -> Any:
            if isinstance(value, (np.ndarray, np.generic)):
                return value.tolist()
            raise TypeError(f"to_json: cannot write a {type(value).__name__} as JSON")

        return json.dumps({"meta": self.meta, "data": self.data}, default=plain)

    def __repr__(self) -> str:
        shapes = [np.shape(a) for a in self.data["attributions"]]
        return f"Explanation(meta={self.meta!r}, attributions with shapes {shapes}, deltas={self.data['deltas']!r})"


def _count(value: Any, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ValueError(f"{name}: expected an int >= {least}; got {value!r}")
    return int(value)


class IntegratedGradients:
    """Alibi's ``IntegratedGradients``: attributions to a Keras model's inputs, or to a layer's output.

    Parameters
    ----------
    model : Keras model
        Keras 2 (``tf_keras``, ``tf.keras`` before TensorFlow 2.16), or Keras 3 on the tensorflow
        or jax backend.
    layer : Keras layer, or callable ``model -> layer``, optional
        Attribute to this layer's output; the path runs between its values on the baselines
        and on ``X``.
    target_fn : callable, optional
        Maps the predictions ``model(X)`` to one integer target per example, shape ``(batch,)``,
        e.g. ``functools.partial(np.argmax, axis=1)``.
    method : {"gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"}
    n_steps : int
        Gradient evaluations per example.
    internal_batch_size : int or None
        Path rows per forward/backward pass; ``None`` chooses automatically.

    References
    ----------
    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
    """

    def __init__(self, model: Any, layer: Any = None, target_fn: Callable | None = None,
                 method: str = "gausslegendre", n_steps: int = 50, internal_batch_size: int | None = 100):
        if framework_of(model, ()) not in ("tensorflow", "jax"):
            raise TypeError(f"model: expected a Keras model (Keras 2, or Keras 3 on the tensorflow or jax backend); "
                            f"got {type(model).__name__} (for PyTorch: integrad.integrated_gradients or "
                            "integrad.compat.captum)")
        if target_fn is not None and not callable(target_fn):
            raise TypeError(f"target_fn: expected None or a callable on the predictions; got "
                            f"{type(target_fn).__name__}")
        if method not in _RULES:
            raise ValueError(f"method: expected one of {', '.join(map(repr, _RULES))}; got {method!r}")
        self.n_steps = _count(n_steps, "n_steps", 2 if method == "riemann_trapezoid" else 1)  # trapezoid: both ends
        if internal_batch_size is not None:
            internal_batch_size = _count(internal_batch_size, "internal_batch_size", 1)
        self.model, self.target_fn, self.method = model, target_fn, method
        self.internal_batch_size = internal_batch_size
        self.layer, where = self._layer(model, layer)
        self.meta = {"name": "IntegratedGradients", "type": ["whitebox"], "explanations": ["local"],
                     "params": {"target_fn": target_fn, "method": method, "n_steps": self.n_steps,
                                "internal_batch_size": internal_batch_size, "layer": where},
                     "version": __version__}

    @staticmethod
    def _layer(model: Any, layer: Any) -> tuple[Any, int | str]:
        """The layer object, and how Alibi's meta names it (its index in ``model.layers``, or a state)."""
        if layer is None:
            return None, "unspecified"
        if hasattr(layer, "call"):
            index = [i for i, m in enumerate(getattr(model, "layers", [])) if m is layer]
            return layer, index[0] if index else "non-serializable"
        if callable(layer):
            found = layer(model)
            if not hasattr(found, "call"):
                raise TypeError(f"layer: the callable returned a {type(found).__name__}; expected a Keras layer of "
                                "the model")
            return found, "callable"
        raise TypeError(f"layer: expected None, a Keras layer or a callable model -> layer; got {type(layer).__name__}")

    def explain(self, X: np.ndarray | list[np.ndarray], forward_kwargs: dict | None = None, baselines: Any = None,
                target: Any = None, attribute_to_layer_inputs: bool = False) -> Explanation:
        """Integrated Gradients of ``X`` (``(batch, ...)``, or a list of such arrays for a model of
        several inputs) from ``baselines`` (default zeros, in input space), for ``target``.

        ``forward_kwargs`` are extra keyword arrays for the model, batch first, not
        interpolated. ``target``: an int, or one per example (a list or array, ``(batch,)``, or
        ``(batch, depth)`` for outputs of higher rank); None for a model with one output.
        """
        xs = self._inputs(X)
        batch = xs[0].shape[0]
        if forward_kwargs is not None and not isinstance(forward_kwargs, dict):
            raise TypeError(f"forward_kwargs: expected None or a dict of arrays; got {type(forward_kwargs).__name__}")
        if not isinstance(attribute_to_layer_inputs, bool):
            raise TypeError(f"attribute_to_layer_inputs: expected a bool; got {attribute_to_layer_inputs!r}")
        if attribute_to_layer_inputs and self.layer is not None:
            raise ValueError("attribute_to_layer_inputs: only False is supported; integrad's TensorFlow and JAX "
                             "backends attribute to a layer's output (pass the layer before it instead)")
        if self.target_fn is not None and target is not None:
            raise ValueError("target: given together with target_fn; pass one of them")
        bls = self._baselines(baselines, xs, isinstance(X, list))
        kwargs = forward_kwargs or {}
        out = self.model(X, **kwargs)
        predictions = np.asarray(out.numpy() if hasattr(out, "numpy") else out)
        one_output = predictions.ndim == 1 or predictions.shape[-1] == 1
        if self.target_fn is not None:
            if one_output:
                warnings.warn("target_fn: the model has one output per example; target_fn is not needed there, "
                              "and its values flip the output for target 0", stacklevel=2)
            target = self._target_from_fn(out, batch)
        target = self._target(target, batch, one_output)

        inputs, start = (xs, bls) if isinstance(X, list) else (xs[0], bls[0])
        res = integrated_gradients(
            self.model, inputs, baseline=start, target=None if one_output else target, layer=self.layer,
            method=_RULES[self.method], n_steps=self.n_steps, batch_size=self.internal_batch_size,
            forward_kwargs=forward_kwargs or None)
        attributions = [a.detach().cpu().numpy() for a in res.attributions_tuple]
        if self.layer is None:
            attributions = [a.astype(np.float64) for a in attributions]
        deltas = res.delta.detach().cpu().numpy().astype(np.float64)
        if one_output and target is not None:  # explain t + (2t - 1) F: F for class 1, 1 - F for class 0
            sign = 2 * target.astype(np.float64) - 1
            attributions = [a * sign.reshape(-1, *[1] * (a.ndim - 1)).astype(a.dtype) for a in attributions]
            deltas = sign * deltas
        data = {"attributions": attributions, "X": X, "forward_kwargs": kwargs, "baselines": start,
                "predictions": predictions, "deltas": deltas, "target": target}
        return Explanation(meta=copy.deepcopy(self.meta), data=data)

    def _inputs(self, X: Any) -> list[np.ndarray]:
        xs = X if isinstance(X, list) else [X]
        if not xs:
            raise ValueError("X: expected a numpy array or a non-empty list of them; got an empty list")
        for i, x in enumerate(xs):
            name = f"X[{i}]" if isinstance(X, list) else "X"
            if not isinstance(x, np.ndarray) or x.ndim == 0:
                got = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
                raise TypeError(f"{name}: expected a numpy array of shape (batch, ...) (or a list of them for a model "
                                f"of several inputs); got {got}")
            if self.layer is None and not np.issubdtype(x.dtype, np.floating):
                raise TypeError(f"{name}: dtype {x.dtype} cannot be interpolated; integer inputs such as token ids "
                                "need layer= (the embedding layer)")
            if x.shape[0] != xs[0].shape[0]:
                raise ValueError(f"{name}: {x.shape[0]} examples, but X[0] has {xs[0].shape[0]}")
        return xs

    @staticmethod
    def _baselines(baselines: Any, xs: list[np.ndarray], is_list: bool) -> list[np.ndarray]:
        """One baseline array per input, in the input's dtype (Alibi's ``_format_baseline``)."""
        if not is_list:
            given = [baselines]
        elif baselines is None:
            given = [None] * len(xs)
        elif not isinstance(baselines, list) or len(baselines) != len(xs):
            got = f"a list of {len(baselines)}" if isinstance(baselines, list) else type(baselines).__name__
            raise ValueError(f"baselines: X is a list of {len(xs)} arrays, so baselines must be None or a list of "
                             f"{len(xs)}; got {got}")
        else:
            given = baselines
        out = []
        for i, (b, x) in enumerate(zip(given, xs)):
            name = f"baselines[{i}]" if is_list else "baselines"
            if b is None:
                b = np.zeros(x.shape, dtype=x.dtype)
            elif isinstance(b, numbers.Real) and not isinstance(b, bool):
                b = np.full(x.shape, b).astype(x.dtype)
            elif isinstance(b, np.ndarray):
                try:
                    fits = np.broadcast_shapes(b.shape, x.shape) == x.shape
                except ValueError:
                    fits = False
                if not fits:
                    raise ValueError(f"{name}: shape {b.shape} does not broadcast to X's shape {x.shape}")
                b = b.astype(x.dtype)
            else:
                raise TypeError(f"{name}: expected None, a number or a numpy array shaped like X {x.shape}; got "
                                f"{type(b).__name__}")
            out.append(b)
        return out

    def _target_from_fn(self, out: Any, batch: int) -> np.ndarray:
        t = np.asarray(self.target_fn(out))
        if t.shape != (batch,):
            raise ValueError(f"target_fn: must return one target per example, shape ({batch},); got shape {t.shape}")
        return t.astype(int)

    @staticmethod
    def _target(target: Any, batch: int, one_output: bool) -> np.ndarray | None:
        """Alibi's target: None, or an integer array with one row per example."""
        if target is None:
            return None
        if isinstance(target, numbers.Integral) and not isinstance(target, bool):
            target = np.full(batch, int(target))
        elif isinstance(target, (list, np.ndarray)):
            target = np.asarray(target)
        else:
            raise TypeError(f"target: expected None, an int, or a list or array of them (one per example); got "
                            f"{type(target).__name__}")
        if not np.issubdtype(target.dtype, np.integer) or target.ndim not in (1, 2) or target.shape[0] != batch:
            raise ValueError(f"target: expected integers of shape ({batch},) (or ({batch}, depth) for outputs of "
                             f"higher rank); got {target.dtype} of shape {target.shape}")
        if one_output and not (target.ndim == 1 and np.isin(target, (0, 1)).all()):
            raise ValueError(f"target: the model has one output per example, so target is 0 or 1 per example (which "
                             f"class that output is read for); got {target.tolist()}")
        return target
