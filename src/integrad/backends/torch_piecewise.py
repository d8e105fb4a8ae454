"""Exact IG for piecewise-linear networks: find where the path crosses a kink, integrate each piece.

A network built from linear maps (linear layers, convolutions, average pooling, eval-mode
batch norm, reshapes) and the kinks ``relu``, ``leaky_relu``, ``prelu``, ``hardtanh``,
``relu6``, ``clamp`` and ``abs`` is affine on each piece of the straight path between two
points where some kink's input crosses its threshold. One pass per piece does everything:

- forward-mode AD along the path direction gives every kink input ``z`` and its slope ``z'``
  (they are affine in alpha on the piece), so the next crossing is ``min (c - z) / z'`` over
  all kinks and thresholds ``c``: where this piece ends;
- the model output is affine on the piece too, ``out(alpha) = out(q) + (alpha - q) out'``, so
  the integral of ``d target / d out`` over the piece is computed on the (cheap) target
  alone, to machine precision, also when ``head=`` puts a smooth function such as a softmax
  between the model and the target;
- one backward pass with those integrals as output weights gives the exact integral of the
  gradient over the piece.

Each example walks its path piece by piece, all examples together. Evaluation points sit a
hair (``_NUDGE``) past each crossing, so that they belong to the piece ahead. Two checks
guard the assumption of piecewise linearity: smooth functions applied to path-dependent
values (``tanh``, ``softmax``, ...) and kinks whose crossings cannot be located
(``max_pool``, ``maximum``, ...) are refused when they run; and at each new evaluation point
the output predicted by the previous piece's affine extrapolation must match the actual
output (which catches the rest: products of two path-dependent values, say).

References
----------
Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
Hanin & Rolnick, "Deep ReLU Networks Have Surprisingly Few Activation Patterns", NeurIPS 2019
(on the number of linear pieces along a line).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.autograd.forward_ad as fwAD
from torch.overrides import TorchFunctionMode

from ..core import checks as C
from ..core.progress import Progress
from ..core.rules import rule as _rule
from .torch_hooks import LayerTap

_NUDGE = {torch.float64: 1e-11, torch.float32: 1e-6}
# how far the output may stray from the previous piece's affine prediction, relative to its
# scale: rounding of the forward pass, not curvature (which errs by far more)
_LINEAR_TOL = {torch.float64: 1e-7, torch.float32: 1e-3}
_HEAD_NODES = 16  # Gauss-Legendre nodes per sub-interval of a piece, for the target's integral
_HEAD_RTOL = 1e-12
_NEEDS = ("it must be built from linear maps and relu, leaky_relu, prelu, hardtanh, relu6, clamp or abs only "
          "(put a smooth head in head=); use rtol= for other models")

_KINK_AT_ZERO = {"relu", "relu_", "leaky_relu", "leaky_relu_", "prelu", "abs", "abs_", "_prelu_kernel"}
_CLAMPS = {"hardtanh", "hardtanh_", "relu6", "clamp", "clamp_", "clip", "clip_"}
_UNLOCATED = {"max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
              "max_pool3d_with_indices", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
              "maximum", "minimum", "max", "min", "amax", "amin", "fmax", "fmin", "sort", "topk", "where",
              "sign", "round", "floor", "ceil", "trunc"}
_SMOOTH = {"tanh", "sigmoid", "gelu", "silu", "softmax", "log_softmax", "softplus", "elu", "selu", "celu",
           "mish", "hardswish", "hardsigmoid", "exp", "log", "sqrt", "rsqrt", "pow", "__pow__", "sin", "cos",
           "layer_norm", "group_norm", "instance_norm", "rms_norm", "normalize", "logsigmoid", "erf",
           "reciprocal", "scaled_dot_product_attention", "multi_head_attention_forward", "softmin", "tanhshrink",
           "softsign", "embedding_bag", "lstm", "gru", "rnn_tanh", "rnn_relu"}


def _thresholds(name: str, args: tuple, kwargs: dict) -> list[float]:
    if name in _KINK_AT_ZERO:
        return [0.0]
    if name == "relu6":
        return [0.0, 6.0]
    if name.startswith("hardtanh"):
        lo = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
        hi = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
        return [float(lo), float(hi)]
    bounds = [args[1] if len(args) > 1 else kwargs.get("min"), args[2] if len(args) > 2 else kwargs.get("max")]
    out = []
    for b in bounds:
        if isinstance(b, torch.Tensor):
            if b.numel() != 1:
                raise ValueError("method='piecewise': clamp with tensor bounds is not supported (each element "
                                 "has its own threshold); use scalar bounds or rtol=")
            b = b.item()
        if b is not None:
            out.append(float(b))
    return out


class _Kinks(TorchFunctionMode):
    """Records, during one forward pass, the distance to the next crossing of every kink."""

    def __init__(self, rows: int):
        super().__init__()
        self.rows = rows
        self.next = torch.full((rows,), math.inf, dtype=torch.float64)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _KINK_AT_ZERO or name in _CLAMPS or name in _UNLOCATED or name in _SMOOTH:
            tangent = _path_dependent(args, kwargs)
            if tangent is not None:
                if name in _UNLOCATED:
                    raise ValueError(f"method='piecewise': the model calls {name} on path-dependent values; its "
                                     "kinks cannot be located (supported: relu, leaky_relu, prelu, hardtanh, relu6, "
                                     "clamp, abs); use rtol= for this model")
                if name in _SMOOTH:
                    raise ValueError(f"method='piecewise': the model applies {name} to path-dependent values, so "
                                     "it is not piecewise linear; move a smooth head into head= (e.g. "
                                     "head=lambda out: out.softmax(-1)) or use rtol= for this model")
                self._record(name, args, kwargs, tangent)
        return func(*args, **kwargs)

    def _record(self, name, args, kwargs, tangent) -> None:
        z = fwAD.unpack_dual(args[0]).primal
        if z.dim() == 0 or z.shape[0] != self.rows:
            raise ValueError(f"method='piecewise': {name} got a tensor of shape {tuple(z.shape)}, not batch first "
                             f"for {self.rows} rows; the model must keep rows apart")
        z, dz = z.detach().reshape(self.rows, -1).double(), tangent.detach().reshape(self.rows, -1).double()
        for c in _thresholds(name, args, kwargs):
            t = (c - z) / dz
            t = torch.where(t > 0, t, math.inf).amin(1).nan_to_num(nan=math.inf)
            self.next = torch.minimum(self.next, t.cpu())


def _path_dependent(args, kwargs) -> torch.Tensor | None:
    """The tangent of the first argument that carries one (None if none does)."""
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor):
            t = fwAD.unpack_dual(a).tangent
            if t is not None:
                return t
    return None


class _Sides(TorchFunctionMode):
    """Records, in one plain forward pass, which side of its thresholds every kink unit is on."""

    def __init__(self, rows: int):
        super().__init__()
        self.rows, self.sides = rows, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        z = args[0] if args else None
        if (name in _KINK_AT_ZERO or name in _CLAMPS) and isinstance(z, torch.Tensor) and z.dim() > 0 \
                and z.shape[0] == self.rows:
            flat = z.detach().reshape(self.rows, -1)
            self.sides.extend(flat > c for c in _thresholds(name, args, kwargs))
        return func(*args, **kwargs)


def count_crossings(model, path, example: int, points: int, limit: int) -> int:
    """A lower bound on the kinks the path of ``example`` crosses: side changes between ``points + 1``
    equally spaced points (stops counting above ``limit``)."""
    device = path.diffs[0].device
    alphas = torch.linspace(0, 1, points + 1, dtype=model.dtype, device=device)
    count, last = 0, None
    rows = max(2, model.rows)
    for lo in range(0, alphas.numel(), rows - 1):  # consecutive chunks share one point
        a = alphas[lo:lo + rows]
        if a.numel() < 2 and last is None:
            break
        e = torch.full((a.numel(),), example, device=device)
        pts = tuple((st[example] + a.view(-1, *[1] * (st.dim() - 1)) * d[example]).to(model.model_dtype)
                    for st, d in zip(path.starts, path.diffs))
        args, kwargs = C.expand_forward_args(model.fwd_args, model.fwd_kwargs, model.fwd_batch, model._user(e))
        with torch.no_grad(), _Sides(a.numel()) as sides:
            if model.layers is None:
                model.model(*pts, *args, **kwargs)
            else:
                with LayerTap(model.layers, replace=pts):
                    model.model(*(x.index_select(0, model._user(e)) for x in model.xs), *args, **kwargs)
        count += sum(int((s[1:] != s[:-1]).sum()) for s in sides.sides)
        if count > limit or lo + rows >= alphas.numel():
            break
    return count


_PROBE_POINTS = 16


def integrate_piecewise(model, path, f_x, f_baseline, max_evals: int):
    """The exact integral of the gradient along each example's path, piece by piece.

    Returns the integrals (one tensor per input, shaped like the path's differences), the
    pieces (passes) per example, which examples finished within ``max_evals`` pieces, and the
    trace (alphas, F values, slopes) at the piece boundaries and the path's end, NaN-padded.
    """
    B, dtype = path.rows, model.dtype
    device = path.diffs[0].device
    nudge = _NUDGE.get(dtype, 1e-6)
    start = torch.zeros(B, dtype=torch.float64)
    acc = [torch.zeros_like(d) for d in path.diffs]
    n_evals = torch.zeros(B, dtype=torch.int64)
    finished = torch.zeros(B, dtype=torch.bool)
    guard = _Linearity(B, dtype)
    trace: list[tuple[torch.Tensor, ...]] = []  # (examples, alphas, F, dF/dalpha) per pass
    probed = False
    progress = Progress("method='piecewise'", unit="linear pieces integrated")
    while True:
        active = (~finished & (n_evals < max_evals)).nonzero().flatten()
        if active.numel() == 0:
            break
        if not probed and int(n_evals.sum()) > 0:
            # after the first passes (which refuse smooth models): refuse paths with far too many pieces
            _refuse_long_paths(model, path, active, max_evals)
            probed = True
        progress.update(int(n_evals.sum()), note=f", {int(finished.sum())} of {B} examples done")
        for lo in range(0, active.numel(), model.rows):
            e = active[lo:lo + model.rows]
            a0 = start[e]
            q = a0 + torch.minimum(torch.full_like(a0, nudge), (1 - a0) / 2)
            a1, forced, grads, out, slope = _piece(model, path, e, a0, q, n_evals[e] + 1 >= max_evals)
            guard.check(e, q, out, slope)
            trace.append(_trace_at(model, e, a0, q, out, slope))
            end = a1 >= 1
            if end.any():
                trace.append(_trace_at(model, e[end], a1[end], q[end], out[end], slope[end]))
                guard.check_end(trace[-1], f_x, f_baseline, skip=forced[end])
            for g, d in zip(grads, acc):
                d.index_add_(0, e.to(device), g.to(d.dtype))
            n_evals[e] += 1
            start[e] = a1
            finished[e] = end & ~forced
    progress.__exit__()
    if not finished.all():
        bad = (~finished).nonzero().flatten().tolist()
        warnings.warn(f"method='piecewise': {len(bad)} of {B} examples have more than max_evals={max_evals} linear "
                      f"pieces along the path (examples {bad[:10]}); the rest of each path was integrated as its "
                      "last piece, so their attributions are approximate (see delta); raise max_evals",
                      stacklevel=3)
    C.check_finite(torch.cat([a.reshape(B, -1) for a in acc], 1), "gradient integral", torch.arange(B))
    return tuple(acc), n_evals, finished, _pad_trace(trace, B, dtype)


def _refuse_long_paths(model, path, active: torch.Tensor, max_evals: int) -> None:
    for e in active.tolist():
        n = count_crossings(model, path, e, _PROBE_POINTS, max_evals)
        if n > max_evals:
            raise ValueError(
                f"method='piecewise': the path of example {e} crosses at least {n} kinks (units changing side "
                f"between {_PROBE_POINTS + 1} points along it), so it has more than max_evals={max_evals} linear "
                "pieces, each a forward and a backward pass; use rtol= (e.g. rtol=0.01) or a fixed rule for this "
                "model, or raise max_evals")


def _piece(model, path, e, a0, q, last):
    """One pass at ``q`` (just inside the piece starting at ``a0``): its end and gradient integral."""
    device = path.diffs[0].device
    qd = q.to(device=device, dtype=model.dtype)
    example = e.to(device)
    primals = tuple((st.index_select(0, example) + qd.view(-1, *[1] * (st.dim() - 1)) * d.index_select(0, example))
                    .to(model.model_dtype).requires_grad_(True) for st, d in zip(path.starts, path.diffs))
    tangents = tuple(d.index_select(0, example).to(model.model_dtype) for d in path.diffs)
    args, kwargs = C.expand_forward_args(model.fwd_args, model.fwd_kwargs, model.fwd_batch, model._user(example))
    with fwAD.dual_level():
        duals = tuple(fwAD.make_dual(p, t) for p, t in zip(primals, tangents))
        try:
            with _Kinks(example.shape[0]) as kinks:
                if model.layers is None:
                    raw = model.model(*duals, *args, **kwargs)
                else:
                    with LayerTap(model.layers, replace=duals):
                        raw = model.model(*(x.index_select(0, example) for x in model.xs), *args, **kwargs)
        except NotImplementedError as err:  # an operation torch cannot differentiate in forward mode
            first = str(err).split(". ")[0]
            raise ValueError(f"method='piecewise' needs forward-mode AD through the model, and torch has none for "
                             f"an operation it uses ({first}); such models are not piecewise linear anyway "
                             "in practice: use rtol= for this model") from None
        out_dual = C.output_tensor(raw, example.shape[0])
        out, slope = fwAD.unpack_dual(out_dual)
        if slope is None:
            slope = torch.zeros_like(out)
        a1 = torch.minimum(q + kinks.next, torch.ones_like(q))
        # an example's last allowed pass takes the rest of its path as one piece
        forced = last & (a1 < 1)
        a1 = torch.where(forced, 1.0, a1)
        weights = _head_integral(model, example, out.detach(), slope.detach(), q, a0, a1)
        grads = torch.autograd.grad(out, primals, grad_outputs=weights.to(out.dtype), allow_unused=True)
    grads = tuple(torch.zeros_like(p) if g is None else g for g, p in zip(grads, primals))
    return a1, forced, tuple(g.detach().to(model.dtype) for g in grads), out.detach(), slope.detach()


def _head_integral(model, example, out, slope, q, a0, a1):
    """Integral over [a0, a1] of d target / d out along out(alpha) = out + (alpha - q) slope.

    Gauss-Legendre on 1, 2, 4, ... equal parts of each piece, until two successive results
    agree to _HEAD_RTOL (the target is cheap: it sees only the output, never the model).
    """
    head_rule = _rule("gausslegendre", _HEAD_NODES)
    nodes, weights = head_rule.nodes, head_rule.weights
    prev = None
    for parts in (1, 2, 4, 8, 16, 32, 64):
        u = torch.tensor([(k + x) / parts for k in range(parts) for x in nodes], dtype=torch.float64)
        w = torch.tensor([wt / parts for _ in range(parts) for wt in weights], dtype=torch.float64)
        alpha = a0[:, None] + (a1 - a0)[:, None] * u  # (R, M)
        M = u.numel()
        shift = (alpha - q[:, None]).to(device=out.device, dtype=out.dtype)
        extra = [1] * (out.dim() - 1)
        pts = (out.unsqueeze(1) + shift.view(*shift.shape, *extra) * slope.unsqueeze(1))
        pts = pts.reshape(-1, *out.shape[1:]).detach().requires_grad_(True)
        with torch.enable_grad():
            s = model.targets.items[0].select(pts, model._user(example).repeat_interleave(M))
            (g,) = torch.autograd.grad(s.sum(), pts, allow_unused=True)
        if g is None:
            g = torch.zeros_like(pts)
        scale = ((a1 - a0)[:, None] * w).to(device=out.device, dtype=out.dtype)
        total = (g.view(out.shape[0], M, *out.shape[1:]) * scale.view(*scale.shape, *extra)).sum(1)
        if not s.requires_grad or (prev is not None and
                                   (total - prev).abs().max() <= _HEAD_RTOL * max(total.abs().max().item(), 1e-300)):
            return total
        prev = total
    return total


class _Linearity:
    """Each new output must be what the previous piece's affine extrapolation predicts."""

    def __init__(self, batch: int, dtype: torch.dtype):
        self.tol, self.nudge = _LINEAR_TOL.get(dtype, 1e-3), _NUDGE.get(dtype, 1e-6)
        self.q = torch.full((batch,), math.nan, dtype=torch.float64)
        self.out: torch.Tensor | None = None
        self.slope: torch.Tensor | None = None

    def check(self, e, q, out, slope) -> None:
        if self.out is None:
            self.out = out.new_zeros((self.q.shape[0], *out.shape[1:]))
            self.slope = torch.zeros_like(self.out)
        seen = ~torch.isnan(self.q[e])
        if seen.any():
            i = e[seen]
            dq = (q[seen] - self.q[i]).to(out.device, out.dtype).view(-1, *[1] * (out.dim() - 1))
            o0, s0 = self.out[i.to(out.device)], self.slope[i.to(out.device)]
            miss = _rows(out[seen] - (o0 + dq * s0)).abs().amax(1)
            scale = _rows(o0.abs() + (dq * s0).abs() + out[seen].abs()).amax(1) + 1e-30
            # a crossing just behind q changes the slope over at most the nudge
            allowed = self.tol * scale + 4 * self.nudge * _rows(slope[seen].abs() + s0.abs()).amax(1)
            bad = (miss > allowed).nonzero().flatten()
            if bad.numel():
                k = bad[0].item()
                ex, where = i[k].item(), q[seen][k].item()
                raise ValueError(f"method='piecewise': the model is not piecewise linear along the path of example "
                                 f"{ex}: at alpha={where:.6g} its output is off the affine extrapolation of the "
                                 f"previous piece by {miss[k].item():.3g} (relative {(miss[k] / scale[k]).item():.2g}); "
                                 f"{_NEEDS}")
        self.q[e] = q
        self.out[e.to(out.device)] = out
        self.slope[e.to(out.device)] = slope


    def check_end(self, at_end, f_x, f_baseline, skip) -> None:
        """The last piece, extrapolated to alpha = 1, must give F(x) (a model with no kinks
        at all has only this check); ``skip``: pieces cut short by max_evals."""
        e, _, f, _ = at_end
        fx, fb = f_x[e].double().cpu(), f_baseline[e].double().cpu()
        miss = (f - fx).abs()
        bad = ((miss > self.tol * (f.abs() + fx.abs() + fb.abs()) + 1e-300) & ~skip).nonzero().flatten()
        if bad.numel():
            k = bad[0].item()
            raise ValueError(f"method='piecewise': the model is not piecewise linear along the path of example "
                             f"{e[k].item()}: its last linear piece, extrapolated to the input, gives "
                             f"{f[k].item():.6g} where the model gives {fx[k].item():.6g}; {_NEEDS}")


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _trace_at(model, e, alpha, q, out, slope):
    """(examples, alphas, F, dF/dalpha) at ``alpha`` on each row's piece, from its affine output."""
    shift = (alpha - q).to(device=out.device, dtype=out.dtype).view(-1, *[1] * (out.dim() - 1))
    at = (out + shift * slope).detach().requires_grad_(True)
    with torch.enable_grad():
        f = model.targets.items[0].select(at, model._user(e.to(out.device)))
        g = torch.autograd.grad(f.sum(), at, allow_unused=True)[0] if f.requires_grad else None
    d = torch.zeros_like(f) if g is None else (g * slope).reshape(f.shape[0], -1).sum(1)
    return e, alpha, f.detach().double().cpu(), d.detach().double().cpu()


def _pad_trace(trace, batch: int, dtype):
    """(alphas, F values, slopes) per example, in path order, NaN-padded."""
    e, alpha, f, d = (torch.cat(parts) for parts in zip(*trace))
    counts = torch.bincount(e, minlength=batch)
    out = torch.full((3, batch, int(counts.max())), math.nan, dtype=dtype)
    order = torch.argsort(e * 4 + alpha, stable=True)  # by example, then alpha (alpha in [0, 1])
    e, cols = e[order], torch.cat([torch.arange(int(c)) for c in counts])
    out[:, e, cols] = torch.stack([alpha[order], f[order], d[order]]).to(dtype)
    return out
