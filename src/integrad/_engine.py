"""Integrated Gradients for PyTorch models: the straight-line path, integrated by a rule.

The engine evaluates gradients at interpolated points in blocks (whole examples times all
steps, or one example times a window of steps), so that interpolation is a broadcast and
accumulation a small matrix product; block size is chosen from a measured probe of the
memory autograd saves per row, unless ``batch_size`` is given.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import torch

from . import _checks as C
from ._adaptive import integrate_adaptive
from ._chunking import PROBE_BYTES, PROBE_ROWS, SMALL_BYTES, SavedBytes, blocks, rows_for
from ._piecewise import integrate_piecewise
from ._hooks import LayerTap, ModelGuard
from ._quadrature import rule as _rule
from ._result import Attribution

__all__ = ["integrated_gradients"]

_REFERENCE_ROWS = 256


def integrated_gradients(
    model: Callable[..., Any],
    inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    baseline: float | torch.Tensor | Sequence[float | torch.Tensor] = 0.0,
    target: int | Sequence[int] | torch.Tensor | Callable[[Any], torch.Tensor] | None = None,
    head: Callable[[torch.Tensor], torch.Tensor] | None = None,
    method: str | None = None,
    n_steps: int | None = None,
    rtol: float | None = None,
    atol: float = 0.0,
    max_evals: int = 4097,
    batch_size: int | None = None,
    forward_args: Sequence[Any] = (),
    forward_kwargs: dict[str, Any] | None = None,
    layer: torch.nn.Module | None = None,
    layer_baseline: float | torch.Tensor | None = None,
    max_memory: int | None = None,
) -> Attribution:
    r"""Integrated Gradients of ``model`` at ``inputs`` along the straight line from ``baseline``.

    .. math:: \mathrm{IG}_i(x) = (x_i - x'_i) \int_0^1
              \frac{\partial F(x' + \alpha (x - x'))}{\partial x_i}\, d\alpha

    Parameters
    ----------
    model : nn.Module or callable
        Maps ``inputs`` (batch first) to outputs of shape ``(batch,)``, ``(batch, classes)``
        or an object with ``.logits``. Rows must not interact (call ``model.eval()``).
    inputs : Tensor or tuple of Tensor, shapes ``(batch, *features_i)``
        Floating point, or any dtype (e.g. token ids) when ``layer`` is given.
    baseline : number, Tensor or tuple of them
        Start of the path; a tensor broadcasts to one example or to the whole batch.
        With ``layer``, the baseline is in input space (e.g. PAD token ids).
    target : None, int, sequence of ``batch`` ints, or callable
        Which scalar to attribute: None for scalar outputs, a class index, one class per
        example, or a callable mapping the output (its ``.logits`` if it has one) to shape
        ``(rows,)``.
    head : callable, optional
        Applied to the model output before ``target`` picks a scalar, e.g.
        ``head=lambda out: out.softmax(-1)`` to attribute class probabilities of a model that
        returns logits (per-example targets still work). With ``method="piecewise"`` this is
        where a smooth head belongs.
    method : {"gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "trapezoid", "piecewise"}
        Fixed quadrature rule (default ``"gausslegendre"``), or ``"piecewise"``: exact IG for
        piecewise-linear models (linear maps with relu, leaky_relu, prelu, hardtanh, relu6,
        clamp or abs; a smooth head such as softmax goes in ``head``). It finds every point
        where the path crosses a kink and integrates each linear piece exactly, one
        forward-mode plus backward pass per piece; other models are refused with an error.
    n_steps : int
        Number of quadrature nodes (gradient evaluations per example; default 50).
    rtol, atol : float, optional
        Error-controlled integration instead of a fixed rule: refine each example until the
        estimated error of its attribution vector is within ``max(rtol * ||attr||, atol)``
        (2-norms), reusing every evaluation; excludes ``method`` and ``n_steps``.
    max_evals : int
        With ``rtol``: at most this many gradient evaluations per example; with
        ``method="piecewise"``: at most this many pieces. Examples that run out are reported
        (``converged``) and warned about.
    batch_size : int, optional
        Interpolated rows per forward/backward call; ``None`` chooses it automatically.
    forward_args, forward_kwargs
        Extra arguments for ``model``, not interpolated; tensors whose first dimension is
        ``batch`` (an attention mask, say) follow their example's rows.
    layer : nn.Module, optional
        Attribute to this module's output: the path runs in its activation space between
        its values on the baseline and on the input.
    layer_baseline : number or Tensor, optional
        With ``layer``: start the path at these activations (broadcast to the layer's output,
        per example or per batch) instead of the layer's output on ``baseline``.
    max_memory : int, optional
        Upper bound in bytes on the autograd memory of one block (automatic chunking only).

    Returns
    -------
    Attribution
        With ``attributions`` shaped like ``inputs`` (or the layer's output), the completeness
        gap ``delta``, ``f_x``, ``f_baseline`` and ``n_evals``. Half-precision models give
        float32 attributions (accumulation is done in float32).

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
    """
    C.check_model(model)
    C.check_layer(layer)
    C.check_batch_size(batch_size)
    if layer_baseline is not None and layer is None:
        raise ValueError("layer_baseline: given without layer=; pass the layer whose output it replaces")
    if max_memory is not None and (isinstance(max_memory, bool) or not isinstance(max_memory, int) or max_memory < 1):
        raise ValueError(f"max_memory: expected None or a number of bytes >= 1; got {max_memory!r}")
    piecewise = method == "piecewise"
    if piecewise:
        _check_piecewise(rtol, n_steps, max_evals)
    elif rtol is None:
        method, n_steps = method or "gausslegendre", 50 if n_steps is None else n_steps
        q = _rule(method, n_steps)
    else:
        _check_tolerance(rtol, atol, max_evals, method, n_steps)
    xs, was_tuple = C.as_tensor_tuple(inputs, integer_ok=layer is not None)
    baselines = C.broadcast_baselines(baseline, xs, was_tuple)
    if not isinstance(forward_args, (tuple, list)):
        raise TypeError(f"forward_args: expected a tuple of extra positional arguments; got "
                        f"{type(forward_args).__name__}")
    if forward_kwargs is not None and not isinstance(forward_kwargs, dict):
        raise TypeError(f"forward_kwargs: expected a dict; got {type(forward_kwargs).__name__}")
    if torch.is_inference_mode_enabled():
        raise RuntimeError("integrated_gradients needs autograd, but torch.inference_mode() is active; "
                           "call it outside that block")
    path = _Path(model, xs, baselines, layer, C.Target(target, xs[0].shape[0], xs[0].device, head),
                 tuple(forward_args), dict(forward_kwargs or {}))
    with ModelGuard(model), torch.enable_grad():
        fuse = rtol is None and layer is None and not piecewise
        if fuse:
            path.set_ends()
        else:
            path.reference(batch_size or _REFERENCE_ROWS, layer_baseline)
        if piecewise:
            path.plan(batch_size, max_memory, path.batch)
            acc, n_evals, converged, (alphas, *trace) = integrate_piecewise(path, max_evals)
            extra = {"converged": converged}
        elif rtol is None:
            acc, trace = path.integrate(q, batch_size, max_memory, fuse_ends=fuse)
            # a copy: the cached rule tensors must never be handed out
            alphas = _rule_tensors(q.name, q.n, path.dtype, torch.device("cpu"))[0].expand(path.batch, -1).clone()
            n_evals = torch.full((path.batch,), q.n, dtype=torch.int64)
            extra = {}
        else:
            # sized for what the run may grow to, so the first block is measured, not the
            # first round (5 points per example) taken as the whole job
            path.plan(batch_size, max_memory, max_evals * path.batch)
            acc, n_evals, error, converged, (alphas, *trace) = integrate_adaptive(path, rtol, atol, max_evals)
            extra = {"error": error, "converged": converged}
    attrs = tuple(d * a for d, a in zip(path.diffs, acc))
    total = sum(a.flatten(1).sum(1, dtype=torch.float64) for a in attrs)
    delta = (total - (path.f_x.double() - path.f_baseline.double())).to(path.f_x.dtype)
    settings = {
        "method": "adaptive" if rtol is not None else method, "n_steps": n_steps,
        "rtol": rtol, "atol": atol if rtol is not None else None,
        "max_evals": max_evals if rtol is not None or piecewise else None,
        "target": path.target.describe(),
        "baseline": _describe_baseline(baseline if layer_baseline is None else layer_baseline),
        "layer": _layer_name(model, layer),
        "batch_size": batch_size if batch_size is not None else f"auto ({path.rows} rows)",
        "dtype": str(xs[0].dtype if layer is None else path.model_dtype).replace("torch.", ""),
    }
    return Attribution(
        attributions=attrs if (was_tuple and layer is None) else attrs[0],
        delta=delta, f_x=path.f_x, f_baseline=path.f_baseline, n_evals=n_evals, settings=settings,
        path_alphas=alphas, path_values=trace[0].cpu(), path_slopes=trace[1].cpu(), **extra,
    )


def _check_tolerance(rtol, atol, max_evals, method, n_steps) -> None:
    if method is not None or n_steps is not None:
        raise ValueError(f"rtol: error-controlled integration chooses its own points; drop method={method!r} "
                         f"and n_steps={n_steps!r}, or drop rtol")
    for name, v in (("rtol", rtol), ("atol", atol)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name}: expected a finite number >= 0; got {v!r}")
    if rtol == 0 and atol == 0:
        raise ValueError("rtol: rtol=0 with atol=0 can never be met; give a positive rtol or atol")
    if isinstance(max_evals, bool) or not isinstance(max_evals, int) or max_evals < 5:
        raise ValueError(f"max_evals: expected an int >= 5 (one panel has 5 points); got {max_evals!r}")


def _check_piecewise(rtol, n_steps, max_evals) -> None:
    if rtol is not None or n_steps is not None:
        raise ValueError(f"method='piecewise' integrates each linear piece exactly and chooses its own points; drop "
                         f"rtol={rtol!r} and n_steps={n_steps!r}")
    if isinstance(max_evals, bool) or not isinstance(max_evals, int) or max_evals < 1:
        raise ValueError(f"max_evals: expected an int >= 1 (at most this many linear pieces per example); "
                         f"got {max_evals!r}")


class _Path:
    """The straight line from baseline to input (or between their layer activations)."""

    def __init__(self, model, xs, baselines, layer, target, fwd_args, fwd_kwargs):
        self.model, self.xs, self.baselines, self.layer = model, xs, baselines, layer
        self.target, self.fwd_args, self.fwd_kwargs = target, fwd_args, fwd_kwargs
        self.batch = xs[0].shape[0]

    def _exclude(self) -> set[int]:
        """Storages that are no per-row cost (parameters, buffers), for the memory probe."""
        mods = self.model.modules() if isinstance(self.model, torch.nn.Module) else ()
        return {t.untyped_storage().data_ptr() for m in mods
                for t in (*m.parameters(recurse=False), *m.buffers(recurse=False))}

    # ---------------------------------------------------------------- reference values
    def reference(self, rows: int, layer_baseline: Any = None) -> None:
        """F(x), F(baseline) and, with a layer, its activations at both ends of the path."""
        example = torch.arange(self.batch, device=self.xs[0].device)
        if layer_baseline is None:
            both = tuple(torch.cat([x, b]) for x, b in zip(self.xs, self.baselines))
            s, act = self._scan(both, example.repeat(2), rows)
        else:
            # the baseline lives in the layer's space: swap it in for the layer's output
            s_x, act_x = self._scan(self.xs, example, rows)
            act_b = C.one_baseline(layer_baseline, act_x, "layer_baseline", "the layer's output")
            s_b, _ = self._scan(self.xs, example, rows, replace=act_b)
            s, act = torch.cat([s_x, s_b]), torch.cat([act_x, act_b])
        self.set_ends(act)
        s = _as(s, self.dtype)
        self.f_x, self.f_baseline = s[:self.batch], s[self.batch:]

    def set_ends(self, act: torch.Tensor | None = None) -> None:
        """Dtypes, path starts and differences, from the inputs or the layer's activations."""
        self.model_dtype = act.dtype if act is not None else self.xs[0].dtype
        self.dtype = torch.float32 if self.model_dtype in (torch.float16, torch.bfloat16) else self.model_dtype
        if not self.dtype.is_floating_point:
            raise TypeError(f"layer: output dtype {self.model_dtype} is not floating point; choose a layer "
                            "whose output can be differentiated (e.g. the embedding, not the ids)")
        if act is not None:
            act = _as(act, self.dtype)
            ends, starts = (act[:self.batch],), (act[self.batch:],)
        else:
            ends = tuple(_as(x, self.dtype) for x in self.xs)
            starts = tuple(_as(b, self.dtype) for b in self.baselines)
        self.starts = starts
        self.diffs = tuple(x - b for x, b in zip(ends, starts))

    def _scan(self, parts, example, rows, replace=None):
        """No-grad forward over ``parts`` in blocks: target values and the layer's outputs."""
        values, acts = [], []
        with torch.no_grad():
            for lo in range(0, example.shape[0], rows):
                e = example[lo:lo + rows]
                args, kwargs = C.expand_forward_args(self.fwd_args, self.fwd_kwargs, self.batch, e)
                part = tuple(t[lo:lo + rows] for t in parts)
                if self.layer is None:
                    out = self.model(*part, *args, **kwargs)
                else:
                    swap = None if replace is None else replace[lo:lo + rows]
                    with LayerTap(self.layer, replace=swap) as tap:
                        out = self.model(*part, *args, **kwargs)
                    if swap is None:
                        if tap.output.dim() == 0 or tap.output.shape[0] != e.shape[0]:
                            raise ValueError(f"layer: output of shape {C.shape(tap.output)} is not batch first "
                                             f"for {e.shape[0]} input rows; layer IG needs a batch-first layer")
                        acts.append(tap.output)
                s = self.target.select(out, e)
                C.check_finite(s, "model output", e)
                values.append(s)
        return torch.cat(values), (torch.cat(acts) if acts else None)

    # ---------------------------------------------------------------- gradients
    def gradients(self, zs: tuple[torch.Tensor, ...], example: torch.Tensor, check: bool = True):
        """Target values and their gradients at interpolated points ``zs`` (rows of ``example``).

        The first block of an automatically chunked run is measured: the bytes autograd saves
        per row decide the rows per block from then on (``self.rows``).
        """
        if self.measure:
            saved = SavedBytes(self._exclude())
            with saved:
                out = self._gradients(zs, example, check)
            self.rows = rows_for(saved.bytes / example.shape[0], self.max_memory)
            self.measure = False
            return out
        return self._gradients(zs, example, check)

    def _gradients(self, zs, example, check=True):
        zs = tuple(_as(z, self.model_dtype).requires_grad_(True) for z in zs)
        args, kwargs = C.expand_forward_args(self.fwd_args, self.fwd_kwargs, self.batch, example)
        if self.layer is None:
            out = self.model(*zs, *args, **kwargs)
        else:
            with LayerTap(self.layer, replace=zs[0]):
                out = self.model(*(x.index_select(0, example) for x in self.xs), *args, **kwargs)
        s = self.target.select(out, example)
        if check:
            C.check_finite(s, "model output", example)
        if not s.requires_grad:
            raise ValueError("model output does not depend on the inputs through differentiable operations "
                             f"(no gradient){' at the layer' if self.layer is not None else ''}; check that "
                             "the model does not detach, round or index with its inputs")
        grads = torch.autograd.grad(s.sum(), zs, allow_unused=True)
        if all(g is None for g in grads):
            raise ValueError("model output does not depend on the inputs (autograd found no path); check that "
                             "the model uses its inputs")
        grads = tuple(torch.zeros_like(z) if g is None else g for g, z in zip(grads, zs))
        if check:
            for i, g in enumerate(grads):
                C.check_finite(g, f"gradient w.r.t. inputs[{i}]", example)
        return s.detach(), grads

    def plan(self, batch_size: int | None, max_memory: int | None, total_rows: int) -> None:
        """Rows per block: given, or a probe block's worth until the probe is measured."""
        self.max_memory = max_memory
        row_bytes = sum(d[:1].numel() * d.element_size() for d in self.diffs)
        if batch_size:
            self.rows = batch_size
        elif total_rows * row_bytes <= SMALL_BYTES and max_memory is None:
            self.rows = total_rows
        else:
            self.rows = max(1, min(total_rows, PROBE_ROWS, PROBE_BYTES // max(row_bytes, 1)))
        self.measure = batch_size is None and self.rows < total_rows

    def evaluate(self, example: torch.Tensor, alphas: torch.Tensor):
        """Target values (N,) and flattened gradients (N, F) at arbitrary (example, alpha) rows."""
        values, grads = [], []
        lo = 0
        while lo < example.shape[0]:
            e, a = example[lo:lo + self.rows], alphas[lo:lo + self.rows]
            lo += e.shape[0]
            zs = tuple(st.index_select(0, e) + a.view(-1, *[1] * (st.dim() - 1)) * d.index_select(0, e)
                       for st, d in zip(self.starts, self.diffs))
            s, g = self.gradients(zs, e)
            values.append(_as(s, self.dtype))
            grads.append(torch.cat([_as(t, self.dtype).flatten(1) for t in g], 1))
        return torch.cat(values), torch.cat(grads)

    def integrate(self, q, batch_size: int | None, max_memory: int | None, fuse_ends: bool):
        """Weighted sum of gradients per example, and the path trace (values, slopes).

        With ``fuse_ends`` the reference values F(x), F(baseline) were not computed yet: when
        the whole problem fits in one block, they ride along as two extra rows per example
        (one model call instead of two, which is most of the cost for small models);
        otherwise they get their own forward pass first.
        """
        n, B = q.n, self.batch
        self.plan(batch_size, max_memory, B * n + (2 * B if fuse_ends else 0))
        if fuse_ends and (self.measure or self.rows < B * n + 2 * B):
            self.reference(batch_size or _REFERENCE_ROWS)
            self.plan(batch_size, max_memory, B * n)
            fuse_ends = False
        alphas, w = _rule_tensors(q.name, n, self.dtype, self.starts[0].device)
        acc = tuple(torch.zeros_like(d) for d in self.diffs)
        trace = torch.empty(2, B, n, dtype=self.dtype, device=alphas.device)  # F(path), dF/dalpha
        pos = (0, 0)
        while pos[0] < B:
            rows = self.rows
            for e0, e1, k0, k1 in blocks(B, n, rows, *pos):
                self._block(e0, e1, k0, k1, alphas, w, acc, trace, fuse_ends)
                pos = (e1, 0) if k1 == n else (e0, k1)
                if self.rows != rows:  # the probe was measured: re-plan the remaining blocks
                    break
        # Checked once at the end, not per block: a NaN or Inf anywhere reaches these sums.
        every = torch.arange(B, device=alphas.device)
        C.check_finite(torch.cat([trace[0], self.f_x[:, None], self.f_baseline[:, None]], 1), "model output", every)
        for i, a in enumerate(acc):
            C.check_finite(a, f"gradient w.r.t. inputs[{i}]", every)
        return acc, trace

    def _block(self, e0, e1, k0, k1, alphas, w, acc, trace, ends=False) -> None:
        E, K = e1 - e0, k1 - k0
        a_blk, w_blk = alphas[k0:k1], w[k0:k1]
        zs = tuple((st[e0:e1].unsqueeze(1) + a_blk.view(1, K, *[1] * (st.dim() - 1)) * d[e0:e1].unsqueeze(1))
                   .reshape(E * K, *st.shape[1:]) for st, d in zip(self.starts, self.diffs))
        example = torch.arange(e0, e1, device=alphas.device).repeat_interleave(K)
        if ends:  # the whole problem in this block: F(x) and F(baseline) as extra rows
            zs = tuple(torch.cat([z, _as(x, z.dtype), st]) for z, x, st in zip(zs, self.xs, self.starts))
            every = torch.arange(self.batch, device=alphas.device)
            example = torch.cat([example, every, every])
        values, grads = self.gradients(zs, example, check=False)
        values = _as(values, self.dtype)
        if ends:
            P = E * K
            self.f_x, self.f_baseline = values[P:P + self.batch], values[P + self.batch:]
            values, grads = values[:P], tuple(g[:P] for g in grads)
        trace[0, e0:e1, k0:k1] = values.view(E, K)
        slope = trace[1, e0:e1, k0:k1]
        slope.zero_()
        for a, d, g in zip(acc, self.diffs, grads):
            g = _as(g, self.dtype).reshape(E, K, -1)
            # (K,) @ (E, K, F) -> (E, F): the weighted sum over this block's steps
            a[e0:e1] += torch.matmul(w_blk, g).view_as(a[e0:e1])
            # dF(path)/dalpha = grad . (x - x'): the completeness integrand, kept for plots
            slope += torch.matmul(g, d[e0:e1].reshape(E, -1, 1)).squeeze(-1)


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype``, without a call when it already is (small models feel every call)."""
    return t if t.dtype == dtype else t.to(dtype)


@functools.lru_cache(maxsize=64)
def _rule_tensors(method: str, n: int, dtype: torch.dtype, device: torch.device):
    """Nodes and weights of a rule as read-only tensors, built once per dtype and device."""
    q = _rule(method, n)
    return (torch.tensor(q.nodes, dtype=dtype, device=device), torch.tensor(q.weights, dtype=dtype, device=device))


def _describe_baseline(baseline: Any) -> Any:
    if isinstance(baseline, (tuple, list)):
        return [_describe_baseline(b) for b in baseline]
    if isinstance(baseline, torch.Tensor):
        return f"tensor{tuple(baseline.shape)}"
    return baseline


def _layer_name(model: Any, layer: torch.nn.Module | None) -> str | None:
    if layer is None:
        return None
    if isinstance(model, torch.nn.Module):
        for name, m in model.named_modules():
            if m is layer:
                return name or type(layer).__name__
    return type(layer).__name__
