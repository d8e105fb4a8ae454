"""What every method shares: arguments checked once, path rows built, results assembled.

A :class:`Job` is one attribution problem (the backend model with the user's inputs,
baselines, targets and extra arguments). Methods build straight-line path rows from it with
:meth:`Job.paths` (one per example, per baseline, per drawn sample, ...), hand them to a
point placement (fixed rule, adaptive, sampled, piecewise), and turn the per-row integrals
into attributions with :func:`per_row` and a reduction over each example's rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ..backends import foreign
from ..backends.torch import TorchModel, as_dtype
from ..backends.torch_hooks import Layers
from ..core import checks as C
from ..core.paths import CurvedPath, StraightLine

_REFERENCE_ROWS = 256

# other libraries' names for integrad's keywords, answered with a "did you mean"
ALIASES = {"baselines": "baseline", "additional_forward_args": "forward_args", "internal_batch_size": "batch_size",
           "target_fn": "target (a callable)", "steps": "n_steps", "nt_samples": "n_samples",
           "stdevs": "noise (with noise_scale='absolute')", "nt_type": "mode", "attribute_to_layer_input": "layer_input",
           "attribute_to_layer_inputs": "layer_input",  # Alibi's spelling
           "neuron_selector": "neuron=(module, selector)", "return_convergence_delta": "nothing: delta is always on "
           "the result", "random_seed": "seed"}


def vocabulary(fn: Callable) -> Callable:
    """Unknown keywords that other libraries use get a "did you mean" naming integrad's."""
    import functools
    import inspect

    known = set(inspect.signature(fn).parameters)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for key in kwargs:
            if key in ALIASES and key not in known:
                raise TypeError(f"{fn.__name__}() got an unexpected keyword argument {key!r}; did you mean "
                                f"{ALIASES[key]}? (Captum's classes with Captum's names: integrad.compat.captum)")
        return fn(*args, **kwargs)

    return wrapper


