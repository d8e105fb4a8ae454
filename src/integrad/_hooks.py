"""Context managers that touch a user's model and always undo what they did.

Hooks exist only inside a ``with`` block and are removed on every path out of it,
exceptions included; parameter flags and train/eval modes are restored likewise.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

_RANDOM_IN_TRAINING = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm)


class ModelGuard:
    """Freeze parameters for the duration of an attribution; restore flags and modes after.

    Weight gradients are never needed for attribution, and parameters that require grad
    make autograd keep extra activations alive for them.
    """

    def __init__(self, model: Any):
        self.modules = list(model.modules()) if isinstance(model, torch.nn.Module) else []

    def __enter__(self) -> "ModelGuard":
        self.params = [(p, p.requires_grad) for m in self.modules for p in m.parameters(recurse=False)]
        self.modes = [(m, m.training) for m in self.modules]
        for p, _ in self.params:
            p.requires_grad_(False)
        if any(m.training and isinstance(m, _RANDOM_IN_TRAINING) for m in self.modules):
            warnings.warn("model is in training mode: its dropout or batch-norm layers make attributions random "
                          "and batch-dependent; call model.eval() first", stacklevel=3)
        return self

    def __exit__(self, *exc: Any) -> None:
        for p, flag in self.params:
            p.requires_grad_(flag)
        for m, mode in self.modes:
            m.training = mode


class LayerTap:
    """Read (``replace=None``) or replace a module's output during one forward pass.

    Parameters
    ----------
    layer : nn.Module
        The module whose output is attributed.
    replace : Tensor, optional
        When given, the layer's output is swapped for this tensor (of the same shape), so
        gradients flow to it instead of to the layer's own computation.
    """

    def __init__(self, layer: torch.nn.Module, replace: torch.Tensor | None = None):
        self.layer = layer
        self.replace = replace
        self.output: torch.Tensor | None = None
        self.calls = 0

    def _hook(self, module: torch.nn.Module, args: Any, output: Any) -> Any:
        self.calls += 1
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"layer: {type(module).__name__} returned {type(output).__name__}; layer IG needs a "
                            "module whose output is one tensor")
        if self.replace is None:
            self.output = output.detach()
            return None
        if output.shape != self.replace.shape:
            raise ValueError(f"layer: {type(module).__name__} output has shape {tuple(output.shape)} but the "
                             f"interpolated activations have {tuple(self.replace.shape)}; the layer must be batch "
                             "first and its output shape must not depend on the values of the input")
        return self.replace

    def __enter__(self) -> "LayerTap":
        self.handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()
        if exc[0] is None:
            name = type(self.layer).__name__
            if self.calls == 0:
                raise ValueError(f"layer: the {name} given as layer= never ran during the model's forward pass; "
                                 "pass a module the model calls")
            if self.calls > 1:
                raise ValueError(f"layer: the {name} given as layer= ran {self.calls} times in one forward pass; "
                                 "attribute to a module that runs once (e.g. not a shared/tied one)")
