"""Check the axioms of an attribution method on the user's own model and inputs.

:func:`audit` runs a method (IG by default, or any callable) on ``model`` and ``inputs`` and
checks, each with the number behind its verdict:

- **completeness**: ``|delta| / |F(x) - F(x')|`` over the examples;
- **estimated error**: the method's estimate of its per-feature error, where it has one (on
  ReLU networks a small gap does not mean accurate attributions);
- **sensitivity (a)**: an input that differs from the baseline in one feature only, and is
  scored differently, gives that feature a nonzero attribution (the features with the largest
  ``|x - x'|`` of the first example are tried);
- **dummy**: a feature the model ignores (found by perturbing it, or declared with ``dummy=``)
  gets zero attribution;
- **linearity** (two heads given, or two of the model's outputs): the attributions of
  ``a F_1 + b F_2`` are ``a phi_1 + b phi_2``;
- **symmetry**: for features the model treats symmetrically (declared with ``symmetric=``, or
  found by swapping them on random points for inputs of at most 64 features), equal values in
  the input and the baseline get equal attributions;
- **implementation invariance**: a functionally equal copy of the model (traced by torch.fx,
  and with batch norm folded into the preceding convolutions where there is any) gives the same
  attributions;
- **batch, chunk and dtype invariance**: each example alone, another block size and float64
  give the same attributions.

Reference: Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017
(the axioms; the saturation example ``F(x) = 1 - ReLU(1 - x)``).
"""

from __future__ import annotations

import copy
import html
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from .core import checks as C

__all__ = ["Check", "AuditReport", "audit", "gradient", "gradient_x_input"]

TOL = 1e-2  # relative tolerance of the invariance checks and of completeness, unless given


@dataclass(frozen=True)
class Check:
    """One axiom or invariance on one model: whether it held, and the number that says so."""

    name: str
    passed: bool | None  # None: not applicable here (``detail`` says why)
    value: float | None
    threshold: float | None
    detail: str

    @property
    def verdict(self) -> str:
        return "n/a" if self.passed is None else ("pass" if self.passed else "FAIL")


