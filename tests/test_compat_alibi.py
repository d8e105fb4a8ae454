"""integrad.compat.alibi against Alibi 0.9.6's own outputs (tests/fixtures/alibi_ig.npz), and its conventions.

The fixture holds two seeded Keras 2 models' weights and what Alibi's IntegratedGradients
returned for them (scripts/make_alibi_fixture.py); the models are rebuilt here with
``tf_keras`` (Keras 2; Keras 3 is not imported in this file).
"""

import json
import os
from functools import partial
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("tf_keras")

import tensorflow as tf  # noqa: E402

from integrad.compat.alibi import IntegratedGradients  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
REF = np.load(FIXTURES / "alibi_ig.npz")
INFO = json.loads((FIXTURES / "alibi_ig.json").read_text())
SETTINGS = {k: INFO["cases"]["mlp"]["explainer"][k] for k in ("method", "n_steps", "internal_batch_size")}
F32_EPS = float(np.finfo(np.float32).eps)


def rel_diff(ours, ref):
    """max |ours - ref| / max |ref|."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def with_weights(model, case):
    """``model`` with the fixture's weights for ``case``, layer by layer (keys ``{case}/w/{index}_{name}/{i}``)."""
    for entry in INFO["cases"][case]["layers"]:
        if entry["weights"]:
            model.layers[entry["index"]].set_weights([REF[w["key"]] for w in entry["weights"]])
    return model


def mlp_model():
    x = keras.Input(shape=(8,), name="x")
    h = keras.layers.Dense(16, activation="tanh", name="hidden")(x)
    return with_weights(keras.Model(x, keras.layers.Dense(3, name="logits")(h), name="mlp"), "mlp")


def emb_model():
    tok = keras.Input(shape=(10,), dtype="int32", name="tokens")
    e = keras.layers.Embedding(50, 8, name="embedding")(tok)
    p = keras.layers.GlobalAveragePooling1D(name="pool")(e)
    return with_weights(keras.Model(tok, keras.layers.Dense(2, name="logits")(p), name="emb"), "emb")


def binary_model():
    """Input(4) -> Dense(5, tanh) -> Dense(1, sigmoid): one probability per example."""
    x = keras.Input(shape=(4,))
    h = keras.layers.Dense(5, activation="tanh")(x)
    model = keras.Model(x, keras.layers.Dense(1, activation="sigmoid")(h))
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def tape_ig(model, X, baseline, n_steps=50):
    """IG of the model's single output, slowly: Gauss-Legendre nodes, one tf.GradientTape per node, float64 sums."""
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    total = np.zeros(X.shape)
    for a, w in zip((nodes + 1) / 2, weights / 2):
        z = tf.convert_to_tensor((baseline + a * (X - baseline)).astype(np.float32))
        with tf.GradientTape() as tape:
            tape.watch(z)
            out = tf.reduce_sum(model(z))
        total += w * tape.gradient(out, z).numpy().astype(np.float64)
    return (X - baseline) * total


@pytest.fixture(scope="module")
def mlp_explanation():
    return IntegratedGradients(mlp_model(), layer=None, **SETTINGS).explain(
        REF["mlp/X"], baselines=None, target=REF["mlp/target"])


@pytest.fixture(scope="module")
def emb_explanation():
    model = emb_model()
    return IntegratedGradients(model, layer=model.layers[1], **SETTINGS).explain(
        REF["emb/X"], baselines=None, target=REF["emb/target"])


# ---------------------------------------------------------------------------- the fixture
@pytest.mark.parametrize("case", ["mlp", "emb"])
def test_matches_alibi_fixture(case, mlp_explanation, emb_explanation):
    exp = {"mlp": mlp_explanation, "emb": emb_explanation}[case]
    assert {k: INFO["cases"][case]["explainer"][k] for k in SETTINGS} == SETTINGS
    assert len(exp.attributions) == 1
    for key in ("attributions/0", "predictions"):
        ours = exp.attributions[0] if key == "attributions/0" else exp.predictions
        assert ours.dtype == REF[f"{case}/{key}"].dtype, key
        assert rel_diff(ours, REF[f"{case}/{key}"]) <= 1e-6, key
    assert exp.baselines.dtype == REF[f"{case}/baselines"].dtype
    assert np.array_equal(exp.baselines, REF[f"{case}/baselines"])
    assert np.array_equal(exp.target, REF[f"{case}/target"])