class Job:
    """One attribution problem on the PyTorch backend."""

    def __init__(self, model: Any, inputs: Any, *, baseline: Any = 0.0, target: Any = None, targets: Any = None,
                 head: Callable | None = None, forward_args: Sequence[Any] = (), forward_kwargs: dict | None = None,
                 layer: Any = None, layer_input: bool = False, layer_baseline: Any = None, neuron: Any = None,
                 batch_size: int | None = None, max_memory: int | None = None):
        C.check_model(model)
        C.check_batch_size(batch_size)
        self.user_model = model
        # a JAX or TensorFlow model: the same problem in PyTorch terms (backends/foreign.py)
        (self.framework, model, inputs, baseline, target, forward_args, forward_kwargs, layer,
         layer_baseline) = foreign.adapt(model, inputs, baseline=baseline, target=target, forward_args=forward_args,
                                         forward_kwargs=forward_kwargs, layer=layer, layer_input=layer_input,
                                         layer_baseline=layer_baseline, neuron=neuron)
        if layer_baseline is not None and layer is None:
            raise ValueError("layer_baseline: given without layer=; pass the layer whose output it replaces")
        if layer_input and layer is None:
            raise ValueError("layer_input: given without layer=; pass the layer whose input is attributed")
        if max_memory is not None and (isinstance(max_memory, bool) or not isinstance(max_memory, int)
                                       or max_memory < 1):
            raise ValueError(f"max_memory: expected None or a number of bytes >= 1; got {max_memory!r}")
        if max_memory is not None and batch_size is not None:
            raise ValueError(f"max_memory: caps automatic chunking, but batch_size={batch_size} fixes the block "
                             "size; give one of them")
        if not isinstance(forward_args, (tuple, list)):
            raise TypeError(f"forward_args: expected a tuple of extra positional arguments; got "
                            f"{type(forward_args).__name__}")
        if forward_kwargs is not None and not isinstance(forward_kwargs, dict):
            raise TypeError(f"forward_kwargs: expected a dict; got {type(forward_kwargs).__name__}")
        if neuron is not None and (target is not None or targets is not None or head is not None):
            raise ValueError("neuron: the attributed scalar is the neuron's value; drop target=, targets= and head=")
        self.layers = Layers(layer, layer_input) if layer is not None else None
        self.xs, self.was_tuple = C.as_tensor_tuple(inputs, integer_ok=layer is not None)
        self.baselines = C.broadcast_baselines(baseline, self.xs, self.was_tuple)
        self.baseline_given, self.layer_baseline = baseline, layer_baseline
        self.batch = B = self.xs[0].shape[0]
        tg = C.Targets(target, targets, B, self.xs[0].device, head)
        self.model = TorchModel(model, self.xs, tg, tuple(forward_args), forward_kwargs, self.layers, neuron)
        self.batch_size, self.max_memory = batch_size, max_memory
        self.perturb: Callable | None = None  # SmoothGrad: noise added to the path's end points

    def own(self, value: Any) -> Any:
        """A further argument (Expected Gradients' references, ...) in PyTorch terms, like the inputs."""
        return value if self.framework == "torch" else foreign.as_tensors(value)

    def copies(self, origin: torch.Tensor) -> "Job":
        """This problem on copies of its examples (``origin[c]``: the example of copy ``c``)."""
        new = Job.__new__(Job)
        new.__dict__.update(self.__dict__)
        new.model = self.model.copies(origin)
        new.xs, new.batch = new.model.xs, origin.shape[0]
        new.baselines = tuple(b.index_select(0, origin) for b in self.baselines)
        if isinstance(self.layer_baseline, torch.Tensor) and self.layer_baseline.dim() > 0 \
                and self.layer_baseline.shape[0] == self.batch:
            new.layer_baseline = self.layer_baseline.index_select(0, origin.to(self.layer_baseline.device))
        return new

    def resolve_targets(self) -> None:
        """``targets='all'``: one no-grad forward of the first example to count the classes.

        Also checks, on the first example, that the model treats the rows of a batch
        independently (:meth:`TorchModel.check_rows_independent`).
        """
        if self.batch >= 2:
            self.model.check_rows_independent(tuple(x[:1] for x in self.xs), tuple(x[1:2] for x in self.xs), (0, 1))
        elif self.baselines is not None:
            self.model.check_rows_independent(tuple(x[:1] for x in self.xs), tuple(b[:1] for b in self.baselines),
                                              (0, 0))
        tg = self.model.targets
        if tg.all and not hasattr(tg, "items"):
            m = self.model
            with torch.no_grad():
                out, _ = m._forward(tuple(x[:1] for x in self.xs), torch.zeros(1, dtype=torch.long,
                                                                              device=self.xs[0].device))
            tg.resolve(out, 1)

    # ------------------------------------------------------------------ path rows
    def fusable(self) -> bool:
        """F at the path's ends can ride along with the gradients (input space, no noise)."""
        return self.layers is None and self.model.neuron is None

    def paths(self, owner: torch.Tensor | None, starts: tuple[torch.Tensor, ...] | None = None,
              start_key: torch.Tensor | None = None, references: bool = True):
        """Straight path rows from ``starts`` (input space, one per row; default the baselines)
        to each owner's input, in path space.

        Returns ``(path, f_end, f_start)``: F at each row's end and start, ``(P, k)``, or
        ``None`` when ``references=False`` (the caller gets them fused with its first block;
        input space only). ``start_key`` marks rows sharing a start point, so F is computed
        once per distinct start.
        """
        if starts is None:
            starts = self.baselines if owner is None else tuple(b.index_select(0, owner) for b in self.baselines)
        if owner is None:
            owner = torch.arange(self.batch, device=self.xs[0].device)
        if not references:
            ends = self._input_ends()
            st = tuple(as_dtype(s, self.model.dtype) for s in starts)
            plain = owner.shape[0] == self.batch and starts is self.baselines  # one row per example, in order
            diffs = tuple((e if plain else e.index_select(0, owner)) - s for e, s in zip(ends, st))
            return StraightLine(st, diffs, owner, example_ends=ends), None, None
        ends, f_end, st_u, f_u, index = self.points(owner, starts, start_key)
        st = st_u if index is None else tuple(s.index_select(0, index) for s in st_u)
        f_start = f_u if index is None else f_u.index_select(0, index)
        path = StraightLine(st, tuple(e.index_select(0, owner) - s for e, s in zip(ends, st)), owner)
        return path, f_end.index_select(0, owner), f_start

    def curved_path(self, fn: Callable, name: str = "path"):
        """A user path from each example's baseline to the example (input space, one input tensor).

        Returns ``(path, f_end, f_start)`` like :meth:`paths`, with F at the path's own ends
        ``z(1)`` (checked to be the input) and ``z(0)`` (the baseline, or wherever the path starts).
        """
        if len(self.xs) != 1:
            raise ValueError(f"{name}: a path takes one input tensor; got {len(self.xs)} inputs")
        m, B = self.model, self.batch
        ends = self._input_ends()[0]
        every = torch.arange(B, device=ends.device)
        path = CurvedPath(fn, ends, as_dtype(self.baselines[0], m.dtype), every, name)
        z, _ = path.points(every, torch.tensor([[1.0, 0.0]], dtype=m.dtype, device=ends.device).expand(B, 2))
        z = z.view(B, 2, *ends.shape[1:])
        off = float((z[:, 0] - ends).abs().max()) if ends.numel() else 0.0
        scale = float(ends.abs().max()) if ends.numel() else 0.0
        tol = (1e-10 if m.dtype == torch.float64 else 1e-5) * max(1.0, scale)
        if not off <= tol:  # also catches NaN
            raise ValueError(f"{name}: must end at the input (z(1) = x, where the explanation is); got "
                             f"max |z(1) - x| = {off:.3g} over the batch")
        f = self._scan((as_dtype(torch.cat([z[:, 0], z[:, 1]]), m.model_dtype),), torch.cat([every, every]))
        return path, f[:B], f[B:]

    def points(self, owner: torch.Tensor, starts: tuple[torch.Tensor, ...], start_key: torch.Tensor | None = None):
        """Path-space end points per example and distinct start points, with F at each.

        Returns ``(ends (B, ...), f_end (B, k), starts (U, ...), f_start (U, k), index)``: row
        ``p``'s start is ``starts[index[p]]`` (``index`` is None when every row has its own).
        """
        m, B = self.model, self.batch
        every = torch.arange(B, device=self.xs[0].device)
        pick, index = distinct(start_key, owner)
        st_u = starts if pick is None else tuple(s.index_select(0, pick) for s in starts)
        ex_u = owner if pick is None else owner.index_select(0, pick)
        if self.layers is None:
            ends = self._input_ends()
            # one scan for both: the inputs, then each distinct start
            both = tuple(torch.cat([as_dtype(e, m.model_dtype), as_dtype(s, m.model_dtype)])
                         for e, s in zip(ends, st_u))
            f = self._scan(both, torch.cat([every, ex_u]))
            return ends, f[:B], tuple(as_dtype(s, m.dtype) for s in st_u), f[B:], index
        f_end, act_x = m.scan(self.xs, every, self.batch_size or _REFERENCE_ROWS)
        m.set_dtype(act_x[0].dtype)
        act_x = tuple(as_dtype(a, m.dtype) for a in act_x)
        if self.perturb is not None:
            act_x = self.perturb(act_x)
            f_end = self._scan(None, every, replace=act_x)
        if self.layer_baseline is not None:
            act_b = self._layer_baseline(act_x, ex_u)
            f_start = self._scan(None, ex_u, replace=act_b)
        else:
            f_start, act_b = m.scan(st_u, ex_u, self.batch_size or _REFERENCE_ROWS)
            act_b = tuple(as_dtype(a, m.dtype) for a in act_b)
        return act_x, as_dtype(f_end, m.dtype), act_b, as_dtype(f_start, m.dtype), index

    def _input_ends(self) -> tuple[torch.Tensor, ...]:
        """Input-space end points in the path's dtype (noisy for SmoothGrad); sets that dtype."""
        m = self.model
        m.set_dtype(self.xs[0].dtype)
        ends = tuple(as_dtype(x, m.dtype) for x in self.xs)
        return ends if self.perturb is None else self.perturb(ends)

    def _scan(self, parts, example, replace=None):
        rows = self.batch_size or _REFERENCE_ROWS
        if replace is not None:
            replace = tuple(as_dtype(r, self.model.model_dtype) for r in replace)
        return as_dtype(self.model.scan(parts, example, rows, replace=replace)[0], self.model.dtype)

    def _layer_baseline(self, act_x, owner):
        if len(act_x) != 1:
            raise ValueError(f"layer_baseline: the layer(s) have {len(act_x)} tensors; a layer_baseline is one "
                             "tensor for a layer with one output")
        b = C.one_baseline(self.layer_baseline, act_x[0], "layer_baseline", "the layer's output")
        return (as_dtype(b, self.model.dtype).index_select(0, owner),)

    # ------------------------------------------------------------------ settings
    def describe(self) -> dict[str, Any]:
        m = self.model
        given = self.baseline_given if self.layer_baseline is None else self.layer_baseline
        out = {
            "target": m.targets.describe() if m.neuron is None else None,
            "baseline": describe_baseline(given),
            "layer": self.layer_names(),
            "batch_size": self.batch_size if self.batch_size is not None else f"auto ({m.rows} rows)",
            "dtype": str(m.model_dtype).replace("torch.", ""),
        }
        if m.targets.many:
            out["targets"] = m.targets.describe()
        if self.layers is not None and self.layers.use_input:
            out["layer_input"] = True
        if m.neuron is not None:
            out["neuron"] = type(m.neuron[0]).__name__
        if self.framework != "torch":
            out["framework"] = self.framework
        return out

    def layer_names(self) -> Any:
        if self.layers is None:
            return None
        names = [_layer_name(self.user_model, m) for m in self.layers.modules]
        return names if self.layers.many else names[0]


