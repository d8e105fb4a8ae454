"""Explain image classifiers pixel by pixel with Integrated Gradients.

Attribution happens in the pixel space the user sees: RGB values in ``[0, 1]`` of the image
as given to the model (files and samples are cropped to a centred square and resized to
``size`` first). The model must take ``(batch, C, H, W)`` pixels in ``[0, 1]`` and do its own
normalisation, as :class:`~integrad.models._imagenet.ImageNetClassifier` does.

Baselines (``baseline=``), mapped through :mod:`integrad.baselines`:

``"black"`` (default)
    All zeros, the baseline of the IG paper.
``"grey"``
    0.5 everywhere.
``"blur"``
    The image blurred with a Gaussian of ``sigma`` pixels (default: side / 16): attributes
    to the fine detail the blur removes, not to the colours.
``"uniform"``
    Uniform noise in ``[0, 1]`` drawn with ``seed``.
``"gaussian"``
    The image plus normal noise of ``sigma`` (default 0.1) drawn with ``seed``, clipped to [0, 1].
A Tensor
    Any baseline the engine accepts, e.g. an average over several with
    :func:`integrad.baselines.averaged` run by hand.

Image files are read with Pillow. A greyscale file has its channel repeated to RGB, and an
alpha channel is flattened onto white; both with a ``UserWarning`` that says so, since the
model then sees something other than the file's raw values.

>>> from integrad.image import explain_image
>>> from integrad.models._imagenet import load_imagenet_model
>>> model, names = load_imagenet_model()
>>> ex = explain_image(model, "chelsea", class_names=names)
>>> ex.label, ex.relative_delta < 0.05
('Egyptian Mau', True)

References
----------
Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
Sturmfels, Lundberg & Lee, "Visualizing the Impact of Feature Attribution Baselines",
Distill, 2020 (blur, uniform and Gaussian baselines).
"""

from __future__ import annotations

import difflib
import html
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .core import checks as C
from . import baselines as B
from .methods.blur import blur_ig
from .methods.guided import guided_ig
from .methods.idgi import idgi
from .methods.ig import integrated_gradients, integration
from .methods.smooth import smoothgrad
from .core.result import Attribution, OneExample, pick_rows
from .models._imagenet import IMAGE_SIZE, SAMPLES, load_sample, prepare_image

__all__ = ["ImageExplanation", "explain_image", "load_image", "BASELINES"]

BASELINES = ("black", "grey", "blur", "uniform", "gaussian")
# 50 Gauss-Legendre nodes leave a gap of 4.5% on chelsea (black baseline), 2.5% on coffee and
# 0.4% on camera with EfficientNet-Lite0. Its ReLU6 units make the integrand piecewise constant
# and jagged, so more nodes do not shrink the gap steadily (chelsea: 32 nodes 5.8%, 100 nodes 13%); the
# gap is reported with every explanation for that reason.
N_STEPS = 50
# the path methods explain_image runs by name (method=), with their defaults
PATH_METHODS = ("blur_ig", "guided_ig", "idgi")
BLUR_SIGMA = 50.0  # Blur IG's largest blur, in pixels (the paper's and PAIR saliency's)
GUIDED_STEPS = 200  # Guided IG's steps (the paper's and saliency's)
_GAUSSIAN_SIGMA = 0.1


