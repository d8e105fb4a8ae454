"""Argument checks and normalisation: inputs, baselines, targets, extra arguments.

Every check fails early, naming the argument, what was expected and what was received,
so users never see a stack trace from deep inside torch.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import torch

_FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _per_example(t: torch.Tensor) -> str:
    """A model output's shape with its rows (interpolated points, not user examples) as 'batch'."""
    return "(" + ", ".join(["batch", *(str(s) for s in t.shape[1:])]) + ")"


def as_tensor_tuple(inputs: Any, *, integer_ok: bool) -> tuple[tuple[torch.Tensor, ...], bool]:
    """Normalise ``inputs`` to a tuple of batch-first tensors with one shared batch size."""
    was_tuple = isinstance(inputs, (tuple, list))
    xs = tuple(inputs) if was_tuple else (inputs,)
    if not xs:
        raise ValueError("inputs: expected a tensor or a non-empty tuple of tensors; got an empty tuple")
    for i, x in enumerate(xs):
        name = f"inputs[{i}]" if was_tuple else "inputs"
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor (batch first); got {type(x).__name__}")
        if x.dim() == 0:
            raise ValueError(f"{name}: expected a batch-first tensor of shape (batch, ...); got a scalar "
                             "(use x.unsqueeze(0) for a single example)")
        if x.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one example; got shape {shape(x)}")
        if x.is_complex():
            raise TypeError(f"{name}: complex dtype {x.dtype} is not supported")
        if not x.is_floating_point() and not integer_ok:
            raise TypeError(
                f"{name}: dtype {x.dtype} cannot be interpolated between baseline and input; integer "
                "inputs such as token ids need layer=<embedding module> to attribute in its output space")
        if x.is_floating_point() and x.dtype not in _FLOAT_TYPES:
            raise TypeError(f"{name}: dtype {x.dtype} is not supported; expected one of {_FLOAT_TYPES}")
        if x.device != xs[0].device:
            raise ValueError(f"{name}: on device {x.device}, but inputs[0] is on {xs[0].device}")
        if x.device.type == "meta":
            raise ValueError(f"{name}: is on the meta device (shapes only, no values); IG needs real values: "
                             "move the model and inputs to the CPU or a GPU")

    batch = xs[0].shape[0]
    for i, x in enumerate(xs[1:], 1):
        if x.shape[0] != batch:
            raise ValueError(f"inputs[{i}]: batch size {x.shape[0]} differs from inputs[0]'s {batch} "
                             f"(shapes {shape(xs[0])} and {shape(x)})")
    # the user's autograd graph stays out of the results
    return tuple(x.detach() for x in xs), was_tuple


def check_inputs_finite(xs: tuple[torch.Tensor, ...], was_tuple: bool) -> None:
    """Refuse NaN or Inf in the inputs, naming the examples."""
    for i, x in enumerate(xs):
        if x.is_floating_point() and not torch.isfinite(x).all():
            name = f"inputs[{i}]" if was_tuple else "inputs"
            bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(1)
            raise ValueError(f"{name}: contains NaN or Inf (examples {bad.nonzero().flatten().tolist()[:10]}); "
                             "IG needs finite inputs")


def broadcast_baselines(baseline: Any, xs: tuple[torch.Tensor, ...], was_tuple: bool) -> tuple[torch.Tensor, ...]:
    """One baseline tensor per input, with the input's full shape, dtype and device."""
    if isinstance(baseline, (tuple, list)):
        if len(baseline) != len(xs):
            raise ValueError(f"baseline: a tuple of {len(baseline)} baselines was given for {len(xs)} inputs; "
                             "expected one per input (or a single scalar/tensor for all)")
        parts = tuple(baseline)
    else:
        parts = (baseline,) * len(xs)
    out = []
    for i, (b, x) in enumerate(zip(parts, xs)):
        name = f"baseline[{i}]" if isinstance(baseline, (tuple, list)) else "baseline"
        out.append(one_baseline(b, x, name, f"inputs[{i}]" if was_tuple else "inputs"))
    return tuple(out)