def distinct(key: torch.Tensor | None, owner: torch.Tensor):
    """(one row per distinct key, each row's index among them), or (None, None) without keys."""
    if key is None:
        return None, None
    uniq, inverse = torch.unique(key, return_inverse=True)
    pick = torch.zeros(uniq.shape[0], dtype=torch.long, device=owner.device)
    pick.scatter_(0, inverse, torch.arange(key.shape[0], device=owner.device))
    return pick, inverse


@dataclass
class Rows:
    """Per path row results: attributions ``(P, k, *f)`` per tensor, completeness gap ``(P, k)``."""

    attrs: tuple[torch.Tensor, ...]
    delta: torch.Tensor
    f_end: torch.Tensor
    f_start: torch.Tensor


def per_row(path: StraightLine, acc: tuple[torch.Tensor, ...], f_end, f_start, multiply: bool = True) -> Rows:
    """``(x - x') * integral`` (or the bare integral) and the completeness gap of each row.

    ``acc`` has a target axis after the row axis when ``f_end`` does (``targets=``).
    """
    lead = f_end.shape
    many = len(lead) == 2
    ig = tuple((d.unsqueeze(1) if many else d) * a for d, a in zip(path.diffs, acc))
    total = ig[0].reshape(*lead, -1).sum(-1, dtype=torch.float64)
    for a in ig[1:]:
        total += a.reshape(*lead, -1).sum(-1, dtype=torch.float64)
    delta = (total - (f_end.double() - f_start.double())).to(f_end.dtype)
    return Rows(ig if multiply else acc, delta, f_end, f_start)