@dataclass(frozen=True, eq=False)
class AuditReport:
    """The checks of one method on one model; ``to_dict``/``to_json``/``to_html``/``save``."""

    method: str
    model: str
    inputs: str
    checks: tuple[Check, ...]
    settings: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; the checks are {', '.join(c.name for c in self.checks)}")

    def __str__(self) -> str:
        lines = [f"audit of {self.method} on {self.model} ({self.inputs}): "
                 f"{'every applicable check passed' if self.passed else 'FAILED'}"]
        for c in self.checks:
            lines.append(f"  {c.verdict:4}  {c.name}: {c.detail}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        from . import __version__

        return {"integrad_version": __version__, "method": self.method, "model": self.model, "inputs": self.inputs,
                "passed": self.passed, "settings": self.settings,
                "checks": [{"name": c.name, "passed": c.passed, "value": _number(c.value),
                            "threshold": _number(c.threshold), "detail": c.detail} for c in self.checks]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_html(self) -> str:
        """A self-contained page (no external URLs)."""
        rows = "".join(
            f"<tr class='{'na' if c.passed is None else ('ok' if c.passed else 'bad')}'><td>{html.escape(c.name)}"
            f"</td><td>{c.verdict}</td><td>{'' if c.value is None else f'{c.value:.3g}'}</td>"
            f"<td>{'' if c.threshold is None else f'{c.threshold:.3g}'}</td><td>{html.escape(c.detail)}</td></tr>"
            for c in self.checks)
        head = html.escape(f"audit of {self.method} on {self.model}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{head}</title><style>{_CSS}</style></head>"
                f"<body><h1>{head}</h1><p class='meta'>{html.escape(self.inputs)}; "
                f"{'every applicable check passed' if self.passed else 'at least one check FAILED'}</p>"
                "<table><tr><th>check</th><th>verdict</th><th>value</th><th>threshold</th><th>what was measured</th>"
                f"</tr>{rows}</table></body></html>")

    def _repr_html_(self) -> str:
        return f"<div><style>{_CSS}</style>" + self.to_html().split("<body>", 1)[1].split("</body>", 1)[0] + "</div>"

    def save(self, path: Any) -> None:
        """``.json`` or ``.html``, by the file's suffix."""
        text = self.to_json() if str(path).endswith(".json") else self.to_html()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


_CSS = ("body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
        "tr.ok td:nth-child(2){color:#1a7f37}tr.bad td:nth-child(2){color:#b3261e;font-weight:bold}"
        "tr.na td:nth-child(2){color:#777}.meta{color:#555}")


def _number(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# ---------------------------------------------------------------------------- reference methods
def gradient(model: Callable, inputs: torch.Tensor, *, baseline: Any = 0.0, target: Any = None) -> torch.Tensor:
    """The plain gradient of the target at ``inputs`` (a saliency map; not an attribution method
    with completeness): for showing what the audit catches."""
    x = inputs.detach().clone().requires_grad_(True)
    out = _select(model(x), target)
    (g,) = torch.autograd.grad(out.sum(), x)
    return g.detach()


def gradient_x_input(model: Callable, inputs: torch.Tensor, *, baseline: Any = 0.0, target: Any = None) -> torch.Tensor:
    """Gradient times ``(input - baseline)``: complete for linear models only."""
    b = _baseline_like(baseline, inputs)
    return gradient(model, inputs, target=target) * (inputs - b)


def _select(out: Any, target: Any) -> torch.Tensor:
    out = out if isinstance(out, torch.Tensor) else getattr(out, "logits", out)
    if callable(target):
        return target(out)
    if target is None:
        if out[0].numel() != 1:
            raise ValueError(f"target: the model gives {out[0].numel()} outputs per example; give target= (a class "
                             "index)")
        return out.reshape(out.shape[0])
    return out[:, target]


def _baseline_like(baseline: Any, x: torch.Tensor) -> torch.Tensor:
    """The baseline broadcast to the batch ``x`` (a number, one example, or one per example)."""
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float, torch.Tensor)):
        raise TypeError(f"baseline: expected a number or a tensor; got {type(baseline).__name__}")
    b = baseline if isinstance(baseline, torch.Tensor) else torch.tensor(float(baseline), dtype=x.dtype)
    try:
        return torch.broadcast_to(b.to(x.dtype), x.shape)
    except RuntimeError:
        raise ValueError(f"baseline: expected a number or a tensor broadcastable to the inputs' shape "
                         f"{tuple(x.shape)}; got shape {tuple(b.shape)}") from None


# ---------------------------------------------------------------------------- running a method
_METHODS = {"gradient": gradient, "gradient_x_input": gradient_x_input}


class _Runner:
    """The method under audit as one call: ``(attributions, delta)`` for given inputs and baseline."""

    def __init__(self, method: Any, model: Callable, target: Any, kwargs: dict):
        if isinstance(method, str):
            if method == "integrated_gradients":
                from .methods.ig import integrated_gradients as fn
            elif method in _METHODS:
                fn = _METHODS[method]
            else:
                raise ValueError(f"method: expected 'integrated_gradients', 'gradient', 'gradient_x_input' or a "
                                 f"callable fn(model, inputs, baseline=..., target=...); got {method!r}")
            self.name = method
        elif callable(method):
            fn, self.name = method, getattr(method, "__name__", type(method).__name__)
        else:
            raise TypeError(f"method: expected a name or a callable; got {type(method).__name__}")
        if self.name == "integrated_gradients" and "rule" in kwargs:  # IG's quadrature rule, by smoothgrad's name
            kwargs = {k: v for k, v in kwargs.items() if k != "rule"} | {"method": kwargs["rule"]}
        self.fn, self.model, self.target, self.kwargs = fn, model, target, kwargs

    def __call__(self, x: torch.Tensor, baseline: Any, *, model: Callable | None = None, target: Any = "same",
                 **extra: Any):
        model = self.model if model is None else model
        target = self.target if target == "same" else target
        out = self.fn(model, x, baseline=baseline, target=target, **(self.kwargs | extra))
        attr = out.attributions if hasattr(out, "attributions") else out
        if not isinstance(attr, torch.Tensor) or attr.shape != x.shape:
            got = f"shape {tuple(attr.shape)}" if isinstance(attr, torch.Tensor) else type(attr).__name__
            raise ValueError(f"method: expected attributions of the inputs' shape {tuple(x.shape)}; got {got}")
        return attr.detach(), out

    def outputs(self, x: torch.Tensor, model: Callable | None = None, target: Any = "same") -> torch.Tensor:
        with torch.no_grad():
            return _select((self.model if model is None else model)(x), self.target if target == "same" else target)


# ---------------------------------------------------------------------------- the audit
def audit(model: Callable, inputs: torch.Tensor, *, method: Any = "integrated_gradients", baseline: Any = 0.0,
          target: Any = None, dummy: Sequence[int] | None = None, symmetric: Sequence[tuple[int, int]] | None = None,
          heads: tuple[Callable, Callable] | None = None, tol: float = TOL, n_probe: int = 8, seed: int = 0, name: str | None = None, **method_kwargs: Any) -> AuditReport:
    """Check the attribution axioms and invariances of ``method`` on ``model`` at ``inputs``.

    Parameters
    ----------
    model : nn.Module or callable
        ``inputs (batch, *features)`` to outputs ``(batch,)`` or ``(batch, classes)``.
    inputs : Tensor
        A few examples (the checks rerun the method several times on them).
    method : str or callable
        ``"integrated_gradients"`` (default), ``"gradient"``, ``"gradient_x_input"``, or
        ``fn(model, inputs, baseline=..., target=..., **method_kwargs)`` returning an
        :class:`~integrad.Attribution` or a tensor of the inputs' shape.
    baseline, target, **method_kwargs
        Passed to the method (``target``: a class index, or None for one output per example).
        IG's quadrature rule is ``rule=`` here (``method`` names the method), e.g.
        ``rule="piecewise"`` for exact IG on a piecewise-linear model.
    dummy : list of int, optional
        Flat feature indices the model is known to ignore (else found by perturbation).
    symmetric : list of (int, int), optional
        Flat feature index pairs the model treats symmetrically (else found by swapping them,
        for inputs of at most 64 features).
    heads : (callable, callable), optional
        Two functions of the model's output to ``(batch,)``, for the linearity check (default:
        the first and last of two or more outputs).
    tol : float
        Relative tolerance of completeness and of the invariance checks.
    n_probe : int
        Random points per perturbation probe (dummy and symmetry detection), and features
        tried for sensitivity.
    seed : int
        For the probes (never the global RNG).
    """
    C.check_model(model)
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point() or inputs.dim() < 2:
        got = f"{inputs.dtype} tensor of shape {tuple(inputs.shape)}" if isinstance(inputs, torch.Tensor) \
            else type(inputs).__name__
        raise ValueError(f"inputs: expected a float tensor of shape (batch, *features); got {got}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise ValueError(f"tol: expected a number in (0, 1); got {tol!r}")
    if heads is not None and not (isinstance(heads, (tuple, list)) and len(heads) == 2 and all(map(callable, heads))):
        raise TypeError(f"heads: expected two callables (h1, h2), each output -> (batch,); got {heads!r}")
    run = _Runner(method, model, target, method_kwargs)
    x = inputs.detach()
    b = _baseline_like(baseline, x)
    gen = torch.Generator().manual_seed(seed)
    attr, out = run(x, baseline)
    checks = [
        _completeness(run, x, b, attr, out, tol),
        _accuracy(out, tol),
        _sensitivity(run, x, b, n_probe),
        _dummy(run, x, b, attr, dummy, n_probe, gen),
        _linearity(run, x, baseline, tol, heads),
        _symmetry(run, x, b, symmetric, n_probe, gen, tol),
        *_implementation(run, x, baseline, attr, tol),
        _batch(run, x, baseline, attr, tol),
        _chunks(run, x, baseline, attr, tol),
        _dtype(run, x, baseline, attr, tol),
    ]
    return AuditReport(method=run.name, model=name or type(model).__name__,
                       inputs=f"{x.shape[0]} example(s) of shape {tuple(x.shape[1:])}, {str(x.dtype)[6:]}",
                       checks=tuple(checks), settings={"baseline": _describe(baseline), "target": _describe(target),
                                                       "tol": tol, "seed": seed} | {k: _describe(v) for k, v in
                                                                                     method_kwargs.items()})


def _describe(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else f"tensor{tuple(v.shape)}"
    return v if isinstance(v, (int, float, str, type(None))) else repr(v)


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest per-example ``||a - ref|| / ||ref||`` (0 when both are zero)."""
    d = (a - ref).reshape(a.shape[0], -1).double().norm(dim=1)
    r = ref.reshape(ref.shape[0], -1).double().norm(dim=1)
    return float(torch.where(r > 0, d / r.clamp_min(1e-300), torch.where(d > 0, torch.inf, 0.0)).max())


def _completeness(run, x, b, attr, out, tol) -> Check:
    # against the method's own ends where it reports them (Blur IG starts at the blurred image,
    # SmoothGrad at the noisy copies' mean): else the model at the input and the baseline
    if all(hasattr(out, k) for k in ("f_x", "f_baseline")) and out.f_x.shape == (x.shape[0],):
        f, fb = out.f_x.double(), out.f_baseline.double()
    else:
        f, fb = run.outputs(x).double(), run.outputs(b).double()
    change = (f - fb).abs()
    gap = (attr.reshape(x.shape[0], -1).sum(1, dtype=torch.float64) - (f - fb)).abs()
    rel = torch.where(change > 0, gap / change.clamp_min(1e-300), gap)
    worst, median = float(rel.max()), float(rel.median())
    err = getattr(out, "error", None)
    extra = "" if err is None else f"; estimated per-feature error: median {float(err.median()):.2e}, max " \
                                   f"{float(err.max()):.2e}"
    return Check("completeness", worst <= tol, worst, tol,
                 f"|sum of attributions - (F(x) - F(baseline))| / |F(x) - F(baseline)|: median {median:.2e}, "
                 f"max {worst:.2e} over {x.shape[0]} example(s){extra}")


def _accuracy(out, tol) -> Check:
    """The method's own estimate of its per-feature error (a small gap does not mean accurate
    attributions on ReLU networks: the gap's errors cancel)."""
    err = getattr(out, "error", None)
    if err is None:
        return Check("estimated error", None, None, None, "the method gives no error estimate")
    worst = float(err.max())
    return Check("estimated error", worst <= tol, worst, tol,
                 f"estimated ||a - a_exact|| / ||a||: median {float(err.median()):.2e}, max {worst:.2e} (raise n_steps "
                 "or use rtol= where it is above the threshold)")


def _sensitivity(run, x, b, n_probe) -> Check:
    """Inputs that differ from the baseline in one feature only, tried on the first example."""
    d = (x[0] - b[0]).reshape(-1)
    order = d.abs().argsort(descending=True)[:n_probe]
    order = order[d[order] != 0]
    if order.numel() == 0:
        return Check("sensitivity", None, None, None, "the first example equals the baseline")
    singles = b[:1].repeat(order.numel(), *[1] * (x.dim() - 1)).reshape(order.numel(), -1).clone()
    singles[torch.arange(order.numel()), order] = x[0].reshape(-1)[order]
    singles = singles.view(order.numel(), *x.shape[1:])
    base = b[:1].expand_as(singles)
    change = (run.outputs(singles) - run.outputs(base)).double()
    moved = change.abs() > 1e-6 * (1 + change.abs().max())
    if not bool(moved.any()):
        return Check("sensitivity", None, None, None, f"none of the {order.numel()} one-feature changes tried moves F")
    a, _ = run(singles, base)
    share = a.reshape(order.numel(), -1)[torch.arange(order.numel()), order].double() / change
    worst = float(share[moved].abs().min())
    missed = int((share[moved].abs() <= 1e-3).sum())
    return Check("sensitivity", missed == 0, worst, 1e-3,
                 f"{int(moved.sum())} one-feature changes that move F: the changed feature's attribution is at "
                 f"least {worst:.3g} of the change of F ({missed} got (almost) nothing)")


def _dummy(run, x, b, attr, dummy, n_probe, gen) -> Check:
    flat = x.reshape(x.shape[0], -1)
    width = flat.shape[1]
    if dummy is not None:
        idx = torch.as_tensor(list(dummy), dtype=torch.long)
        if idx.numel() and (idx.min() < 0 or idx.max() >= width):
            raise ValueError(f"dummy: expected flat feature indices in 0..{width - 1}; got {list(dummy)}")
        how = "declared"
    elif width <= 256:
        # perturb each feature alone on a few random points around the inputs: unchanged F everywhere
        scale = flat.std().clamp_min(1e-3) + (flat - b.reshape(b.shape[0], -1)).abs().mean()
        pts = flat[torch.randint(flat.shape[0], (n_probe,), generator=gen)]
        pts = pts + 0.5 * scale * torch.randn(pts.shape, generator=gen, dtype=pts.dtype)
        base_out = run.outputs(pts.view(n_probe, *x.shape[1:])).double()
        moved = torch.zeros(width, dtype=torch.bool)
        for j in range(width):
            q = pts.clone()
            q[:, j] += scale * (1 + torch.rand(n_probe, generator=gen, dtype=q.dtype))
            moved[j] = bool(((run.outputs(q.view(n_probe, *x.shape[1:])).double() - base_out).abs()
                             > 1e-9 * (1 + base_out.abs())).any())
        idx = (~moved).nonzero().flatten()
        how = "found by perturbation"
    else:
        return Check("dummy", None, None, None, f"{width} features: declare ignored ones with dummy= to check them")
    if idx.numel() == 0:
        return Check("dummy", None, None, None, f"no feature the model ignores ({how})")
    a = attr.reshape(attr.shape[0], -1).double()
    worst = float((a[:, idx].abs().max(1).values / a.abs().sum(1).clamp_min(1e-300)).max())
    return Check("dummy", worst <= 1e-6, worst, 1e-6,
                 f"{idx.numel()} ignored feature(s) ({how}): largest attribution {worst:.2e} of the total |attribution|")


def _linearity(run, x, baseline, tol, heads) -> Check:
    if heads is not None:
        h1, h2 = heads
        what = "2 h_1(F) - 0.5 h_2(F) against 2 phi[h_1] - 0.5 phi[h_2] (the heads given)"
    else:
        with torch.no_grad():
            out = run.model(x)
        out = out if isinstance(out, torch.Tensor) else C.output_tensor(out, x.shape[0])
        if out.dim() != 2 or out.shape[1] < 2 or callable(run.target):
            return Check("linearity", None, None, None, "needs a model with two or more outputs per example, or "
                                                        "heads=(h1, h2)")
        i, j = 0, out.shape[1] - 1
        h1, h2 = (lambda o: o[:, i]), (lambda o: o[:, j])
        what = f"2 F_{i} - 0.5 F_{j} against 2 phi_{i} - 0.5 phi_{j}"
    a1, _ = run(x, baseline, target=h1)
    a2, _ = run(x, baseline, target=h2)
    both, _ = run(x, baseline, target=lambda o: 2.0 * h1(o) - 0.5 * h2(o))
    err = _rel(both, 2.0 * a1 - 0.5 * a2)
    return Check("linearity", err <= tol, err, tol, f"attributions of {what}: relative difference {err:.2e}")


def _symmetry(run, x, b, symmetric, n_probe, gen, tol) -> Check:
    width = x[0].numel()
    if symmetric is not None:
        pairs = [(int(p), int(q)) for p, q in symmetric]
        bad = [pq for pq in pairs if not (0 <= pq[0] < width and 0 <= pq[1] < width) or pq[0] == pq[1]]
        if bad:
            raise ValueError(f"symmetric: expected pairs of two different flat feature indices in 0..{width - 1}; "
                             f"got {bad}")
        how = "declared"
    elif width <= 64:
        pts = x.reshape(x.shape[0], -1)[torch.randint(x.shape[0], (n_probe,), generator=gen)]
        pts = pts + torch.randn(pts.shape, generator=gen, dtype=pts.dtype) * pts.std().clamp_min(1e-3)
        ref = run.outputs(pts.view(n_probe, *x.shape[1:])).double()
        pairs = []
        for p in range(width):
            for q in range(p + 1, width):
                sw = pts.clone()
                sw[:, [p, q]] = sw[:, [q, p]]
                if bool(((run.outputs(sw.view(n_probe, *x.shape[1:])).double() - ref).abs()
                         <= 1e-9 * (1 + ref.abs())).all()):
                    pairs.append((p, q))
        how = "found by swapping"
    else:
        return Check("symmetry", None, None, None, f"{width} features: declare symmetric pairs with symmetric= "
                                                   "to check them")
    if not pairs:
        return Check("symmetry", None, None, None, f"no pair the model treats symmetrically ({how})")
    pairs = pairs[:16]
    xs, bs = x[:1].repeat(len(pairs), *[1] * (x.dim() - 1)).reshape(len(pairs), -1).clone(), \
        b[:1].repeat(len(pairs), *[1] * (x.dim() - 1)).reshape(len(pairs), -1).clone()
    for r, (p, q) in enumerate(pairs):  # equal values in the input, and in the baseline
        xs[r, q], bs[r, q] = xs[r, p], bs[r, p]
    a, _ = run(xs.view(len(pairs), *x.shape[1:]), bs.view(len(pairs), *x.shape[1:]))
    a = a.reshape(len(pairs), -1).double()
    rows = torch.arange(len(pairs))
    p_idx, q_idx = torch.tensor([p for p, _ in pairs]), torch.tensor([q for _, q in pairs])
    diff = (a[rows, p_idx] - a[rows, q_idx]).abs() / a.abs().sum(1).clamp_min(1e-300)
    worst = float(diff.max())
    return Check("symmetry", worst <= tol, worst, tol,
                 f"{len(pairs)} symmetric pair(s) ({how}), equal in input and baseline: attributions differ by "
                 f"at most {worst:.2e} of the total |attribution|")


def _implementation(run, x, baseline, attr, tol) -> list[Check]:
    if not isinstance(run.model, torch.nn.Module):
        return [Check("implementation invariance", None, None, None, "needs an nn.Module to make an equal copy of")]
    out = []
    copy_, how, why = _graph_copy(run.model, x)
    if copy_ is None:
        out.append(Check("implementation invariance (traced)", None, None, None, why))
    else:
        a, _ = run(x, baseline, model=copy_)
        err = _rel(a, attr)
        out.append(Check("implementation invariance (traced)", err <= tol, err, tol,
                         f"{how} (its operations as a graph): relative difference {err:.2e}"))
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in run.model.modules()):
        try:
            from torch.fx.experimental.optimization import fuse

            folded = fuse(copy.deepcopy(run.model).eval())
            a, _ = run(x, baseline, model=folded)
            err = _rel(a, attr)
            out.append(Check("implementation invariance (batch norm folded)", err <= tol, err, tol,
                             f"batch norm folded into the convolutions (torch.fx): relative difference {err:.2e}"))
        except Exception as e:
            out.append(Check("implementation invariance (batch norm folded)", None, None, None,
                             f"torch.fx could not fold the model's batch norm ({type(e).__name__})"))
    return out


def _graph_copy(model: torch.nn.Module, x: torch.Tensor):
    """A functionally equal copy of ``model`` as a graph: torch.fx's symbolic trace, else
    torch.export with a free batch size. ``(copy, how it was made, why not)``."""
    try:
        return torch.fx.symbolic_trace(copy.deepcopy(model)), "a torch.fx-traced copy of the model", ""
    except Exception as e:  # data-dependent control flow, or untraceable calls
        fx_error = type(e).__name__
    try:
        example = torch.cat([x[:1], x[:1]])  # two rows, so that the batch size is not specialised to 1
        batch = torch.export.Dim("batch", min=1, max=1 << 20)
        program = torch.export.export(copy.deepcopy(model).eval(), (example,), dynamic_shapes=({0: batch},))
        return program.module(), "a torch.export copy of the model", ""
    except Exception as e:
        return None, "", f"neither torch.fx ({fx_error}) nor torch.export ({type(e).__name__}) could copy the model"


def _batch(run, x, baseline, attr, tol) -> Check:
    if x.shape[0] < 2:
        return Check("batch invariance", None, None, None, "one example: nothing to compare")
    b = _baseline_like(baseline, x)
    alone = torch.cat([run(x[i:i + 1], b[i:i + 1])[0] for i in range(x.shape[0])])
    err = _rel(alone, attr)
    return Check("batch invariance", err <= tol, err, tol,
                 f"each example alone against the batch: relative difference {err:.2e}")


def _chunks(run, x, baseline, attr, tol) -> Check:
    if run.name != "integrated_gradients" and "batch_size" not in run.kwargs:
        return Check("chunk invariance", None, None, None, "the method takes no batch_size")
    a, _ = run(x, baseline, batch_size=3)
    err = _rel(a, attr)
    return Check("chunk invariance", err <= tol, err, tol, f"blocks of 3 rows against the default: relative "
                                                            f"difference {err:.2e}")


def _dtype(run, x, baseline, attr, tol) -> Check:
    if not isinstance(run.model, torch.nn.Module):
        return Check("dtype invariance", None, None, None, "needs an nn.Module to convert")
    wide = torch.float64 if x.dtype != torch.float64 else torch.float32
    other = copy.deepcopy(run.model).to(wide)
    b = baseline.to(wide) if isinstance(baseline, torch.Tensor) else baseline
    try:
        a, _ = run(x.to(wide), b, model=other)
    except RuntimeError as e:  # tensors the model keeps outside its parameters and buffers stay as they were
        return Check("dtype invariance", None, None, None, f"the model does not run in {str(wide)[6:]} after "
                                                           f".to({str(wide)[6:]}): {str(e).splitlines()[0][:160]}")
    err = _rel(a.to(attr.dtype), attr)
    limit = max(tol, 1e-3)
    return Check("dtype invariance", err <= limit, err, limit,
                 f"{str(wide)[6:]} copy of the model and inputs: relative difference {err:.2e}")
