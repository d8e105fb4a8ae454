"""The JAX backend: a function of arrays (or a Keras 3 model on the jax backend), by ``jax.vjp``.

The model is called on blocks of path rows exactly as a PyTorch model is; each block is one
compiled (``jax.jit``) forward pass that also returns the residuals of its vector-Jacobian
product, and the backward pass applies that product, compiled too. Blocks are padded to a
power of two rows (repeating the last row), so an ``rtol`` run's varying block sizes compile
a handful of programs, not one per block. Float64 inputs run with ``jax_enable_x64`` on for
the call only.

Layers: a Keras layer of a Keras model (its ``call`` is swapped for one pass, as on
TensorFlow), or, for a plain function, ``layer=(prefix, suffix)`` with
``model(x, *args, **kw) == suffix(prefix(x, *args, **kw), *args, **kw)``.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable

import jax
import numpy as np

from . import foreign as F

name = "jax"


def native(a: np.ndarray) -> Any:
    import jax.numpy as jnp

    with jax.enable_x64(a.dtype == np.float64):
        return jnp.asarray(a)


def _bucket(n: int) -> int:
    return max(8, 1 << (n - 1).bit_length())


class Backend:
    name = "jax"

    def __init__(self, model: Any, layer: Any):
        self.model = model
        self.keras = any((k.__module__ or "").startswith("keras") for k in type(model).__mro__)
        self.split: tuple[Callable, Callable] | None = None
        self.layer_obj = None
        if layer is not None and not self.keras:
            if not (isinstance(layer, (tuple, list)) and len(layer) == 2 and all(map(callable, layer))):
                raise TypeError("layer: for a JAX function, expected (prefix, suffix), two functions with "
                                "model(x, *args) == suffix(prefix(x, *args), *args); got "
                                f"{type(layer).__name__}")
            self.split = (layer[0], layer[1])
        elif layer is not None:
            self.layer_obj = F.resolve_layer(model, layer)
            if not hasattr(self.layer_obj, "call"):
                raise TypeError(f"layer: expected a Keras layer of the model (or a function of the model returning "
                                f"one); got {type(self.layer_obj).__name__}")
        self.has_layer = layer is not None
        self.layer_name = (getattr(self.layer_obj, "name", None) or type(self.layer_obj).__name__) \
            if self.layer_obj is not None else ("prefix" if self.split else None)
        self._jitted: dict[Any, tuple[Callable, Callable]] = {}
        self.jit = True

    # ------------------------------------------------------------------ the model as a function
    def _params(self, xs: Any = None, args: tuple = (), kwargs: dict | None = None) -> Any:
        if not self.keras:
            return ()
        if xs is not None:
            F.build(self.model, lambda: self.model(xs[0] if len(xs) == 1 else list(xs), *args, **(kwargs or {})))
        return ([v.value for v in self.model.trainable_variables],
                [v.value for v in self.model.non_trainable_variables])

    def _run(self, params: Any, xs: list, args: tuple, kwargs: dict) -> Any:
        if self.keras:
            inputs = xs[0] if len(xs) == 1 else list(xs)
            out = self.model.stateless_call(params[0], params[1], inputs, *args, **kwargs)[0]
        else:
            out = self.model(*xs, *args, **kwargs)
        return F.check_output(out, "the model")

    def _suffix(self, params: Any, acts: tuple, xs: list, args: tuple, kwargs: dict) -> Any:
        if self.split is not None:
            return F.check_output(self.split[1](acts[0] if len(acts) == 1 else acts, *args, **kwargs), "suffix")
        with F.replaced(self.layer_obj, acts):
            return self._run(params, xs, args, kwargs)

    def read(self, xs: tuple, args: tuple, kwargs: dict) -> tuple:
        """The layer's output(s) on input rows (no gradient)."""
        with self._x64(xs):
            if self.split is not None:
                h = self.split[0](*xs, *args, **kwargs)
                acts = tuple(h) if isinstance(h, (tuple, list)) else (h,)
            else:
                params = self._params(xs, args, kwargs)
                acts = F.read_through(self.layer_obj, lambda: self._run(params, list(xs), args, kwargs))
            return tuple(np.asarray(a) for a in acts)

    # ------------------------------------------------------------------ bridge calls
    @staticmethod
    def _x64(arrays: Any):
        wide = any(isinstance(a, np.ndarray) and a.dtype == np.float64 for a in arrays)
        return jax.enable_x64(True) if wide else contextlib.nullcontext()

    def _programs(self, mode: str, where: tuple | None, static: Any):
        """Compiled (forward with VJP residuals, VJP application) for one call signature."""
        key = (mode, where, static)
        if key in self._jitted:
            return self._jitted[key]
        args_static, kw_static = static

        def forward(params, diff, xs, args, kwargs):
            args = _merge(args, args_static)
            kwargs = {**kwargs, **dict(kw_static)}

            def f(*d):
                if mode == "inputs":
                    full = list(xs)
                    for i, v in zip(where, d):
                        full[i] = v
                    return self._run(params, full, args, kwargs)
                return self._suffix(params, d, list(xs), args, kwargs)
            return jax.vjp(f, *diff)

        def apply(pull, ct):
            return pull(ct)

        programs = (jax.jit(forward), jax.jit(apply)) if self.jit else (forward, apply)
        self._jitted[key] = programs
        return programs

    def call(self, diff: list, rest: tuple, need_grad: bool):
        mode, xs, args, kwargs, where = rest
        rows = diff[0].shape[0]
        size = _bucket(rows) if self.jit else rows
        dyn_args, st_args = _split_args(args)
        dyn_kw, st_kw = _split_kwargs(kwargs)
        pad = lambda arrays: F.batch_first(list(arrays), rows, size)  # noqa: E731
        diff_p, xs_p = pad(diff), pad(xs)
        args_p, kw_p = tuple(pad(dyn_args)), dict(zip(dyn_kw, pad(dyn_kw.values())))
        where_key = tuple(where) if where is not None else None
        with self._x64([*diff, *xs]):
            forward, apply = self._programs(mode, where_key, (st_args, st_kw))
            params = self._params(xs, args, kwargs)
            try:
                out, pull = forward(params, diff_p, xs_p, args_p, kw_p)
            except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                    jax.errors.TracerIntegerConversionError) as err:
                if not self.jit:
                    raise
                warnings.warn(f"model: the JAX function cannot be compiled with jax.jit ({type(err).__name__}); "
                              "running it uncompiled, which is slower", stacklevel=2)
                self.jit, self._jitted = False, {}
                return self.call(diff, rest, need_grad)
        out = np.asarray(out)[:rows]
        if not need_grad:
            return out, None, 0
        leaves = jax.tree_util.tree_leaves(pull)
        nbytes = sum(int(x.nbytes) for x in leaves if getattr(x, "ndim", 0) and x.shape[0] == size) * rows // size
        return out, (apply, pull, rows, size, [*diff, *xs]), nbytes

    def pull(self, state: Any, ct: np.ndarray) -> list:
        apply, pull, rows, size, arrays = state
        if size > rows:
            ct = np.concatenate([ct, np.zeros((size - rows, *ct.shape[1:]), ct.dtype)])
        with self._x64(arrays):
            grads = apply(pull, ct)
        return [np.asarray(g)[:rows] for g in grads]


def _split_args(args: tuple) -> tuple[tuple, tuple]:
    """Arrays go to the compiled function; other values are part of its signature (static)."""
    dyn = tuple(a if isinstance(a, np.ndarray) else None for a in args)
    static = tuple((i, a) for i, a in enumerate(args) if not isinstance(a, np.ndarray))
    _hashable(static, "forward_args")
    return dyn, static


def _split_kwargs(kwargs: dict) -> tuple[dict, tuple]:
    dyn = {k: v for k, v in kwargs.items() if isinstance(v, np.ndarray)}
    static = tuple(sorted((k, v) for k, v in kwargs.items() if not isinstance(v, np.ndarray)))
    _hashable(static, "forward_kwargs")
    return dyn, static


def _merge(dyn: tuple, static: tuple) -> tuple:
    out = list(dyn)
    for i, v in static:
        out[i] = v
    return tuple(out)


def _hashable(value: Any, name: str) -> None:
    try:
        hash(value)
    except TypeError as err:
        raise TypeError(f"{name}: values that are not arrays must be hashable (they are compiled into the JAX "
                        f"program); got {err}") from None
