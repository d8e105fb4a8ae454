"""Error-controlled integration of the IG path integral, per example, reusing every evaluation.

Each example's interval [0, 1] is a binary tree of panels. A panel [a, b] holds gradients at
its five dyadic points a, a+h/4, a+h/2, a+3h/4, b; Simpson on the whole panel (3 points)
and on its two halves (5 points) differ by ``S2 - S1``: the panel's value is the extrapolated
``S2 + (S2 - S1) / 15`` (Boole's rule, exact to degree 5) and its error estimate
``2.1 |S2 - S1|``, which bounds the error of a panel holding one step of the gradient
(Richardson's 1/15 assumes a smooth panel; across a jump it underestimates up to 30x).
Splitting a panel reuses all five points and adds four. Errors are measured on the
attribution vector ``(x - x') * integral`` (not on the scalar completeness gap, where
errors of opposite sign cancel), and an example stops as soon as its panels' error norms,
added in quadrature, are within ``max(rtol * ||attributions||, atol)``.

Panels are refined greedily, largest error first, until the unrefined panels' error would
fit in half the tolerance; the new points of all unconverged examples are evaluated together
in blocks. Smooth integrands stop after few panels; the jumps of ReLU networks' gradients are
localised by bisection, which is where fixed rules spend most of their evaluations.

References
----------
Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
Lyness, "Notes on the adaptive Simpson quadrature routine", J. ACM 16(3), 1969.
Gander & Gautschi, "Adaptive quadrature — revisited", BIT 40(1), 2000.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

_OFFSETS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the five points of a panel, as fractions of its width
_SAFETY = 0.5  # refine until the unrefined error is at most this fraction of the tolerance
# sup over step positions c in a panel of |Boole value - exact| / |S2 - S1|: 2.067, reached
# with the step just past the last quarter point (computed on a fine grid of c)
_JUMP_FACTOR = 2.1


@dataclass(eq=False)
class _Panel:
    a: float
    b: float
    points: tuple[int, ...]  # indices of the five gradient rows of this example
    value: torch.Tensor  # integral of the gradient over the panel, shape (F,)
    error: float  # norm of the estimated error of the attribution vector over the panel


def integrate_adaptive(path, rtol: float, atol: float, max_evals: int):
    """Integrate every example of ``path`` to ``rtol``/``atol``.

    Returns the integrals (one tensor per input, shaped like the path's differences), the
    evaluations used, the estimated relative errors, which examples converged, and the trace
    (alphas, F values, slopes), NaN-padded to a common length.
    """
    B = path.batch
    diff = torch.cat([d.flatten(1) for d in path.diffs], 1)  # (B, F)
    grads: list[list[torch.Tensor]] = [[] for _ in range(B)]
    alphas: list[list[float]] = [[] for _ in range(B)]
    values: list[list[float]] = [[] for _ in range(B)]

    def run(requests: list[tuple[int, float]]) -> list[int]:
        """Evaluate (example, alpha) pairs in one batch; returns each one's row index."""
        example = torch.tensor([e for e, _ in requests], device=diff.device)
        a = torch.tensor([t for _, t in requests], dtype=path.dtype, device=diff.device)
        f, g = path.evaluate(example, a)
        rows = []
        for i, (e, t) in enumerate(requests):
            rows.append(len(grads[e]))
            grads[e].append(g[i])
            alphas[e].append(t)
            values[e].append(float(f[i]))
        return rows

    def panel(e: int, a: float, b: float, points: tuple[int, ...]) -> _Panel:
        g = torch.stack([grads[e][i] for i in points])  # (5, F)
        h = b - a
        s1 = h / 6 * (g[0] + 4 * g[2] + g[4])
        s2 = h / 12 * (g[0] + 4 * g[1] + 2 * g[2] + 4 * g[3] + g[4])
        # Boole's extrapolation for the value. For the error, not Richardson's (S2 - S1)/15,
        # which holds only on smooth panels, but _JUMP_FACTOR * (S2 - S1): that bounds the
        # error for a step anywhere in the panel (the gradient of a ReLU network jumps), and
        # smooth panels lose 64x per split, so the margin costs little there.
        return _Panel(a, b, points, s2 + (s2 - s1) / 15, _JUMP_FACTOR * float((diff[e] * (s2 - s1)).norm()))

    first = run([(e, t) for e in range(B) for t in _OFFSETS])
    panels = [[panel(e, 0.0, 1.0, tuple(first[5 * e:5 * e + 5]))] for e in range(B)]
    active = set(range(B))
    converged = torch.zeros(B, dtype=torch.bool)
    rel_error = torch.zeros(B, dtype=torch.float64)
    while active:
        requests, splits = [], []
        for e in sorted(active):
            total = torch.stack([p.value for p in panels[e]]).sum(0)
            norm = float((diff[e] * total).norm())
            tol = max(rtol * norm, atol)
            err = _combine([p.error for p in panels[e]])
            rel_error[e] = err / norm if norm > 0 else (0.0 if err == 0 else math.inf)
            if err <= tol:
                converged[e] = True
                active.discard(e)
                continue
            budget = (max_evals - len(grads[e])) // 4
            if budget < 1:
                active.discard(e)
                continue
            chosen = _choose(panels[e], tol, budget)
            for p in chosen:
                h = p.b - p.a
                new = [p.a + h / 8, p.a + 3 * h / 8, p.a + 5 * h / 8, p.a + 7 * h / 8]
                splits.append((e, p, len(requests)))
                requests.extend((e, t) for t in new)
            panels[e] = [p for p in panels[e] if p not in chosen]
        if not requests:
            break
        rows = run(requests)
        for e, p, at in splits:
            n = rows[at:at + 4]
            i0, i1, i2, i3, i4 = p.points
            m = (p.a + p.b) / 2
            panels[e] += [panel(e, p.a, m, (i0, n[0], i1, n[1], i2)), panel(e, m, p.b, (i2, n[2], i3, n[3], i4))]

    if not converged.all():
        bad = (~converged).nonzero().flatten().tolist()
        warnings.warn(f"rtol={rtol}: {len(bad)} of {B} examples did not reach the tolerance within "
                      f"max_evals={max_evals} (examples {bad[:10]}, estimated relative errors "
                      f"{[float(f'{rel_error[i]:.2g}') for i in bad[:10]]}); raise max_evals or loosen rtol",
                      stacklevel=3)
    integral = torch.stack([torch.stack([p.value for p in panels[e]]).sum(0) for e in range(B)])
    sizes = [d[0].numel() for d in path.diffs]
    acc = tuple(part.reshape(d.shape) for part, d in zip(integral.split(sizes, 1), path.diffs))
    n_evals = torch.tensor([len(g) for g in grads], dtype=torch.int64)
    return acc, n_evals, rel_error, converged, _trace(alphas, values, grads, diff)


def _choose(panels: list[_Panel], tol: float, budget: int) -> list[_Panel]:
    """The panels to split: largest errors first, until the rest fits in the safety margin."""
    order = sorted(panels, key=lambda p: p.error, reverse=True)
    chosen = []
    for i, p in enumerate(order):
        if _combine([q.error for q in order[i:]]) <= _SAFETY * tol or len(chosen) == budget:
            break
        chosen.append(p)
    return chosen


def _combine(errors: list[float]) -> float:
    """An example's error from its panels': root-sum-square.

    Panel errors come from gradient jumps at unrelated places along the path, so their
    vectors point in unrelated directions and add in quadrature; the triangle-inequality sum
    overestimated the true error 7-10x on ReLU MLPs and cost 2.6x the evaluations (measured
    in benchmarks/bench_adaptive.py).
    """
    return math.sqrt(sum(x * x for x in errors))


def _trace(alphas, values, grads, diff):
    """(alphas, F values, slopes dF/dalpha) per example, sorted by alpha, NaN-padded."""
    B, m = len(alphas), max(len(a) for a in alphas)
    out = torch.full((3, B, m), math.nan, dtype=diff.dtype)
    for e in range(B):
        a = torch.tensor(alphas[e], dtype=diff.dtype)
        order = a.argsort()
        slope = torch.stack(grads[e]).to(diff.dtype) @ diff[e].cpu()
        n = a.numel()
        out[0, e, :n] = a[order]
        out[1, e, :n] = torch.tensor(values[e], dtype=diff.dtype)[order]
        out[2, e, :n] = slope.cpu()[order]
    return out
