"""DistilBERT for sequence classification as a Keras model (Keras 2 ``tf_keras`` or Keras 3).

The architecture of Hugging Face's PyTorch ``DistilBertForSequenceClassification``, in
Keras layers only (no framework ops), so one definition runs on Keras 2 and on Keras 3
whatever its backend: word + position embeddings, LayerNorm and dropout; per block,
multi-head self-attention over the unmasked tokens, residual + LayerNorm, a GELU
feed-forward network, residual + LayerNorm; the first token's vector through a ReLU
pre-classifier and the classifier. Dropout acts only in training.

Built from a ``transformers.DistilBertConfig`` (random weights, seeded) or from a PyTorch
``DistilBertForSequenceClassification`` (its config and its weights, so the two compute
the same function); nothing is downloaded. Called as ``model(input_ids,
attention_mask=mask)``, it returns the logits; ``model.get_input_embeddings()`` (the word
embeddings) and ``model.embeddings`` (word + position + LayerNorm) serve as ``layer=``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["keras_distilbert"]


def keras_distilbert(source: Any, *, keras: Any = None, seed: int = 0) -> Any:
    """A Keras DistilBERT sequence classifier, from a config or from a PyTorch twin.

    Parameters
    ----------
    source : transformers.DistilBertConfig or transformers.DistilBertForSequenceClassification
        A config gives weights drawn as DistilBERT draws them (normal with standard
        deviation ``initializer_range``, biases and the PAD embedding zero, LayerNorms one
        and zero, a sinusoidal position table if the config asks); a PyTorch model gives its
        config and a copy of its weights.
    keras : module, optional
        The Keras to build with: ``tf_keras`` (Keras 2) or ``keras`` (Keras 3). Default
        ``tf_keras`` when installed, else ``keras``.
    seed : int
        Seeds the random weights (unused when copying).

    Returns
    -------
    keras.Model
        ``model(input_ids, attention_mask=mask)``: ids and mask of shape (batch, tokens),
        logits of shape (batch, num_labels). ``model.config`` is the config (labels in
        ``id2label``).

    Examples
    --------
    >>> import torch
    >>> from transformers import DistilBertConfig, DistilBertForSequenceClassification
    >>> cfg = DistilBertConfig(vocab_size=100, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
    >>> twin = DistilBertForSequenceClassification(cfg).eval()
    >>> model = keras_distilbert(twin)
    >>> ids = np.array([[1, 5, 7, 2]])
    >>> bool(np.allclose(model(ids).numpy(), twin(torch.tensor(ids)).logits.detach().numpy(), atol=1e-5))
    True

    References
    ----------
    Sanh, Debut, Chaumond & Wolf, "DistilBERT, a distilled version of BERT: smaller, faster,
    cheaper and lighter", 2019.
    """
    config, torch_model = _source(source)
    _check_config(config)
    keras = keras if keras is not None else _default_keras()
    model = _classes(keras)(config, seed)
    model(np.zeros((1, 2), dtype=np.int32), attention_mask=np.ones((1, 2), dtype=np.int32))  # creates the weights
    if torch_model is not None:
        _copy_weights(model, torch_model)
        return model
    if config.sinusoidal_pos_embds:
        model.embeddings.position_embeddings.set_weights([_sinusoids(config.max_position_embeddings, config.dim)])
    if config.pad_token_id is not None:  # PAD's embedding starts at zero, as in PyTorch's padding_idx
        words = model.embeddings.word_embeddings
        table = words.get_weights()[0]
        table[config.pad_token_id] = 0
        words.set_weights([table])
    return model


# ---------------------------------------------------------------------------- helpers
def _source(source: Any) -> tuple[Any, Any]:
    kind = type(source).__name__
    if kind == "DistilBertConfig":
        return source, None
    if kind == "DistilBertForSequenceClassification":
        return source.config, source
    raise TypeError(f"source: expected a transformers DistilBertConfig or DistilBertForSequenceClassification; "
                    f"got {kind}")


def _check_config(config: Any) -> None:
    if config.dim % config.n_heads:
        raise ValueError(f"source: config.n_heads ({config.n_heads}) must divide config.dim ({config.dim})")
    if config.activation not in ("gelu", "relu"):
        raise ValueError(f"source: config.activation {config.activation!r} is not supported; use 'gelu' or 'relu'")


def _default_keras() -> Any:
    try:
        import tf_keras as keras
    except ImportError:
        import keras
    return keras


def _sinusoids(n_pos: int, dim: int) -> np.ndarray:
    """Fixed position table of ``sinusoidal_pos_embds``: sin on even columns, cos on odd ones."""
    pair = np.arange(dim) // 2
    angle = np.arange(n_pos)[:, None] / np.power(10000.0, 2 * pair[None, :] / dim)
    return np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _classes(keras: Any) -> Any:
    """The model class for one Keras module (Keras 2 and 3 share these layer APIs)."""
    layers = keras.layers

    def normal(config: Any, seed: int, k: int) -> Any:
        return keras.initializers.RandomNormal(stddev=config.initializer_range, seed=seed * 1009 + k)

    def layer_norm(name: str) -> Any:
        return layers.LayerNormalization(epsilon=1e-12, name=name)

    class Embeddings(layers.Layer):
        def __init__(self, config: Any, seed: int, **kw: Any):
            super().__init__(**kw)
            self.word_embeddings = layers.Embedding(config.vocab_size, config.dim, name="word_embeddings",
                                                    embeddings_initializer=normal(config, seed, 0))
            self.position_embeddings = layers.Embedding(
                config.max_position_embeddings, config.dim, name="position_embeddings",
                embeddings_initializer=normal(config, seed, 1), trainable=not config.sinusoidal_pos_embds)
            self.layer_norm = layer_norm("LayerNorm")
            self.dropout = layers.Dropout(config.dropout)

        def call(self, input_ids: Any) -> Any:
            words = self.word_embeddings(input_ids)
            positions = self.position_embeddings(np.arange(words.shape[1])[None, :])
            return self.dropout(self.layer_norm(words + positions))

    class Block(layers.Layer):
        def __init__(self, config: Any, seed: int, **kw: Any):
            super().__init__(**kw)
            self.attention = layers.MultiHeadAttention(
                config.n_heads, config.dim // config.n_heads, dropout=config.attention_dropout, name="attention",
                kernel_initializer=normal(config, seed, 0))
            self.sa_layer_norm = layer_norm("sa_layer_norm")
            self.lin1 = layers.Dense(config.hidden_dim, name="lin1", kernel_initializer=normal(config, seed, 1))
            self.lin2 = layers.Dense(config.dim, name="lin2", kernel_initializer=normal(config, seed, 2))
            self.dropout = layers.Dropout(config.dropout)
            self.output_layer_norm = layer_norm("output_layer_norm")
            self.gelu = config.activation == "gelu"

        def call(self, x: Any, keep: Any = None) -> Any:
            x = self.sa_layer_norm(self.attention(x, x, attention_mask=keep) + x)
            h = self.lin1(x)
            # Keras 3's gelu defaults to the tanh approximation; DistilBERT's is the exact one
            h = keras.activations.gelu(h, approximate=False) if self.gelu else keras.activations.relu(h)
            return self.output_layer_norm(self.dropout(self.lin2(h)) + x)

    class DistilBertClassifier(keras.Model):
        """DistilBERT sequence classifier: ``model(input_ids, attention_mask=mask)`` -> logits."""

        def __init__(self, config: Any, seed: int):
            super().__init__(name="distilbert_classifier")
            self.config = config
            self.embeddings = Embeddings(config, seed, name="embeddings")
            self.blocks = [Block(config, seed + 1 + i, name=f"layer_{i}") for i in range(config.n_layers)]
            self.pre_classifier = layers.Dense(config.dim, activation="relu", name="pre_classifier",
                                               kernel_initializer=normal(config, seed, 2))
            self.dropout = layers.Dropout(config.seq_classif_dropout)
            self.classifier = layers.Dense(config.num_labels, name="classifier",
                                           kernel_initializer=normal(config, seed, 3))

        def get_input_embeddings(self) -> Any:
            return self.embeddings.word_embeddings

        def call(self, input_ids: Any, attention_mask: Any = None) -> Any:
            x = self.embeddings(input_ids)
            # (batch, 1, keys): every query attends to the unmasked keys only
            keep = None if attention_mask is None else attention_mask[:, None, :] > 0
            for block in self.blocks:
                x = block(x, keep)
            return self.classifier(self.dropout(self.pre_classifier(x[:, 0])))

    return DistilBertClassifier


def _copy_weights(model: Any, torch_model: Any) -> None:
    """The PyTorch model's weights into the Keras one (Linear weights transposed, heads split)."""
    sd = {k: v.detach().cpu().float().numpy() for k, v in torch_model.state_dict().items()}
    heads, dim = model.config.n_heads, model.config.dim
    dense = lambda p: [sd[p + ".weight"].T, sd[p + ".bias"]]
    norm = lambda p: [sd[p + ".weight"], sd[p + ".bias"]]
    emb = model.embeddings
    emb.word_embeddings.set_weights([sd["distilbert.embeddings.word_embeddings.weight"]])
    emb.position_embeddings.set_weights([sd["distilbert.embeddings.position_embeddings.weight"]])
    emb.layer_norm.set_weights(norm("distilbert.embeddings.LayerNorm"))
    for i, block in enumerate(model.blocks):
        p = f"distilbert.transformer.layer.{i}."
        attn = []
        # Keras keeps q, k, v kernels as (dim, heads, head_dim) and the output as (heads, head_dim, dim)
        for name in ("q_lin", "k_lin", "v_lin"):
            w, b = dense(p + "attention." + name)
            attn += [w.reshape(dim, heads, -1), b.reshape(heads, -1)]
        w, b = dense(p + "attention.out_lin")
        block.attention.set_weights(attn + [w.reshape(heads, -1, dim), b])
        block.sa_layer_norm.set_weights(norm(p + "sa_layer_norm"))
        block.lin1.set_weights(dense(p + "ffn.lin1"))
        block.lin2.set_weights(dense(p + "ffn.lin2"))
        block.output_layer_norm.set_weights(norm(p + "output_layer_norm"))
    model.pre_classifier.set_weights(dense("pre_classifier"))
    model.classifier.set_weights(dense("classifier"))