def one_baseline(b: Any, x: torch.Tensor, name: str, xname: str) -> torch.Tensor:
    if isinstance(b, bool) or not isinstance(b, (numbers.Real, torch.Tensor)):
        raise TypeError(f"{name}: expected a number, a tensor or a tuple of them; got {type(b).__name__}")
    if isinstance(b, numbers.Real):
        if not math.isfinite(b):
            raise ValueError(f"{name}: expected a finite number; got {b}")
        if not x.is_floating_point() and b != int(b):
            raise ValueError(f"{name}: {xname} holds integers ({x.dtype}), so the baseline must be an "
                             f"integer (e.g. a PAD token id); got {b}")
        return torch.full_like(x, b)
    if b.is_floating_point() and not torch.isfinite(b).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    if not x.is_floating_point() and b.is_floating_point():
        raise TypeError(f"{name}: {xname} holds integers ({x.dtype}) but the baseline is {b.dtype}; "
                        "pass integer ids (e.g. PAD tokens) of the input's shape")
    b = b.detach().to(device=x.device, dtype=x.dtype)
    # Broadcasting covers a baseline for one example (the input's per-example shape) and one
    # for the whole batch alike.
    try:
        return b.expand(x.shape)
    except RuntimeError:
        raise ValueError(f"{name}: shape {shape(b)} does not broadcast to one example {tuple(x.shape[1:])} "
                         f"nor to the batch {tuple(x.shape)} of {xname}") from None


def check_model(model: Any) -> None:
    if not callable(model):
        raise TypeError(f"model: expected an nn.Module or a callable on tensors; got {type(model).__name__}")


def check_batch_size(batch_size: Any) -> None:
    if batch_size is None:
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected None (automatic) or an int >= 1; got {batch_size!r}")


def output_tensor(out: Any, rows: int) -> torch.Tensor:
    """The model's output as a tensor of shape (rows, ...)."""
    if not isinstance(out, torch.Tensor):
        logits = getattr(out, "logits", None)
        if logits is None and isinstance(out, dict):
            logits = out.get("logits")
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"model output: expected a Tensor of shape (batch,) or (batch, classes), or an "
                            f"object with .logits; got {type(out).__name__} (pass target=<callable> to pick "
                            "a scalar from it)")
        out = logits
    if out.dim() == 0 or out.shape[0] != rows:
        raise ValueError(f"model output: expected a batch-first tensor with {rows} rows for {rows} input rows; "
                         f"got shape {shape(out)}")
    return out


