"""JAX functions, TensorFlow functions and Keras 2 models on the one engine (backends/foreign.py).

The same MLP weights as a float64 PyTorch model, a JAX function, a TensorFlow function and a
``tf_keras`` (Keras 2) model give the same attributions, to 1e-12 relative, for a fixed rule,
``rtol`` (with the same evaluation count), several targets, layer IG and Expected Gradients.
Keras 3 on its jax and tensorflow backends is checked in a subprocess by
tests/test_keras_backends.py (a process holds one Keras 3 backend, and this suite's is torch).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

import integrad  # noqa: E402

TOL = 1e-12


def _rel(a, b) -> float:
    a, b = torch.as_tensor(np.asarray(a)).double(), torch.as_tensor(np.asarray(b)).double()
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def twin():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double().eval()
    w = [net[0].weight.detach().numpy().T.copy(), net[0].bias.detach().numpy().copy(),
         net[2].weight.detach().numpy().T.copy(), net[2].bias.detach().numpy().copy()]
    x = torch.randn(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    refs = torch.randn(12, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    return net, w, x, refs


@pytest.fixture(scope="module")
def jax_mlp(twin):
    _, w, _, _ = twin
    with jax.enable_x64(True):
        p = [jnp.asarray(a) for a in w]

    def hidden(x):
        return jnp.tanh(x @ p[0] + p[1])

    def head(h):
        return h @ p[2] + p[3]

    def f(x):
        return head(hidden(x))

    return f, hidden, head


def _jx(t: torch.Tensor):
    with jax.enable_x64(True):
        return jnp.asarray(t.numpy())


CASES = [({"target": 1, "method": "gausslegendre", "n_steps": 32}, "fixed"),
         ({"target": 2, "rtol": 1e-6}, "rtol"),
         ({"targets": [0, 1, 2], "n_steps": 16}, "targets")]


@pytest.mark.parametrize("kw", [c[0] for c in CASES], ids=[c[1] for c in CASES])
def test_jax_function_matches_torch(twin, jax_mlp, kw):
    net, _, x, _ = twin
    ref = integrad.integrated_gradients(net, x, **kw)
    got = integrad.integrated_gradients(jax_mlp[0], _jx(x), **kw)
    assert got.settings["framework"] == "jax"
    assert _rel(got.attributions, ref.attributions) < TOL
    assert _rel(got.delta + 1, ref.delta + 1) < 1e-9
    assert torch.equal(got.n_evals, ref.n_evals)
    native = got.native()
    assert isinstance(native, jax.Array) and native.dtype == jnp.float64
    assert native.shape == tuple(ref.attributions.shape)


def test_jax_layer_split_and_expected_gradients(twin, jax_mlp):
    net, _, x, refs = twin
    f, hidden, head = jax_mlp
    ref = integrad.integrated_gradients(net, x, target=0, layer=net[1], n_steps=20)
    got = integrad.integrated_gradients(f, _jx(x), target=0, layer=(hidden, head), n_steps=20)
    assert got.attributions.shape == (5, 16)
    assert _rel(got.attributions, ref.attributions) < TOL
    assert got.settings["layer"] == "prefix"
    ref = integrad.expected_gradients(net, x, references=refs, target=1, n_samples=24, seed=3)
    got = integrad.expected_gradients(f, _jx(x), references=_jx(refs), target=1, n_samples=24, seed=3)
    assert _rel(got.attributions, ref.attributions) < TOL


def test_jax_float32_and_block_sizes_compile_few_programs(twin):
    net, w, x, _ = twin
    p = [jnp.asarray(a.astype(np.float32)) for a in w]

    def f(x):
        return jnp.tanh(x @ p[0] + p[1]) @ p[2] + p[3]

    ref = integrad.integrated_gradients(net.float(), x.float(), target=1, rtol=1e-5)
    net.double()
    got = integrad.integrated_gradients(f, jnp.asarray(x.numpy().astype(np.float32)), target=1, rtol=1e-5)
    assert got.attributions.dtype == torch.float32
    assert _rel(got.attributions, ref.attributions) < 1e-5  # float32: rounding of the two frameworks' kernels
    # an rtol run's rounds have different sizes; padding to powers of two keeps the compiled programs few
    backend = vars(f)["_integrad_bridges"][id(None)][1].backend
    forward, _ = next(iter(backend._jitted.values()))
    assert 1 <= forward._cache_size() <= 4


def test_jax_batch_size_and_several_inputs(twin):
    net, w, x, _ = twin
    with jax.enable_x64(True):
        p = [jnp.asarray(a) for a in w]

    def f(a, b, scale):  # two inputs and a batch-first extra argument
        return (jnp.tanh(jnp.concatenate([a, b], 1) @ p[0] + p[1]) @ p[2] + p[3]) * scale[:, None]

    scale = torch.linspace(0.5, 1.5, 5, dtype=torch.float64)

    def g(a, b, s):
        return net(torch.cat([a, b], 1)) * s[:, None]

    ref = integrad.integrated_gradients(g, (x[:, :3], x[:, 3:]), target=2, forward_args=(scale,), n_steps=24)
    got = integrad.integrated_gradients(f, (_jx(x[:, :3]), _jx(x[:, 3:])), target=2, forward_args=(_jx(scale),),
                                        n_steps=24, batch_size=7)
    assert isinstance(got.attributions, tuple) and len(got.attributions) == 2
    for a, b in zip(got.attributions, ref.attributions):
        assert _rel(a, b) < TOL


def test_tensorflow_function_and_keras2_match_torch(twin):
    tf = pytest.importorskip("tensorflow")
    tf_keras = pytest.importorskip("tf_keras")
    net, w, x, refs = twin
    c = [tf.constant(a) for a in w]

    def f(x):  # a plain function of tf.Tensor: found by its input type
        return tf.tanh(x @ c[0] + c[1]) @ c[2] + c[3]

    km = tf_keras.Sequential([tf_keras.layers.Dense(16, activation="tanh", dtype="float64", input_shape=(8,)),
                              tf_keras.layers.Dense(3, dtype="float64")])
    km.layers[0].set_weights(w[:2])
    km.layers[1].set_weights(w[2:])
    xt = tf.constant(x.numpy())
    for kw, _ in CASES:
        ref = integrad.integrated_gradients(net, x, **kw)
        for model, inputs in ((f, xt), (km, x.numpy())):
            got = integrad.integrated_gradients(model, inputs, **kw)
            assert got.settings["framework"] == "tensorflow"
            assert _rel(got.attributions, ref.attributions) < TOL
            assert torch.equal(got.n_evals, ref.n_evals)
    ref = integrad.integrated_gradients(net, x, target=0, layer=net[1], n_steps=20)
    got = integrad.integrated_gradients(km, x.numpy(), target=0, layer=km.layers[0], n_steps=20)
    assert _rel(got.attributions, ref.attributions) < TOL and got.settings["layer"] == km.layers[0].name
    got = integrad.integrated_gradients(km, x.numpy(), target=0, layer=lambda m: m.layers[0], n_steps=20)
    assert _rel(got.attributions, ref.attributions) < TOL
    ref = integrad.expected_gradients(net, x, references=refs, target=1, n_samples=24, seed=3)
    got = integrad.expected_gradients(km, x.numpy(), references=refs.numpy(), target=1, n_samples=24, seed=3)
    assert _rel(got.attributions, ref.attributions) < TOL
    assert isinstance(got.native(), tf.Tensor)


def test_keras2_embedding_layer_with_mask(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(0)
    ids_in = tf_keras.Input((6,), dtype="int32")
    mask_in = tf_keras.Input((6,), dtype="float32")
    emb = tf_keras.layers.Embedding(30, 4)
    h = emb(ids_in) * mask_in[:, :, None]
    out = tf_keras.layers.Dense(2)(tf_keras.layers.Flatten()(h))
    model = tf_keras.Model([ids_in, mask_in], out)
    ids = np.array([[3, 5, 7, 9, 0, 0], [1, 2, 3, 4, 5, 6]], dtype="int32")
    mask = (ids > 0).astype("float32")
    # the mask is an input of the functional model: its baseline is itself (only the words move)
    res = integrad.integrated_gradients(model, (ids, mask), baseline=(0, mask), target=1, layer=emb, n_steps=8)
    # linear after the layer: exact at any step count, and the masked positions get nothing
    assert float(res.relative_delta.max()) < 1e-5
    assert float(res.attributions[0, 4:].abs().max()) == 0.0 and float(res.attributions[0, :4].abs().max()) > 0
    res.save(tmp_path / "r.safetensors")
    back = integrad.Attribution.load(tmp_path / "r.safetensors")
    assert back.settings["framework"] == "tensorflow" and torch.equal(back.attributions, res.attributions)


def test_foreign_models_refuse_what_needs_pytorch(twin, jax_mlp):
    _, _, x, _ = twin
    f, hidden, head = jax_mlp
    with pytest.raises(ValueError, match="neuron: neuron targets need a PyTorch model; this one is jax"):
        integrad.integrated_gradients(f, _jx(x), neuron=(object(), 0))
    with pytest.raises(ValueError, match="layer_input: .* this one is jax"):
        integrad.integrated_gradients(f, _jx(x), target=0, layer=(hidden, head), layer_input=True)
    with pytest.raises(TypeError, match=r"layer: for a JAX function, expected \(prefix, suffix\)"):
        integrad.integrated_gradients(f, _jx(x), target=0, layer=hidden)
    with pytest.raises(ValueError, match="Integrated Hessians .* PyTorch models only; this one is jax"):
        integrad.integrated_hessians(f, _jx(x), target=0)

    def pair(x):
        return x @ jnp.ones((8, 2), x.dtype), x
    with pytest.raises(TypeError, match="model: the model returned a tuple; integrad attributes one output array"):
        integrad.integrated_gradients(pair, _jx(x), target=0)


def test_keras2_layer_that_never_runs():
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.Sequential([tf_keras.layers.Dense(3, input_shape=(4,))])
    stray = tf_keras.layers.Dense(3)
    with pytest.raises(ValueError, match="layer: the Dense .* never ran during the model's forward pass"):
        integrad.integrated_gradients(model, np.ones((2, 4), "float32"), target=0, layer=stray)
    with pytest.raises(TypeError, match="layer: expected a layer of the Sequential .* got the PyTorch Linear"):
        integrad.integrated_gradients(model, np.ones((2, 4), "float32"), target=0, layer=torch.nn.Linear(4, 3))


def test_torch_runs_import_no_other_framework():
    code = ("import sys, torch, integrad\n"
            "net = torch.nn.Linear(3, 2)\n"
            "integrad.integrated_gradients(net, torch.randn(2, 3), target=0, rtol=1e-3)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'jaxlib', 'tensorflow', 'tf_keras', "
            "'keras', 'flax'}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_jax_function_that_cannot_be_compiled_runs_uncompiled(twin, jax_mlp):
    net, _, x, _ = twin
    f = jax_mlp[0]

    def branchy(x, flag):  # Python control flow on an extra argument's value: fine for jax.vjp, not jax.jit
        return f(x) if float(flag.sum()) > 0 else -f(x)

    ref = integrad.integrated_gradients(net, x, target=1, n_steps=16)
    flag = _jx(torch.ones(5, dtype=torch.float64))
    with pytest.warns(UserWarning, match="cannot be compiled with jax.jit .* running it uncompiled"):
        got = integrad.integrated_gradients(branchy, _jx(x), target=1, n_steps=16, forward_args=(flag,))
    assert _rel(got.attributions, ref.attributions) < TOL


def test_keras2_model_state_is_left_as_found():
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.layers.Dense(8, activation="relu", input_shape=(4,)),
                                 tf_keras.layers.BatchNormalization(), tf_keras.layers.Dropout(0.5),
                                 tf_keras.layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    model(x, training=True)  # batch norm: non-trivial statistics would be updated by a training-mode call
    before = [w.copy() for w in model.get_weights()]
    a = integrad.integrated_gradients(model, x, target=1, n_steps=24)
    b = integrad.integrated_gradients(model, x, target=1, n_steps=24)
    # inference mode: dropout off, batch statistics frozen; same answer twice, the same weights after
    assert torch.equal(a.attributions, b.attributions)
    assert all(np.array_equal(u, v) for u, v in zip(before, model.get_weights()))
    assert np.allclose(a.f_x.numpy(), model(x, training=False).numpy()[:, 1], rtol=1e-6)


def test_foreign_runs_keep_torch_on_one_thread_and_skip_replaced_reads():
    tf = pytest.importorskip("tf_keras")
    seen = []

    class Counting(tf.layers.Embedding):
        calls = 0

        def call(self, inputs):
            Counting.calls += 1
            seen.append(torch.get_num_threads())
            return super().call(inputs)

    emb = Counting(20, 3)
    model = tf.Sequential([tf.Input((5,), dtype="int32"), emb, tf.layers.Flatten(), tf.layers.Dense(2)])
    ids = np.arange(10, dtype="int32").reshape(2, 5)
    before = torch.get_num_threads()
    res = integrad.integrated_gradients(model, ids, target=0, layer=emb, n_steps=20, batch_size=4)
    assert int(res.n_evals.sum()) == 40  # ten blocks of four rows
    # the layer ran only to be read (the inputs and the baseline, the rows-independent check: 5 calls),
    # never for one of the ten blocks whose output is replaced (reading there made it 15)
    assert 1 <= Counting.calls <= 5
    assert set(seen) == {1} and torch.get_num_threads() == before


def test_a_bridge_lives_as_long_as_its_model(twin):
    import gc
    import weakref

    _, w, x, _ = twin
    p = [jnp.asarray(a.astype(np.float32)) for a in w]

    def f(x):
        return jnp.tanh(x @ p[0] + p[1]) @ p[2] + p[3]

    xs = jnp.asarray(x.numpy().astype(np.float32))
    integrad.integrated_gradients(f, xs, target=0, n_steps=8)
    bridge = vars(f)["_integrad_bridges"][id(None)][1]
    integrad.integrated_gradients(f, xs, target=1, n_steps=8)
    assert vars(f)["_integrad_bridges"][id(None)][1] is bridge  # compiled once, reused
    gone = weakref.ref(f)
    del f, bridge
    gc.collect()
    assert gone() is None


def test_foreign_blocks_hold_at_most_a_few_mib_of_points():
    tf = pytest.importorskip("tf_keras")
    from integrad.core.chunking import FOREIGN_POINT_BYTES

    tf.utils.set_random_seed(0)
    emb = tf.layers.Embedding(300, 64)
    model = tf.Sequential([tf.Input((128,), dtype="int32"), emb, tf.layers.GlobalAveragePooling1D(),
                           tf.layers.Dense(2)])
    ids = np.random.default_rng(0).integers(1, 300, (12, 128)).astype("int32")
    res = integrad.integrated_gradients(model, ids, target=1, layer=emb, n_steps=50)
    rows = int(res.settings["batch_size"].split("(")[1].split()[0])
    # 32 KiB of points per row: without the cap the probe's rule gives one block of all 600 rows
    assert 8 <= rows <= FOREIGN_POINT_BYTES // (128 * 64 * 4) and rows < 600
    assert float(res.relative_delta.max()) < 1e-3
