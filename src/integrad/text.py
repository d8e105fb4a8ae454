"""Explain text classifiers word by word: Integrated Gradients through the word embeddings.

Only the word-embedding output is interpolated; position and token-type embeddings stay as
they are in input and baseline alike. Hugging Face PyTorch classifiers and Keras models
(Keras 2 or 3) are explained alike (:mod:`integrad._text_model` knows the difference; a
TensorFlow or JAX model runs through integrad's bridge). The default baseline keeps the
special tokens (``[CLS]``, ``[SEP]``) and replaces every other token by ``[PAD]``, the classic
recipe.

>>> from integrad.models import load_sentiment_model
>>> model, tok = load_sentiment_model()
>>> ex = explain_text(model, tok, "I love you, but I also kind of dislike you")
>>> max(ex.words, key=lambda w: w.attribution).text
'love'
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from ._text_model import (are_probabilities, device_of, embedding_layer, keras_classes, label_names, logits_of,
                          max_length_of, takes, views)
from .methods.ig import integrated_gradients, integration
from .methods.smooth import smoothgrad
from .core.result import Attribution, OneExample, _json_number, pick_rows

__all__ = ["Span", "TextExplanation", "explain_text", "merge_subwords", "load_text_model"]

BASELINES = ("pad", "mask", "unk", "zero")
# Gauss-Legendre nodes by default: the fewest at which, on the embedded MiniLM sentiment model
# (12 sentences, benchmarks/accuracy.py, docs/accuracy.md), both the true per-word-vector error
# (<= 5e-4) and its estimate (<= 5.6e-3) are within 1%; at 24 nodes the error is (2.3e-3) but
# the estimate, which overshoots on smooth models, is not
N_STEPS = 32


@dataclass(frozen=True)
class Span:
    """A token or word with its attribution (signed sum over the embedding dimension)."""

    text: str
    attribution: float
    special: bool = False


@dataclass(frozen=True, eq=False)
class TextExplanation(OneExample):
    """Why a text classifier said what it said, token by token and word by word.

    Attributes
    ----------
    text : str
    label, probability : str, float
        The model's prediction.
    target : str
        The label whose logit is attributed (the prediction unless asked otherwise).
    tokens : list of Span
        Every token in order, special tokens flagged.
    words : list of Span
        Non-special tokens merged into words (subword scores summed).
    result : Attribution
        The underlying result for this text (attributions of shape (1, tokens, dim)).
    target_probability : float
        The model's probability of ``target``.
    """

    text: str
    label: str
    probability: float
    target: str
    tokens: list[Span]
    words: list[Span]
    result: Attribution = field(repr=False)
    target_probability: float = float("nan")

    @property
    def special_tokens(self) -> list[Span]:
        return [t for t in self.tokens if t.special]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, with the keys every explanation's ``to_dict`` has.

        ``model`` is the settings' ``"model"`` entry, which the CLI fills in.
        """
        span = lambda s: {"text": s.text, "attribution": s.attribution}
        settings = self.result.settings
        return self._common_dict(
            model=settings.get("model"), baseline=settings.get("baseline"),
            target=(settings.get("target"), self.target, _json_number(self.target_probability)),
            prediction=(self.label, self.probability)) | {
            "text": self.text,
            "tokens": [span(t) | {"special": t.special} for t in self.tokens],
            "words": [span(w) for w in self.words],
            "special_tokens": [span(t) for t in self.special_tokens],
        }

    def to_html(self) -> str:
        """A self-contained HTML page (all text escaped)."""
        from .viz import text_html_page

        return text_html_page([self])

    def to_png(self, path: Any, *, max_words: int = 30, dpi: int = 120) -> None:
        """Bar chart of the word attributions in reading order (needs matplotlib).

        Texts of more than ``max_words`` words show their ``max_words`` largest, still in
        reading order, and one bar for the sum of the rest.
        """
        from .viz._bars import save_bars

        if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1:
            raise ValueError(f"max_words: expected an int >= 1; got {max_words!r}")
        keep = set(sorted(range(len(self.words)), key=lambda i: -abs(self.words[i].attribution))[:max_words])
        names = [self.words[i].text for i in sorted(keep)]
        values = [self.words[i].attribution for i in sorted(keep)]
        rest = [w.attribution for i, w in enumerate(self.words) if i not in keep]
        if rest:
            names.append(f"({len(rest)} other words)")
            values.append(sum(rest))
        save_bars(path, names, values, xlabel=f"attribution to the logit of {self.target!r}",
                  title=f"predicted {self.label} ({self.probability:.1%}); explained: {self.target}\n"
                        f"F(x) = {self.f_x:.3f}, F(baseline) = {self.f_baseline:.3f}, δ = {self.delta:+.1e}\n"
                        f"{self.accuracy}", width=8, row_height=0.3, max_label=40, dpi=dpi)

    def _repr_html_(self) -> str:
        from .viz import text_html_fragment

        return text_html_fragment(self)

    def __rich__(self):
        from .viz import text_rich

        return text_rich(self)