@pytest.mark.parametrize("case", ["mlp", "emb"])
def test_deltas_match_alibi_to_float32_rounding(case, mlp_explanation, emb_explanation):
    """Both sides' deltas are float32 rounding noise (~1e-8), so a relative comparison of them means
    nothing; they agree, and are near zero, in float32 ulps of the outputs they are the difference of."""
    exp = {"mlp": mlp_explanation, "emb": emb_explanation}[case]
    ref = REF[f"{case}/deltas"]
    assert exp.deltas.dtype == ref.dtype == np.float64 and exp.deltas.shape == ref.shape
    model = {"mlp": mlp_model, "emb": emb_model}[case]()
    rows = np.arange(len(ref))
    ends = [model(v).numpy()[rows, REF[f"{case}/target"]] for v in (REF[f"{case}/X"], REF[f"{case}/baselines"])]
    ulp = F32_EPS * np.abs(np.concatenate(ends)).max()
    assert np.abs(exp.deltas - ref).max() <= 8 * ulp
    assert np.abs(exp.deltas).max() <= 8 * ulp


def test_layer_path_starts_at_the_zero_input_embedding(emb_explanation):
    """baselines=None with a layer: the path starts at E[0] (the all-zero input's embedding), not at zeros."""
    start = REF["emb/layer_baseline"]
    E = REF["emb/w/1_embedding/0"]
    assert np.array_equal(start, np.broadcast_to(E[0], start.shape))
    # sum(attr) = F(x) - F(ids 0): what Alibi's fixture recorded, and a zero-embedding start would not give
    gap = np.asarray(INFO["cases"]["emb"]["completeness_gap_f_x_minus_f_baseline"])
    sums = emb_explanation.attributions[0].reshape(4, -1).sum(1)
    assert np.abs(sums - gap).max() <= 1e-6 * np.abs(REF["emb/predictions"]).max()


def test_meta_and_data_fields(mlp_explanation, emb_explanation):
    for exp, case in ((mlp_explanation, "mlp"), (emb_explanation, "emb")):
        alibi_meta = INFO["cases"][case]["alibi_meta"]
        assert {k: v for k, v in exp.meta.items() if k != "version"} == \
            {k: v for k, v in alibi_meta.items() if k != "version"}
        assert set(exp.data) == {"attributions", "X", "forward_kwargs", "baselines", "predictions", "deltas", "target"}
        for key, value in {**exp.data, **exp.meta}.items():
            assert getattr(exp, key) is value
    json.loads(mlp_explanation.to_json())


# ---------------------------------------------------------------------------- conventions
def test_single_output_target_flip_matches_direct_computation():
    """One output F: class 1 explains F, class 0 explains 1 - F; deltas are the completeness gap of that."""
    model = binary_model()
    X = np.random.default_rng(4).normal(size=(4, 4)).astype(np.float32)
    target = np.array([0, 1, 1, 0])
    exp = IntegratedGradients(model, n_steps=50).explain(X, target=target)
    plain = tape_ig(model, X, np.zeros_like(X))
    sign = (2 * target - 1)[:, None]
    assert rel_diff(exp.attributions[0], sign * plain) <= 1e-6
    f = model(X).numpy()[:, 0].astype(np.float64)
    f0 = model(np.zeros_like(X)).numpy()[:, 0].astype(np.float64)
    flipped = lambda v: target + (2 * target - 1) * v  # noqa: E731
    gap = exp.attributions[0].sum(1) - (flipped(f) - flipped(f0))
    assert np.abs(exp.deltas - gap).max() <= 1e-6
    assert np.abs(exp.deltas).max() <= 1e-5
    # without a target the output itself is explained, as for a regression model
    none = IntegratedGradients(model, n_steps=50).explain(X)
    assert none.target is None and rel_diff(none.attributions[0], plain) <= 1e-6


