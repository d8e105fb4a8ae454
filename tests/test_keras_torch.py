"""Keras 3 on its torch backend: a Keras model is an nn.Module, and goes through the PyTorch backend.

The same weights as a Keras model and as a torch.nn model give the same attributions with
fixed rules, rtol, layer IG and Expected Gradients (float32: agreement to ~1e-6 relative).
"""

import os

import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":  # pragma: no cover - keras was imported elsewhere with another backend
    pytest.skip("keras is loaded with another backend", allow_module_level=True)

import integrad  # noqa: E402


@pytest.fixture(scope="module")
def twins():
    keras.utils.set_random_seed(0)
    km = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(3)])
    tm = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).eval()
    with torch.no_grad():
        for i, layer in ((0, km.layers[0]), (2, km.layers[1])):
            w, b = layer.get_weights()
            tm[i].weight.copy_(torch.tensor(w).T)
            tm[i].bias.copy_(torch.tensor(b))
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    return km, tm, x


def rel(a, b):
    return float((a - b).norm() / b.norm())


def test_a_keras_model_is_explained_like_its_torch_twin(twins):
    km, tm, x = twins
    assert isinstance(km, torch.nn.Module)
    for kw in ({"n_steps": 32}, {"rtol": 1e-4}, {"targets": [0, 2], "n_steps": 16}):
        target = {} if "targets" in kw else {"target": 1}
        a = integrad.integrated_gradients(km, x, **target, **kw)
        b = integrad.integrated_gradients(tm, x, **target, **kw)
        assert rel(a.attributions, b.attributions) < 1e-6 and a.delta.abs().max() < 1e-5
        assert torch.equal(a.n_evals, b.n_evals)


def test_layer_ig_and_expected_gradients_through_keras_layers(twins):
    km, tm, x = twins
    a = integrad.integrated_gradients(km, x, target=1, layer=km.layers[0], n_steps=16)
    b = integrad.integrated_gradients(tm, x, target=1, layer=tm[0], n_steps=16)
    assert a.attributions.shape == (4, 16) and rel(a.attributions, b.attributions) < 1e-6
    refs = torch.randn(32, 6, generator=torch.Generator().manual_seed(1))
    e1 = integrad.expected_gradients(km, x, references=refs, n_samples=64, seed=0, target=2)
    e2 = integrad.expected_gradients(tm, x, references=refs, n_samples=64, seed=0, target=2)
    assert rel(e1.attributions, e2.attributions) < 1e-6


def test_the_keras_model_is_left_as_found(twins):
    km, _, x = twins
    before = [(v.path, v.trainable, v.numpy().copy()) for v in km.weights]
    integrad.integrated_gradients(km, x, target=0, n_steps=8)
    after = [(v.path, v.trainable, v.numpy()) for v in km.weights]
    assert [(p, t) for p, t, _ in before] == [(p, t) for p, t, _ in after]
    assert all((w0 == w1).all() for (_, _, w0), (_, _, w1) in zip(before, after))
