"""Argument checks shared by the ground-truth models and metrics: each names the argument."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..core.checks import shape


def count(value: Any, name: str, least: int = 1, most: int | None = None) -> int:
    """``value`` as an int in ``[least, most]``; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int; got {type(value).__name__} {value!r}")
    if value < least or (most is not None and value > most):
        bound = f">= {least}" if most is None else f"in [{least}, {most}]"
        raise ValueError(f"{name}: expected an int {bound}; got {value!r}")
    return value


def positive(value: Any, name: str, zero_ok: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name}: expected a finite number {'>=' if zero_ok else '>'} 0; got {value!r}")
    return float(value)


def matrix(t: Any, name: str) -> torch.Tensor:
    """A finite floating ``(batch, features)`` tensor."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (batch, features); got {type(t).__name__}")
    if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name}: expected shape (batch, features) with both at least 1; got {shape(t)}")
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected a floating point tensor; got dtype {t.dtype}")
    if not torch.isfinite(t).all():
        rows = torch.nonzero(~torch.isfinite(t).all(1)).flatten()[:5].tolist()
        raise ValueError(f"{name}: contains NaN or Inf (rows {rows})")
    return t.detach()


def like(t: Any, ref: torch.Tensor, name: str, ref_name: str) -> torch.Tensor:
    """``t`` (a number or tensor) broadcast to ``ref``'s shape, dtype and device."""
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return torch.full_like(ref, float(t))
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a number or a torch.Tensor; got {type(t).__name__}")
    try:
        out = torch.broadcast_to(t.to(device=ref.device, dtype=ref.dtype), ref.shape)
    except RuntimeError:
        raise ValueError(f"{name}: shape {shape(t)} does not broadcast to {ref_name}'s {shape(ref)}") from None
    if not torch.isfinite(out).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return out


def generator(seed: Any) -> torch.Generator:
    """A CPU generator from an int seed (or the given generator), never the global RNG."""
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int or a torch.Generator; got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)
