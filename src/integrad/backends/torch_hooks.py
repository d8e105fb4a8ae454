"""Context managers that touch a user's PyTorch model and always undo what they did.

Hooks exist only inside a ``with`` block and are removed on every path out of it,
exceptions included; parameter flags and train/eval modes are restored likewise.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch

_RANDOM_IN_TRAINING = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm)


class ModelGuard:
    """Freeze parameters for the duration of an attribution; restore flags and modes after.

    Weight gradients are never needed for attribution, and parameters that require grad
    make autograd keep extra activations alive for them. Dropout and batch-norm modules in
    training mode run in eval mode for the duration (with a warning): in training mode they
    make attributions random and batch-dependent, and batch norm would update its running
    statistics with every interpolated point, changing the model.
    """

    def __init__(self, model: Any):
        self.modules = list(model.modules()) if isinstance(model, torch.nn.Module) else []

    def __enter__(self) -> "ModelGuard":
        self.params = [(p, p.requires_grad) for m in self.modules for p in m.parameters(recurse=False)]
        self.modes = [(m, m.training) for m in self.modules]
        for p, _ in self.params:
            p.requires_grad_(False)
        random = [m for m in self.modules if m.training and isinstance(m, _RANDOM_IN_TRAINING)]
        if random:
            warnings.warn(f"model is in training mode: its {len(random)} dropout or batch-norm layer(s) would make "
                          "attributions random and batch-dependent (and batch norm would update its running "
                          "statistics), so they run in eval mode here and are restored after; call model.eval() "
                          "to silence this", stacklevel=4)
            for m in random:
                m.training = False
        return self

    def __exit__(self, *exc: Any) -> None:
        for p, flag in self.params:
            p.requires_grad_(flag)
        for m, mode in self.modes:
            m.training = mode


def _floats(value: Any) -> list[int]:
    """Positions of the floating-point tensors in a module's output (or argument tuple)."""
    if isinstance(value, torch.Tensor):
        return [0] if value.is_floating_point() else []
    if isinstance(value, (tuple, list)):
        return [i for i, v in enumerate(value) if isinstance(v, torch.Tensor) and v.is_floating_point()]
    return []


class Layers:
    """Where a layer path runs: the modules, their outputs (or inputs), as one flat tuple of tensors.

    A module may return a tensor or a tuple of tensors; with ``use_input`` the tensors among
    its positional arguments are used. The path space is every floating-point tensor of every
    module, in order; ``counts`` says how many belong to each module.
    """

    def __init__(self, layers: torch.nn.Module | Sequence[torch.nn.Module], use_input: bool = False):
        many = isinstance(layers, (list, tuple))
        self.modules = list(layers) if many else [layers]
        self.many, self.use_input = many, use_input
        if not self.modules:
            raise ValueError("layer: expected a module or a non-empty list of modules; got an empty list")
        for i, m in enumerate(self.modules):
            if not isinstance(m, torch.nn.Module):
                raise TypeError(f"layer{f'[{i}]' if many else ''}: expected a torch.nn.Module inside the model "
                                f"(e.g. model.embeddings); got {type(m).__name__}")
        if len(set(map(id, self.modules))) != len(self.modules):
            raise ValueError("layer: the same module appears twice in the list")
        self.counts: list[int] | None = None


