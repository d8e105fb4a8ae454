"""Comprehensiveness and sufficiency of token rationales (ERASER, DeYoung et al., ACL 2020)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ..core import checks as C
from . import _common as M

__all__ = ["ErasureScore", "comprehensiveness", "sufficiency"]

BINS = (0.01, 0.05, 0.1, 0.2, 0.5)


@dataclass(frozen=True, eq=False)
class ErasureScore:
    """An ERASER score per example, its value at each bin, and what it was measured on.

    Attributes
    ----------
    score : Tensor, shape (batch,)
        The mean over the bins (AOPC-style aggregate).
    by_bin : Tensor, shape (batch, n_bins)
        ``p(target | full text) - p(target | erased text)`` at each bin.
    bins : tuple of float
        The fractions of tokens in the rationale.
    probability : Tensor, shape (batch,)
        ``p(target | full text)``.
    target : Tensor of int64, shape (batch,)
        The class whose probability is followed.
    """

    score: torch.Tensor
    by_bin: torch.Tensor
    bins: tuple[float, ...]
    probability: torch.Tensor
    target: torch.Tensor


_DOC = """
    Parameters
    ----------
    model : callable
        A sequence classifier called as ``model(input_ids, attention_mask=mask)`` (without
        the mask when ``attention_mask`` is None); its output (or its ``.logits``) has shape
        ``(batch, classes)`` and is turned into probabilities by a softmax.
    input_ids : Tensor of int, shape (batch, tokens)
    attributions : Tensor, shape (batch, tokens)
        One score per token, e.g. ``explanation.result.attributions.sum(-1)`` of
        :func:`integrad.text.explain_text`.
    attention_mask : Tensor, shape (batch, tokens), optional
        Tokens with mask 0 (padding) are never in a rationale nor counted.
    special_tokens_mask : Tensor of bool, shape (batch, tokens), optional
        Tokens such as ``[CLS]`` and ``[SEP]``: always kept, never counted.
    target : None, int, or one int per example
        The class to follow; default the prediction on the full text.
    replace_with : int, optional
        The token id (e.g. the tokenizer's PAD or MASK) that erased tokens become. ``None``
        (default) deletes them, as ERASER does: the remaining tokens close up and the
        freed positions at the end get attention mask 0 (needs ``attention_mask``).
    bins : sequence of float in (0, 1]
        Rationale sizes: the top ``ceil(fraction * n)`` tokens by attribution, ``n`` the
        example's countable tokens (ties in token order).
    batch_size : int, optional
        Erased texts per model call (``None``: about 4M token positions a call).

    Returns
    -------
    ErasureScore

    References
    ----------
    DeYoung, Jain, Rajani, Lehman, Xiong, Socher & Wallace, "ERASER: A Benchmark to Evaluate
    Rationalized NLP Models", ACL 2020 (sec. 4.2 and the AOPC over bins 1, 5, 10, 20, 50%).
    Samek et al., IEEE TNNLS 2017 (AOPC).
"""


def comprehensiveness(model: Callable[..., Any], input_ids: torch.Tensor, attributions: Any, *,
                      attention_mask: torch.Tensor | None = None, special_tokens_mask: torch.Tensor | None = None,
                      target: Any = None, replace_with: int | None = None, bins: Sequence[float] = BINS,
                      batch_size: int | None = None) -> ErasureScore:
    """How much the predicted probability drops when the rationale (the top tokens) is erased.

    ``p(y | x) - p(y | x without its top-k% tokens)``, averaged over the bins: a rationale
    the model relied on leaves it less sure. **Higher is better.**
    """
    return _erasure(model, input_ids, attributions, attention_mask, special_tokens_mask, target, replace_with,
                    bins, batch_size, keep_rationale=False)


def sufficiency(model: Callable[..., Any], input_ids: torch.Tensor, attributions: Any, *,
                attention_mask: torch.Tensor | None = None, special_tokens_mask: torch.Tensor | None = None,
                target: Any = None, replace_with: int | None = None, bins: Sequence[float] = BINS,
                batch_size: int | None = None) -> ErasureScore:
    """How much the predicted probability drops when only the rationale (the top tokens) is kept.

    ``p(y | x) - p(y | only the top-k% tokens of x)``, averaged over the bins: a rationale
    that suffices keeps the prediction. **Lower is better** (negative: the rationale alone
    is more convincing than the whole text).
    """
    return _erasure(model, input_ids, attributions, attention_mask, special_tokens_mask, target, replace_with,
                    bins, batch_size, keep_rationale=True)


comprehensiveness.__doc__ += _DOC
sufficiency.__doc__ += _DOC


def _erasure(model, input_ids, attributions, attention_mask, special, target, replace_with, bins, batch_size,
             *, keep_rationale: bool) -> ErasureScore:
    C.check_model(model)
    ids = M.check_tensor(input_ids, "input_ids", floating=False)
    if ids.dim() != 2 or ids.dtype == torch.bool or ids.is_floating_point():
        raise TypeError(f"input_ids: expected integer token ids of shape (batch, tokens); got {ids.dtype} of shape "
                        f"{C.shape(ids)}")
    a = M.check_tensor(M.values_of(attributions, "attributions"), "attributions")
    if a.shape != ids.shape:
        hint = " (sum the embedding axis: attributions.sum(-1))" if a.dim() == 3 and a.shape[:2] == ids.shape else ""
        raise ValueError(f"attributions: expected one score per token, shape {C.shape(ids)} like input_ids; got "
                         f"{C.shape(a)}{hint}")
    mask = _mask(attention_mask, ids, "attention_mask")
    countable = (mask if mask is not None else torch.ones_like(ids, dtype=torch.bool))
    spec = _mask(special, ids, "special_tokens_mask")
    if spec is not None:
        countable = countable & ~spec
    if replace_with is None:
        if mask is None:
            raise ValueError("replace_with: None deletes the erased tokens, which needs attention_mask= to hide "
                             "the freed positions; pass attention_mask, or a token id to replace them with")
    elif isinstance(replace_with, bool) or not isinstance(replace_with, numbers.Integral):
        raise TypeError(f"replace_with: expected None (delete) or an int token id; got {type(replace_with).__name__}")
    fractions = _bins(bins)
    B, T = ids.shape
    kwargs = (lambda m: {}) if mask is None else (lambda m: {"attention_mask": m.to(attention_mask.dtype)})
    full = _probabilities(model, ids, kwargs(mask), B)
    tgt = _target(target, full, B)
    p_full = full.gather(1, tgt[:, None])[:, 0]

    n = countable.sum(1)
    order = torch.argsort(torch.where(countable, a.double(), -torch.inf), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(T, device=ids.device).expand(B, T))
    frac = torch.tensor(fractions, dtype=torch.float64, device=ids.device)
    # ceil without float noise: 0.1 * 30 is 3.0000000000000004 in binary
    k = torch.ceil(frac[None, :] * n[:, None] - 1e-9).long()  # (batch, n_bins)
    nb = len(fractions)
    drop = torch.empty(B * nb, dtype=torch.float64, device=ids.device)
    for rows in M.chunks(B * nb, batch_size, T):
        rows = rows.to(ids.device)
        ex, b = rows // nb, rows % nb
        rationale = (rank.index_select(0, ex) < k[ex, b][:, None]) & countable.index_select(0, ex)
        erase = (countable.index_select(0, ex) & ~rationale) if keep_rationale else rationale
        r_ids, r_mask = ids.index_select(0, ex), None if mask is None else mask.index_select(0, ex)
        if replace_with is None:
            close_up = torch.argsort(erase.int(), dim=1, stable=True)
            r_ids, r_mask = r_ids.gather(1, close_up), (r_mask & ~erase).gather(1, close_up)
        else:
            r_ids = torch.where(erase, torch.full_like(r_ids, int(replace_with)), r_ids)
        p = _probabilities(model, r_ids, kwargs(r_mask), len(ex))
        drop[rows] = p_full.index_select(0, ex) - p.gather(1, tgt.index_select(0, ex)[:, None])[:, 0]
    by_bin = drop.reshape(B, nb)
    return ErasureScore(score=by_bin.mean(1), by_bin=by_bin, bins=fractions, probability=p_full, target=tgt)


def _mask(m: Any, ids: torch.Tensor, name: str) -> torch.Tensor | None:
    if m is None:
        return None
    if not isinstance(m, torch.Tensor):
        raise TypeError(f"{name}: expected a Tensor of shape {C.shape(ids)} like input_ids; got {type(m).__name__}")
    if m.shape != ids.shape:
        raise ValueError(f"{name}: expected shape {C.shape(ids)} like input_ids; got {C.shape(m)}")
    if m.is_floating_point() or m.is_complex():
        raise TypeError(f"{name}: expected 0/1 integers or booleans; got {m.dtype}")
    return m.detach().to(ids.device).bool()


def _bins(bins: Any) -> tuple[float, ...]:
    if isinstance(bins, (str, bytes)) or not isinstance(bins, Sequence) or not bins:
        raise TypeError(f"bins: expected a non-empty sequence of fractions in (0, 1], e.g. {BINS}; got {bins!r}")
    for i, f in enumerate(bins):
        if isinstance(f, bool) or not isinstance(f, numbers.Real) or not 0 < f <= 1 or math.isnan(f):
            raise ValueError(f"bins[{i}]: expected a fraction of the tokens in (0, 1]; got {f!r}")
    return tuple(float(f) for f in bins)


def _probabilities(model: Callable, ids: torch.Tensor, kwargs: dict, rows: int) -> torch.Tensor:
    out = C.output_tensor(M.call_model(model, ids, **kwargs), rows)
    if out.dim() != 2:
        raise ValueError(f"model output: expected logits of shape (batch, classes); got {C._per_example(out)}")
    if not torch.isfinite(out).all():
        raise FloatingPointError("model: the output holds NaN or Inf")
    return out.detach().double().softmax(-1)


def _target(target: Any, probs: torch.Tensor, batch: int) -> torch.Tensor:
    classes = probs.shape[1]
    if target is None:
        return probs.argmax(1)
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        t = torch.full((batch,), int(target), dtype=torch.long)
    else:
        try:
            t = torch.as_tensor(target)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"target: expected None, an int or one int per example; got {type(target).__name__}") \
                from None
        if t.shape != (batch,) or t.is_floating_point() or t.dtype == torch.bool:
            raise ValueError(f"target: expected one integer class per example, shape ({batch},); got {t.dtype} of "
                             f"shape {C.shape(t)}")
    if ((t < 0) | (t >= classes)).any():
        raise ValueError(f"target: class {int(t[(t < 0) | (t >= classes)][0])} is out of range for {classes} "
                         f"classes (valid: 0..{classes - 1})")
    return t.long().to(probs.device)
