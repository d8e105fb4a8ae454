"""Paths other than the straight line, for ``integrated_gradients(..., path=...)``.

A path is any callable ``path(x, baseline, alphas) -> (z, dz)``:

- ``x``, ``baseline``: ``(E, *features)``, E examples of one input tensor (the baseline
  broadcast to each example);
- ``alphas``: ``(E, K)``, where along the path each example is wanted (0 = start, 1 = end);
- ``z``: the points, ``(E, K, *features)``, with ``z(1) = x`` (checked);
- ``dz``: their velocities ``dz/dalpha``, same shape.

Integrated Gradients along it is :math:`\\int_0^1 \\nabla F(z(\\alpha)) \\odot z'(\\alpha)\\,
d\\alpha`, whose sum is ``F(z(1)) - F(z(0))`` for every path (the gradient theorem), so the
completeness gap, the rules, ``rtol``, chunking and the error estimate work as on the
straight line. The straight line itself, as a path::

    def straight(x, baseline, alphas):
        d = (x - baseline)[:, None]                       # (E, 1, *features)
        a = alphas.view(*alphas.shape, *[1] * (x.dim() - 1))
        return baseline[:, None] + a * d, d.expand(-1, alphas.shape[1], *d.shape[2:])

``docs/paths.md`` works through a plug-in (a coarse-to-fine path). A path may also have a
``describe()`` method; its string is the result's ``settings["path"]``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["BlurPath", "straight"]


def straight(x: torch.Tensor, baseline: torch.Tensor, alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The straight line ``baseline + alpha (x - baseline)`` as a path (what IG uses without ``path=``)."""
    d = (x - baseline)[:, None]
    a = alphas.view(*alphas.shape, *[1] * (x.dim() - 1)).to(x.dtype)
    return baseline[:, None] + a * d, d.expand(-1, alphas.shape[1], *d.shape[2:])


