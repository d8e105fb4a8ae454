"""``integrad explain generate``: which prompt tokens made a language model write each of its tokens.

The plain function :func:`generate` carries typer defaults; ``integrad.cli`` registers it as
a command. The model is a local Hugging Face causal LM directory (``--model``), else the
embedded SmolLM2-135M-Instruct (:mod:`integrad.models._language`), which must be in the
cache already: this command never downloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .console import BATCH_SIZE, HTML, JSON, METHOD, check_outputs, console, fail, with_model, working, write_outputs

_EMBEDDED = "embedded SmolLM2-135M-Instruct"


def generate(
    prompt: str = typer.Argument(..., help="The prompt the model continues."),
    max_new_tokens: int = typer.Option(16, "--max-new-tokens", help="Tokens to generate (greedy; fewer if the "
                                       "model writes its end-of-sequence token)."),
    model: Optional[Path] = typer.Option(None, "--model", help="A local Hugging Face causal language model "
                                         "directory (default: the embedded SmolLM2-135M-Instruct, once "
                                         "`make demo` has cached it)."),
    chat: bool = typer.Option(False, "--chat", help="Send PROMPT as one user message through the tokenizer's "
                              "chat template."),
    target: Optional[str] = typer.Option(None, "--target", help="Explain this continuation instead of "
                                         "generating one."),
    baseline: str = typer.Option("pad", "--baseline", help="pad, eos, unk, zero, or a token id: what the prompt's "
                                 "non-special tokens become at the path's start."),
    path: str = typer.Option("prompt", "--path", help="prompt: only the prompt moves (Captum's path); all: the "
                             "generated tokens but the last move too and get attributions."),
    n_steps: Optional[int] = typer.Option(None, "--n-steps", "--steps", help="Quadrature nodes (default 64 "
                                          "Gauss-Legendre)."),
    method: Optional[str] = METHOD,
    rtol: Optional[float] = typer.Option(None, "--rtol", help="Error-controlled integration to this relative "
                                         "error, each generated token on its own points."),
    batch_size: Optional[int] = BATCH_SIZE,
    html: Optional[Path] = HTML,
    json_path: Optional[Path] = JSON,
) -> None:
    """Generate a continuation of PROMPT and attribute each token's log-probability to the prompt."""
    check_outputs(html=html, json=json_path)
    # before the model loads: these fail in a second, not after it
    if not prompt.strip():
        fail("PROMPT: expected a non-empty text; got an empty string")
    if max_new_tokens < 1:
        fail(f"--max-new-tokens: expected an int >= 1; got {max_new_tokens}")
    if target is not None and not target.strip():
        fail("--target: expected a non-empty continuation; got an empty string")
    try:
        with working("loading the model") as step:
            lm, tok, name = _load(model)
            step("generating and explaining")
            ex = _explain(lm, tok, prompt, chat=chat, max_new_tokens=max_new_tokens, target_tokens=target,
                          baseline=_int_or_str(baseline), path=path, n_steps=n_steps, method=method, rtol=rtol,
                          batch_size=batch_size)
    except typer.Exit:  # a RuntimeError too: _load's own clear failure
        raise
    except (ValueError, TypeError, FileNotFoundError, ImportError, OSError, RuntimeError) as err:
        # RuntimeError: a model that fails on its own input (a too long prompt, say)
        fail(_first_line(err))
    ex = with_model(ex, name)
    # piped, the table is not squeezed into 80 columns: each token stays on one line with its numbers
    console.print(ex, width=None if console.is_terminal else 200)
    write_outputs(ex, html=html, json_path=json_path)


def _explain(lm: Any, tok: Any, prompt: str, *, chat: bool, **options: Any):
    from ..generation import explain_generation

    return explain_generation(lm, tok, [{"role": "user", "content": prompt}] if chat else prompt, **options)


def _load(model: Optional[Path]) -> tuple[Any, Any, str]:
    """(model, tokenizer, name for the settings): ``--model``'s directory or the cached embedded model."""
    if model is not None and not model.is_dir():
        fail(f"--model: {model} is not a folder; give a Hugging Face model directory (config.json, weights, "
             "tokenizer files)")
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError:
        fail("a language model needs transformers; pip install 'integrad[lm]'")
    hf_logging.disable_progress_bar()  # a progress bar per load is noise in a CLI and in logs
    if model is None:
        return (*_embedded(), _EMBEDDED)
    try:
        lm = AutoModelForCausalLM.from_pretrained(model, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        fail(f"--model: cannot load a causal language model and its tokenizer from {model}: {_first_line(err)}")
    return lm.eval(), tok, str(model)


def _embedded() -> tuple[Any, Any]:
    how = "run `make demo` once to fetch and cache it, or pass --model DIR (a local Hugging Face causal LM)"
    try:
        from ..models._language import language_model_dir, load_language_model
    except ImportError:
        fail(f"the embedded language model is not part of this installation; {how.split(', or ')[1]}")
    # its model/ folder appears only complete; without it, loading would download
    if not (language_model_dir() / "model").is_dir():
        fail(f"the embedded language model is not cached in {language_model_dir()}; {how}")
    return load_language_model()


def _int_or_str(value: str) -> int | str:
    return int(value) if value.strip().lstrip("-").isdigit() else value


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
