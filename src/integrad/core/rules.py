"""Quadrature rules on [0, 1] as data: nodes, weights and the degree they integrate exactly.

Integrated Gradients integrates ``grad F(x' + a (x - x'))`` over ``a`` in [0, 1]; a rule
says where to evaluate the gradient (``nodes``) and how to weigh each evaluation
(``weights``). Rules are plain NumPy float64 data so that every backend, and the
error-controlled integrator, can use them unchanged: a rule can be mapped onto any
sub-interval (``Rule.on``), which is all adaptive subdivision needs.

References
----------
Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
Davis & Rabinowitz, "Methods of Numerical Integration", 2nd ed., 1984 (Gauss-Legendre).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["Rule", "METHODS", "rule"]


@dataclass(frozen=True, eq=False)
class Rule:
    """A quadrature rule on [0, 1].

    Attributes
    ----------
    name : str
        The method name, e.g. ``"gausslegendre"``.
    nodes : ndarray of float64, shape (n,)
        Points in [0, 1], ascending.
    weights : ndarray of float64, shape (n,)
        Weights summing to 1 (the length of [0, 1]).
    degree : int
        Highest polynomial degree the rule integrates exactly.

    Examples
    --------
    >>> r = rule("gausslegendre", 3)
    >>> float((r.weights * r.nodes**5).sum())  # exact: 1/6
    0.16666666666666666
    """

    name: str
    nodes: np.ndarray
    weights: np.ndarray
    degree: int

    @property
    def n(self) -> int:
        return int(self.nodes.shape[0])

    def on(self, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
        """Nodes and weights of this rule mapped onto the sub-interval [a, b] of [0, 1]."""
        return a + (b - a) * self.nodes, (b - a) * self.weights


def _riemann(n: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
    nodes = (np.arange(n, dtype=np.float64) + offset) / n
    return nodes, np.full(n, 1.0 / n)


def _trapezoid(n: int) -> tuple[np.ndarray, np.ndarray]:
    # n points split [0, 1] into n - 1 panels of width h; the two end points carry h / 2.
    # These weights sum to exactly 1, unlike the (n - 1) / n of some libraries.
    h = 1.0 / (n - 1)
    weights = np.full(n, h)
    weights[[0, -1]] = h / 2
    return np.linspace(0.0, 1.0, n), weights


def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n)  # on [-1, 1], weights sum to 2
    return (x + 1.0) / 2.0, w / 2.0


# name -> (builder, smallest n, degree of exactness as a function of n)
_BUILDERS = {
    "riemann_left": (lambda n: _riemann(n, 0.0), 1, lambda n: 0),
    "riemann_right": (lambda n: _riemann(n, 1.0), 1, lambda n: 0),
    "riemann_middle": (lambda n: _riemann(n, 0.5), 1, lambda n: 1),
    "trapezoid": (_trapezoid, 2, lambda n: 1),
    "gausslegendre": (_gauss_legendre, 1, lambda n: 2 * n - 1),
}
METHODS: tuple[str, ...] = tuple(_BUILDERS)


@functools.lru_cache(maxsize=256)
def rule(method: str, n_steps: int) -> Rule:
    """The quadrature rule ``method`` with ``n_steps`` nodes (cached: built once per pair).

    Parameters
    ----------
    method : {"riemann_left", "riemann_right", "riemann_middle", "trapezoid", "gausslegendre"}
    n_steps : int
        Number of nodes; at least 1 (at least 2 for ``"trapezoid"``).

    Raises
    ------
    ValueError
        For an unknown method or too few steps, naming the argument and the accepted values.
    """
    if not isinstance(method, str) or method not in _BUILDERS:
        raise ValueError(f"method: expected one of {', '.join(map(repr, METHODS))}; got {method!r}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)):
        raise TypeError(f"n_steps: expected an int; got {type(n_steps).__name__} {n_steps!r}")
    build, n_min, degree = _BUILDERS[method]
    if n_steps < n_min:
        raise ValueError(f"n_steps: expected an int >= {n_min} for method={method!r}; got {n_steps}")
    nodes, weights = build(int(n_steps))
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return Rule(method, nodes, weights, degree(int(n_steps)))