class BlurPath:
    """Blur IG's path (Xu, Venugopalan, Sundararajan, Ko & Snavely, CVPR 2020): from the image
    blurred with a Gaussian of ``max_sigma`` to the image itself, through decreasing blur.

    ``sigma(alpha) = max_sigma * (1 - alpha)``, or with ``sqrt=True``
    ``max_sigma * sqrt(1 - alpha)`` (equal steps in ``sigma**2``, the heat equation's time: more
    steps near the unblurred image). The velocity is exact: the derivative in ``sigma`` of the
    discrete, normalised Gaussian kernel, times ``dsigma/dalpha``. The blur is separable over
    the two spatial axes ``dims`` (default the last two: ``(..., H, W)``), with zero padding
    outside the image (PAIR ``saliency``'s ``mode='constant'``), and one kernel radius for the
    whole path, ``round(truncate * max_sigma)`` taps each side, so that the path is smooth in
    ``alpha``. (``scipy.ndimage.gaussian_filter``, which ``saliency`` calls, cuts each blur at
    ``truncate * sigma``; its path jumps slightly wherever that radius grows by one tap.)

    The baseline is ignored: the path starts at the blurred image, and ``f_baseline`` is the
    model's output there.

    Parameters
    ----------
    max_sigma : float
        Standard deviation of the most blurred image, in pixels (``saliency``'s default: 50).
    sqrt : bool
        Space ``sigma**2`` evenly instead of ``sigma``. (``saliency``'s ``sqrt=True`` also takes
        the square root of its ``max_sigma``: its 50 is this class's ``sqrt(50)``.)
    truncate : float
        Kernel radius in units of ``max_sigma``.
    dims : pair of int
        The image's spatial axes, counted in the input's shape with the batch axis (negative
        from the end), e.g. ``(1, 2)`` for channels-last ``(batch, H, W, C)``.
    """

    def __init__(self, max_sigma: float = 50.0, *, sqrt: bool = False, truncate: float = 4.0,
                 dims: tuple[int, int] = (-2, -1)):
        for name, value in (("max_sigma", max_sigma), ("truncate", truncate)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise ValueError(f"{name}: expected a finite number > 0; got {value!r}")
        if not (isinstance(dims, (tuple, list)) and len(dims) == 2 and all(isinstance(d, int) for d in dims)):
            raise ValueError(f"dims: expected two axes (int, int), the image's height and width; got {dims!r}")
        self.max_sigma, self.sqrt, self.truncate, self.dims = float(max_sigma), bool(sqrt), float(truncate), \
            tuple(dims)
        self.radius = max(1, int(self.truncate * self.max_sigma + 0.5))

    def describe(self) -> str:
        return f"blur (max_sigma={self.max_sigma:g}{', sqrt' if self.sqrt else ''})"

    def sigma(self, alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``sigma(alpha)`` and ``dsigma/dalpha`` (0 where sigma is 0: the blur stops moving there)."""
        rest = (1 - alphas).clamp_min(0)
        if not self.sqrt:
            return self.max_sigma * rest, torch.full_like(alphas, -self.max_sigma)
        s = self.max_sigma * rest.sqrt()
        ds = torch.where(rest > 0, -self.max_sigma / (2 * rest.sqrt().clamp_min(1e-300)), torch.zeros_like(rest))
        return s, ds

    def __call__(self, x: torch.Tensor, baseline: torch.Tensor, alphas: torch.Tensor):
        dims = tuple(d % x.dim() for d in self.dims)
        if 0 in dims or dims[0] == dims[1]:
            raise ValueError(f"dims: expected two different spatial axes after the batch axis of the input of shape "
                             f"{tuple(x.shape)}; got {self.dims}")
        E, K = alphas.shape
        sigma, dsigma = self.sigma(alphas.to(torch.float64))
        z = x.new_empty(E, K, *x.shape[1:])
        v = x.new_empty(E, K, *x.shape[1:])
        # one blur per distinct sigma (a fixed rule: K of them for all examples together)
        values, inverse = torch.unique(sigma.flatten(), return_inverse=True)
        inverse = inverse.view(E, K)
        for i, s in enumerate(values.tolist()):
            e_idx, k_idx = (inverse == i).nonzero(as_tuple=True)
            blurred, d_sigma = _blur(x.index_select(0, e_idx), s, self.radius, dims)
            z[e_idx, k_idx] = blurred
            v[e_idx, k_idx] = d_sigma * dsigma[e_idx, k_idx].to(x.dtype).view(-1, *[1] * (x.dim() - 1))
        return z, v


def _kernel(sigma: float, radius: int, dtype: torch.dtype, device: torch.device):
    """The normalised Gaussian taps at offsets ``-radius..radius`` and their derivative in sigma."""
    u = torch.arange(-radius, radius + 1, dtype=torch.float64)
    e = torch.exp(-0.5 * (u / sigma) ** 2)
    de = e * u ** 2 / sigma ** 3
    k = e / e.sum()
    dk = (de - k * de.sum()) / e.sum()
    return k.to(dtype=dtype, device=device), dk.to(dtype=dtype, device=device)


def _blur(x: torch.Tensor, sigma: float, radius: int, dims: tuple[int, int]):
    """Gaussian blur of ``x`` over axes ``dims`` (zero padding) and its derivative in sigma."""
    if sigma == 0.0:
        return x, torch.zeros_like(x)
    k, dk = _kernel(sigma, radius, x.dtype, x.device)
    a, b = dims
    ka = _along(x, k, a)
    # d/dsigma of K_a K_b x = K_a' K_b x + K_a K_b' x
    return _along(ka, k, b), _along(_along(x, dk, a), k, b) + _along(ka, dk, b)


def _along(x: torch.Tensor, taps: torch.Tensor, axis: int) -> torch.Tensor:
    """1-D convolution of ``x`` with symmetric ``taps`` along ``axis``, zeros outside: a product
    with the banded Toeplitz matrix of the taps (a few BLAS calls, where a long 1-D
    convolution kernel is slow on CPU)."""
    n = x.shape[axis]
    radius = (taps.shape[0] - 1) // 2
    offset = torch.arange(n, device=x.device)
    lag = offset[None, :] - offset[:, None]  # (n, n): j - i
    matrix = torch.where(lag.abs() <= radius, taps[(lag + radius).clamp(0, 2 * radius)], taps.new_zeros(()))
    return (x.movedim(axis, -1) @ matrix).movedim(-1, axis)