class Target:
    """Picks one scalar per row from the model output, for any kind of ``target=``.

    ``None`` (outputs with one value per example), an int or a tuple of ints (one index into
    each example's output, the same for all), a list or tensor of them (one per example), or
    a callable on the output (Captum's conventions: a tuple is one index, a list is per example).
    """

    def __init__(self, target: Any, batch: int, device: torch.device, head: Callable | None = None,
                 name: str = "target"):
        self.raw, self.name = target, name
        if head is not None and not callable(head):
            raise TypeError(f"head: expected a callable applied to the model output (e.g. lambda out: "
                            f"out.softmax(-1)); got {type(head).__name__}")
        self.head = head
        self.per_example: torch.Tensor | None = None  # (batch, depth) indices
        self.index: tuple[int, ...] | None = None
        self.fn: Callable | None = None
        if target is None:
            return
        if isinstance(target, torch.Tensor) and target.dim() == 0 and not target.is_floating_point() \
                and target.dtype != torch.bool:
            target = int(target)
        if callable(target):
            self.fn = target
        elif _is_int(target):
            self.index = (int(target),)
        elif isinstance(target, tuple) and target and all(_is_int(t) for t in target):
            self.index = tuple(int(t) for t in target)
        elif isinstance(target, (Sequence, torch.Tensor)) and not isinstance(target, (str, tuple)):
            try:
                t = torch.as_tensor(target)
            except (TypeError, ValueError):
                raise ValueError(f"{name}: expected one index (an int or a tuple of ints) per example; got "
                                 f"{target!r}") from None
            if t.dim() not in (1, 2) or t.shape[0] != batch or t.is_floating_point() or t.dtype == torch.bool:
                raise ValueError(f"{name}: expected one integer class per example, shape ({batch},); got "
                                 f"{t.dtype} of shape {shape(t)} (or one tuple of ints per example, shape "
                                 f"({batch}, depth))")
            if t.dim() == 1:
                t = t[:, None]
            self.per_example = t.to(device=device, dtype=torch.long)
        else:
            raise TypeError(f"{name}: expected None, an int, a tuple of ints, a list of {batch} of them or a "
                            f"callable; got {type(target).__name__}")

    def describe(self) -> Any:
        if self.fn is not None:
            return getattr(self.fn, "__name__", "callable")
        if self.per_example is not None:
            t = self.per_example
            return t[:, 0].tolist() if t.shape[1] == 1 else [tuple(r) for r in t.tolist()]
        if self.index is not None:
            return self.index[0] if len(self.index) == 1 else list(self.index)
        return None

    def apply_head(self, raw_out: Any, rows: int) -> Any:
        if self.head is None:
            return raw_out
        out = self.head(output_tensor(raw_out, rows))
        if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != rows:
            got = shape(out) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"head: must return a batch-first tensor with {rows} rows; got {got}")
        return out

    def select(self, raw_out: Any, example: torch.Tensor, headed: bool = False) -> torch.Tensor:
        """Scalar per row, shape (rows,); ``example`` maps each row to its example."""
        rows = example.shape[0]
        if not headed:
            raw_out = self.apply_head(raw_out, rows)
        if self.fn is not None:
            arg = raw_out
            try:
                arg = output_tensor(raw_out, rows)
            except (TypeError, ValueError):
                pass  # the callable gets the raw output when it is no plain tensor
            s = self.fn(arg)
            if not isinstance(s, torch.Tensor) or s.shape != (rows,):
                got = shape(s) if isinstance(s, torch.Tensor) else type(s).__name__
                raise ValueError(f"{self.name}: the callable must return one scalar per row, shape ({rows},); "
                                 f"got {got}")
            return s
        out = output_tensor(raw_out, rows)
        if self.index is None and self.per_example is None:
            if out[0].numel() == 1:
                return out.reshape(rows)
            raise ValueError(f"{self.name}: the model output has shape {_per_example(out)}; with target=None it "
                             "must hold one value per example, e.g. (batch,) or (batch, 1). Pass target=<class "
                             "index>, one per example, or a callable")
        depth = len(self.index) if self.index is not None else self.per_example.shape[1]
        if out.dim() != depth + 1:
            what = "an integer target" if depth == 1 else f"a target of {depth} indices"
            raise ValueError(f"{self.name}: {what} needs a model output of shape (batch, {_dims(depth)}); got "
                             f"{_per_example(out)} (pass a callable target for other shapes)")
        sizes = out.shape[1:]
        if self.index is not None:
            if depth == 1 and not 0 <= self.index[0] < sizes[0]:
                raise ValueError(f"{self.name}: class index {self.index[0]} is out of range for an output with "
                                 f"{sizes[0]} classes (valid: 0..{sizes[0] - 1})")
            for i, n in zip(self.index, sizes):
                if not 0 <= i < n:
                    raise ValueError(f"{self.name}: index {self.describe()} is out of range for an output of "
                                     f"shape {_per_example(out)} (valid: 0..{n - 1} in that dimension)")
            return out[(slice(None), *self.index)]
        bad = ((self.per_example < 0) | (self.per_example >= torch.tensor(sizes, device=out.device))).any(1)
        if bad.any():
            i = int(bad.nonzero()[0])
            got = self.per_example[i].tolist()
            raise ValueError(f"{self.name}: {self.name}[{i}] = {got[0] if depth == 1 else tuple(got)} is out of "
                             f"range for an output of shape {_per_example(out)}")
        idx = self.per_example.index_select(0, example.to(self.per_example.device))
        return out[(torch.arange(rows, device=out.device), *idx.to(out.device).unbind(1))]


