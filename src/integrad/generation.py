"""Explain what a causal language model generated, token by token, from one path for all targets.

For each generated token ``y_t`` the attributed scalar is its log-probability
``log p(y_t | prompt, y_<t)``, and the path interpolates the prompt's word embeddings from
the baseline to the prompt while the earlier generated tokens keep their real embeddings
(Captum's ``LLMGradientAttribution`` path for target ``t``). In a causal model the logits at
position ``P - 1 + t`` depend only on positions up to it, so one interpolated forward pass
over the prompt and all generated tokens gives every target's value on exactly that path;
the engine's several-targets backward (``targets=``) takes each target's gradient from the
one shared forward pass. Captum runs one whole Layer IG per generated token instead.

Why the log-probability: completeness then reads ``sum(attributions) = log p(y_t | x) -
log p(y_t | x')``, a log-odds-like change that does not saturate; a probability near 1 is
flat along most of the path, and its gradients (and gap) say little.

>>> from integrad.generation import explain_generation        # doctest: +SKIP
>>> ex = explain_generation(model, tokenizer, "The capital of France is", max_new_tokens=4)  # doctest: +SKIP
>>> ex.generated, ex.matrix.shape                              # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from .core.result import Attribution, _json_number
from .methods._job import check_count
from .methods.ig import integrated_gradients, integration

__all__ = ["explain_generation", "GenerationExplanation"]

# Gauss-Legendre nodes by default: a cost choice, not a converged one (docs/generation.md: on SmolLM2
# nothing up to 256 steps converges; every result reports its per-target gap and error)
N_STEPS = 64
PATHS = ("prompt", "all")


@dataclass(frozen=True, eq=False)
class GenerationExplanation:
    """Which source tokens made a language model write each of its tokens.

    Attributes
    ----------
    prompt : str
        The text the model was given (after the chat template, if any).
    source : list of str
        The source tokens: the prompt's, then (``path="all"``) the generated ones but the last.
    special : list of bool
        Per source token: kept as it is in the baseline (special tokens, generated tokens).
    generated : list of str
        The generated (or given) target tokens, decoded one by one.
    generated_ids : list of int
    matrix : Tensor, shape (generated, source)
        ``matrix[t, s]``: attribution of source token ``s`` to ``log p(generated[t])``
        (summed over the embedding dimension); zero where ``s`` comes after ``t``.
    f_x, f_baseline, delta : Tensor, shape (generated,)
        Per target: the log-probability at the prompt and at the baseline, and the
        completeness gap ``matrix[t].sum() - (f_x - f_baseline)``.
    error : Tensor, shape (generated,), optional
        Each target's estimated error of its attribution row.
    result : Attribution
        The engine's result (attributions of shape (1, generated, tokens, dim)).
    options : dict
        What ``explain_generation`` was asked: ``path``, ``score``, ``baseline``.
    """

    prompt: str
    source: list[str]
    special: list[bool]
    generated: list[str]
    generated_ids: list[int]
    matrix: torch.Tensor
    f_x: torch.Tensor
    f_baseline: torch.Tensor
    delta: torch.Tensor
    error: torch.Tensor | None
    result: Attribution = field(repr=False)
    options: dict = field(default_factory=dict)

    @property
    def relative_delta(self) -> torch.Tensor:
        """``|delta| / |f_x - f_baseline|`` per target."""
        return self.delta.abs().double() / (self.f_x - self.f_baseline).abs().double()

    def top(self, t: int, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` source tokens with the largest |attribution| to generated token ``t``."""
        row = self.matrix[t]
        order = row.abs().argsort(descending=True)[:k].tolist()
        return [(self.source[i], float(row[i])) for i in order]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        from . import __version__

        num = lambda t: [_json_number(float(v)) for v in t]  # noqa: E731
        return {
            "kind": "generation",
            "model": self.result.settings.get("model"),
            "prompt": self.prompt,
            "source": [{"text": s, "special": sp} for s, sp in zip(self.source, self.special)],
            "generated": [{"text": g, "id": i} for g, i in zip(self.generated, self.generated_ids)],
            "matrix": [num(r) for r in self.matrix],
            "f_x": num(self.f_x), "f_baseline": num(self.f_baseline), "delta": num(self.delta),
            "relative_delta": num(self.relative_delta),
            "error": None if self.error is None else num(self.error),
            "n_evals": int(self.result.n_evals.sum()),
            "settings": dict(self.result.settings) | self.options, "integrad_version": __version__,
        }

    def to_html(self) -> str:
        """A self-contained HTML page: pick a generated token to colour the prompt by it (all text escaped)."""
        from .viz import generation_html_page

        return generation_html_page([self])

    def _repr_html_(self) -> str:
        from .viz import generation_html_fragment

        return generation_html_fragment(self)

    def __rich__(self):
        from .viz import generation_rich

        return generation_rich(self)

    def __repr__(self) -> str:
        gap = float(self.relative_delta.max()) if len(self.generated) else 0.0
        return (f"GenerationExplanation({len(self.generated)} generated x {len(self.source)} source tokens, "
                f"generated {''.join(self.generated)!r}, max completeness gap {gap:.2%})")


