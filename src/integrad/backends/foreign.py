"""JAX and TensorFlow models on the one engine: a bridge that makes them look like PyTorch.

Everything integrad computes (paths, rules, ``rtol``, chunking, targets, the path family,
the result) is written once, on PyTorch tensors. A model from another framework enters
through :func:`adapt`: its inputs, baselines and extra arguments become tensors (no copy on
the CPU), and the model becomes a :class:`ForeignModule`, an ``nn.Module`` whose forward
pass calls the framework on the same rows and whose backward pass is the framework's own
vector-Jacobian product (``jax.vjp``, ``tf.GradientTape``). A layer of the model (a Keras
layer, or a JAX function split in two) becomes a :class:`ForeignLayer` submodule, so layer
IG runs through the same hooks as on a PyTorch model.

The framework-specific parts are one file each (:mod:`.jax`, :mod:`.tensorflow`); nothing
here imports a framework, and each is imported only when a model of its kind arrives.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import torch

__all__ = ["adapt", "as_tensors", "framework_of", "ForeignModule", "ForeignLayer", "to_native"]

_ROOTS = {"jax": "jax", "jaxlib": "jax", "flax": "jax", "tensorflow": "tensorflow", "tf_keras": "tensorflow",
          "keras": "keras"}


def _root(obj: Any) -> str:
    return (type(obj).__module__ or "").split(".")[0]


def framework_of(model: Any, inputs: Any) -> str:
    """``'torch'``, ``'jax'`` or ``'tensorflow'``, from the model's and inputs' types (no imports).

    A PyTorch module (Keras 3 on its torch backend included) is ``'torch'``; a Keras 3 model
    goes where its backend is; a plain function goes where its input arrays come from.
    """
    if isinstance(model, torch.nn.Module):
        return "torch"
    kinds = {_ROOTS.get((k.__module__ or "").split(".")[0]) for k in type(model).__mro__} - {None}
    if "keras" in kinds:
        import keras

        name = keras.backend.backend()
        if name not in ("jax", "tensorflow"):
            raise TypeError(f"model: a Keras model on the {name!r} backend; integrad explains Keras on the torch, "
                            "jax and tensorflow backends")
        return name
    if kinds:
        return kinds.pop()
    for x in inputs if isinstance(inputs, (tuple, list)) else (inputs,):
        kind = _ROOTS.get(_root(x))
        if kind in ("jax", "tensorflow"):
            return kind
    return "torch"


def as_tensors(value: Any) -> Any:
    """A framework array (or numpy) as a CPU tensor; anything else unchanged."""
    if isinstance(value, torch.Tensor) or value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(as_tensors(v) for v in value)
    if isinstance(value, dict):
        return {k: as_tensors(v) for k, v in value.items()}
    if _root(value) in ("jax", "jaxlib", "tensorflow", "numpy") or isinstance(value, np.ndarray):
        a = np.asarray(value)
        if a.dtype == object:
            return value
        return torch.from_numpy(a if a.flags.writeable else a.copy())
    return value


def _numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (tuple, list)):
        return type(value)(_numpy(v) for v in value)
    if isinstance(value, dict):
        return {k: _numpy(v) for k, v in value.items()}
    return value


def _load(kind: str):
    if kind == "jax":
        from . import jax as backend
    else:
        from . import tensorflow as backend
    return backend


def adapt(model: Any, inputs: Any, *, baseline: Any, target: Any, forward_args: Any, forward_kwargs: Any,
          layer: Any, layer_input: bool, layer_baseline: Any, neuron: Any):
    """The problem in PyTorch terms: ``(kind, model, inputs, baseline, target, args, kwargs, layer,
    layer_baseline)``, unchanged for a PyTorch model."""
    kind = framework_of(model, inputs)
    if kind == "torch":
        return kind, model, inputs, baseline, target, forward_args, forward_kwargs, layer, layer_baseline
    if neuron is not None:
        raise ValueError(f"neuron: neuron targets need a PyTorch model; this one is {kind} (use layer= and a "
                         "target instead)")
    if layer_input:
        raise ValueError(f"layer_input: attributing to a layer's input needs a PyTorch model; this one is {kind}")
    module = _module(kind, model, layer)
    module.n_inputs = len(inputs) if isinstance(inputs, (tuple, list)) else 1
    return (kind, module, as_tensors(inputs), as_tensors(baseline), as_tensors(target), as_tensors(forward_args),
            as_tensors(forward_kwargs), module.layer, as_tensors(layer_baseline))


# Objects that take no attribute (a jax.jit-wrapped function, ...): their bridges, the last few
_RECENT: dict[int, tuple[Any, dict]] = {}
_RECENT_MAX = 8


def _module(kind: str, model: Any, layer: Any) -> "ForeignModule":
    """One bridge per user model and layer, so compiled functions (JAX's jit) live as long as the
    model: kept on the model itself (a cycle the garbage collector frees with it; a
    ``WeakKeyDictionary`` would keep it alive, its values holding the model)."""
    try:
        cache = vars(model).setdefault("_integrad_bridges", {})
    except TypeError:
        entry = _RECENT.pop(id(model), None)
        if entry is None or entry[0] is not model:
            entry = (model, {})
        _RECENT[id(model)] = entry
        while len(_RECENT) > _RECENT_MAX:
            _RECENT.pop(next(iter(_RECENT)))
        cache = entry[1]
    key = id(layer)
    if key not in cache or cache[key][0] is not layer:
        cache[key] = (layer, ForeignModule(_load(kind).Backend(model, layer)))
    return cache[key][1]


def to_native(value: Any, kind: str) -> Any:
    """Tensors (or a tuple of them) as the framework's arrays: ``'jax'``, ``'tensorflow'`` or ``'numpy'``."""
    if isinstance(value, tuple):
        return tuple(to_native(v, kind) for v in value)
    if value is None:
        return None
    a = value.detach().cpu().numpy()
    if kind == "numpy" or kind == "torch":
        return a if kind == "numpy" else value
    return _load(kind).native(a)


class _Call(torch.autograd.Function):
    """One call of the foreign model; its backward is the framework's vector-Jacobian product.

    ``diff`` are the tensors gradients are taken for (the float inputs, or the layer's
    swapped-in tensors); ``rest`` says what else the call gets.
    """

    @staticmethod
    def forward(ctx, backend, rest, *diff):
        need = any(ctx.needs_input_grad[2:])
        out, state, nbytes = backend.call([d.detach().cpu().numpy() for d in diff], rest, need)
        if need:
            ctx.backend, ctx.state = backend, state
            ctx.dtypes = [(d.dtype, d.device, d.shape) for d in diff]
            _report(nbytes, sum(d.nbytes for d in diff))
        return torch.from_numpy(np.array(out, copy=True))

    @staticmethod
    def backward(ctx, grad):
        grads = ctx.backend.pull(ctx.state, grad.detach().cpu().numpy())
        out = []
        for g, (dtype, device, shape) in zip(grads, ctx.dtypes):
            if g is None:
                out.append(torch.zeros(shape, dtype=dtype, device=device))
            else:
                out.append(torch.from_numpy(np.array(g, copy=True)).to(device=device, dtype=dtype))
        return (None, None, *out)


def _report(nbytes: int | None, points: int) -> None:
    """Tell the memory probe what the framework keeps for its backward pass (``None``: unknown)
    and how many bytes of points it was given."""
    from .torch import SavedBytes

    SavedBytes.report(nbytes, points)


class ForeignLayer(torch.nn.Module):
    """Stands for a layer of a foreign model: its output is the layer's output (read, no gradient).

    When the engine is about to replace that output (``replacing``, set by ``LayerTap``),
    the read is skipped: empty tensors of the shapes last read stand in, and the foreign call
    gets the path's points instead (reading first cost a partial forward pass per block).
    """

    def __init__(self, backend: Any):
        super().__init__()
        self.backend = backend
        self.foreign_name = backend.layer_name
        self.replacing = False
        self.shapes: list[tuple[tuple[int, ...], torch.dtype]] | None = None

    def forward(self, xs: tuple, args: tuple, kwargs: dict):
        if self.replacing and self.shapes is not None:
            rows = xs[0].shape[0]
            acts = tuple(torch.empty((rows, *shape), dtype=dtype) for shape, dtype in self.shapes)
        else:
            acts = self.backend.read(_numpy(xs), _numpy(args), _numpy(kwargs))
            acts = tuple(torch.from_numpy(np.array(a, copy=True)) for a in acts)
            self.shapes = [(tuple(a.shape[1:]), a.dtype) for a in acts]
        return acts[0] if len(acts) == 1 else acts


class ForeignModule(torch.nn.Module):
    """A JAX or TensorFlow model as a PyTorch module (forward in the framework, gradients by its VJP)."""

    def __init__(self, backend: Any):
        super().__init__()
        self.backend = backend
        self.framework = backend.name
        self.layer = ForeignLayer(backend) if backend.has_layer else None
        self.n_inputs = 1
        self.torch_threads = 1  # the engine's torch work beside the framework's pool (torch._Guard)

    def forward(self, *parts: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        n = self.n_inputs
        xs, args = parts[:n], parts[n:]
        if self.layer is None:
            diff = [i for i, x in enumerate(xs) if x.is_floating_point()]
            rest = ("inputs", _numpy(xs), _numpy(args), _numpy(kwargs), diff)
            return _Call.apply(self.backend, rest, *(xs[i] for i in diff))
        acts = self.layer(xs, args, kwargs)
        acts = acts if isinstance(acts, tuple) else (acts,)
        rest = ("layer", _numpy(xs), _numpy(args), _numpy(kwargs), None)
        return _Call.apply(self.backend, rest, *acts)


def check_output(out: Any, where: str) -> Any:
    """The model's output must be one array (logits or scores), batch first."""
    if isinstance(out, dict) and "logits" in out:
        return out["logits"]
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list, dict)):
        raise TypeError(f"model: {where} returned a {type(out).__name__}; integrad attributes one output array "
                        "(e.g. the logits): return it alone, or wrap the model")
    return out