class Targets:
    """Several targets from one forward pass: ``select`` gives shape (rows, k) (or (rows,) for one).

    ``targets="all"`` becomes every class of a ``(batch, classes)`` output at the first call.
    """

    def __init__(self, target: Any, targets: Any, batch: int, device: torch.device, head: Callable | None = None):
        self.many = targets is not None
        if self.many and target is not None:
            raise ValueError("targets: given together with target=; pass one of them (targets=[c1, c2, ...] "
                             "explains several outputs of every example, target= one per example)")
        self.all = isinstance(targets, str)
        if self.all and targets != "all":
            raise ValueError(f"targets: expected a list of targets or 'all'; got {targets!r}")
        if self.many and not self.all:
            if not isinstance(targets, (list, tuple, range, torch.Tensor)) or len(targets) == 0:
                raise TypeError(f"targets: expected a non-empty list of targets (ints, tuples or callables) or "
                                f"'all'; got {targets!r}")
            items = targets.tolist() if isinstance(targets, torch.Tensor) else list(targets)
            self.items = [Target(t if not isinstance(t, list) else tuple(t), batch, device, head,
                                 name=f"targets[{i}]") for i, t in enumerate(items)]
            for i, t in enumerate(self.items):
                if t.per_example is not None:
                    raise ValueError(f"targets[{i}]: each entry is one output for all examples (an int, a tuple "
                                     "or a callable), not one per example")
        elif not self.many:
            self.items = [Target(target, batch, device, head)]
        self.head, self.batch, self.device = head, batch, device

    @property
    def k(self) -> int:
        return len(self.items)

    def resolve(self, raw_out: Any, rows: int) -> None:
        """Expand ``targets='all'`` from one output."""
        if self.all and not hasattr(self, "items"):
            out = output_tensor(Target(None, self.batch, self.device, self.head).apply_head(raw_out, rows), rows)
            if out.dim() != 2:
                raise ValueError(f"targets: 'all' needs a model output of shape (batch, classes); got "
                                 f"{_per_example(out)}; pass a list of targets")
            self.items = [Target(c, self.batch, self.device, self.head, name=f"targets[{c}]")
                          for c in range(out.shape[1])]

    def describe(self) -> Any:
        if not self.many:
            return self.items[0].describe()
        return [t.describe() for t in self.items]

    def select(self, raw_out: Any, example: torch.Tensor) -> torch.Tensor:
        """``(rows, k)`` for ``targets=``; ``(rows,)``, no target axis, for one target."""
        rows = example.shape[0]
        if not self.many:
            return self.items[0].select(raw_out, example)
        self.resolve(raw_out, rows)
        headed = self.items[0].apply_head(raw_out, rows)
        return torch.stack([t.select(headed, example, headed=True) for t in self.items], 1)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _dims(depth: int) -> str:
    return ", ".join(["classes"] if depth == 1 else [f"d{i + 1}" for i in range(depth)])


def expand_forward_args(args: tuple, kwargs: dict, batch: int, example: torch.Tensor) -> tuple[tuple, dict]:
    """Gather batch-first tensors among the extra arguments so they follow the interpolated rows."""

    def take(a: Any) -> Any:
        if isinstance(a, torch.Tensor) and a.dim() > 0 and a.shape[0] == batch:
            return a.index_select(0, example.to(a.device))
        return a

    return tuple(take(a) for a in args), {k: take(v) for k, v in kwargs.items()}


def check_finite(t: torch.Tensor, what: str, example: torch.Tensor) -> None:
    if t.is_floating_point() and not torch.isfinite(t).all():
        bad = ~torch.isfinite(t.reshape(t.shape[0], -1)).all(1) if t.dim() else torch.ones(1, dtype=torch.bool)
        ex = sorted(set(example[bad].tolist())) if t.dim() else []
        raise FloatingPointError(f"{what} contains NaN or Inf (examples {ex[:10]}); check the model and inputs, "
                                 "or use float64")