def mean_by(values: torch.Tensor, owner: torch.Tensor, n: int) -> torch.Tensor:
    """Mean over each owner's rows (float64 sums, so K similar values average without drift)."""
    out = torch.zeros(n, *values.shape[1:], dtype=torch.float64, device=values.device)
    out.index_add_(0, owner, values.double())
    count = torch.bincount(owner, minlength=n).to(out.dtype).view(n, *[1] * (values.dim() - 1))
    return (out / count).to(values.dtype)


def norms(tensors: Sequence[torch.Tensor], lead: int) -> torch.Tensor:
    """Euclidean norm over every feature of every tensor, keeping the first ``lead`` axes (float64, CPU)."""
    return torch.cat([t.reshape(*t.shape[:lead], -1) for t in tensors], -1).double().norm(dim=-1).cpu()


def sampling_error(values: Sequence[torch.Tensor], stderr: Sequence[torch.Tensor], lead: int,
                   quadrature: torch.Tensor | None = None) -> torch.Tensor:
    """Relative error of a sampled estimate: the standard error's norm over the value's, per example.

    ``quadrature`` adds an absolute error norm per example in quadrature (the rule's error
    under SmoothGrad-IG's mean).
    """
    err = norms(stderr, lead).square()
    if quadrature is not None:
        err = err + quadrature.double().cpu().square()
    size = norms(values, lead)
    return torch.where(size > 0, err.sqrt() / size, torch.where(err > 0, torch.inf, 0.0))


def shape_output(job: Job, tensors: tuple[torch.Tensor, ...]):
    """A lone tensor for one input (or one layer tensor), else the tuple."""
    if job.layers is None:
        return tensors if job.was_tuple else tensors[0]
    return tensors if (job.layers.many or len(tensors) > 1) else tensors[0]


def describe_baseline(baseline: Any) -> Any:
    if isinstance(baseline, (tuple, list)):
        return [describe_baseline(b) for b in baseline]
    if isinstance(baseline, torch.Tensor):
        return f"tensor{tuple(baseline.shape)}"
    return baseline


def _layer_name(model: Any, layer: torch.nn.Module) -> str:
    if isinstance(layer, foreign.ForeignLayer):
        return layer.foreign_name
    if isinstance(model, torch.nn.Module):
        for name, m in model.named_modules():
            if m is layer:
                return name or type(layer).__name__
    return type(layer).__name__


def check_count(value: Any, name: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name}: expected an int >= {least}; got {value!r}")
    return value


def check_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0; got {value!r}")
    return float(value)