class _TokenLogProbs(torch.nn.Module):
    """The language model as a multi-output model: ``log p(y_t | ids[:P + t])`` for every ``t``."""

    def __init__(self, lm: torch.nn.Module, start: int, targets: torch.Tensor, prob: bool):
        super().__init__()
        self.lm, self.start, self.prob = lm, start, prob
        self.register_buffer("targets", targets, persistent=False)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        T = self.targets.shape[0]
        out = self.lm(input_ids=ids, attention_mask=attention_mask, use_cache=False)
        logits = getattr(out, "logits", out)[:, self.start - 1:self.start - 1 + T]
        lp = logits.log_softmax(-1).gather(-1, self.targets.view(1, T, 1).expand(ids.shape[0], T, 1)).squeeze(-1)
        return lp.exp() if self.prob else lp


def explain_generation(
    model: torch.nn.Module,
    tokenizer: Any,
    prompt: str | Sequence[dict[str, str]],
    *,
    max_new_tokens: int = 16,
    target_tokens: str | Sequence[int] | torch.Tensor | None = None,
    baseline: str | int | torch.Tensor = "pad",
    path: str = "prompt",
    score: str = "log_prob",
    method: str | None = None,
    n_steps: int | None = None,
    rtol: float | None = None,
    max_evals: int = 4097,
    batch_size: int | None = None,
) -> GenerationExplanation | list[GenerationExplanation]:
    """Attribute each generated token's log-probability to the prompt's tokens.

    Parameters
    ----------
    model : Hugging Face causal language model
        ``model(input_ids=...)`` has ``.logits`` (batch, tokens, vocabulary);
        ``model.get_input_embeddings()`` is the interpolated layer.
    tokenizer : Hugging Face tokenizer
    prompt : str, a list of chat messages, or a list of str
        Messages (``[{"role": "user", "content": ...}]``) go through the tokenizer's chat
        template with the generation prompt added. A list of strings gives a list of
        explanations, one per prompt (each generates its own continuation).
    max_new_tokens : int
        Greedy generation length when ``target_tokens`` is not given (it stops early at EOS).
    target_tokens : str, sequence of int or Tensor, optional
        The continuation to explain instead of generating one (a string is tokenized
        without special tokens).
    baseline : {"pad", "eos", "unk", "zero"}, int, or Tensor
        Non-special prompt tokens become this token (PAD falls back to EOS when the tokenizer
        has none) or get a zero embedding; a tensor of ids gives every prompt position's
        baseline token (special ones included).
    path : {"prompt", "all"}
        ``"prompt"`` (Captum's path): only the prompt moves, earlier generated tokens keep
        their embeddings. ``"all"``: the generated tokens but the last move too, and get
        attributions of their own (a different path, not Captum's).
    score : {"log_prob", "prob"}
        The attributed scalar per target.
    method, n_steps, rtol, max_evals, batch_size
        As in :func:`integrad.integrated_gradients`; default Gauss-Legendre with ``N_STEPS``
        nodes. With ``rtol`` each target refines its own points (one run per target).
    """
    _check(model, tokenizer, max_new_tokens, path, score)
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(p, str) for p in prompt):
        if target_tokens is not None:
            raise ValueError("target_tokens: give one prompt with its target tokens, not a list of prompts")
        opts = dict(max_new_tokens=max_new_tokens, baseline=baseline, path=path, score=score, method=method,
                    n_steps=n_steps, rtol=rtol, max_evals=max_evals, batch_size=batch_size)
        return [explain_generation(model, tokenizer, p, **opts) for p in prompt]
    text, ids = _prompt_ids(tokenizer, prompt)
    device = next(model.parameters()).device
    ids = ids.to(device)
    y = _targets(model, tokenizer, ids, max_new_tokens, target_tokens).to(device)
    P, T = ids.shape[0], y.shape[0]
    full = torch.cat([ids, y[:-1]]).unsqueeze(0)  # the last target is predicted, never read
    special = _special(tokenizer, ids) + [True] * (T - 1)
    layer = model.get_input_embeddings()
    with torch.no_grad():
        emb = layer(full)
    start = _layer_baseline(baseline, emb, full, special, P, tokenizer, layer, path)
    net = _TokenLogProbs(model, P, y, score == "prob")
    quad = integration(method, n_steps, rtol, max_evals, N_STEPS)
    common = dict(layer=layer, layer_baseline=start, batch_size=batch_size)
    if rtol is None:
        res = integrated_gradients(net, full, targets=list(range(T)), **common, **quad)
        scores = res.attributions[0].sum(-1).double().cpu()  # (T, L)
        f_x, f_b, delta = res.f_x[0], res.f_baseline[0], res.delta[0]
        error = None if res.error is None else res.error[0]
    else:  # each target's own refinement
        runs = [integrated_gradients(net, full, target=t, **common, **quad) for t in range(T)]
        res = runs[0]
        scores = torch.stack([r.attributions[0].sum(-1).double().cpu() for r in runs])
        f_x, f_b, delta = (torch.cat([getattr(r, k) for r in runs]) for k in ("f_x", "f_baseline", "delta"))
        error = torch.cat([r.error for r in runs]) if runs[0].error is not None else None
    n_src = P if path == "prompt" else P + T - 1
    tok = tokenizer.convert_ids_to_tokens(full[0, :n_src].tolist())
    return GenerationExplanation(
        prompt=text, source=tok, special=special[:n_src],
        generated=[tokenizer.decode([i]) for i in y.tolist()], generated_ids=y.tolist(),
        matrix=scores[:, :n_src].to(f_x.dtype), f_x=f_x.cpu(), f_baseline=f_b.cpu(), delta=delta.cpu(),
        error=None if error is None else error.cpu(), result=res,
        options={"path": path, "score": score,
                 "baseline": f"{tuple(baseline.shape)} token ids" if isinstance(baseline, torch.Tensor) else baseline})


