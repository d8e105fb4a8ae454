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
    >>> round(float((r.weights * r.nodes**5).sum()), 15)  # exact: 1/6, to rounding
    0.166666666666667
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
    if n <= _EIGEN_MAX:
        x, w = np.polynomial.legendre.leggauss(n)  # on [-1, 1], weights sum to 2
    else:
        x, w = _gauss_legendre_newton(n)
    return (x + 1.0) / 2.0, w / 2.0


# numpy's leggauss solves a dense eigenproblem, O(n^3): 35 s for 5,000 nodes. Above this size
# the nodes come from Newton's method on the three-term recurrence, O(n^2) per iteration.
_EIGEN_MAX = 100


def _gauss_legendre_newton(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1] by Newton's method, all roots at once.

    Tricomi's approximation ``cos(pi (k - 1/4) / (n + 1/2))`` starts each root close enough for
    quadratic convergence; P_n and P_(n-1) come from Bonnet's recurrence.
    """
    x = np.cos(np.pi * (np.arange(n, 0, -1) - 0.25) / (n + 0.5))  # ascending
    for _ in range(20):
        p_prev, p = _legendre_pair(n, x)
        dp = n * (x * p - p_prev) / (x * x - 1.0)
        step = p / dp
        x = x - step
        if np.abs(step).max() < 1e-15:
            break
    p_prev, p = _legendre_pair(n, x)
    dp = n * (x * p - p_prev) / (x * x - 1.0)
    return x, 2.0 / ((1.0 - x * x) * dp * dp)


def _legendre_pair(n: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(P_(n-1)(x), P_n(x))`` by Bonnet's recurrence."""
    p_prev, p = np.ones_like(x), x.copy()
    for j in range(2, n + 1):
        p_prev, p = p, ((2 * j - 1) * x * p - (j - 1) * p_prev) / j
    return p_prev, p


# name -> (builder, smallest n, degree of exactness as a function of n)
_BUILDERS = {
    "riemann_left": (lambda n: _riemann(n, 0.0), 1, lambda n: 0),
    "riemann_right": (lambda n: _riemann(n, 1.0), 1, lambda n: 0),
    "riemann_middle": (lambda n: _riemann(n, 0.5), 1, lambda n: 1),
    "trapezoid": (_trapezoid, 2, lambda n: 1),
    "gausslegendre": (_gauss_legendre, 1, lambda n: 2 * n - 1),
}
METHODS: tuple[str, ...] = tuple(_BUILDERS)