@dataclass(frozen=True, eq=False)
class ImageExplanation(OneExample):
    """Why an image classifier said what it said, pixel by pixel.

    Attributes
    ----------
    source : str
        The sample name, the file path, or ``"tensor"``.
    image : Tensor, shape (C, H, W)
        The pixels attributed, in [0, 1].
    top : tuple of (name, probability)
        The model's most probable classes, best first.
    target, target_name, target_probability : int, str, float
        The class whose logit is attributed (the prediction unless asked otherwise).
    baseline : str
        What the path started from, with its options.
    result : Attribution
        Attributions of shape ``(1, C, H, W)``, completeness gap, ``F(x)``, ``F(baseline)``.
    """

    source: str
    image: torch.Tensor = field(repr=False)
    top: tuple[tuple[str, float], ...]
    target: int
    target_name: str
    target_probability: float
    baseline: str
    result: Attribution = field(repr=False)

    @property
    def label(self) -> str:
        return self.top[0][0]

    @property
    def probability(self) -> float:
        return self.top[0][1]

    @property
    def attributions(self) -> torch.Tensor:
        """Shape (C, H, W); sums to ``F(x) - F(baseline) + delta``."""
        return self.result.attributions[0]

    def pixel_map(self, reduce: str = "sum") -> np.ndarray:
        """``(H, W)`` map; the default signed channel sum keeps completeness.

        See :func:`integrad.viz._image.pixel_map` for the reductions.
        """
        from .viz._image import pixel_map

        return pixel_map(self.attributions, reduce)

    def overlay(self, *, reduce: str = "sum", sign: str = "both", clip: float = 99.0, alpha: float = 0.8) -> np.ndarray:
        """The map over the image as an RGB ``uint8`` array ``(H, W, 3)``.

        Colours as in :func:`integrad.viz._image.colour_scale`: orange raises the class's
        logit and blue lowers it; ``reduce="abs"`` or ``"l2"`` draws the magnitude in purple.
        """
        from .viz._image import overlay

        return overlay(self.image, self.pixel_map(reduce), reduce=reduce, sign=sign, clip=clip, alpha=alpha)

    def to_png(self, path: str | os.PathLike, *, reduce: str = "sum", sign: str = "both", clip: float = 99.0,
               alpha: float = 0.8, dpi: int = 120) -> None:
        """Write the image beside the overlay, a labelled colour bar and the accuracy line as a PNG.

        The colour bar says what the colour means and where the map was clipped; ``sign``
        ``"both"`` (diverging, symmetric about 0), ``"positive"`` and magnitude views
        (``reduce="abs"`` or ``"l2"``, from 0). Needs matplotlib; see
        :func:`integrad.viz.plot_overlay`.
        """
        from .viz._image_plot import plot_overlay

        title = (f"{self.target_name} (p = {self.target_probability:.2f}), baseline {self.baseline}\n"
                 f"{self.accuracy}")
        fig = plot_overlay(self.image, self.pixel_map(reduce), title=title, reduce=reduce, sign=sign, clip=clip,
                           alpha=alpha, output=f"the logit of {self.target_name!r}")
        fig.savefig(os.fspath(path), dpi=dpi)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, with the keys every explanation's ``to_dict`` has.

        The attributions are too big for JSON: ``attributions_shape`` gives their shape, and
        ``attributions_file`` names the :meth:`save` file where the CLI wrote one (``--save``).
        """
        return self._common_dict(
            model=self.result.settings.get("model"), baseline=self.baseline, prediction=(self.label, self.probability),
            target=(self.target, self.target_name, self.target_probability)) | {
            "source": self.source, "top": [{"label": n, "probability": p} for n, p in self.top],
            "attributions_shape": list(self.attributions.shape),
        }

    def to_html(self) -> str:
        """A self-contained HTML page around :meth:`_repr_html_` (images inline, text escaped)."""
        title = html.escape(f"integrad: {self.target_name} in {self.source}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
                f"<body>{self._repr_html_()}</body></html>")

    def _repr_html_(self) -> str:
        from .viz._image_html import image_html_fragment

        return image_html_fragment(self)


def explain_image(
    model: Callable[[torch.Tensor], Any],
    image: str | os.PathLike | torch.Tensor,
    *,
    class_names: Sequence[str] | None = None,
    target: int | str | None = None,
    baseline: str | torch.Tensor = "black",
    method: str | None = None,
    n_steps: int | None = None,
    rtol: float | None = None,
    max_evals: int = 4097,
    batch_size: int | None = None,
    seed: int = 0,
    sigma: float | None = None,
    size: int = IMAGE_SIZE,
    top_k: int = 5,
    smooth: int | None = None,
    noise: float = 0.15,
) -> ImageExplanation:
    """Attribute an image classifier's logit to the pixels of one image.

    Parameters
    ----------
    model : callable
        Maps ``(batch, C, H, W)`` pixels in [0, 1] to logits ``(batch, classes)``.
    image : str, path or Tensor
        A sample name (see :data:`~integrad.models._imagenet.SAMPLES`), an image file (cropped
        to a centred square and resized to ``size``), or a tensor ``(C, H, W)`` in [0, 1]
        (or uint8), used as it is.
    class_names : sequence of str, optional
        One per class; default the class indices.
    target : None, int or str
        Class index or name to explain; default the predicted class.
    baseline : {"black", "grey", "blur", "uniform", "gaussian"} or Tensor
        See the module docstring.
    method, n_steps, rtol, max_evals, batch_size
        As in :func:`integrad.integrated_gradients` (``method="piecewise"`` included); with
        none of method, n_steps and rtol, Gauss-Legendre with ``N_STEPS`` nodes. Every result
        carries its estimated error (``.error``, ``.accuracy``). Or a path method by name:
        ``"blur_ig"`` (:func:`integrad.blur_ig`, ``max_sigma=BLUR_SIGMA``, no baseline; takes
        ``n_steps`` or ``rtol``), ``"guided_ig"`` (:func:`integrad.guided_ig`, ``GUIDED_STEPS``
        steps) or ``"idgi"`` (:func:`integrad.idgi` on the straight line from ``baseline``).
    seed : int
        For the random baselines and SmoothGrad's noise.
    sigma : float, optional
        ``"blur"``: kernel width in pixels (default side / 16); ``"gaussian"``: noise
        standard deviation (default 0.1).
    size : int
        Side that files and samples are resized to (224 for the embedded ImageNet model).
    top_k : int
        How many top classes to report.
    smooth : int, optional
        SmoothGrad-IG: average IG over this many copies of the image with Gaussian noise of
        standard deviation ``noise`` times the image's range (``seed`` draws it), which
        removes much of IG's speckle. Costs ``smooth`` times the evaluations; see
        :func:`integrad.smoothgrad`.

    References
    ----------
    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
    """
    C.check_model(model)
    x, source = load_image(image, size=size)
    base, base_name = _baseline(baseline, x[None], seed, sigma)
    with torch.no_grad():
        logits = C.output_tensor(model(x[None]), 1)
    if logits.dim() != 2:
        raise ValueError(f"model: expected logits of shape (1, classes) for one image; got {C.shape(logits)}")
    probs = logits[0].double().softmax(0)
    names = _class_names(class_names, probs.shape[0])
    t = _target(target, names, int(probs.argmax()))
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k: expected an int >= 1; got {top_k!r}")
    p, idx = probs.topk(min(top_k, probs.shape[0]))
    if method in PATH_METHODS:
        res, base_name = _path_method(model, x, base, base_name, t, method, n_steps, rtol, max_evals, batch_size,
                                      smooth, baseline)
        res = pick_rows(res, slice(None), baseline=base_name)
        top = tuple((names[i], q) for q, i in zip(p.tolist(), idx.tolist()))
        return ImageExplanation(source=source, image=x, top=top, target=t, target_name=names[t],
                                target_probability=float(probs[t]), baseline=base_name, result=res)
    quad = integration(method, n_steps, rtol, max_evals, N_STEPS)
    if smooth is None:
        res = integrated_gradients(model, x[None], baseline=base, target=t, batch_size=batch_size, **quad)
    else:
        if "method" in quad:
            quad["rule"] = quad.pop("method")
        res = smoothgrad(model, x[None], baseline=base, target=t, batch_size=batch_size, n_samples=smooth,
                         noise=noise, seed=seed, **quad)
    res = pick_rows(res, slice(None), baseline=base_name)
    top = tuple((names[i], q) for q, i in zip(p.tolist(), idx.tolist()))
    return ImageExplanation(source=source, image=x, top=top, target=t, target_name=names[t],
                            target_probability=float(probs[t]), baseline=base_name, result=res)


def _path_method(model, x, base, base_name, t, method, n_steps, rtol, max_evals, batch_size, smooth, baseline):
    """Blur IG, Guided IG or IDGI on one image: ``(result, baseline description)``."""
    if smooth is not None:
        raise ValueError(f"smooth: SmoothGrad averages IG on the straight line; not with method={method!r}")
    if method == "blur_ig":
        if not (isinstance(baseline, str) and baseline == "black"):
            raise ValueError(f"baseline: Blur IG starts at the blurred image and takes no baseline; got {baseline!r}")
        quad = integration(None, n_steps, rtol, max_evals, N_STEPS)
        res = blur_ig(model, x[None], max_sigma=BLUR_SIGMA, target=t, batch_size=batch_size, **quad)
        return res, res.settings["baseline"]
    if rtol is not None or max_evals != 4097:
        raise ValueError(f"rtol: method={method!r} walks a fixed number of steps (n_steps=); rtol and max_evals "
                         "apply to IG and Blur IG")
    if method == "guided_ig":
        res = guided_ig(model, x[None], baseline=base, target=t, batch_size=batch_size,
                        n_steps=GUIDED_STEPS if n_steps is None else n_steps)
    else:
        res = idgi(model, x[None], baseline=base, target=t, batch_size=batch_size,
                   n_steps=N_STEPS if n_steps is None else n_steps)
    return res, base_name


def load_image(image: str | os.PathLike | torch.Tensor, *, size: int = IMAGE_SIZE) -> tuple[torch.Tensor, str]:
    """``(pixels (C, H, W) in [0, 1], source)`` from a sample name, a file or a tensor.

    Files and samples give float32 cropped and resized to ``size``; tensors are used as
    they are (uint8 is scaled to [0, 1]). Greyscale and alpha files warn; see the module
    docstring.
    """
    if isinstance(image, torch.Tensor):
        x = image[0] if image.dim() == 4 and image.shape[0] == 1 else image
        if x.dim() != 3:
            raise ValueError(f"image: expected a tensor of shape (C, H, W) or (1, C, H, W); got {C.shape(image)}")
        if x.dtype == torch.uint8:
            return x.float() / 255.0, "tensor"
        if not x.is_floating_point():
            raise TypeError(f"image: expected float pixels in [0, 1] or uint8; got dtype {x.dtype}")
        if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise ValueError(f"image: expected pixels in [0, 1]; got values in {float(x.min()):.3g}.."
                             f"{float(x.max()):.3g} (divide 0-255 values by 255)")
        return x, "tensor"  # float tensors keep their dtype: float64 models get float64 pixels
    if not isinstance(image, (str, os.PathLike)):
        raise TypeError(f"image: expected a sample name, a file path or a tensor (C, H, W); got {type(image).__name__}")
    if isinstance(image, str) and image in SAMPLES:
        return load_sample(image, size=size), image
    path = Path(image)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "neither a sample name nor an existing file"
        raise FileNotFoundError(f"image: {os.fspath(image)!r} is {what}; give an image file or one of the samples "
                                f"{', '.join(SAMPLES)}")
    return prepare_image(_read(path, size), size=size), os.fspath(image)


# high bit-depth single-channel modes, read at their full range instead of clipped to 8 bits
_DEEP = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0}


def _read(path: Path, size: int = IMAGE_SIZE) -> torch.Tensor:
    """An image file as uint8 RGB ``(3, H, W)``, flattening alpha onto white.

    Files much larger than ``size`` are first reduced by an integer factor (the short side
    stays at least twice ``size``), so a huge photo does not need gigabytes to load; 16- and
    32-bit greyscale is scaled from its full range.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ImportError("reading image files needs Pillow; pip install 'integrad[image]'") from None
    try:
        with Image.open(path) as im:
            factor = min(im.size) // (2 * size)
            if factor >= 2 and im.format == "JPEG":
                im.draft("RGB", (im.size[0] // factor, im.size[1] // factor))
            im.load()
            factor = min(im.size) // (2 * size)
            if factor >= 2:
                im = im.reduce(factor)
            alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
            grey = im.mode in ("1", "L", "LA", "La", "I", "F") or im.mode in _DEEP
            if im.mode in _DEEP or im.mode in ("I", "F"):
                level = np.asarray(im, dtype=np.float64)
                top = _DEEP.get(im.mode) or (1.0 if im.mode == "F" and level.max() <= 1.0 else
                                             65535.0 if level.max() > 255 else 255.0)
                level = np.clip(level / top, 0.0, 1.0)
                rgba = np.concatenate([np.repeat(level[..., None], 3, -1), np.ones_like(level[..., None])], -1)
            else:
                rgba = np.asarray(im.convert("RGBA"), dtype=np.float64) / 255.0
    except UnidentifiedImageError:
        raise ValueError(f"image: {os.fspath(path)!r} is not an image file Pillow can read") from None
    except OSError as err:
        raise ValueError(f"image: cannot read {os.fspath(path)!r}: {err}") from None
    notes = []
    if grey:
        notes.append("is greyscale; its channel was repeated to RGB")
    if alpha:
        notes.append("has an alpha channel; transparent parts were flattened onto white")
    if notes:
        warnings.warn(f"image: {os.fspath(path)!r} {' and '.join(notes)}", UserWarning, stacklevel=4)
    rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
    return torch.from_numpy(np.round(rgb * 255.0).astype(np.uint8)).permute(2, 0, 1)


def _baseline(baseline: Any, x: torch.Tensor, seed: int, sigma: float | None) -> tuple[Any, str]:
    if isinstance(baseline, torch.Tensor):
        return baseline, f"tensor{tuple(baseline.shape)}"
    if baseline not in BASELINES:
        raise ValueError(f"baseline: expected one of {', '.join(BASELINES)} or a tensor; got {baseline!r}")
    if sigma is not None and baseline not in ("blur", "gaussian"):
        raise ValueError(f"sigma: only the blur and gaussian baselines take sigma; got baseline={baseline!r}")
    if baseline == "black":
        return B.zero(x), "black"
    if baseline == "grey":
        return B.constant(x, 0.5), "grey"
    if baseline == "uniform":
        return B.uniform(x, 0.0, 1.0, seed=seed), f"uniform (seed {seed})"
    if baseline == "blur":
        s = max(x.shape[-2:]) / 16 if sigma is None else sigma
        return B.blurred(x, s), f"blur (sigma {s:g} px)"
    s = _GAUSSIAN_SIGMA if sigma is None else sigma
    return B.gaussian(x, s, seed=seed).clamp(0.0, 1.0), f"gaussian (sigma {s:g}, seed {seed})"


def _class_names(class_names: Sequence[str] | None, n: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(n)]
    names = list(class_names)
    if len(names) != n or not all(isinstance(s, str) for s in names):
        raise ValueError(f"class_names: expected {n} strings, one per model output; got {len(names)} items")
    return names


def _target(target: Any, names: list[str], predicted: int) -> int:
    if target is None:
        return predicted
    if isinstance(target, str):
        by_name = {s.lower(): i for i, s in enumerate(names)}
        if target.lower() in by_name:
            return by_name[target.lower()]
        close = difflib.get_close_matches(target.lower(), list(by_name), n=3)
        hint = f"; did you mean {', '.join(repr(names[by_name[c]]) for c in close)}?" if close else ""
        raise ValueError(f"target: unknown class name {target!r}{hint}")
    if isinstance(target, bool) or not isinstance(target, int):
        raise TypeError(f"target: expected a class index or name; got {type(target).__name__}")
    if not 0 <= target < len(names):
        raise ValueError(f"target: class index {target} is out of range for {len(names)} classes "
                         f"(valid: 0..{len(names) - 1})")
    return target
