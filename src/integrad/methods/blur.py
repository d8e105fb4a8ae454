"""Blur IG: Integrated Gradients along the blur path (:class:`integrad.paths.BlurPath`)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import torch

from ..core.result import Attribution
from ..paths import BlurPath
from ._job import vocabulary
from .ig import integrated_gradients

__all__ = ["blur_ig"]


@vocabulary
def blur_ig(
    model: Callable[..., Any],
    inputs: torch.Tensor,
    *,
    max_sigma: float = 50.0,
    sqrt: bool = False,
    dims: tuple[int, int] = (-2, -1),
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
    max_memory: int | None = None,
) -> Attribution:
    r"""Blur IG of ``model`` at the images ``inputs``: the path runs from the image blurred with
    ``max_sigma`` to the image, so no baseline is chosen (Xu et al., CVPR 2020).

    .. math:: \phi_i(x) = \int_0^1 \frac{\partial F(z(\alpha))}{\partial z_i}
              \frac{\partial z_i(\alpha)}{\partial \alpha} d\alpha, \qquad
              z(\alpha) = G_{\sigma(\alpha)} * x,\ \sigma(\alpha) = \sigma_{max} (1 - \alpha)

    Completeness holds against the blurred image: the attributions sum to
    ``F(x) - F(blurred)`` (``f_baseline`` is ``F`` of the blurred image), up to ``delta``.

    Parameters
    ----------
    model, target, targets, head, batch_size, forward_args, forward_kwargs, max_memory
        As in :func:`integrad.integrated_gradients`.
    inputs : Tensor, shape ``(batch, ..., H, W)``
        Images; the blur runs over the axes ``dims`` (default the last two).
    max_sigma, sqrt, dims
        The path (:class:`integrad.paths.BlurPath`): the largest blur in pixels; ``sqrt=True``
        spaces ``sigma**2`` evenly (``saliency``'s ``sqrt=True`` with its ``max_sigma`` squared).
    method, n_steps, rtol, atol, max_evals
        As in :func:`integrad.integrated_gradients` (default 50 Gauss-Legendre nodes;
        ``method="riemann_right"`` with ``n_steps=steps`` is ``saliency``'s Blur IG rule).

    Returns
    -------
    Attribution

    References
    ----------
    Xu, Venugopalan, Sundararajan, Ko & Snavely, "Attribution in Scale and Space", CVPR 2020.
    """
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 3:
        got = f"shape {tuple(inputs.shape)}" if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs: Blur IG blurs two spatial axes; expected a tensor of shape (batch, ..., H, W); "
                         f"got {got}")
    path = BlurPath(max_sigma, sqrt=sqrt, dims=dims)
    res = integrated_gradients(model, inputs, path=path, target=target, targets=targets, head=head, method=method,
                               n_steps=n_steps, rtol=rtol, atol=atol, max_evals=max_evals, batch_size=batch_size,
                               forward_args=forward_args, forward_kwargs=forward_kwargs, max_memory=max_memory)
    settings = dict(res.settings) | {"baseline": f"the image blurred with sigma={path.max_sigma:g}"}
    return dataclasses.replace(res, settings=settings)
