"""Integrated Gradients: the straight line, a point placement, ``(x - x')`` times the integral."""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import torch

from ..backends.torch_piecewise import integrate_piecewise
from ..core.adaptive import integrate_adaptive
from ..core import checks as C
from ..core.fixed import explain_non_finite, integrate_fixed
from ..core.result import Attribution
from ..core.rules import rule as _rule
from ._job import vocabulary, Job, check_number, per_row, shape_output

__all__ = ["integrated_gradients"]


@vocabulary
def integrated_gradients(
    model: Callable[..., Any],
    inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    baseline: float | torch.Tensor | Sequence[float | torch.Tensor] = 0.0,
    target: Any = None,
    targets: Sequence[Any] | str | None = None,
    head: Callable[[torch.Tensor], torch.Tensor] | None = None,
    method: str | None = None,
    n_steps: int | None = None,
    rtol: float | None = None,
    atol: float = 0.0,
    max_evals: int = 4097,
    batch_size: int | None = None,
    forward_args: Sequence[Any] = (),
    forward_kwargs: dict[str, Any] | None = None,
    layer: torch.nn.Module | Sequence[torch.nn.Module] | None = None,
    layer_input: bool = False,
    layer_baseline: float | torch.Tensor | None = None,
    neuron: tuple[torch.nn.Module, Any] | None = None,
    multiply_by_inputs: bool = True,
    max_memory: int | None = None,
    path: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> Attribution:
    r"""Integrated Gradients of ``model`` at ``inputs`` along the straight line from ``baseline``.

    .. math:: \mathrm{IG}_i(x) = (x_i - x'_i) \int_0^1
              \frac{\partial F(x' + \alpha (x - x'))}{\partial x_i}\, d\alpha

    Parameters
    ----------
    model : nn.Module or callable
        Maps ``inputs`` (batch first) to outputs of shape ``(batch, ...)`` or an object with
        ``.logits``. Rows must not interact (call ``model.eval()``).
    inputs : Tensor or tuple of Tensor, shapes ``(batch, *features_i)``
        Floating point, or any dtype (e.g. token ids) when ``layer`` is given. ``(batch,)``
        (one number per example) is allowed.
    baseline : number, Tensor or tuple of them
        Start of the path; a tensor broadcasts to one example or to the whole batch.
        With ``layer``, the baseline is in input space (e.g. PAD token ids).
    target : None, int, tuple of ints, list of them (one per example), or callable
        Which scalar to attribute: None for outputs with one value per example, a class
        index, a tuple indexing an output of rank > 2, one of those per example (a list or
        tensor), or a callable mapping the output (its ``.logits`` if it has one) to ``(rows,)``.
    targets : list of targets, or "all"
        Several targets for every example in one call: the forward passes are shared, the
        backward passes vectorised. The result gets a target axis: attributions
        ``(batch, n_targets, *features)``, ``delta``/``f_x``/``f_baseline`` ``(batch, n_targets)``.
    head : callable, optional
        Applied to the model output before ``target`` picks a scalar, e.g.
        ``head=lambda out: out.softmax(-1)``. With ``method="piecewise"`` this is where a
        smooth head belongs.
    method : {"gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "trapezoid", "piecewise"}
        Fixed quadrature rule (default ``"gausslegendre"``), or ``"piecewise"``: exact IG for
        piecewise-linear models (linear maps with relu, leaky_relu, prelu, hardtanh, relu6,
        clamp or abs); other models are refused with an error.
    n_steps : int
        Number of quadrature nodes (gradient evaluations per example; default 50).
    rtol, atol : float, optional
        Error-controlled integration instead of a fixed rule: refine each example until the
        estimated error of its attribution vector is within ``max(rtol * ||attr||, atol)``.
    max_evals : int
        With ``rtol``: at most this many gradient evaluations per example; with
        ``method="piecewise"``: at most this many pieces.
    batch_size : int, optional
        Interpolated rows per forward/backward call; ``None`` chooses it automatically.
    forward_args, forward_kwargs
        Extra arguments for ``model``, not interpolated; tensors whose first dimension is
        ``batch`` (an attention mask, say) follow their example's rows.
    layer : nn.Module or list of them, optional
        Attribute to this module's output (or, with ``layer_input=True``, its input): the
        path runs in its activation space between its values on the baseline and on the
        input. A module returning a tuple gives one attribution per tensor; several modules
        are interpolated together and give their attributions in order, as a tuple.
    layer_baseline : number or Tensor, optional
        With ``layer``: start the path at these activations instead of the layer's values on
        ``baseline``.
    neuron : (module, selector), optional
        Neuron IG: attribute one unit of ``module``'s output (``selector``: an int, a tuple of
        ints or slices — a slice is summed — or a callable on the output) instead of a model
        output; the forward pass stops at that module.
    multiply_by_inputs : bool
        ``False`` returns the path-integrated gradient without the ``(x - x')`` factor
        ("local" attributions); ``delta`` is still the completeness gap of IG itself.
    max_memory : int, optional
        Upper bound in bytes on the autograd memory of one block (automatic chunking only).
    path : callable, optional
        Another path from the baseline to the input (:mod:`integrad.paths`, e.g.
        :class:`integrad.paths.BlurPath`, or your own): ``path(x, baseline, alphas)`` with
        ``x``, ``baseline`` of shape ``(E, *features)`` and ``alphas`` ``(E, K)`` returns the
        points ``z`` and their velocities ``dz/dalpha``, both ``(E, K, *features)``, with
        ``z(1) = x``. The attributions are then
        :math:`\int_0^1 \nabla F(z(\alpha)) \odot z'(\alpha)\, d\alpha`, with the same rules,
        ``rtol``, chunking and completeness gap (against ``F(z(1)) - F(z(0))``; ``f_baseline`` is
        ``F(z(0))``). One input tensor; not with ``layer=``, ``method="piecewise"`` or
        ``multiply_by_inputs=False``.

    Returns
    -------
    Attribution

    Examples
    --------
    >>> import torch, integrad
    >>> w = torch.tensor([1.0, -2.0, 3.0])
    >>> res = integrad.integrated_gradients(lambda x: x @ w, torch.ones(1, 3))
    >>> res.attributions
    tensor([[ 1., -2.,  3.]])

    References
    ----------
    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
    Dhamdhere, Sundararajan & Yan, "How Important Is a Neuron?", ICLR 2019 (layer and neuron IG).
    """
    curve = _check_path(path, layer, multiply_by_inputs)
    job = Job(model, inputs, baseline=baseline, target=target, targets=targets, head=head,
              forward_args=forward_args, forward_kwargs=forward_kwargs, layer=layer, layer_input=layer_input,
              layer_baseline=layer_baseline, neuron=neuron, batch_size=batch_size, max_memory=max_memory)
    place = placement(method, n_steps, rtol, atol, max_evals)
    with job.model.guard():
        job.resolve_targets()
        rows, info = run_ig(job, place, multiply_by_inputs, curve=curve)
    settings = place.describe() | job.describe()
    if curve is not None:
        settings["path"] = describe_path(path)
    if not multiply_by_inputs:
        settings["multiply_by_inputs"] = False
    return Attribution(
        attributions=shape_output(job, rows.attrs), delta=rows.delta, f_x=rows.f_end,
        f_baseline=rows.f_start, settings=settings, **info)


def _check_path(path: Any, layer: Any, multiply_by_inputs: bool) -> tuple[Callable, str] | None:
    if path is None:
        return None
    if not callable(path):
        raise TypeError(f"path: expected a callable path(x, baseline, alphas) -> (points, velocities) (see "
                        f"integrad.paths); got {type(path).__name__}")
    if layer is not None:
        raise ValueError("path: paths run in input space; drop layer= (or path=)")
    if not multiply_by_inputs:
        raise ValueError("path: the attributions of a path are the integral of gradient times velocity; "
                         "multiply_by_inputs=False has no meaning there")
    return path, "path"


def describe_path(path: Any) -> str:
    """How settings name a path: its own ``describe()``, else its type's or function's name."""
    if hasattr(path, "describe"):
        return str(path.describe())
    return getattr(path, "__name__", type(path).__name__)


def integration(method: str | None, n_steps: int | None, rtol: float | None, max_evals: int,
                default_steps: int) -> dict[str, Any]:
    """The integration keywords of a domain function, with its default number of nodes.

    ``default_steps`` applies when neither ``n_steps``, ``rtol`` nor ``method="piecewise"``
    says otherwise; ``max_evals`` is passed on only where it applies.
    """
    if n_steps is None and rtol is None and method != "piecewise":
        n_steps = default_steps
    out = {k: v for k, v in (("method", method), ("n_steps", n_steps), ("rtol", rtol)) if v is not None}
    if max_evals != 4097:
        out["max_evals"] = max_evals
    return out


class _Placement:
    """Where the gradient is evaluated on each path row, and how the evaluations are weighed."""

    def __init__(self, kind: str, **options: Any):
        self.kind, self.options = kind, options

    def describe(self) -> dict[str, Any]:
        o = self.options
        if self.kind == "fixed":
            return {"method": o["method"], "n_steps": o["n_steps"], "rtol": None, "atol": None, "max_evals": None}
        if self.kind == "adaptive":
            return {"method": "adaptive", "n_steps": None, "rtol": o["rtol"], "atol": o["atol"],
                    "max_evals": o["max_evals"]}
        return {"method": "piecewise", "n_steps": None, "rtol": None, "atol": None, "max_evals": o["max_evals"]}


def placement(method: str | None, n_steps: int | None, rtol: float | None, atol: float, max_evals: int) -> _Placement:
    """Check the integration options and pick the placement they ask for."""
    if method == "piecewise":
        if rtol is not None or n_steps is not None:
            raise ValueError(f"method='piecewise' integrates each linear piece exactly and chooses its own points; "
                             f"drop rtol={rtol!r} and n_steps={n_steps!r}")
        if isinstance(max_evals, bool) or not isinstance(max_evals, int) or max_evals < 1:
            raise ValueError(f"max_evals: expected an int >= 1 (at most this many linear pieces per example); "
                             f"got {max_evals!r}")
        return _Placement("piecewise", max_evals=max_evals)
    if rtol is None:
        if atol != 0.0:
            raise ValueError(f"atol: given without rtol=; error-controlled integration needs rtol (e.g. rtol=0 "
                             f"with atol={atol!r} for an absolute tolerance only)")
        if max_evals != 4097:
            raise ValueError("max_evals: applies to rtol= and method='piecewise' only; a fixed rule makes exactly "
                             "n_steps evaluations")
        method, n_steps = method or "gausslegendre", 50 if n_steps is None else n_steps
        _rule(method, n_steps)  # checks both
        return _Placement("fixed", method=method, n_steps=n_steps)
    if method is not None or n_steps is not None:
        raise ValueError(f"rtol: error-controlled integration chooses its own points; drop method={method!r} "
                         f"and n_steps={n_steps!r}, or drop rtol")
    check_number(rtol, "rtol"), check_number(atol, "atol")
    if rtol == 0 and atol == 0:
        raise ValueError("rtol: rtol=0 with atol=0 can never be met; give a positive rtol or atol")
    if isinstance(max_evals, bool) or not isinstance(max_evals, int) or max_evals < 5:
        raise ValueError(f"max_evals: expected an int >= 5 (one panel has 5 points); got {max_evals!r}")
    return _Placement("adaptive", rtol=rtol, atol=atol, max_evals=max_evals)


def run_ig(job: Job, place: _Placement, multiply: bool = True, owner: torch.Tensor | None = None,
           starts: tuple[torch.Tensor, ...] | None = None, start_key: torch.Tensor | None = None,
           curve: tuple[Callable, str] | None = None):
    """IG on path rows (default: one per example from its baseline): per-row results and extras.

    ``curve``: ``(fn, name)``, a user path (:class:`~integrad.core.paths.CurvedPath`) instead
    of the straight line, one row per example.
    """
    m = job.model
    plain = owner is None  # one path row per example, in order
    if curve is not None and place.kind == "piecewise":
        raise ValueError(f"{curve[1]}: method='piecewise' integrates straight lines only; use a fixed rule or rtol=")
    owner = torch.arange(job.batch, device=job.xs[0].device) if plain else owner
    o = place.options
    if place.kind != "fixed" and m.k > 1:
        raise ValueError(f"targets: several targets per call work with fixed rules (method=, n_steps=); "
                         f"{'rtol=' if place.kind == 'adaptive' else 'method=' + repr(place.kind)} refines each "
                         "target's path differently: call once per target")
    if place.kind == "fixed":
        q = _rule(o["method"], o["n_steps"])
        P, n, extra = owner.shape[0], q.n, None
        fused = False
        if job.fusable() and curve is None:
            # F(x) and F(baseline) ride along as extra rows when the whole problem is one block
            # (one model call instead of two: most of the cost for small models)
            row_bytes = sum(x[:1].numel() * max(x.element_size(), 4) for x in job.xs)
            m.plan(job.batch_size, job.max_memory, P * n + job.batch + P, row_bytes)
            fused = not m.measure and m.rows >= P * n + job.batch + P
        path, f_end, f_start = job.curved_path(*curve) if curve is not None else \
            job.paths(None if plain else owner, starts, start_key, references=not fused)
        alphas, w = _rule_tensors(q.name, q.n, m.dtype, path.diffs[0].device)
        if fused:
            extra = (tuple(zip(path.example_ends, path.starts)),
                     torch.cat([torch.arange(job.batch, device=owner.device), owner]))
        else:
            m.plan(job.batch_size, job.max_memory, P * n, sum(d[:1].numel() * d.element_size() for d in path.diffs))
        acc, trace, values, err = integrate_fixed(m, path, alphas, w, extra, q.name)
        if values is not None:
            B = job.batch
            f_end, f_start = (values[:B] if plain else values[:B].index_select(0, owner)), values[B:]
        rows = per_row(path, acc, f_end, f_start, multiply)
        # one check for everything: a NaN or Inf in the inputs, outputs or gradients reaches delta
        if not bool(torch.isfinite(rows.delta).all()):
            C.check_inputs_finite(job.xs, job.was_tuple)
            explain_non_finite(path, acc, trace, None if values is None else (values, extra[1]))
            raise FloatingPointError("the completeness gap is NaN or Inf; check the model and inputs, or use float64")
        info = {"n_evals": torch.full((job.batch,), n, dtype=torch.int64) if plain
                else torch.bincount(owner.cpu(), minlength=job.batch) * n,
                "error": err}
        if P == job.batch and not m.targets.many:
            cpu = alphas if alphas.device.type == "cpu" else alphas.cpu()
            info |= {"path_alphas": cpu.expand(P, -1).clone(), "path_values": trace[0].cpu(),
                     "path_slopes": trace[1].cpu()}
        return rows, info
    C.check_inputs_finite(job.xs, job.was_tuple)
    path, f_end, f_start = job.curved_path(*curve) if curve is not None else job.paths(owner, starts, start_key)
    row_bytes = sum(d[:1].numel() * d.element_size() for d in path.diffs)
    if place.kind == "piecewise":
        if m.neuron is not None:
            raise ValueError("method='piecewise': not available with neuron=; use a fixed rule or rtol=")
        m.plan(job.batch_size, job.max_memory, path.rows, row_bytes)
        acc, n_evals, converged, (alphas, *trace) = integrate_piecewise(m, path, f_end, f_start,
                                                                        o["max_evals"])
        info = {"converged": converged}
    else:
        # sized for what the run may grow to, so the first block is measured, not the first
        # round (5 points per path) taken as the whole job
        m.plan(job.batch_size, job.max_memory, o["max_evals"] * path.rows, row_bytes)
        acc, n_evals, error, converged, (alphas, *trace) = integrate_adaptive(m, path, o["rtol"], o["atol"],
                                                                              o["max_evals"])
        info = {"error": error, "converged": converged}
    rows = per_row(path, acc, f_end, f_start, multiply)
    info["n_evals"] = n_evals
    info |= {"path_alphas": alphas, "path_values": trace[0].cpu(), "path_slopes": trace[1].cpu()}
    return rows, info


@functools.lru_cache(maxsize=64)
def _rule_tensors(method: str, n: int, dtype: torch.dtype, device: torch.device):
    """Nodes and weights of a rule as tensors, built once per dtype and device (never handed out)."""
    q = _rule(method, n)
    return (torch.tensor(q.nodes, dtype=dtype, device=device), torch.tensor(q.weights, dtype=dtype, device=device))