def test_target_fn_gives_the_target():
    model = mlp_model()
    X = REF["mlp/X"]
    exp = IntegratedGradients(model, target_fn=partial(np.argmax, axis=1), **SETTINGS).explain(X)
    chosen = np.argmax(model(X).numpy(), axis=1)
    assert np.array_equal(exp.target, chosen)
    direct = IntegratedGradients(model, **SETTINGS).explain(X, target=chosen.tolist())
    assert np.array_equal(exp.attributions[0], direct.attributions[0])


def test_int_target_is_one_class_for_every_example():
    model = mlp_model()
    X = REF["mlp/X"]
    ours = IntegratedGradients(model, **SETTINGS).explain(X, target=2)
    assert np.array_equal(ours.target, np.full(5, 2))
    per_example = IntegratedGradients(model, **SETTINGS).explain(X, target=np.full(5, 2))
    assert np.array_equal(ours.attributions[0], per_example.attributions[0])


def test_layer_as_function_of_the_model(emb_explanation):
    exp = IntegratedGradients(emb_model(), layer=lambda m: m.get_layer("embedding"), **SETTINGS).explain(
        REF["emb/X"], target=REF["emb/target"])
    assert exp.meta["params"]["layer"] == "callable"
    assert rel_diff(exp.attributions[0], REF["emb/attributions/0"]) <= 1e-6


def test_baselines_number_and_array_and_trapezoid_factor():
    """A number baseline fills X's shape; riemann_trapezoid's weights sum to 1 (Alibi's to (n-1)/n)."""
    model = mlp_model()
    X = REF["mlp/X"]
    t = REF["mlp/target"]
    by_number = IntegratedGradients(model, **SETTINGS).explain(X, baselines=0.5, target=t)
    by_array = IntegratedGradients(model, **SETTINGS).explain(X, baselines=np.full((1, 8), 0.5), target=t)
    assert by_number.baselines.shape == X.shape and by_number.baselines.dtype == X.dtype
    assert np.array_equal(by_number.attributions[0], by_array.attributions[0])
    trap = IntegratedGradients(model, method="riemann_trapezoid", n_steps=400).explain(X, target=t)
    gauss = IntegratedGradients(model, n_steps=50).explain(X, target=t)
    assert rel_diff(trap.attributions[0], gauss.attributions[0]) <= 1e-4  # a (n-1)/n rule would be 2.5e-3 off


def test_list_inputs_split_the_attributions_of_one_input():
    """A model of two inputs explained with a list X (and list baselines) gives, input by input,
    the attributions of the same model taking the two concatenated."""
    a, b = keras.Input(shape=(3,)), keras.Input(shape=(2,))
    dense = keras.layers.Dense(4, activation="tanh")
    head = keras.layers.Dense(2)
    two = keras.Model([a, b], head(dense(keras.layers.Concatenate()([a, b]))))
    c = keras.Input(shape=(5,))
    one = keras.Model(c, head(dense(c)))
    rng = np.random.default_rng(5)
    X = [rng.normal(size=(3, 3)).astype(np.float32), rng.normal(size=(3, 2)).astype(np.float32)]
    bls = [np.full((3, 3), 0.1, np.float32), 0.2]
    exp = IntegratedGradients(two, **SETTINGS).explain(X, baselines=bls, target=[0, 1, 0])
    ref = IntegratedGradients(one, **SETTINGS).explain(np.concatenate(X, 1), target=[0, 1, 0],
                                                       baselines=np.concatenate([bls[0], np.full((3, 2), 0.2)], 1))
    assert [x.shape for x in exp.attributions] == [(3, 3), (3, 2)] and len(exp.baselines) == 2
    assert rel_diff(np.concatenate(exp.attributions, 1), ref.attributions[0]) <= 1e-6
    assert np.abs(exp.deltas - ref.deltas).max() <= 1e-6


