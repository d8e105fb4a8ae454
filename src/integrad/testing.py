"""A conformance kit for attribution methods: :func:`check_method` certifies a plug-in.

In the spirit of scikit-learn's ``check_estimator``: the method is audited
(:func:`integrad.audit`) on small reference models whose answers are known, and every check
it claims must pass. The models (float64):

- **saturating**: ``F(x) = 1 - softplus_10(1 - x_0)``, flat past ``x_0 = 1`` (the seed's
  ``1 - ReLU(1 - x)``, smoothed so that quadrature converges), plus a feature it ignores:
  plain gradients fail sensitivity and completeness here;
- **symmetric**: ``tanh(w . x) + x_0 x_1`` with ``w_0 = w_1`` and ``w_3 = 0``: symmetric in
  features 0 and 1, feature 3 a dummy;
- **mlp**: a tanh MLP with three outputs: linearity, batch, chunk and dtype invariance,
  a traced copy;
- **cnn**: a small convolutional network with batch norm: the folded copy, and images for
  image-only methods.

integrad's own methods are run through it in ``tests/test_conformance.py``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from .axioms import AuditReport, audit

__all__ = ["as_method", "check_method", "reference_models"]

ALL = ("completeness", "sensitivity", "dummy", "linearity", "symmetry", "implementation invariance",
       "batch invariance", "chunk invariance", "dtype invariance")


class _Saturating(torch.nn.Module):
    def forward(self, x):
        return 1 - torch.nn.functional.softplus(1 - x[:, 0], beta=10.0) + 0.0 * x[:, 1]


class _Symmetric(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.tensor([0.8, 0.8, -1.5, 0.0], dtype=torch.float64))

    def forward(self, x):
        return torch.tanh(x @ self.w) + x[:, 0] * x[:, 1]


def reference_models() -> dict[str, tuple[torch.nn.Module, torch.Tensor, dict]]:
    """``name -> (model, inputs, audit keyword arguments)``, built from fixed seeds."""
    g = torch.Generator().manual_seed(0)
    torch_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)  # the layers' default initialisation draws from the global generator
        mlp = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double().eval()
        cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.Softplus(),
                                  torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16, 2)).double()
        with torch.no_grad():
            cnn[1].running_mean.uniform_(-0.5, 0.5, generator=g)
            cnn[1].running_var.uniform_(0.5, 2.0, generator=g)
        cnn.eval()
    finally:
        torch.random.set_rng_state(torch_state)
    return {
        "saturating": (_Saturating(), torch.tensor([[2.0, 0.5], [3.0, -1.0]], dtype=torch.float64), {}),
        "symmetric": (_Symmetric(), torch.randn(3, 4, generator=g, dtype=torch.float64),
                      {"symmetric": [(0, 1)], "dummy": [3]}),
        "mlp": (mlp, torch.randn(4, 6, generator=g, dtype=torch.float64), {"target": 1}),
        "cnn": (cnn, torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64), {"target": 0}),
    }


def check_method(fn: Any, *, claims: Iterable[str] = ALL, models: Iterable[str] | None = None, tol: float = 1e-2,
                 **method_kwargs: Any) -> dict[str, AuditReport]:
    """Audit ``fn`` on the reference models; raise ``AssertionError`` if a claimed check fails.

    Parameters
    ----------
    fn : str or callable
        As :func:`integrad.audit`'s ``method``: ``fn(model, inputs, baseline=..., target=...,
        **method_kwargs)`` returning an :class:`~integrad.Attribution` or a tensor.
    claims : iterable of str
        The checks the method promises (default all of :data:`ALL`); e.g. a sampled method
        that is complete only in expectation leaves out ``"completeness"``. Checks that do not
        apply to a model (``n/a``) are not failures.
    models : iterable of str, optional
        A subset of :func:`reference_models` (default all; image-only methods: ``["cnn"]``).
    tol : float
        The audit's tolerance.

    Returns
    -------
    dict of name to :class:`~integrad.axioms.AuditReport`
    """
    claims = tuple(claims)
    unknown = [c for c in claims if c not in ALL]
    if unknown:
        raise ValueError(f"claims: unknown check(s) {unknown}; expected some of {', '.join(ALL)}")
    available = reference_models()
    chosen = list(available) if models is None else list(models)
    bad = [m for m in chosen if m not in available]
    if bad or not chosen:
        raise ValueError(f"models: expected some of {', '.join(available)}; got {chosen}")
    reports, failures = {}, []
    for name in chosen:
        model, x, kw = available[name]
        report = audit(model, x, method=fn, tol=tol, name=name, **(kw | method_kwargs))
        reports[name] = report
        for c in report.checks:
            claimed = any(c.name == k or c.name.startswith(k + " (") for k in claims)
            if claimed and c.passed is False:
                failures.append(f"{name}: {c.name}: {c.detail}")
    if failures:
        raise AssertionError(f"{reports[chosen[0]].method} breaks {len(failures)} claimed check(s):\n  "
                             + "\n  ".join(failures))
    return reports


def as_method(call: Callable[..., Any], **fixed: Any) -> Callable[..., Any]:
    """A method in the audit's form from a function with other argument names, e.g.
    ``as_method(integrad.blur_ig, max_sigma=2.0)`` (the baseline is dropped where the function
    takes none)."""
    import inspect

    takes_baseline = "baseline" in inspect.signature(call).parameters

    def method(model, inputs, baseline=0.0, target=None, **kw):
        extra = {"baseline": baseline} if takes_baseline else {}
        return call(model, inputs, target=target, **extra, **(fixed | kw))

    method.__name__ = getattr(call, "__name__", "method")
    return method
