"""IDGI: the important-direction weighting of a path's Riemann sums.

Yang, Wang & Bilen, "IDGI: A Framework to Eliminate Explanation Noise from Integrated
Gradients", CVPR 2023.

Along a path's points ``z_0 .. z_n`` (``z_j = z(j / n)``), each interval's change of the
model's output ``F(z_(j+1)) - F(z_j)`` is split over the features in proportion to the
squared gradient at its start, ``g_j^2 / |g_j|^2``: only the gradient's direction is used, not
the path's. The sum over features is ``F(z_n) - F(z_0)`` by construction (``delta`` is
rounding), so completeness says nothing about accuracy here; the attributions converge (as
``n`` grows) to the integral of ``g^2 / |g|^2 dF``, whose error this module does not estimate.

The same weighting on Guided IG's path is ``guided_ig(..., idgi=True)``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from ..core.idgi import weigh
from ..core.result import Attribution
from ._job import Job, check_count, vocabulary
from .ig import _check_path, describe_path

__all__ = ["idgi"]


@vocabulary
def idgi(
    model: Callable[..., Any],
    inputs: torch.Tensor,
    *,
    baseline: float | torch.Tensor = 0.0,
    path: Callable | None = None,
    target: Any = None,
    head: Callable[[torch.Tensor], torch.Tensor] | None = None,
    n_steps: int = 50,
    batch_size: int | None = None,
    forward_args: Sequence[Any] = (),
    forward_kwargs: dict[str, Any] | None = None,
    max_memory: int | None = None,
) -> Attribution:
    """IDGI attributions along the straight line from ``baseline`` (IG), or along ``path``.

    Parameters
    ----------
    model, inputs, baseline, target, head, batch_size, forward_args, forward_kwargs, max_memory
        As in :func:`integrad.integrated_gradients` (one input tensor, one target).
    path : callable, optional
        A path as in :mod:`integrad.paths` (e.g. ``integrad.paths.BlurPath(...)`` for IDGI on
        Blur IG); default the straight line.
    n_steps : int
        Intervals of the path: ``n_steps + 1`` gradient evaluations per example.

    Returns
    -------
    Attribution
        ``error`` is None: IDGI's sums have no error estimate here.

    References
    ----------
    Yang, Wang & Bilen, "IDGI: A Framework to Eliminate Explanation Noise from Integrated
    Gradients", CVPR 2023.
    """
    check_count(n_steps, "n_steps")
    curve = _check_path(path, None, True)
    job = Job(model, inputs, baseline=baseline, target=target, head=head, forward_args=forward_args,
              forward_kwargs=forward_kwargs, batch_size=batch_size, max_memory=max_memory)
    if len(job.xs) != 1:
        raise ValueError(f"inputs: IDGI takes one input tensor; got {len(job.xs)}")
    with job.model.guard():
        job.resolve_targets()
        line, f_end, f_start = job.curved_path(*curve) if curve is not None else job.paths(None)
        m = job.model
        m.plan(job.batch_size, job.max_memory, line.rows * (n_steps + 1), line.width * line.diffs[0].element_size())
        attr = weigh(m, line, n_steps)
    x = job.xs[0]
    attr = attr.view(x.shape)
    delta = attr.reshape(x.shape[0], -1).sum(1, dtype=torch.float64) - (f_end.double() - f_start.double())
    settings = {"method": "idgi", "n_steps": n_steps, "rtol": None, "atol": None, "max_evals": None} | job.describe()
    if curve is not None:
        settings["path"] = describe_path(path)
    return Attribution(attributions=attr, delta=delta.to(attr.dtype), f_x=f_end, f_baseline=f_start,
                       n_evals=torch.full((x.shape[0],), n_steps + 1, dtype=torch.int64), settings=settings)