class LayerTap:
    """Read (``replace=None``) or replace the layers' tensors during one forward pass.

    Parameters
    ----------
    layers : Layers
    replace : tuple of Tensor, optional
        When given, the layers' tensors are swapped for these (same shapes, in the order of
        ``Layers``), so gradients flow to them instead of to the layers' own computation. A
        copy is handed on, so that an in-place operation after the layer (``ReLU(inplace=True)``)
        does not write into the leaf that gradients are taken for.
    keep_graph : bool
        When reading, keep the tensors attached to the graph (for a neuron target).
    """

    def __init__(self, layers: Layers, replace: tuple[torch.Tensor, ...] | None = None, keep_graph: bool = False):
        self.layers, self.replace, self.keep_graph = layers, replace, keep_graph
        self.read: list[tuple[torch.Tensor, ...] | None] = [None] * len(layers.modules)
        self.calls = [0] * len(layers.modules)

    def _name(self, i: int) -> str:
        return f"layer{f'[{i}]' if self.layers.many else ''}"

    def _swap(self, i: int, module: torch.nn.Module, value: Any) -> Any:
        self.calls[i] += 1
        pos = _floats(value)
        what = "input" if self.layers.use_input else "output"
        if not pos:
            raise TypeError(f"{self._name(i)}: {type(module).__name__} {what} is {type(value).__name__} with no "
                            "floating-point tensor; layer IG needs a module whose "
                            f"{what} is a tensor or a tuple of tensors (e.g. the embedding, not the ids)")
        items = [value] if isinstance(value, torch.Tensor) else list(value)
        if self.replace is None:
            # a copy: an in-place operation after the layer (ReLU(inplace=True)) would change it
            self.read[i] = tuple(items[p] if self.keep_graph else items[p].detach().clone() for p in pos)
            return None
        counts = self.layers.counts
        if counts is None or counts[i] != len(pos):
            raise ValueError(f"{self._name(i)}: {type(module).__name__} {what} has {len(pos)} floating-point "
                             f"tensors now but had {None if counts is None else counts[i]} when it was read")
        start = sum(counts[:i])
        new = self.replace[start:start + len(pos)]
        for p, z in zip(pos, new):
            if items[p].shape != z.shape:
                raise ValueError(f"{self._name(i)}: {type(module).__name__} {what} has shape {tuple(items[p].shape)} "
                                 f"but the interpolated activations have {tuple(z.shape)}; the layer must be batch "
                                 "first and its shape must not depend on the values of the input")
            items[p] = z.clone() if z.requires_grad else z
        if isinstance(value, torch.Tensor):
            return items[0]
        return type(value)(items) if isinstance(value, tuple) else items

    def __enter__(self) -> "LayerTap":
        self.handles = []
        if self.replace is not None:  # a module that can skip computing what is replaced is told so
            for m in self.layers.modules:
                if hasattr(m, "replacing"):
                    m.replacing = True
        for i, m in enumerate(self.layers.modules):
            if self.layers.use_input:
                def pre(module, args, i=i):
                    out = self._swap(i, module, tuple(args))
                    return None if out is None else tuple(out)
                self.handles.append(m.register_forward_pre_hook(pre))
            else:
                self.handles.append(m.register_forward_hook(lambda module, args, out, i=i: self._swap(i, module, out)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()
        for m in self.layers.modules:
            if hasattr(m, "replacing"):
                m.replacing = False
        if exc[0] is None:
            for i, (m, calls) in enumerate(zip(self.layers.modules, self.calls)):
                name = type(m).__name__
                if calls == 0:
                    raise ValueError(f"{self._name(i)}: the {name} given as layer= never ran during the model's "
                                     "forward pass; pass a module the model calls")
                if calls > 1:
                    raise ValueError(f"{self._name(i)}: the {name} given as layer= ran {calls} times in one forward "
                                     "pass; attribute to a module that runs once (e.g. not a shared/tied one)")
            if self.replace is None:
                self.layers.counts = [len(r) for r in self.read]

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The tensors read, in the order of the modules given (not the order they ran)."""
        return tuple(t for r in self.read if r is not None for t in r)


class Stop(Exception):
    """Raised from a hook to end a forward pass once the neuron's value is known."""


class NeuronTap:
    """Capture one module's output (with its graph) and stop the forward pass there."""

    def __init__(self, module: torch.nn.Module):
        self.module, self.output = module, None

    def __enter__(self) -> "NeuronTap":
        def hook(module, args, out):
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"neuron: {type(module).__name__} returned {type(out).__name__}; a neuron target "
                                "needs a module whose output is one tensor")
            self.output = out
            raise Stop

        self.handle = self.module.register_forward_hook(hook)
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.handle.remove()
        if exc[0] is Stop:
            return True
        if exc[0] is None and self.output is None:
            raise ValueError(f"neuron: the {type(self.module).__name__} given never ran during the model's forward "
                             "pass; pass a module the model calls")
        return False
