"""Argument checks and chunked forward passes shared by the faithfulness metrics."""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterator

import torch

from ..core import checks as C

# Elements per chunk when batch_size is None: about 32 MB of float64 inputs at a time.
_AUTO_ELEMENTS = 1 << 22


def check_tensor(x: Any, name: str, *, floating: bool = True) -> torch.Tensor:
    """A batch-first tensor with at least one example, detached; finite when floating point."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (batch, ...); got {type(x).__name__}")
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected a batch-first tensor with at least one example; got shape {C.shape(x)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating point tensor; got {x.dtype}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(1)
        raise ValueError(f"{name}: contains NaN or Inf (examples {bad.nonzero().flatten().tolist()[:10]})")
    return x.detach()


def values_of(a: Any, name: str) -> torch.Tensor:
    """Attribution values from a tensor or an :class:`~integrad.Attribution` (one input)."""
    if hasattr(a, "attributions") and hasattr(a, "delta"):
        a = a.attributions
    if isinstance(a, tuple):
        raise TypeError(f"{name}: expected one tensor of attributions; got a tuple of {len(a)} (metrics take "
                        "models of one input tensor)")
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"{name}: expected a Tensor or an integrad.Attribution; got {type(a).__name__}")
    return a


def check_attributions(a: Any, x: torch.Tensor, name: str = "attributions", *, broadcast: bool = False,
                       xname: str = "inputs") -> torch.Tensor:
    """Attributions of ``x``'s shape (or, with ``broadcast``, one that broadcasts to it per example)."""
    a = check_tensor(values_of(a, name), name)
    if a.shape == x.shape:
        return a
    if broadcast and a.dim() == x.dim() and a.shape[0] == x.shape[0] and \
            all(s in (1, t) for s, t in zip(a.shape[1:], x.shape[1:])):
        return a
    what = f"{C.shape(x)} or one broadcasting to it per example (e.g. 1 for channels)" if broadcast else C.shape(x)
    raise ValueError(f"{name}: expected shape {what}, like {xname}; got {C.shape(a)}")


def check_count(v: Any, name: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}; got {v!r}")
    return int(v)


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: expected an int >= 0; got {seed!r}")
    return int(seed)


def check_positive(v: Any, name: str, upper: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0 or \
            (upper is not None and v > upper):
        bound = f"in (0, {upper}]" if upper is not None else "> 0"
        raise ValueError(f"{name}: expected a finite number {bound}; got {v!r}")
    return float(v)


def check_callable(f: Any, name: str, signature: str) -> Callable:
    if not callable(f):
        raise TypeError(f"{name}: expected a callable {signature}; got {type(f).__name__}")
    return f


def chunks(n_rows: int, batch_size: int | None, row_elements: int) -> Iterator[torch.Tensor]:
    """Consecutive row indices in blocks of ``batch_size`` rows (automatic: ~4M elements a block)."""
    C.check_batch_size(batch_size)
    size = batch_size or max(1, _AUTO_ELEMENTS // max(1, row_elements))
    for lo in range(0, n_rows, size):
        yield torch.arange(lo, min(n_rows, lo + size))


def call_model(model: Callable, x: torch.Tensor, **kwargs: Any) -> Any:
    """``model(x, **kwargs)`` without autograd, a failure reported with the rows' shape."""
    try:
        with torch.no_grad():
            return model(x, **kwargs)
    except (RuntimeError, IndexError) as err:
        raise RuntimeError(f"model: raised on a block of {x.shape[0]} rows of shape {C.shape(x)}: "
                           f"{type(err).__name__}: {err}") from err


def scores(model: Callable, x: torch.Tensor, example: torch.Tensor, target: C.Target) -> torch.Tensor:
    """The attributed scalar per row, shape (rows,); ``example`` maps each row to its example."""
    s = target.select(call_model(model, x), example)
    if not torch.isfinite(s).all():
        raise FloatingPointError(f"model: the output is NaN or Inf on rows of examples "
                                 f"{sorted(set(example[~torch.isfinite(s)].tolist()))[:10]}")
    return s.detach()
