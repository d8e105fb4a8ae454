"""Keras 3 on its jax or tensorflow backend: run by tests/test_keras_backends.py in a subprocess.

A process holds one Keras 3 backend (KERAS_BACKEND, read at import), and the main suite's is
torch; this file is collected only when given by name, with KERAS_BACKEND set. The same
float64 MLP weights as a Keras model and a torch model give the same attributions for a fixed
rule, rtol (same evaluation count), several targets, layer IG and Expected Gradients: to
1e-12 relative on tensorflow; to 1e-6 on jax, where Keras's own float64 tanh differs from
the exact one by about 1e-7 (measured 9e-8 on these inputs), which the attributions inherit.
"""

import os

import numpy as np
import pytest
import torch

BACKEND = os.environ.get("KERAS_BACKEND")
if BACKEND not in ("jax", "tensorflow") or os.environ.get("INTEGRAD_KERAS3_CHECK") != BACKEND:
    pytest.skip("run by tests/test_keras_backends.py with KERAS_BACKEND set", allow_module_level=True)

import keras  # noqa: E402

import integrad  # noqa: E402

TOL = 1e-12 if BACKEND == "tensorflow" else 1e-6


def _rel(a, b) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


@pytest.fixture(scope="module")
def twins():
    assert keras.backend.backend() == BACKEND
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double().eval()
    km = keras.Sequential([keras.Input((8,), dtype="float64"), keras.layers.Dense(16, activation="tanh", dtype="float64"),
                           keras.layers.Dense(3, dtype="float64")])
    km.layers[0].set_weights([net[0].weight.detach().numpy().T, net[0].bias.detach().numpy()])
    km.layers[1].set_weights([net[2].weight.detach().numpy().T, net[2].bias.detach().numpy()])
    x = torch.randn(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return net, km, x


@pytest.mark.parametrize("kw", [{"target": 1, "n_steps": 32}, {"target": 2, "rtol": 1e-6},
                                {"targets": [0, 1, 2], "n_steps": 16}], ids=["fixed", "rtol", "targets"])
def test_keras3_matches_torch(twins, kw):
    net, km, x = twins
    ref = integrad.integrated_gradients(net, x, **kw)
    got = integrad.integrated_gradients(km, x.numpy(), **kw)
    assert got.settings["framework"] == BACKEND
    assert _rel(got.attributions, ref.attributions) < TOL
    assert torch.equal(got.n_evals, ref.n_evals)


def test_keras3_layer_and_expected_gradients(twins):
    net, km, x = twins
    ref = integrad.integrated_gradients(net, x, target=0, layer=net[1], n_steps=20)
    got = integrad.integrated_gradients(km, x.numpy(), target=0, layer=km.layers[0], n_steps=20)
    assert _rel(got.attributions, ref.attributions) < TOL
    refs = torch.randn(12, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ref = integrad.expected_gradients(net, x, references=refs, target=1, n_samples=24, seed=3)
    got = integrad.expected_gradients(km, x.numpy(), references=refs.numpy(), target=1, n_samples=24, seed=3)
    assert _rel(got.attributions, ref.attributions) < TOL


def test_keras3_subclassed_text_model_with_mask():
    keras.utils.set_random_seed(0)

    class Words(keras.Model):
        def __init__(self):
            super().__init__()
            self.emb = keras.layers.Embedding(30, 4)
            self.head = keras.layers.Dense(2)

        def call(self, ids, attention_mask=None):
            h = self.emb(ids) * keras.ops.expand_dims(keras.ops.cast(attention_mask, "float32"), -1)
            return self.head(keras.ops.sum(keras.ops.tanh(h), axis=1))

    model = Words()
    ids = np.array([[3, 5, 7, 9, 0, 0], [1, 2, 3, 4, 5, 6]], dtype="int32")
    mask = (ids > 0).astype("int32")
    res = integrad.integrated_gradients(model, ids, target=1, layer=model.emb, forward_kwargs={"attention_mask": mask},
                                        rtol=1e-6)
    assert bool(res.converged.all())
    assert float(res.relative_delta.max()) < 1e-4
    assert float(res.attributions[0, 4:].abs().max()) == 0.0 and float(res.attributions[0, :4].abs().max()) > 0
    alone = integrad.integrated_gradients(model, ids[:1, :4], target=1, layer=model.emb,
                                          forward_kwargs={"attention_mask": mask[:1, :4]}, rtol=1e-6)
    assert _rel(res.attributions[0, :4], alone.attributions[0]) < 1e-4
