import os

import pytest
import torch

# Seeded, float64 numerics and few threads: tests run two at a time on a 2-core machine.
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One Keras 3 backend per process, read at its first import (TensorFlow's import may be that one):
# the suite's is torch; tests/test_keras_backends.py runs jax and tensorflow in subprocesses.
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture()
def invoke(tmp_path, monkeypatch):
    """Run ``integrad ...`` in an empty working folder (CliRunner's output is no terminal, as when piped)."""
    from typer.testing import CliRunner

    from integrad.cli import app

    monkeypatch.chdir(tmp_path)
    return lambda *args: CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def mlp(sizes, act=torch.nn.Tanh, dtype=torch.float64, seed=0):
    """A small seeded MLP, in eval mode."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        lin = torch.nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g) / a**0.5)
            lin.bias.copy_(torch.randn(b, generator=g) * 0.1)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(act())
    return torch.nn.Sequential(*layers).to(dtype).eval()


def randn(seed, *shape):
    """Seeded float64 normal samples (never the global RNG)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


class Counting(torch.nn.Module):
    """Wraps a model and counts its forward calls and the rows they carry."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls, self.rows = inner, 0, 0

    def forward(self, x, *args, **kwargs):
        self.calls += 1
        self.rows += x.shape[0]
        return self.inner(x, *args, **kwargs)


def tiny_llama(tokenizer, seed=0):
    """A randomly initialised two-layer Llama over ``tokenizer``'s vocabulary, float64, in eval mode."""
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                   num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                   max_position_embeddings=64, initializer_range=0.3)
    return transformers.LlamaForCausalLM(cfg).double().eval()
