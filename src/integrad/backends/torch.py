"""The PyTorch backend: gradients of the target at arbitrary points, for arbitrary rows.

This is the one primitive every method is built on. :class:`TorchModel` holds the model,
the inputs, the target(s) and the extra arguments; ``gradients(zs, example)`` evaluates the
target at points ``zs`` (in input space, or in a layer's activation space) whose rows belong
to the examples ``example``, and returns its values and gradients. Targets and batch-first
extra arguments follow ``example``; the layer's tensors are swapped in by hooks that live
only for one call; the first block of an automatically chunked run is measured, and the
bytes autograd saves per row set the block size for the rest (``rows``).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from typing import Any

import torch

from ..core import checks as C
from ..core.chunking import PROBE_BYTES, PROBE_ROWS, SMALL_BYTES, foreign_rows, rows_for
from .torch_hooks import Layers, LayerTap, ModelGuard, NeuronTap

# models (weakly held) and the input signatures whose rows were found not to interact
_INDEPENDENT: "weakref.WeakKeyDictionary[Any, set]" = weakref.WeakKeyDictionary()

__all__ = ["TorchModel", "SavedBytes", "as_dtype"]

# Several targets: the vectorised backward is tried (against one pass per target) only where
# k times the block's saved activations stay under this, so the trial cannot set the peak.
_TRIAL_BYTES = 64 << 20
_TRIAL_BLOCKS = 4


def as_dtype(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype``, without a call when it already is (small models feel every call)."""
    return t if t.dtype == dtype else t.to(dtype)


class SavedBytes(torch.autograd.graph.saved_tensors_hooks):
    """Counts the distinct bytes autograd saves for backward (parameters excluded)."""

    _active: list["SavedBytes"] = []

    def __init__(self, exclude: set[int]):
        self.bytes, self.seen = 0, set(exclude)
        self.unknown = False  # a foreign framework's backward state that it cannot size
        self.points = 0  # bytes of points handed to a foreign framework (each is copied there and back)
        super().__init__(self._pack, lambda t: t)

    def __enter__(self) -> "SavedBytes":
        SavedBytes._active.append(self)
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        SavedBytes._active.remove(self)
        super().__exit__(*exc)

    @classmethod
    def measuring(cls) -> bool:
        """Whether a block is being measured now (a foreign backend then sizes what it keeps)."""
        return bool(cls._active)

    @classmethod
    def report(cls, nbytes: int | None, points: int = 0) -> None:
        """Bytes kept outside autograd for a backward pass (a JAX or TensorFlow call; ``None``:
        unknown) and the bytes of the points it was given."""
        for s in cls._active:
            s.points += points
            if nbytes is None:
                s.unknown = True
            else:
                s.bytes += nbytes

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in self.seen:
            self.seen.add(storage.data_ptr())
            self.bytes += storage.nbytes()
        return t