# ---------------------------------------------------------------------------- helpers
def _check(model: Any, tokenizer: Any, max_new_tokens: Any, path: Any, score: Any) -> None:
    if not isinstance(model, torch.nn.Module) or not callable(getattr(model, "get_input_embeddings", None)):
        raise TypeError(f"model: expected a Hugging Face causal language model with get_input_embeddings(); got "
                        f"{type(model).__name__}")
    if not callable(tokenizer) or not hasattr(tokenizer, "convert_ids_to_tokens"):
        raise TypeError(f"tokenizer: expected a Hugging Face tokenizer; got {type(tokenizer).__name__}")
    check_count(max_new_tokens, "max_new_tokens")
    if path not in PATHS:
        raise ValueError(f"path: expected one of {PATHS}; got {path!r}")
    if score not in ("log_prob", "prob"):
        raise ValueError(f"score: expected 'log_prob' or 'prob'; got {score!r}")


def _prompt_ids(tokenizer: Any, prompt: Any) -> tuple[str, torch.Tensor]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("prompt: expected a non-empty text; got an empty string")
        text = prompt
        ids = tokenizer(text, return_tensors="pt")["input_ids"][0]
    elif isinstance(prompt, (list, tuple)) and prompt and all(isinstance(m, dict) for m in prompt):
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("prompt: chat messages need a tokenizer with a chat template; this one has none "
                             "(pass the prompt as a string)")
        text = tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    else:
        raise TypeError(f"prompt: expected a string or a non-empty list of chat messages (dicts with 'role' and "
                        f"'content'); got {type(prompt).__name__}")
    if ids.numel() == 0:
        raise ValueError(f"prompt: {prompt!r} gives no tokens")
    return text, ids