def explain_text(
    model: Any,
    tokenizer: Any,
    texts: str | Sequence[str],
    *,
    target: int | str | Sequence[int | str] | None = None,
    baseline: str | int | torch.Tensor = "pad",
    layer: Any = None,
    labels: Sequence[str] | None = None,
    method: str | None = None,
    n_steps: int | None = None,
    rtol: float | None = None,
    max_evals: int = 4097,
    batch_size: int | None = None,
    max_length: int | None = None,
    smooth: int | None = None,
    noise: float = 0.15,
    seed: int = 0,
) -> TextExplanation | list[TextExplanation]:
    """Attribute a sequence classifier's logit to the words of each text.

    Parameters
    ----------
    model : Hugging Face sequence classifier, or Keras model
        A PyTorch classifier is called as ``model(input_ids, attention_mask=...,
        token_type_ids=...)``; its output (or its ``.logits``) has shape (batch, labels).
        A Keras model (Keras 2 ``tf_keras``, or Keras 3) is called as ``model(input_ids)``,
        with ``attention_mask=`` and ``token_type_ids=`` only where its ``call`` names
        them. The output may be logits or probabilities (rows that are non-negative and sum
        to one are taken as probabilities, and then the probability is attributed).
    tokenizer : Hugging Face tokenizer
    texts : str or sequence of str
        One text (returns one explanation) or several (returns a list; they are padded into
        one batch, with the same numbers as one at a time).
    target : None, int, label name, or one of those per text
        The class to explain; default the predicted class.
    baseline : {"pad", "mask", "unk", "zero"}, int, or Tensor
        Non-special tokens become PAD / MASK / UNK / this token id, or get a zero embedding;
        a tensor of ids (integer) or embeddings (float, broadcast to (tokens, dim)).
    layer : layer of the model, optional
        The word-embedding layer, whose output (batch, tokens, dim) is interpolated.
        Default ``model.get_input_embeddings()``; for a Keras model without it, its one
        ``Embedding`` layer.
    labels : sequence of str, optional
        A name per output; default the config's ``id2label``, else ``"0"``, ``"1"``, ...
    method, n_steps, rtol, max_evals, batch_size
        As in :func:`integrad.integrated_gradients`; with none of method, n_steps and rtol,
        Gauss-Legendre with ``N_STEPS`` nodes. Every explanation carries its estimated error
        (``.error``, ``.accuracy``).
    max_length : int, optional
        Longer texts are truncated with a warning; default the model's maximum.
    smooth : int, optional
        SmoothGrad-IG: average IG over this many copies with Gaussian noise added to the
        word embeddings (never to the token ids), of standard deviation ``noise`` times each
        text's embedding range; ``seed`` draws it. See :func:`integrad.smoothgrad`.

    References
    ----------
    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017 (sec. 6.3).
    """
    items = _check_texts(texts)
    if not callable(tokenizer) or not hasattr(tokenizer, "convert_ids_to_tokens"):
        raise TypeError(f"tokenizer: expected a Hugging Face tokenizer (e.g. AutoTokenizer.from_pretrained(...)); "
                        f"got {type(tokenizer).__name__}")
    keras = bool(keras_classes(model))
    layer = embedding_layer(model, layer, keras)
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                   or max_length < 2):
        raise ValueError(f"max_length: expected None (the model's maximum) or an int >= 2 (room for the special "
                         f"tokens); got {max_length!r}")
    limit = max_length or max_length_of(model, tokenizer)
    for i, t in enumerate(items):
        n = len(tokenizer(t)["input_ids"])
        if n > limit:
            warnings.warn(f"texts[{i}]: {n} tokens, more than the model's maximum of {limit}; truncated to "
                          f"{limit} (only the kept tokens are attributed)", stacklevel=2)
    enc = tokenizer(items, padding=True, truncation=True, max_length=limit, return_tensors="pt",
                    return_special_tokens_mask=True, return_offsets_mapping=bool(getattr(tokenizer, "is_fast", False)))
    device = device_of(model)
    ids = enc["input_ids"].to(device)
    keep = (enc.pop("special_tokens_mask").bool() | (enc["attention_mask"] == 0)).to(device)
    offsets = enc.pop("offset_mapping", None)
    kwargs = {k: enc[k].to(device) for k in ("attention_mask", "token_type_ids")
              if k in enc and (not keras or takes(model, k))}
    net, embed, vocab = views(model, layer, ids, kwargs, keras)
    with torch.no_grad():
        scores = logits_of(net(ids, **kwargs)).float()
        probs = scores if are_probabilities(scores) else scores.softmax(-1)
    labels = label_names(model, labels, probs.shape[-1])
    targets = _targets(target, probs.argmax(-1).tolist(), labels, len(items))
    base_ids, layer_base = _baseline(baseline, ids, keep, tokenizer, embed, vocab)
    quad = integration(method, n_steps, rtol, max_evals, N_STEPS)
    common = dict(baseline=base_ids, layer_baseline=layer_base, target=targets, layer=layer, forward_kwargs=kwargs,
                  batch_size=batch_size)
    if smooth is None:
        res = integrated_gradients(model, ids, **common, **quad)
    else:
        if "method" in quad:
            quad["rule"] = quad.pop("method")
        res = smoothgrad(model, ids, n_samples=smooth, noise=noise, seed=seed, **common, **quad)
    scores = res.attributions.sum(-1).double().cpu()
    out = []
    for b, text in enumerate(items):
        n_tok = int(enc["attention_mask"][b].sum())
        toks = tokenizer.convert_ids_to_tokens(ids[b, :n_tok].tolist())
        special = keep[b, :n_tok].tolist()
        tokens = [Span(t, float(s), bool(sp)) for t, s, sp in zip(toks, scores[b, :n_tok].tolist(), special)]
        if offsets is not None:
            words = _words_from_offsets(text, tokens, enc.word_ids(b)[:n_tok], offsets[b, :n_tok].tolist())
        else:
            words = merge_subwords(tokens)
        out.append(TextExplanation(
            text=text, label=labels[int(probs[b].argmax())], probability=float(probs[b].max()),
            target=labels[targets[b]], tokens=tokens, words=words, result=_row(res, b, _describe(baseline)),
            target_probability=float(probs[b, targets[b]])))
    return out[0] if isinstance(texts, str) else out