class TorchModel:
    """A model, its inputs and what to attribute, as gradients at points.

    Parameters
    ----------
    model : callable
    xs : tuple of Tensor, shapes ``(batch, ...)``
        The user's inputs; with ``layers`` they are fed unchanged while the layers' tensors
        are swapped.
    targets : checks.Targets
    fwd_args, fwd_kwargs
        Extra model arguments; batch-first tensors follow the rows' examples.
    layers : Layers, optional
        The path runs in these layers' activation space.
    neuron : (module, selector), optional
        The attributed scalar is a unit (or a slice, summed) of this module's output instead
        of the model output; the forward pass stops there.
    """

    def __init__(self, model: Any, xs: tuple[torch.Tensor, ...], targets: C.Targets, fwd_args: tuple = (),
                 fwd_kwargs: dict | None = None, layers: Layers | None = None, neuron: tuple | None = None):
        self.model, self.xs, self.targets, self.layers = model, xs, targets, layers
        self.fwd_args, self.fwd_kwargs = fwd_args, dict(fwd_kwargs or {})
        self.batch = xs[0].shape[0]
        self.device = xs[0].device
        self.neuron = _neuron(neuron) if neuron is not None else None
        self.rows, self.measure, self.max_memory, self.total_rows = 1, False, None, 0
        self.model_dtype = xs[0].dtype
        self.dtype = xs[0].dtype
        self.origin: torch.Tensor | None = None  # copies: the user's example of each
        self.fwd_batch = self.batch
        self.batched: bool | None = None  # several targets: vectorised backward or one per target
        self._saved: SavedBytes | None = None

    def copies(self, origin: torch.Tensor) -> "TorchModel":
        """The same problem on copies of the examples (``origin[c]`` is copy ``c``'s example).

        Targets and extra arguments follow each copy's example, so a method wrapped around
        another (SmoothGrad, several baselines) runs the inner one unchanged on the copies.
        """
        new = TorchModel.__new__(TorchModel)
        new.__dict__.update(self.__dict__)
        base = origin if self.origin is None else self.origin.index_select(0, origin)
        new.xs = tuple(x.index_select(0, origin) for x in self.xs)
        new.batch, new.origin = origin.shape[0], base
        return new

    def _user(self, example: torch.Tensor) -> torch.Tensor:
        return example if self.origin is None else self.origin.index_select(0, example)

    def guard(self) -> "_Guard":
        """Parameters frozen and modes kept for the duration; autograd on."""
        if torch.is_inference_mode_enabled():
            raise RuntimeError("integrad needs autograd, but torch.inference_mode() is active; call it outside "
                               "that block")
        return _Guard(self.model)

    def set_dtype(self, model_dtype: torch.dtype) -> None:
        """The model's dtype in path space; accumulation is float32 for half precision."""
        self.model_dtype = model_dtype
        self.dtype = torch.float32 if model_dtype in (torch.float16, torch.bfloat16) else model_dtype
        if not self.dtype.is_floating_point:
            raise TypeError(f"layer: output dtype {model_dtype} is not floating point; choose a layer whose output "
                            "can be differentiated (e.g. the embedding, not the ids)")

    @property
    def k(self) -> int:
        return self.targets.k

    # ------------------------------------------------------------------ forward only
    def _forward(self, parts, example, replace=None, read=False, keep_graph=False):
        if self.fwd_args or self.fwd_kwargs:
            args, kwargs = C.expand_forward_args(self.fwd_args, self.fwd_kwargs, self.fwd_batch, self._user(example))
        else:
            args, kwargs = (), {}
        if self.layers is None and self.neuron is None:  # the plain case, without hooks
            try:
                return self.model(*parts, *args, **kwargs), None
            except (RuntimeError, IndexError) as err:
                raise self._failed(err, example.shape[0]) from err
        tap = None
        with contextlib.ExitStack() as stack:
            if self.layers is not None and (replace is not None or read):
                tap = stack.enter_context(LayerTap(self.layers, replace=replace))
                if replace is not None:
                    parts = tuple(x.index_select(0, example) for x in self.xs)
            if self.neuron is not None:
                ntap = stack.enter_context(NeuronTap(self.neuron[0]))
            try:
                out = self.model(*parts, *args, **kwargs)
            except (RuntimeError, IndexError) as err:
                raise self._failed(err, example.shape[0]) from err
        if self.neuron is not None:
            out = ntap.output
        return out, tap

    def _failed(self, err: Exception, rows: int) -> Exception:
        """The model's own error (same type), with what it was given in the user's terms."""
        shapes = ", ".join("(" + ", ".join(["batch", *map(str, x.shape[1:])]) + ")" for x in self.xs)
        hint = ""
        params = [p for p in self.model.parameters() if p.is_floating_point()] \
            if isinstance(self.model, torch.nn.Module) else []
        if params and self.layers is None and any(x.is_floating_point() and x.dtype != params[0].dtype
                                                  for x in self.xs):
            got = ", ".join(sorted({str(x.dtype).replace("torch.", "") for x in self.xs}))
            hint = (f" (the inputs are {got} but the model's parameters are "
                    f"{str(params[0].dtype).replace('torch.', '')}: convert one of them)")
        if "in-place operation" in str(err) and "leaf Variable" in str(err):
            hint = (" (the model changes its input in place, e.g. x.relu_() or a first ReLU(inplace=True); "
                    "integrad differentiates with respect to that input: make that first operation out of place)")
        if isinstance(err, IndexError) and self.layers is not None:
            hint = " (with layer=, the baseline is in input space: check that baseline token ids are in the vocabulary)"
        return type(err)(f"model: raised on a block of {rows} interpolated rows (your inputs: {shapes} with "
                         f"batch = {self.fwd_batch}; each row is one point of one example's path){hint}: {err}")

    def check_rows_independent(self, first: tuple[torch.Tensor, ...], other: tuple[torch.Tensor, ...],
                               examples: tuple[int, int]) -> None:
        """Refuse a model whose output for one row depends on the other rows of its batch.

        integrad puts many path points of many examples in one batch, so such a model (batch
        statistics, ``x - x.mean(0)``, ...) would give attributions that depend on how rows are
        grouped, with a perfect-looking completeness gap. One row is evaluated alone and next
        to ``other`` (two no-grad forward passes of one and two rows), once per model and
        input signature: explaining row after row does not repeat it.
        """
        key = (tuple((tuple(x.shape[1:]), x.dtype) for x in first), len(self.fwd_args), tuple(self.fwd_kwargs),
               self.layers is not None, self.neuron is not None)
        try:
            seen = _INDEPENDENT.setdefault(self.model, set())
        except TypeError:  # not weakly referable: check every time
            seen = set()
        if key in seen:
            return
        e = torch.tensor(examples, device=first[0].device)
        with torch.no_grad():
            alone = self._select(self._forward(first, e[:1])[0], e[:1]).double()
            pair = self._select(self._forward(tuple(torch.cat([a, b]) for a, b in zip(first, other)), e)[0], e)
        pair = pair[:1].double()
        if not (bool(torch.isfinite(alone).all()) and bool(torch.isfinite(pair).all())):
            return  # a NaN or Inf output gets its own, clearer error later
        tol = 1e-9 if self.dtype == torch.float64 else 1e-4
        if not torch.allclose(alone, pair, rtol=tol, atol=tol * max(1.0, float(alone.abs().max()))):
            raise ValueError(
                f"model: rows of a batch interact — the output for example {examples[0]} is "
                f"{alone.flatten()[0].item():.6g} alone but {pair.flatten()[0].item():.6g} in a batch with another "
                "row (batch statistics such as BatchNorm in training mode, x - x.mean(0), attention across the "
                "batch, ...). integrad evaluates many path points in one batch, so the attributions would depend "
                "on the grouping; make the model treat rows independently (e.g. model.eval())")
        seen.add(key)

    def _select(self, out, example) -> torch.Tensor:
        if self.neuron is None:
            return self.targets.select(out, self._user(example))
        return self.neuron[1](out, example.shape[0])

    def scan(self, parts: tuple[torch.Tensor, ...] | None, example: torch.Tensor, rows: int,
             replace: tuple[torch.Tensor, ...] | None = None):
        """No-grad forward in blocks: target values ``(N, k)`` and, with layers, their tensors.

        ``parts`` are input-space rows for ``example``; or ``replace`` gives layer tensors to
        swap in (the inputs are then the examples' own).
        """
        values, acts = [], []
        with torch.no_grad():
            for lo in range(0, example.shape[0], rows):
                e = example[lo:lo + rows]
                swap = None if replace is None else tuple(t[lo:lo + rows] for t in replace)
                part = None if parts is None else tuple(t[lo:lo + rows] for t in parts)
                out, tap = self._forward(part, e, replace=swap, read=replace is None)
                if tap is not None and swap is None:
                    for t in tap.tensors:
                        if t.dim() == 0 or t.shape[0] != e.shape[0]:
                            raise ValueError(f"layer: tensor of shape {C.shape(t)} is not batch first for "
                                             f"{e.shape[0]} input rows; layer IG needs a batch-first layer")
                    acts.append(tap.tensors)
                s = self._select(out, e)
                C.check_finite(s, "model output", e)
                values.append(s)
        act = tuple(torch.cat(parts) for parts in zip(*acts)) if acts else None
        return torch.cat(values), act

    # ------------------------------------------------------------------ gradients
    def plan(self, batch_size: int | None, max_memory: int | None, total_rows: int, row_bytes: int) -> None:
        """Rows per block: given, or a probe block's worth until the probe is measured."""
        self.max_memory = max_memory
        if batch_size:
            self.rows = batch_size
        elif total_rows * row_bytes <= SMALL_BYTES and max_memory is None:
            self.rows = total_rows
        else:
            self.rows = max(1, min(total_rows, PROBE_ROWS, PROBE_BYTES // max(row_bytes, 1)))
        self.measure = batch_size is None and self.rows < total_rows
        self.total_rows = total_rows

    def _exclude(self) -> set[int]:
        """Storages that are no per-row cost (parameters, buffers), for the memory probe."""
        mods = self.model.modules() if isinstance(self.model, torch.nn.Module) else ()
        return {t.untyped_storage().data_ptr() for m in mods
                for t in (*m.parameters(recurse=False), *m.buffers(recurse=False))}

    def gradients(self, zs: tuple[torch.Tensor, ...], example: torch.Tensor, check: bool = True):
        """Values ``(N, k)`` and gradients ``(N, k, *features_i)`` of the targets at points ``zs``.

        With one target (no ``targets=``) there is no target axis: ``(N,)`` and
        ``(N, *features_i)`` (small models feel every extra op); ``evaluate`` always has it.
        """
        trial = self.targets.many and self.batched is None  # several targets: which backward is faster
        if self.measure or trial:
            self._saved = SavedBytes(self._exclude())
            with self._saved:
                out = self._gradients(zs, example, check)
            if self.measure:
                # vectorised over k targets, the backward pass holds k gradients of every activation
                scale = self.k if self.batched else 1
                if not self._saved.unknown:  # else the probe's block size stays
                    self.rows = rows_for(self._saved.bytes * scale / example.shape[0], self.max_memory)
                if self._saved.points:
                    self.rows = min(self.rows, foreign_rows(self._saved.points / example.shape[0]))
                self.measure = False
            self._saved = None
            return out
        return self._gradients(zs, example, check)

    def _gradients(self, zs, example, check=True):
        zs = tuple(as_dtype(z, self.model_dtype).requires_grad_(True) for z in zs)
        if self.layers is None:
            out, _ = self._forward(zs, example)
        else:
            out, _ = self._forward(None, example, replace=zs)
        s = self._select(out, example)
        if check:
            C.check_finite(s, "model output", example)
        if not s.requires_grad:
            raise ValueError("model output does not depend on the inputs through differentiable operations "
                             f"(no gradient){' at the layer' if self.layers is not None else ''}; check that "
                             "the model does not detach, round or index with its inputs")
        if s.dim() == 2 and self.batched is None:
            # the vectorised trial holds k gradients of every activation at once: only where small,
            # and only where enough blocks follow to repay its two extra backward passes
            many_blocks = self.total_rows >= _TRIAL_BLOCKS * example.shape[0]
            if many_blocks and self._saved is not None and self._saved.bytes * s.shape[1] <= _TRIAL_BYTES:
                self.batched, grads = _choose_backward(s, zs)
            else:
                self.batched, grads = False, _backward(s, zs, batched=False)
        else:
            grads = _backward(s, zs, batched=bool(self.batched))
        if all(g is None for g in grads):
            raise ValueError("model output does not depend on the inputs (autograd found no path); check that "
                             "the model uses its inputs")
        grads = tuple((z.new_zeros(z.shape[0], s.shape[1], *z.shape[1:]) if s.dim() == 2 else torch.zeros_like(z))
                      if g is None else g for g, z in zip(grads, zs))
        if check:
            for i, g in enumerate(grads):
                C.check_finite(g, f"gradient w.r.t. inputs[{i}]", example)
        return s.detach(), grads

    def evaluate(self, path, rows: torch.Tensor, alphas: torch.Tensor):
        """Values ``(N, k)`` and flattened gradients ``(N, k, F)`` at (path row, alpha) pairs, in blocks."""
        values, grads = [], []
        lo = 0
        while lo < rows.shape[0]:
            r, a = rows[lo:lo + self.rows], alphas[lo:lo + self.rows]
            lo += r.shape[0]
            s, g = self.gradients(path.at(r, a), path.owner.index_select(0, r))
            s = s if s.dim() == 2 else s[:, None]
            values.append(as_dtype(s, self.dtype))
            k = s.shape[1]
            grads.append(torch.cat([as_dtype(t, self.dtype).reshape(t.shape[0], k, -1) for t in g], 2))
        return torch.cat(values), torch.cat(grads)


class _Guard:
    """``ModelGuard`` and ``torch.enable_grad`` as one context manager.

    A model that asks for it (``torch_threads``: a JAX or TensorFlow model behind the bridge)
    has the engine's own torch work run on that many threads for the duration: torch's
    OpenMP workers spin after each parallel op, on the cores the other framework's thread
    pool needs (3-20x slower on 2 cores, docs/benchmarks_frameworks.md).
    """

    def __init__(self, model: Any):
        self.model_guard, self.grad = ModelGuard(model), torch.enable_grad()
        self.threads = getattr(model, "torch_threads", None)

    def __enter__(self) -> "_Guard":
        self.model_guard.__enter__()
        self.grad.__enter__()
        if self.threads is not None:
            self.was = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.threads is not None:
            torch.set_num_threads(self.was)
        self.grad.__exit__(*exc)
        self.model_guard.__exit__(*exc)


def _backward(s: torch.Tensor, zs: tuple[torch.Tensor, ...], batched: bool = False, retain: bool = False):
    """Gradients of each of the ``k`` columns of ``s`` w.r.t. ``zs``, stacked on axis 1.

    One backward pass for one target. For several, the graph of the one shared forward pass
    is walked either once, vectorised over the targets (``batched``: ``is_grads_batched``),
    or once per target; which is faster depends on the model and the block (on a CNN the
    loop was 1.8x faster at 16 rows, docs/benchmarks_family.md), so :class:`TorchModel` times
    both on its first block.
    """
    if s.dim() == 1:  # one target, no target axis
        return torch.autograd.grad(s.sum(), zs, allow_unused=True, retain_graph=retain)
    k = s.shape[1]
    if batched:
        eye = torch.eye(k, dtype=s.dtype, device=s.device).unsqueeze(1).expand(k, s.shape[0], k)
        grads = torch.autograd.grad(s, zs, grad_outputs=eye, is_grads_batched=True, allow_unused=True,
                                    retain_graph=retain)
        return tuple(None if g is None else g.movedim(0, 1) for g in grads)
    per = [torch.autograd.grad(s[:, j].sum(), zs, allow_unused=True, retain_graph=retain or j < k - 1)
           for j in range(k)]
    return tuple(None if per[0][i] is None else torch.stack([p[i] for p in per], 1) for i in range(len(zs)))


def _choose_backward(s: torch.Tensor, zs: tuple[torch.Tensor, ...]):
    """Both ways of taking ``k`` gradients on this block, timed; the faster one and its result.

    The vectorised way runs twice and its second time counts: the first pays vmap's one-time
    set-up, which later blocks do not.
    """
    t0 = time.perf_counter()
    looped = _backward(s, zs, batched=False, retain=True)
    t1 = time.perf_counter()
    try:
        _backward(s, zs, batched=True, retain=True)
        t2 = time.perf_counter()
        _backward(s, zs, batched=True)
    except RuntimeError:  # an operation without a batching rule
        return False, looped
    return time.perf_counter() - t2 < t1 - t0, looped


def _neuron(neuron: Any):
    """``(module, selector)`` -> (module, function of the module's output giving ``(rows,)``)."""
    if not (isinstance(neuron, (tuple, list)) and len(neuron) == 2 and isinstance(neuron[0], torch.nn.Module)):
        raise TypeError(f"neuron: expected (module, index), e.g. (model.fc1, 3) or (model.conv, (2, 0, 0)); got "
                        f"{type(neuron).__name__}")
    module, sel = neuron
    if callable(sel):
        def pick(out, rows):
            s = sel(out)
            if not isinstance(s, torch.Tensor) or s.shape != (rows,):
                raise ValueError(f"neuron: the selector must return one value per row, shape ({rows},); got "
                                 f"{C.shape(s) if isinstance(s, torch.Tensor) else type(s).__name__}")
            return s
        return module, pick
    index = (sel,) if isinstance(sel, (int, slice)) else tuple(sel) if isinstance(sel, (tuple, list)) else None
    if index is None or not all(isinstance(i, slice) or (isinstance(i, int) and not isinstance(i, bool))
                                for i in index):
        raise TypeError(f"neuron: the selector must be an int, a tuple of ints or slices, or a callable; got {sel!r}")

    def pick(out, rows):
        if out.dim() != len(index) + 1:
            raise ValueError(f"neuron: index {sel!r} has {len(index)} entries but {type(module).__name__}'s output "
                             f"has shape {C._per_example(out)} ({out.dim() - 1} dimensions after the batch)")
        for i, n in zip(index, out.shape[1:]):
            if isinstance(i, int) and not -n <= i < n:
                raise ValueError(f"neuron: index {sel!r} is out of range for {type(module).__name__}'s output of "
                                 f"shape {C._per_example(out)}")
        return out[(slice(None), *index)].reshape(rows, -1).sum(1)
    return module, pick