class Scaled(keras.Model):
    """Logits times a per-example scale given as a keyword argument."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3, activation="tanh")

    def call(self, x, scale=None):
        return self.dense(x) * scale


def test_forward_kwargs_follow_their_example():
    model = Scaled()
    X = REF["mlp/X"]
    scale = np.arange(1, 6, dtype=np.float32)[:, None]
    exp = IntegratedGradients(model, **SETTINGS).explain(X, forward_kwargs={"scale": scale}, target=1)
    ones = IntegratedGradients(model, **SETTINGS).explain(X, forward_kwargs={"scale": np.ones_like(scale)}, target=1)
    assert rel_diff(exp.attributions[0], scale * ones.attributions[0]) <= 1e-6
    assert exp.forward_kwargs["scale"] is scale


# ---------------------------------------------------------------------------- clear errors
@pytest.mark.parametrize("kwargs, match", [
    ({"method": "riemann"}, "method: expected one of 'gausslegendre'"),
    ({"n_steps": 0}, "n_steps: expected an int >= 1; got 0"),
    ({"n_steps": 2.5}, "n_steps: expected an int >= 1; got 2.5"),
    ({"method": "riemann_trapezoid", "n_steps": 1}, "n_steps: expected an int >= 2"),
    ({"internal_batch_size": 0}, "internal_batch_size: expected an int >= 1"),
    ({"target_fn": 3}, "target_fn: expected None or a callable"),
    ({"layer": "embedding"}, "layer: expected None, a Keras layer or a callable"),
    ({"layer": lambda m: 7}, "layer: the callable returned a int"),
])
def test_bad_constructor_arguments_name_themselves(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        IntegratedGradients(mlp_model(), **kwargs)


def test_model_must_be_keras():
    with pytest.raises(TypeError, match="model: expected a Keras model"):
        IntegratedGradients(lambda x: x)


@pytest.fixture(scope="module")
def mlp_explainer():
    return IntegratedGradients(mlp_model(), **SETTINGS)


@pytest.mark.parametrize("kwargs, match", [
    ({"X": REF["mlp/X"].tolist()}, r"X\[0\]: expected a numpy array"),
    ({"X": tf.constant(REF["mlp/X"])}, "X: expected a numpy array of shape"),
    ({"X": REF["mlp/X"].astype(np.int32)}, "X: dtype int32 cannot be interpolated"),
    ({"target": [0, 1]}, r"target: expected integers of shape \(5,\).*shape \(2,\)"),
    ({"target": [0.0] * 5}, "target: expected integers"),
    ({"target": "0"}, "target: expected None, an int"),
    ({"target": 7}, "out of range"),
    ({"target": None}, "target: the model output has shape"),
    ({"baselines": np.zeros((5, 3), np.float32)}, r"baselines: shape \(5, 3\) does not broadcast"),
    ({"baselines": [0.0]}, "baselines: expected None, a number or a numpy array"),
    ({"forward_kwargs": [1]}, "forward_kwargs: expected None or a dict"),
    ({"attribute_to_layer_inputs": 1}, "attribute_to_layer_inputs: expected a bool"),
])
def test_bad_explain_arguments_name_themselves(mlp_explainer, kwargs, match):
    kwargs = {"X": REF["mlp/X"], "target": REF["mlp/target"]} | kwargs
    with pytest.raises((TypeError, ValueError), match=match):
        mlp_explainer.explain(**kwargs)


def test_attribute_to_layer_inputs_is_refused_with_a_layer():
    model = emb_model()
    ig = IntegratedGradients(model, layer=model.layers[1], **SETTINGS)
    with pytest.raises(ValueError, match="attribute_to_layer_inputs: only False is supported"):
        ig.explain(REF["emb/X"], target=REF["emb/target"], attribute_to_layer_inputs=True)


def test_target_and_target_fn_together_are_refused():
    ig = IntegratedGradients(mlp_model(), target_fn=partial(np.argmax, axis=1))
    with pytest.raises(ValueError, match="target: given together with target_fn"):
        ig.explain(REF["mlp/X"], target=0)


def test_single_output_target_must_be_zero_or_one():
    with pytest.raises(ValueError, match="target: the model has one output per example"):
        IntegratedGradients(binary_model()).explain(np.zeros((2, 4), np.float32), target=[0, 2])