MAX_STEPS = 1 << 20


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
        hint = (" (did you mean 'trapezoid'? integrad's trapezoid rule has weights summing to 1, Captum's "
                "riemann_trapezoid to (n - 1) / n)" if method == "riemann_trapezoid" else "")
        raise ValueError(f"method: expected one of {', '.join(map(repr, METHODS))}; got {method!r}{hint}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)):
        raise TypeError(f"n_steps: expected an int; got {type(n_steps).__name__} {n_steps!r}")
    n_min = _BUILDERS[method][1]
    if n_steps < n_min:
        raise ValueError(f"n_steps: expected an int >= {n_min} for method={method!r}; got {n_steps}")
    if n_steps > MAX_STEPS:
        raise ValueError(f"n_steps: at most {MAX_STEPS:,} nodes (gradient evaluations per example); got "
                         f"{n_steps:,}; for high accuracy use rtol= or method='piecewise'")
    # checked before the cache: True and 1.0 hash like 1 and would find its entry
    return _built(method, int(n_steps))


@functools.lru_cache(maxsize=256)
def _built(method: str, n_steps: int) -> Rule:
    build, _, degree = _BUILDERS[method]
    nodes, weights = build(n_steps)
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return Rule(method, nodes, weights, degree(n_steps))


# Integrated Hessians: the Gauss rule for the weight -ln(t) on [0, 1]
GAUSS_LOG_MAX = 1024  # dense eigen-solve of the Jacobi matrix: 0.2 s at 1,024 nodes on one quiet core


def gauss_log(n_steps: int) -> Rule:
    r"""Gauss rule for the weight ``-ln t`` on [0, 1]: ``sum(w * f(t)) ~ int_0^1 f(t) (-ln t) dt``.

    The weights sum to 1 (``int_0^1 -ln t dt = 1``) and the rule is exact for polynomials of
    degree ``2 n - 1`` (``int t^k (-ln t) dt = 1 / (k + 1)^2``). Integrated Hessians needs it:
    the double integral over ``(alpha, beta)`` of a function of ``alpha * beta`` becomes one
    integral in ``t = alpha * beta`` with this weight.

    The recurrence coefficients come from Gautschi's modified Chebyshev algorithm with the
    Legendre polynomials as the auxiliary basis, whose moments against ``-ln t`` are known in
    closed form (``int_0^1 P_k(2t - 1) (-ln t) dt = (-1)^k / (k (k + 1))``), so the
    computation stays well conditioned where ordinary moments ``int t^k (-ln t)`` would lose
    every digit by ``n ~ 10``. The polynomials are taken monic in ``s = 4 t - 2`` (on
    [-2, 2]): there their norms and the recurrence coefficients stay of order one, so
    nothing under- or overflows. The nodes and weights then come from the eigenvalues and
    eigenvectors of the Jacobi matrix (Golub-Welsch).

    Examples
    --------
    >>> r = gauss_log(3)
    >>> round(float((r.weights * r.nodes**5).sum()), 15) == round(1 / 36, 15)
    True

    References
    ----------
    Gautschi, "Orthogonal Polynomials: Computation and Approximation", Oxford 2004, sec. 2.1.7.
    Golub & Welsch, "Calculation of Gauss quadrature rules", Math. Comp. 23 (1969).
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)):
        raise TypeError(f"n_steps: expected an int; got {type(n_steps).__name__} {n_steps!r}")
    if not 1 <= n_steps <= GAUSS_LOG_MAX:
        raise ValueError(f"n_steps: expected an int from 1 to {GAUSS_LOG_MAX:,} for the -ln(t) Gauss rule; got "
                         f"{n_steps:,}")
    return _gauss_log(int(n_steps))  # checked before the cache, like rule()


@functools.lru_cache(maxsize=64)
def _gauss_log(n: int) -> Rule:
    size = 2 * n
    k = np.arange(1, size, dtype=np.float64)
    # P_k(s / 2) has leading coefficient (2k)! / (4^k k!^2) in s: dividing makes it monic
    lead = np.concatenate([[1.0], np.cumprod((2 * k - 1) / (2 * k))])
    moments = np.concatenate([[1.0], (-1.0) ** k / (k * (k + 1)) / lead[1:]])
    b = np.concatenate([[0.0], 4 * k**2 / (4 * k**2 - 1)])  # monic Legendre on [-2, 2]; a_k = 0
    alpha, beta = np.zeros(n), np.zeros(n)
    alpha[0], beta[0] = moments[1] / moments[0], moments[0]
    prev, cur = np.zeros(size), moments.copy()
    for j in range(1, n):
        ls = np.arange(j, size - j)
        new = np.zeros(size)
        new[ls] = cur[ls + 1] - alpha[j - 1] * cur[ls] - beta[j - 1] * prev[ls] + b[ls] * cur[ls - 1]
        alpha[j] = new[j + 1] / new[j] - cur[j] / cur[j - 1]
        beta[j] = new[j] / cur[j - 1]
        prev, cur = cur, new
    off = np.sqrt(beta[1:])
    values, vectors = np.linalg.eigh(np.diag(alpha) + np.diag(off, 1) + np.diag(off, -1))
    nodes, weights = (values + 2.0) / 4.0, beta[0] * vectors[0] ** 2
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return Rule("gausslog", nodes, weights, 2 * n - 1)