def resolve_layer(model: Any, layer: Any) -> Any:
    """Alibi's convention: a layer object, or a function of the model returning one."""
    if isinstance(layer, torch.nn.Module):
        raise TypeError(f"layer: expected a layer of the {type(model).__name__} (or a function of the model "
                        f"returning one); got the PyTorch {type(layer).__name__}")
    if layer is None or hasattr(layer, "call"):
        return layer
    if callable(layer):
        return layer(model)
    return layer


class Stop(Exception):
    """Ends a forward pass once the layer's output is read."""


def build(model: Any, call: Any) -> None:
    """A Keras model not built yet (a subclassed one never called) is built by one plain call
    first: building traces it symbolically, which a swapped layer must not see."""
    if getattr(model, "built", True) is False:
        call()


@contextlib.contextmanager
def patched_call(layer: Any, call: Any) -> Iterator[None]:
    """``layer.call`` replaced for one forward pass (a Keras layer: Keras 2 and 3 both call it)."""
    had = "call" in vars(layer)
    old = vars(layer).get("call")
    vars(layer)["call"] = call
    try:
        yield
    finally:
        if had:
            vars(layer)["call"] = old
        else:
            vars(layer).pop("call", None)


def read_through(layer: Any, run: Any) -> tuple:
    """The layer's output(s) during ``run()``: its forward pass, stopped once the layer has run.

    The output is kept beside the exception, not in it: Keras re-raises exceptions from a
    layer's call as new ones with a longer message.
    """
    original, seen = layer.call, []

    def call(*args: Any, **kwargs: Any) -> Any:
        seen.append(original(*args, **kwargs))
        raise Stop("layer read")

    try:
        with patched_call(layer, call):
            run()
    except Stop:
        pass
    if not seen:
        raise ValueError(f"layer: the {type(layer).__name__} {getattr(layer, 'name', '')!r} given as layer= never "
                         "ran during the model's forward pass; pass a layer the model calls")
    value = seen[0]
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def replaced(layer: Any, acts: tuple) -> Any:
    """``layer.call`` returning ``acts`` (one array, or a tuple for a layer with several outputs)."""
    value = acts[0] if len(acts) == 1 else tuple(acts)
    return patched_call(layer, lambda *args, **kwargs: value)


def batch_first(arrays: list, rows: int, size: int) -> list:
    """Arrays with ``rows`` rows padded to ``size`` rows by repeating the last (others unchanged)."""
    out = []
    for a in arrays:
        if isinstance(a, np.ndarray) and a.ndim and a.shape[0] == rows and size > rows:
            a = np.concatenate([a, np.repeat(a[-1:], size - rows, 0)])
        out.append(a)
    return out
