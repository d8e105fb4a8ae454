"""The TensorFlow backend: Keras 2 (``tf_keras``, ``tf.keras`` before 2.16), Keras 3 on the
tensorflow backend, ``tf.Module`` and plain functions of ``tf.Tensor``, by ``tf.GradientTape``.

Each block of path rows is one eager forward pass under a tape that watches only the
tensors gradients are taken for (never the weights, so no weight gradient is kept); the
backward pass is ``tape.gradient`` with the engine's cotangent. A layer (a Keras layer
object, or a function of the model returning one, as Alibi accepts) has its ``call``
swapped for one pass: to read its output, and to put the path's points in its place.

TensorFlow does not say how much its tape keeps. For a Keras model, the memory probe's
block counts the bytes of every leaf layer's output instead (what a tape keeps is of that
order); for other TensorFlow models the probe's block size stays (at most 256 rows, about
1 MiB of inputs) unless ``batch_size`` says otherwise.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import tensorflow as tf

from . import foreign as F

name = "tensorflow"


def native(a: np.ndarray) -> Any:
    return tf.convert_to_tensor(a)


class Backend:
    name = "tensorflow"

    def __init__(self, model: Any, layer: Any):
        self.model = model
        self.layer_obj = F.resolve_layer(model, layer)
        if self.layer_obj is not None and not hasattr(self.layer_obj, "call"):
            raise TypeError(f"layer: expected a Keras layer of the model (or a function of the model returning one); "
                            f"got {type(self.layer_obj).__name__}")
        self.has_layer = layer is not None
        self.layer_name = getattr(self.layer_obj, "name", None) or type(self.layer_obj).__name__ \
            if self.layer_obj is not None else None
        inputs = getattr(model, "inputs", None)
        self.listed = isinstance(inputs, (list, tuple)) and len(inputs) > 1  # a functional model of several inputs

    def _run(self, xs: list, args: tuple, kwargs: dict) -> Any:
        inputs = list(xs) if self.listed else xs
        out = self.model(inputs, *args, **kwargs) if self.listed else self.model(*inputs, *args, **kwargs)
        return F.check_output(out, "the model")

    def read(self, xs: tuple, args: tuple, kwargs: dict) -> tuple:
        run = lambda: self._run(_tf(xs), _tf(args), _tf(kwargs))  # noqa: E731
        F.build(self.model, run)
        acts = F.read_through(self.layer_obj, run)
        return tuple(a.numpy() if hasattr(a, "numpy") else np.asarray(a) for a in acts)

    def call(self, diff: list, rest: tuple, need_grad: bool):
        mode, xs, args, kwargs, where = rest
        if mode == "inputs":
            F.build(self.model, lambda: self._run(_tf(list(xs)), _tf(args), _tf(kwargs)))
        d = [tf.convert_to_tensor(a) for a in diff]
        xs, args, kwargs = _tf(list(xs)), _tf(args), _tf(kwargs)
        tape = tf.GradientTape(persistent=True, watch_accessed_variables=False) if need_grad else None
        with tape if tape is not None else contextlib.nullcontext():
            for t in d if tape is not None else ():
                tape.watch(t)
            if mode == "inputs":
                for i, v in zip(where, d):
                    xs[i] = v
            counted = _Counted(self.model, self.layer_obj) if tape is not None and _measuring() else None
            with F.replaced(self.layer_obj, tuple(d)) if mode == "layer" else contextlib.nullcontext(), \
                    counted if counted is not None else contextlib.nullcontext():
                out = self._run(xs, args, kwargs)
        out_np = out.numpy() if hasattr(out, "numpy") else np.asarray(out)
        if tape is None:
            return out_np, None, 0
        kept = None if counted is None or counted.bytes is None else counted.bytes + sum(a.nbytes for a in diff)
        return out_np, (tape, d, out), kept  # the tape holds the watched points too

    def pull(self, state: Any, ct: np.ndarray) -> list:
        tape, d, out = state
        grads = tape.gradient(out, d, output_gradients=tf.convert_to_tensor(ct, dtype=out.dtype))
        return [None if g is None else tf.convert_to_tensor(g).numpy() for g in grads]


def _measuring() -> bool:
    from .torch import SavedBytes

    return SavedBytes.measuring()


class _Counted:
    """Bytes of every leaf layer's output during one forward pass (``None`` when there are none).

    Leaf layers only, so a block and the layers inside it are not counted twice; the swapped
    layer is left out (its output is the path's points, which the engine counts).
    """

    def __init__(self, model: Any, skip: Any):
        flatten = getattr(model, "_flatten_layers", None)
        layers = list(flatten(include_self=False, recursive=True)) if callable(flatten) else []
        self.leaves = [m for m in layers if m is not skip
                       and not any(True for _ in m._flatten_layers(include_self=False, recursive=False))]
        self.bytes: int | None = None

    def __enter__(self) -> "_Counted":
        self.stack = contextlib.ExitStack()
        if self.leaves:
            self.bytes = 0
        for m in self.leaves:
            self.stack.enter_context(F.patched_call(m, self._counting(m.call)))
        return self

    def _counting(self, call: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            out = call(*args, **kwargs)
            for t in tf.nest.flatten(out):
                if hasattr(t, "shape") and hasattr(t, "dtype") and t.shape.num_elements() is not None:
                    self.bytes += int(t.shape.num_elements()) * t.dtype.size
            return out
        return counted

    def __exit__(self, *exc: Any) -> None:
        self.stack.close()


def _tf(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return tf.convert_to_tensor(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_tf(v) for v in value)
    if isinstance(value, dict):
        return {k: _tf(v) for k, v in value.items()}
    return value
