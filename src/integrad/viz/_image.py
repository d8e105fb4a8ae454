"""Image attributions as arrays first: per-pixel maps, percentile clipping, overlays, colour scales.

Signed maps are drawn on a diverging blue-grey-orange scale: orange marks pixels that push the
explained class's logit up, blue those that push it down (the colours of the text views). The
two ColorBrewer hues stay apart for red-green colour blindness (protanopia, deuteranopia) and
for tritanopia, as green and red do not. The positive-only and negative-only views use the
orange or the blue half alone, and magnitude maps (``reduce="abs"`` or ``"l2"``) a sequential
grey-purple scale; all three start at 0. :func:`colour_scale` says what a colour bar or legend
must show: the ends, the colours, what they mean and where the map was clipped.

Everything up to :func:`overlay`, :func:`png_bytes` and :func:`image_html_fragment` is NumPy
and strings; matplotlib is imported only inside :func:`plot_overlay` and :func:`plot_baselines`.

>>> import numpy as np
>>> attr = np.zeros((3, 4, 4)); attr[:, 1, 2] = [1.0, 2.0, -0.5]
>>> float(pixel_map(attr)[1, 2])
2.5
>>> overlay(np.full((3, 4, 4), 0.5), pixel_map(attr)).shape
(4, 4, 3)
>>> colour_scale(pixel_map(attr), clip=100).note
'scaled to the maximum of |attribution| = 2.5 (no clipping)'

References
----------
Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017 (sec. 6.1:
attributions shown as a mask over the image).
Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017 (percentile clipping of
saliency maps).
Brewer, Hatchard & Harrower, "ColorBrewer in Print", Cartography and Geographic Information
Science 30(1), 2003 (colour-blind-safe diverging schemes); Machado, Oliveira & Fernandes,
"A Physiologically-based Model for Simulation of Color Vision Deficiency", IEEE TVCG 2009.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._text import NEGATIVE, POSITIVE

__all__ = ["pixel_map", "normalize", "colour_scale", "ColourScale", "overlay", "png_bytes", "REDUCTIONS", "SIGNS",
           "MAGNITUDE"]

# The HTML fragment is in _image_html.py, the matplotlib figures in _image_plot.py; both build on
# the arrays here.

REDUCTIONS = ("sum", "abs", "l2")
SIGNS = ("both", "positive", "negative")
MAGNITUDE = (118, 42, 131)  # ColorBrewer PRGn purple: unsigned maps, so neither hue of the signed scale
_GREY = 0.5  # where an overlay's colour scale starts: a mid-grey pixel
_OUTPUT = "the explained class's logit"
_HOW = {"sum": "signed sum over channels", "abs": "sum of |attribution| over channels", "l2": "L2 norm over channels"}


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
    normed, scale, _, _ = _normalize(pixels, sign, clip)
    return normed, scale


def _normalize(pixels: Any, sign: str, clip: float) -> tuple[np.ndarray, float, np.ndarray, bool]:
    """:func:`normalize`, plus the kept magnitudes and whether the scale fell back to the maximum."""
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
    fallback = scale <= 0
    if fallback:  # fewer kept pixels than the percentile skips: fall back to the largest
        scale = float(magnitude.max())
    if scale <= 0:
        return np.zeros_like(m), 0.0, magnitude, fallback
    return np.clip(kept / scale, -1.0, 1.0), scale, magnitude, fallback


@dataclass(frozen=True)
class ColourScale:
    """What an overlay's colours stand for: everything a colour bar or a legend shows.

    Attributes
    ----------
    lo, hi : float
        Attributions at the two ends: ``-hi`` and ``hi`` for a diverging scale, 0 and
        ``hi`` for a sequential one; ``hi`` is the clipping value (1.0 for an all-zero map).
    stops : tuple of (r, g, b) floats in [0, 1]
        Evenly spaced colours from ``lo`` to ``hi``, as the overlay paints them on a mid-grey
        pixel (the scale is linear in RGB between stops).
    name : str
        The palette, e.g. ``"blue-grey-orange"``.
    label : str
        What the colour measures and which way, e.g. ``"attribution to the logit of 'cat',
        per pixel (signed sum over channels); orange raises it, blue lowers it"``.
    note : str
        Where the map was clipped, e.g. ``"clipped at the 99th percentile of |attribution|
        = 0.0123; 12 of 1024 pixels saturate"``.
    saturated : int
        Pixels drawn at full colour.
    extend : {"neither", "min", "max", "both"}
        Which ends hold values beyond the scale (matplotlib's colour bar vocabulary).
    """

    lo: float
    hi: float
    stops: tuple[tuple[float, float, float], ...]
    name: str
    label: str
    note: str
    saturated: int
    extend: str

    @property
    def diverging(self) -> bool:
        return self.lo < 0


def colour_scale(pixels: Any, *, reduce: str = "sum", sign: str = "both", clip: float = 99.0, alpha: float = 0.8,
                 output: str = _OUTPUT) -> ColourScale:
    """The colour scale :func:`overlay` uses for a map, with its label and its clipping stated.

    Parameters
    ----------
    pixels : array of shape (H, W)
        A map from :func:`pixel_map`.
    reduce : {"sum", "abs", "l2"}
        How ``pixels`` was reduced over channels: ``"sum"`` is signed (diverging scale, or
        one half of it with ``sign``), ``"abs"`` and ``"l2"`` are magnitudes (sequential).
    sign, clip
        As in :func:`normalize`; magnitude maps take ``"both"`` or ``"positive"`` (the same).
    alpha : float in [0, 1]
        The overlay's opacity, so that the stops are the colours actually painted.
    output : str
        What was attributed, for the label: ``"the logit of 'cat'"``.

    Examples
    --------
    >>> s = colour_scale(np.array([[-1.0, 0.0], [0.5, 2.0]]), clip=100)
    >>> (s.lo, s.hi, s.name)
    (-2.0, 2.0, 'blue-grey-orange')
    """
    _check_view(pixels, reduce, sign)
    normed, scale, magnitude, fallback = _normalize(pixels, sign, clip)
    _check_alpha(alpha)
    up, down = _hues(reduce, sign)
    grey = (_GREY,) * 3
    ends = [tuple((1 - alpha) * _GREY + alpha * v / 255.0 for v in c) for c in (down, up)]
    diverging = reduce == "sum" and sign == "both"
    stops = (ends[0], grey, ends[1]) if diverging else (grey, ends[1])
    name = {POSITIVE: "orange", NEGATIVE: "blue", MAGNITUDE: "purple"}[up]
    name = f"blue-grey-{name}" if diverging else f"grey-{name}"
    hi = scale or 1.0
    m = _array(pixels, "pixels")
    beyond = (magnitude > scale) & (scale > 0)
    low, high = (bool((beyond & (m < 0)).any()), bool((beyond & (m > 0)).any())) if diverging else (False, beyond.any())
    extend = ("neither", "max", "min", "both")[2 * low + bool(high)]
    saturated = int(np.count_nonzero(np.abs(normed) >= 1.0)) if scale > 0 else 0
    note = _note(reduce, sign, clip, scale, fallback, saturated, m.size)
    return ColourScale(lo=-hi if diverging else 0.0, hi=hi, stops=stops, name=name, label=_label(reduce, sign, output),
                       note=note, saturated=saturated, extend=extend)


def _check_view(pixels: Any, reduce: str, sign: str) -> None:
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce: expected one of {', '.join(REDUCTIONS)}; got {reduce!r}")
    if reduce != "sum":
        if sign == "negative":
            raise ValueError(f"sign: a magnitude map (reduce={reduce!r}) has no negative part; use sign='both' or "
                             f"'positive', or reduce='sum'")
        low = float(np.min(_array(pixels, "pixels"), initial=0.0))
        if low < 0:
            raise ValueError(f"pixels: a map reduced with {reduce!r} is a magnitude, >= 0; got values down to "
                             f"{low:.3g} (pass reduce='sum' for a signed map)")


def _check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected an opacity in [0, 1]; got {alpha!r}")


def _hues(reduce: str, sign: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(colour of the values >= 0, colour of those < 0) for a view."""
    if reduce != "sum":
        return MAGNITUDE, MAGNITUDE
    return {"both": (POSITIVE, NEGATIVE), "positive": (POSITIVE, POSITIVE), "negative": (NEGATIVE, NEGATIVE)}[sign]


def _label(reduce: str, sign: str, output: str) -> str:
    if reduce != "sum":
        return f"|attribution| to {output}, per pixel ({_HOW[reduce]}); purple: influence either way, not its sign"
    return {"both": f"attribution to {output}, per pixel ({_HOW[reduce]}); orange raises it, blue lowers it",
            "positive": f"positive attribution to {output}, per pixel ({_HOW[reduce]}); orange raises it, "
                        "pixels that lower it stay grey",
            "negative": f"|negative attribution| to {output}, per pixel ({_HOW[reduce]}); blue lowers it, "
                        "pixels that raise it stay grey"}[sign]


def _note(reduce: str, sign: str, clip: float, scale: float, fallback: bool, saturated: int, size: int) -> str:
    of = "the map" if reduce != "sum" else {"both": "|attribution|", "positive": "the positive part",
                                            "negative": "the negative part"}[sign]
    if scale <= 0:
        return f"{of} is zero everywhere: no colour"
    if fallback:
        return (f"scaled to the maximum of {of} = {scale:.3g} (its {_ordinal(clip)} percentile is 0); "
                f"{_pixels(saturated, size)} at full colour")
    if clip >= 100:
        return f"scaled to the maximum of {of} = {scale:.3g} (no clipping)"
    return f"clipped at the {_ordinal(clip)} percentile of {of} = {scale:.3g}; {_pixels(saturated, size)} saturate"


def _ordinal(p: float) -> str:
    if float(p) != int(p):
        return f"{p:g}th"
    n = int(p)
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _pixels(n: int, size: int) -> str:
    return f"{n} of {size} pixel{'' if size == 1 else 's'}"


def overlay(image: Any, pixels: Any, *, reduce: str = "sum", sign: str = "both", clip: float = 99.0,
            alpha: float = 0.8) -> np.ndarray:
    """The map painted over a greyscale copy of the image: an RGB ``uint8`` array ``(H, W, 3)``.

    The photo is desaturated, so that its own colours do not read as attribution, and its
    contrast halved (values 0.25..0.75). The colours are those of :func:`colour_scale`.

    Parameters
    ----------
    image : ``(3, H, W)``, ``(1, H, W)``, ``(H, W, 3)`` or ``(H, W)``; floats in [0, 1] or uint8
    pixels : ``(H, W)`` map, e.g. from :func:`pixel_map`
    reduce, sign, clip
        As in :func:`colour_scale`.
    alpha : float in [0, 1]
        Opacity of the colour at full strength.
    """
    rgb = _rgb(image)
    _check_view(pixels, reduce, sign)
    m, _ = normalize(pixels, sign=sign, clip=clip)
    if m.shape != rgb.shape[:2]:
        raise ValueError(f"pixels: map of shape {m.shape} does not match the image's {rgb.shape[:2]}")
    _check_alpha(alpha)
    # halve the contrast around mid-grey: colour stays legible on white fur and black pupils
    grey = 0.25 + 0.5 * (rgb @ np.array([0.299, 0.587, 0.114]))
    out = np.repeat(grey[..., None], 3, axis=2)
    up, down = _hues(reduce, sign)
    colour = np.where((m >= 0)[..., None], np.array(up) / 255.0, np.array(down) / 255.0)
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