def _targets(model: Any, tokenizer: Any, ids: torch.Tensor, max_new_tokens: int, given: Any) -> torch.Tensor:
    if given is not None:
        if isinstance(given, str):
            y = tokenizer(given, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        else:
            y = torch.as_tensor(given, dtype=torch.long).flatten()
        if y.numel() == 0:
            raise ValueError(f"target_tokens: expected at least one token; got {given!r}")
        vocab = model.get_input_embeddings().num_embeddings
        if int(y.min()) < 0 or int(y.max()) >= vocab:
            raise ValueError(f"target_tokens: ids must be in [0, {vocab}); got {y.min().item()}..{y.max().item()}")
        return y
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        out = model.generate(ids.unsqueeze(0), attention_mask=torch.ones_like(ids).unsqueeze(0),
                             max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
    y = out[0, ids.shape[0]:]
    eos = tokenizer.eos_token_id
    if eos is not None and (y == eos).any():
        y = y[:int((y == eos).nonzero()[0]) + 1]  # up to and with the first EOS
    if y.numel() == 0:
        raise ValueError("the model generated no token; give target_tokens=")
    return y.cpu()


def _special(tokenizer: Any, ids: torch.Tensor) -> list[bool]:
    specials = set(getattr(tokenizer, "all_special_ids", []) or [])
    return [int(i) in specials for i in ids.tolist()]


def _layer_baseline(baseline: Any, emb: torch.Tensor, full: torch.Tensor, special: list[bool], P: int,
                    tokenizer: Any, layer: torch.nn.Module, path: str) -> torch.Tensor:
    """The path's start in embedding space: moved positions at the baseline, the rest as they are."""
    moves = torch.tensor([not s for s in special[:P]] + [path == "all"] * (full.shape[1] - P), device=emb.device)
    start = emb.clone()
    if isinstance(baseline, torch.Tensor):
        if baseline.dtype.is_floating_point or baseline.shape != (P,):
            raise ValueError(f"baseline: a tensor gives one baseline token id per prompt position, shape ({P},); got "
                             f"{baseline.dtype} {tuple(baseline.shape)}")
        if path != "prompt":
            raise ValueError("baseline: a tensor of prompt token ids goes with path='prompt'; give a token name or "
                             "id for path='all'")
        with torch.no_grad():
            start[0, :P] = layer(baseline.to(full.device).view(1, P))[0]
        return start
    if baseline == "zero":
        return torch.where(moves[None, :, None], torch.zeros((), dtype=emb.dtype), start)
    token = _baseline_token(baseline, tokenizer, layer)
    with torch.no_grad():
        vec = layer(torch.tensor([[token]], device=full.device))[0, 0]
    return torch.where(moves[None, :, None], vec, start)


def _baseline_token(baseline: Any, tokenizer: Any, layer: torch.nn.Module) -> int:
    if isinstance(baseline, bool) or not isinstance(baseline, (int, str)):
        raise TypeError(f"baseline: expected 'pad', 'eos', 'unk', 'zero', a token id or a tensor of ids; got "
                        f"{type(baseline).__name__}")
    if isinstance(baseline, int):
        token = baseline
    else:
        names = {"pad": ("pad_token_id", "eos_token_id"), "eos": ("eos_token_id",), "unk": ("unk_token_id",)}
        if baseline not in names:
            raise ValueError(f"baseline: expected 'pad', 'eos', 'unk', 'zero', a token id or a tensor of ids; got "
                             f"{baseline!r}")
        ids = [getattr(tokenizer, n, None) for n in names[baseline]]
        token = next((i for i in ids if i is not None), None)
        if token is None:
            raise ValueError(f"baseline: the tokenizer has no {baseline.upper()} token; choose another baseline")
    if not 0 <= token < layer.num_embeddings:
        raise ValueError(f"baseline: token id {token} is out of range for a vocabulary of {layer.num_embeddings}")
    return token
