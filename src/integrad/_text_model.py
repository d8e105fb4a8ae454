"""What explaining text needs to know about a classifier, PyTorch or Keras.

Its word-embedding layer, a forward pass and the embeddings on tensors, its labels and its
maximum length. A TensorFlow or JAX model (Keras 2, Keras 3 on the tensorflow or jax backend)
runs through integrad's bridge (:mod:`integrad.backends.foreign`), so nothing here imports a
framework; Keras 3 on the torch backend is an ``nn.Module`` read by integrad's own hooks.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import torch

from .backends import foreign
from .backends.torch_hooks import Layers, LayerTap


def max_length_of(model: Any, tokenizer: Any) -> int:
    limits = [getattr(getattr(model, "config", None), "max_position_embeddings", None),
              getattr(tokenizer, "model_max_length", None)]
    limits = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]
    return min(limits) if limits else 512

def label_names(model: Any, labels: Sequence[str] | None, n: int) -> dict[int, str]:
    if labels is not None:
        if isinstance(labels, str) or not isinstance(labels, (list, tuple)) or len(labels) != n:
            got = f"{len(labels)} names" if isinstance(labels, (list, tuple)) else type(labels).__name__
            raise ValueError(f"labels: expected a list of {n} names, one per output of the model; got {got}")
        return {i: str(v) for i, v in enumerate(labels)}
    id2label = getattr(getattr(model, "config", None), "id2label", None) or {i: str(i) for i in range(n)}
    return {int(k): str(v) for k, v in id2label.items()}

def keras_classes(obj: Any) -> set[str]:
    """Names of the Keras (2 or 3) classes ``obj`` is an instance of; empty for anything else."""
    return {k.__name__ for k in type(obj).__mro__ if (k.__module__ or "").split(".")[0] in ("keras", "tf_keras")}

def embedding_layer(model: Any, layer: Any, keras: bool) -> Any:
    """The layer whose output is interpolated: ``layer=``, ``get_input_embeddings()``, or (Keras) the
    model's one ``Embedding`` layer."""
    if layer is None and callable(getattr(model, "get_input_embeddings", None)):
        return model.get_input_embeddings()
    if not keras:
        if layer is None:
            raise TypeError(f"model: expected a Hugging Face sequence classifier with get_input_embeddings(); got "
                            f"{type(model).__name__} (or pass its word-embedding layer as layer=)")
        if not isinstance(layer, torch.nn.Module):
            raise TypeError(f"layer: expected the word-embedding layer of the model (a torch.nn.Module); got "
                            f"{type(layer).__name__}")
        return layer
    if layer is None:
        found = [m for m in keras_sublayers(model) if "Embedding" in keras_classes(m)]
        if len(found) != 1:
            names = ", ".join(repr(getattr(m, "name", "")) for m in found)
            raise TypeError(f"model: the Keras {type(model).__name__} has {len(found)} Embedding layers"
                            + (f" ({names})" if found else "") + " and no get_input_embeddings(); pass its "
                            "word-embedding layer as layer= (e.g. layer=model.get_layer('embedding'))")
        return found[0]
    if not isinstance(layer, torch.nn.Module):  # callable too, but not a function of the model
        layer = foreign.resolve_layer(model, layer)
    if not hasattr(layer, "call"):
        raise TypeError(f"layer: expected a Keras layer of the model (its word embeddings, e.g. "
                        f"model.get_layer('embedding')); got {type(layer).__name__}")
    return layer

def keras_sublayers(model: Any) -> list:
    # Keras 2 and 3 both list every nested layer once this way; .layers is only the top level
    flatten = getattr(model, "_flatten_layers", None)
    if callable(flatten):
        return list(flatten(include_self=False, recursive=True))
    return list(getattr(model, "layers", ()))

def are_probabilities(scores: torch.Tensor) -> bool:
    """A model may end in a softmax (Keras classifiers often do): rows in [0, 1] summing to one are kept."""
    return bool(scores.min() >= 0 and scores.max() <= 1 and torch.allclose(scores.sum(-1), torch.ones(()), atol=1e-5))

def takes(model: Any, name: str) -> bool:
    """Whether a Keras model's ``call`` names the argument (a functional model takes only its inputs)."""
    try:
        return name in inspect.signature(model.call).parameters
    except (TypeError, ValueError):
        return False

def device_of(model: Any) -> torch.device:
    first = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    return first.device if first is not None else torch.device("cpu")

def views(model: Any, layer: Any, ids: torch.Tensor, kwargs: dict, keras: bool
           ) -> tuple[Callable[..., Any], Callable[[torch.Tensor], torch.Tensor], int | None]:
    """``(forward, embed, vocabulary size)`` on tensors; a TensorFlow or JAX model through integrad's bridge."""
    if not keras:
        return model, layer, getattr(layer, "num_embeddings", None)
    vocab = getattr(layer, "input_dim", None) if "Embedding" in keras_classes(layer) else None
    if isinstance(model, torch.nn.Module):  # Keras 3 on its torch backend: read by integrad's own hooks
        def embed(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad(), LayerTap(Layers(layer)) as tap:
                model(x, **kwargs)
            return tap.tensors[0]
        net = model
    else:
        net = foreign.adapt(model, ids, baseline=None, target=None, forward_args=(), forward_kwargs=kwargs,
                            layer=layer, layer_input=False, layer_baseline=None, neuron=None)[1]
        embed = lambda x: net.layer((x,), (), kwargs)
    emb = embed(ids)
    if emb.dim() != 3 or emb.shape[:2] != ids.shape:
        raise ValueError(f"layer: expected the word-embedding layer, whose output has shape (batch, tokens, dim) = "
                         f"({ids.shape[0]}, {ids.shape[1]}, dim); the {type(layer).__name__} "
                         f"{getattr(layer, 'name', '')!r} gives {tuple(emb.shape)}")
    return net, lambda x: emb if x is ids else embed(x), vocab

def logits_of(out: Any) -> torch.Tensor:
    logits = out if isinstance(out, torch.Tensor) else getattr(out, "logits", None)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise TypeError(f"model: expected a sequence classifier whose output has .logits of shape (batch, labels); "
                        f"got {type(out).__name__}")
    return logits
