"""Image attributions as arrays first: per-pixel maps, percentile clipping, RGB overlays.

Green marks pixels that push the explained class up, red those that push it down (the
colours of the text views). Everything up to :func:`overlay` and :func:`png_bytes` is NumPy;
matplotlib is imported only inside :func:`plot_overlay` and :func:`plot_baselines`.

>>> import numpy as np
>>> attr = np.zeros((3, 4, 4)); attr[:, 1, 2] = [1.0, 2.0, -0.5]
>>> float(pixel_map(attr)[1, 2])
2.5
>>> overlay(np.full((3, 4, 4), 0.5), pixel_map(attr)).shape
(4, 4, 3)

References
----------
Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017 (sec. 6.1:
attributions shown as a mask over the image).
Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017 (percentile clipping of
saliency maps).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Mapping

import numpy as np

from ._text import NEGATIVE, POSITIVE

__all__ = ["pixel_map", "normalize", "overlay", "png_bytes", "plot_overlay", "plot_baselines", "REDUCTIONS", "SIGNS"]

REDUCTIONS = ("sum", "abs", "l2")
SIGNS = ("both", "positive", "negative")
_GREY = 0.5  # where an overlay's colour scale starts: a mid-grey pixel


def pixel_map(attributions: Any, reduce: str = "sum") -> np.ndarray:
    """One number per pixel from attributions of shape ``(C, H, W)`` (or ``(1, C, H, W)``).

    Parameters
    ----------
    attributions : Tensor or ndarray
    reduce : {"sum", "abs", "l2"}
        ``"sum"`` (default): signed sum over channels. It is the default because it keeps
        completeness: the map still adds up to ``F(x) - F(baseline)`` (up to the gap), and
        a pixel whose channels disagree shows their net effect. ``"abs"``: sum of absolute
        values; ``"l2"``: Euclidean norm over channels. Both are unsigned (magnitude only).

    Returns
    -------
    ndarray of float64, shape (H, W)
    """
    a = _array(attributions, "attributions")
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"attributions: expected shape (C, H, W) or (1, C, H, W); got {a.shape}")
    if reduce == "sum":
        return a.sum(0)
    if reduce == "abs":
        return np.abs(a).sum(0)
    if reduce == "l2":
        return np.sqrt((a * a).sum(0))
    raise ValueError(f"reduce: expected one of {', '.join(REDUCTIONS)}; got {reduce!r}")


def normalize(pixels: Any, *, sign: str = "both", clip: float = 99.0) -> tuple[np.ndarray, float]:
    """Scale a map to ``[-1, 1]`` (``sign="both"``) or ``[0, 1]``, saturating at a percentile.

    Parameters
    ----------
    pixels : array of shape (H, W)
    sign : {"both", "positive", "negative"}
        Which part to keep; ``"negative"`` returns magnitudes (``-pixels`` where negative).
    clip : float in (0, 100]
        Percentile of the kept magnitudes that maps to 1; larger ones are clipped. A few
        extreme pixels otherwise wash out the rest; 100 keeps the maximum.

    Returns
    -------
    (normalised map, scale) where ``scale`` is the attribution that maps to 1 (0 for an
    all-zero map).
    """
    m = _array(pixels, "pixels")
    if m.ndim != 2:
        raise ValueError(f"pixels: expected a map of shape (H, W); got {m.shape}")
    if sign == "both":
        kept, magnitude = m, np.abs(m)
    elif sign == "positive":
        kept = magnitude = np.maximum(m, 0.0)
    elif sign == "negative":
        kept = magnitude = np.maximum(-m, 0.0)
    else:
        raise ValueError(f"sign: expected one of {', '.join(SIGNS)}; got {sign!r}")
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0 < clip <= 100:
        raise ValueError(f"clip: expected a percentile in (0, 100]; got {clip!r}")
    scale = float(np.percentile(magnitude, clip))
    if scale <= 0:  # fewer kept pixels than the percentile skips: fall back to the largest
        scale = float(magnitude.max())
    if scale <= 0:
        return np.zeros_like(m), 0.0
    return np.clip(kept / scale, -1.0, 1.0), scale


def overlay(image: Any, pixels: Any, *, sign: str = "both", clip: float = 99.0, alpha: float = 0.8) -> np.ndarray:
    """The map painted over a greyscale copy of the image: an RGB ``uint8`` array ``(H, W, 3)``.

    The photo is desaturated, so that its own reds and greens do not read as attribution, and
    its contrast halved (values 0.25..0.75).

    Parameters
    ----------
    image : ``(3, H, W)``, ``(1, H, W)``, ``(H, W, 3)`` or ``(H, W)``; floats in [0, 1] or uint8
    pixels : ``(H, W)`` map, e.g. from :func:`pixel_map`
    sign, clip
        As in :func:`normalize`.
    alpha : float in [0, 1]
        Opacity of the colour at full strength.
    """
    rgb = _rgb(image)
    m, _ = normalize(pixels, sign=sign, clip=clip)
    if m.shape != rgb.shape[:2]:
        raise ValueError(f"pixels: map of shape {m.shape} does not match the image's {rgb.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected an opacity in [0, 1]; got {alpha!r}")
    # halve the contrast around mid-grey: colour stays legible on white fur and black pupils
    grey = 0.25 + 0.5 * (rgb @ np.array([0.299, 0.587, 0.114]))
    out = np.repeat(grey[..., None], 3, axis=2)
    up = (m >= 0) if sign != "negative" else np.zeros(m.shape, dtype=bool)
    colour = np.where(up[..., None], np.array(POSITIVE) / 255.0, np.array(NEGATIVE) / 255.0)
    strength = alpha * np.abs(m)[..., None]
    out = (1.0 - strength) * out + strength * colour
    return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an RGB ``uint8`` array ``(H, W, 3)`` as PNG, with no imaging library."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb: expected a uint8 array of shape (H, W, 3); got {rgb.dtype} {rgb.shape}")
    h, w, _ = rgb.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1)  # filter byte 0 per row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit truecolour, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


# ---------------------------------------------------------------------------- figures
def plot_overlay(image: Any, pixels: Any, *, title: str | None = None, sign: str = "both", clip: float = 99.0,
                 alpha: float = 0.8):
    """A matplotlib ``Figure``: the image, the overlay, and a colour bar in attribution units.

    Save it with ``fig.savefig("why.png")``. Needs matplotlib (``pip install 'integrad[viz]'``).
    """
    fig = _figure((9.0, 4.4))
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.12]})
    axes[0].imshow(_rgb(image))
    axes[0].set_title("image", fontsize=10)
    _panel(fig, axes[1], image, pixels, sign, clip, alpha, "attribution")
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_baselines(image: Any, maps: Mapping[str, Any], *, title: str | None = None, sign: str = "both",
                   clip: float = 99.0, alpha: float = 0.8):
    """Side by side: the image, then one overlay per baseline (``{"black": map, ...}``).

    Each panel has its own colour bar: baselines change ``F(x) - F(baseline)`` and so the
    size of the attributions; compare where the colour is, and read magnitudes off the bars.
    """
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError("maps: expected a non-empty mapping of baseline name to (H, W) map")
    fig = _figure((3.3 * (len(maps) + 1), 3.6))
    axes = fig.subplots(1, len(maps) + 1)
    axes[0].imshow(_rgb(image))
    axes[0].set_title("image", fontsize=10)
    for ax, (name, m) in zip(axes[1:], maps.items()):
        _panel(fig, ax, image, m, sign, clip, alpha, str(name))
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _figure(size: tuple[float, float]):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("drawing figures needs matplotlib; pip install 'integrad[viz]'") from None
    # a bare Figure, not pyplot: no global figure registry, no GUI backend
    return Figure(figsize=size, layout="constrained")


def _panel(fig, ax, image, pixels, sign, clip, alpha, label) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    ax.imshow(overlay(image, pixels, sign=sign, clip=clip, alpha=alpha))
    ax.set_title(label, fontsize=10)
    _, scale = normalize(pixels, sign=sign, clip=clip)
    scale = scale or 1.0
    def blend(c: tuple[int, int, int]) -> tuple[float, ...]:
        # the colour an overlay gives a mid-grey pixel at full strength
        return tuple((1 - alpha) * _GREY + alpha * v / 255.0 for v in c)

    grey = (_GREY,) * 3
    stops = {"both": [blend(NEGATIVE), grey, blend(POSITIVE)], "positive": [grey, blend(POSITIVE)],
             "negative": [grey, blend(NEGATIVE)]}[sign]
    lo = -scale if sign == "both" else 0.0
    mappable = ScalarMappable(Normalize(lo, scale), LinearSegmentedColormap.from_list("integrad", stops))
    bar = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03)
    bar.ax.tick_params(labelsize=7)
    if sign == "negative":
        bar.set_label("|negative attribution|", fontsize=7)


# ---------------------------------------------------------------------------- inputs
def _array(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().double().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected an array or tensor of numbers; got {type(x).__name__}") from None
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return a


def _rgb(image: Any) -> np.ndarray:
    """Any usual image layout to float64 ``(H, W, 3)`` in [0, 1]."""
    raw = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    a = raw.astype(np.float64) / (255.0 if raw.dtype == np.uint8 else 1.0)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[2] not in (1, 3):
        a = np.moveaxis(a, 0, 2)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f"image: expected (3, H, W), (1, H, W), (H, W, 3) or (H, W); got shape {raw.shape}")
    if a.min() < 0 or a.max() > 1:
        raise ValueError(f"image: expected values in [0, 1] (or uint8); got {a.min():.3g}..{a.max():.3g}")
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a