def merge_subwords(tokens: Sequence[Span]) -> list[Span]:
    """Merge subword tokens into words by their markers, summing scores.

    Handles WordPiece (``##`` continues a word), SentencePiece (``▁`` starts one) and
    byte-level BPE (``Ġ`` starts one). Special tokens are left out.

    >>> merge_subwords([Span("dis", 1.0), Span("##like", -3.0)])
    [Span(text='dislike', attribution=-2.0, special=False)]
    """
    plain = [t for t in tokens if not t.special]
    starts_marked = any(t.text.startswith(("▁", "Ġ")) for t in plain)
    words: list[list] = []
    for t in plain:
        if starts_marked:
            new, piece = t.text.startswith(("▁", "Ġ")) or not words, t.text.lstrip("▁Ġ")
        else:
            new, piece = not t.text.startswith("##") or not words, t.text.removeprefix("##")
        if new:
            words.append([piece, t.attribution])
        else:
            words[-1][0] += piece
            words[-1][1] += t.attribution
    return [Span(w, s) for w, s in words if w]


def load_text_model(path: str | None = None):
    """``(model, tokenizer)``: a local Hugging Face classifier directory, or the embedded default."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a progress bar per load is noise in a CLI and in logs
    if path is None:
        from .models import load_sentiment_model

        return load_sentiment_model()
    from pathlib import Path

    if not Path(path).is_dir():
        raise FileNotFoundError(f"model: {path!r} is not a directory holding a Hugging Face sequence classifier "
                                "(config.json, weights, tokenizer files)")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True).eval()
    return model, tok


# ---------------------------------------------------------------------------- helpers
def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        items = [texts]
    elif isinstance(texts, (list, tuple)) and texts:
        items = list(texts)
    else:
        raise TypeError(f"texts: expected a str or a non-empty list of str; got {type(texts).__name__}"
                        + (" (empty)" if isinstance(texts, (list, tuple)) else ""))
    for i, t in enumerate(items):
        name = "texts" if isinstance(texts, str) else f"texts[{i}]"
        if not isinstance(t, str):
            raise TypeError(f"{name}: expected a str; got {type(t).__name__}")
        if not t.strip():
            raise ValueError(f"{name}: the text is empty or only whitespace; there is nothing to attribute")
    return items


def _targets(target: Any, predicted: list[int], labels: dict[int, str], n: int) -> list[int]:
    if target is None:
        return predicted
    per_text = list(target) if isinstance(target, (list, tuple)) else [target] * n
    if len(per_text) != n:
        raise ValueError(f"target: {len(per_text)} targets for {n} texts; give one, or one per text")
    by_name = {v.lower(): k for k, v in labels.items()}
    n_labels = len(labels) or None
    out = []
    for t in per_text:
        if isinstance(t, str):
            if t.lower() not in by_name:
                known = ", ".join(labels.values()) or "none (the model config has no id2label)"
                raise ValueError(f"target: unknown label {t!r}; the model's labels are {known}")
            out.append(by_name[t.lower()])
        elif isinstance(t, int) and not isinstance(t, bool):
            if n_labels is not None and not 0 <= t < n_labels:
                raise ValueError(f"target: class index {t} is out of range for {n_labels} labels")
            out.append(t)
        else:
            raise TypeError(f"target: expected a label name or class index; got {type(t).__name__}")
    return out


def _baseline(baseline: Any, ids: torch.Tensor, keep: torch.Tensor, tokenizer: Any,
              embed: Callable[[torch.Tensor], torch.Tensor], vocab: int | None):
    """(baseline ids, baseline embeddings or None): special tokens and padding are kept."""
    if isinstance(baseline, torch.Tensor):
        if baseline.is_floating_point():
            return ids, baseline.to(ids.device)
        if vocab is not None and baseline.numel() and not (0 <= int(baseline.min()) and int(baseline.max()) < vocab):
            raise ValueError(f"baseline: token ids must lie in 0..{vocab - 1} (the model's vocabulary); got ids from "
                             f"{int(baseline.min())} to {int(baseline.max())}")
        return baseline.to(ids.device), None
    if baseline == "zero":
        with torch.no_grad():
            emb = embed(ids)
        return ids, emb * keep.unsqueeze(-1).to(emb.dtype)
    if isinstance(baseline, str):
        if baseline not in BASELINES:
            raise ValueError(f"baseline: expected one of {', '.join(BASELINES)}, a token id or a tensor; "
                             f"got {baseline!r}")
        token_id = getattr(tokenizer, f"{baseline}_token_id", None)
        if token_id is None:
            raise ValueError(f"baseline: the tokenizer has no {baseline.upper()} token; choose another baseline")
    elif isinstance(baseline, int) and not isinstance(baseline, bool):
        token_id = baseline
    else:
        raise TypeError(f"baseline: expected a str, an int token id or a tensor; got {type(baseline).__name__}")
    if vocab is not None and not 0 <= token_id < vocab:
        raise ValueError(f"baseline: token id {token_id} is outside the model's vocabulary (valid: 0..{vocab - 1})")
    return torch.where(keep, ids, torch.full_like(ids, token_id)), None


def _words_from_offsets(text: str, tokens: list[Span], word_ids: list, offsets: list) -> list[Span]:
    """Words as the tokenizer's pre-tokenizer saw them, spelled as in the original text."""
    words: list[list] = []
    last = None
    for tok, wid, (lo, hi) in zip(tokens, word_ids, offsets):
        if tok.special or wid is None:
            last = None
            continue
        if wid == last:
            words[-1][1] = max(words[-1][1], hi)
            words[-1][2] += tok.attribution
        else:
            words.append([lo, hi, tok.attribution])
        last = wid
    return [Span(text[lo:hi].strip(), s) for lo, hi, s in words]


def _describe(baseline: Any) -> Any:
    """The baseline as the user named it (the engine only sees the token ids it became)."""
    if isinstance(baseline, torch.Tensor):
        return f"{'embedding' if baseline.is_floating_point() else 'token id'} tensor{tuple(baseline.shape)}"
    return baseline


def _row(res: Attribution, b: int, baseline: Any) -> Attribution:
    return pick_rows(res, slice(b, b + 1), target=res.settings["target"][b], baseline=baseline)
