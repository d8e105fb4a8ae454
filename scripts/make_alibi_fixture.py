"""Build ``tests/fixtures/alibi_ig.npz`` (+ ``alibi_ig.json``): reference outputs of Alibi's
``IntegratedGradients`` on two tiny seeded Keras models.

This is groundwork for issue 13 (an Alibi drop-in). The PyTorch side,
``integrad.compat.alibi``, does **not exist yet**; this file is its reference data. A future
test can rebuild both models in PyTorch from the stored weights and compare attributions,
deltas and predictions against what Alibi produced here.

Alibi pins ``numpy < 2``, so it must not go into the project's venv. Rebuild the fixture
with a throwaway venv outside the repository::

    python3 -m venv /tmp/alibi-env
    /tmp/alibi-env/bin/pip install "alibi==0.9.6" "tensorflow-cpu==2.15.*" click
    /tmp/alibi-env/bin/python scripts/make_alibi_fixture.py

(Used for the committed fixture: Python 3.11, alibi 0.9.6, tensorflow-cpu 2.15.1,
keras 2.15.0, numpy 1.26.4; the exact versions are also written to the JSON sidecar.)

Two cases, both with ``method="gausslegendre", n_steps=50, internal_batch_size=100``:

``mlp``
    Input(8) -> Dense(16, tanh) -> Dense(3) (logits), float32, 5 input rows, one target class
    per row, ``layer=None``, ``baselines=None`` (= all-zero inputs).
``emb``
    Input(10 int32 token ids) -> Embedding(50, 8) -> GlobalAveragePooling1D -> Dense(2),
    4 rows, ``layer=model.layers[1]`` (the Embedding layer object; Alibi 0.9.6 also accepts a
    callable ``model -> layer``), ``baselines=None``. With a layer, Alibi builds the baseline
    in *input* space (``np.zeros(X.shape)``, i.e. token id 0 everywhere) and forwards it to
    the layer's output, so the layer baseline is ``E[0]`` per position, not a zero embedding.
    Attributions have the layer output's shape ``(4, 10, 8)``.

Deltas are Alibi's convergence deltas: ``sum(attributions) - (f(X)[target] - f(baseline)[target])``
per row (a signed 1-D float64 array, computed from the model's inputs even with a layer).

The script also checks the MLP attributions against a direct ``tf.GradientTape``
Gauss-Legendre IG (``numpy.polynomial.legendre.leggauss(50)`` mapped to [0, 1]) and records
the max relative difference in the JSON.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import alibi  # noqa: E402
import keras  # noqa: E402
from alibi.explainers import IntegratedGradients  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT_NPZ = REPO / "tests" / "fixtures" / "alibi_ig.npz"
OUT_JSON = REPO / "tests" / "fixtures" / "alibi_ig.json"

SEED = 0
METHOD = "gausslegendre"
N_STEPS = 50
INTERNAL_BATCH_SIZE = 100


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    tf.keras.utils.set_random_seed(seed)


def jsonable(obj):
    """Alibi's meta/params as plain JSON (numpy scalars/arrays, enums -> python values)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


def store_weights(arrays: dict, desc: dict, prefix: str, model: tf.keras.Model) -> list:
    layers = []
    for li, layer in enumerate(model.layers):
        entry = {"index": li, "name": layer.name, "class": type(layer).__name__, "weights": []}
        for wi, w in enumerate(layer.weights):
            key = f"{prefix}/w/{li}_{layer.name}/{wi}"
            val = w.numpy()
            arrays[key] = val
            wname = w.name.split("/")[-1].split(":")[0]
            entry["weights"].append({"key": key, "name": wname, "shape": list(val.shape)})
            desc[key] = (f"{layer.name} ({type(layer).__name__}) weight '{wname}', "
                         f"Keras layout (Dense kernel is (in, out): y = x @ kernel + bias)")
        layers.append(entry)
    return layers


def store_explanation(arrays: dict, desc: dict, prefix: str, exp) -> None:
    attrs = exp.data["attributions"]
    for i, a in enumerate(attrs):
        key = f"{prefix}/attributions/{i}"
        arrays[key] = np.asarray(a)
        desc[key] = f"Alibi explanation.data['attributions'][{i}] (the list has {len(attrs)} entry)"
    arrays[f"{prefix}/deltas"] = np.asarray(exp.data["deltas"])
    desc[f"{prefix}/deltas"] = ("Alibi convergence deltas per row: sum(attributions) - "
                                "(f(X)[target] - f(baseline)[target])")
    arrays[f"{prefix}/predictions"] = np.asarray(exp.data["predictions"])
    desc[f"{prefix}/predictions"] = "Alibi explanation.data['predictions'] = model(X) (logits)"
    bls = exp.data["baselines"]
    arrays[f"{prefix}/baselines"] = np.asarray(bls)
    desc[f"{prefix}/baselines"] = ("Alibi explanation.data['baselines'] (input space; "
                                   "baselines=None became np.zeros(X.shape, X.dtype))")


def gradienttape_ig(model, X, baseline, target, n_steps):
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    alphas = 0.5 * (1.0 + nodes)
    w = 0.5 * weights
    X = X.astype(np.float64)
    baseline = baseline.astype(np.float64)
    total = np.zeros_like(X)
    for a, wt in zip(alphas, w):
        pts = tf.convert_to_tensor((baseline + a * (X - baseline)).astype(np.float32))
        with tf.GradientTape() as tape:
            tape.watch(pts)
            out = model(pts)
            sel = tf.gather(out, target, axis=1, batch_dims=1)
        g = tape.gradient(sel, pts).numpy().astype(np.float64)
        total += wt * g
    return (X - baseline) * total


def main() -> int:
    arrays: dict = {}
    desc: dict = {}
    info: dict = {
        "description": ("Reference outputs of alibi.explainers.IntegratedGradients (TensorFlow) on "
                        "two tiny seeded Keras models, for the future integrad.compat.alibi "
                        "(issue 13). Built by scripts/make_alibi_fixture.py."),
        "versions": {
            "python": sys.version.split()[0],
            "alibi": alibi.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
        "seed": SEED,
        "cases": {},
    }

    # ---------------- (a) MLP ----------------
    seed_all(SEED)
    inp = tf.keras.Input(shape=(8,), dtype="float32", name="x")
    h = tf.keras.layers.Dense(16, activation="tanh", name="hidden")(inp)
    out = tf.keras.layers.Dense(3, name="logits")(h)
    mlp = tf.keras.Model(inp, out, name="mlp")
    rng = np.random.default_rng(SEED)
    X_mlp = rng.normal(size=(5, 8)).astype(np.float32)
    t_mlp = np.array([0, 1, 2, 1, 0], dtype=np.int64)
    ig = IntegratedGradients(mlp, layer=None, method=METHOD, n_steps=N_STEPS,
                             internal_batch_size=INTERNAL_BATCH_SIZE)
    exp = ig.explain(X_mlp, baselines=None, target=t_mlp)
    arrays["mlp/X"] = X_mlp
    desc["mlp/X"] = "MLP inputs, float32 (5, 8), numpy default_rng(0).normal"
    arrays["mlp/target"] = t_mlp
    desc["mlp/target"] = "MLP target class per row"
    mlp_layers = store_weights(arrays, desc, "mlp", mlp)
    store_explanation(arrays, desc, "mlp", exp)

    ref = gradienttape_ig(mlp, X_mlp, np.zeros_like(X_mlp), t_mlp, N_STEPS)
    alibi_attr = np.asarray(exp.data["attributions"][0]).astype(np.float64)
    max_rel = float(np.max(np.abs(alibi_attr - ref)) / np.max(np.abs(ref)))
    max_rel_elem = float(np.max(np.abs(alibi_attr - ref) / np.maximum(np.abs(ref), 1e-12)))
    max_abs = float(np.max(np.abs(alibi_attr - ref)))
    info["cases"]["mlp"] = {
        "model": "Input(8) -> Dense(16, tanh, name=hidden) -> Dense(3, name=logits), float32",
        "layers": mlp_layers,
        "explainer": {"layer": None, "method": METHOD, "n_steps": N_STEPS,
                      "internal_batch_size": INTERNAL_BATCH_SIZE},
        "explain": {"baselines": None, "target": t_mlp.tolist()},
        "alibi_meta": jsonable(exp.meta),
        "gradienttape_check": {
            "what": ("IG computed directly with tf.GradientTape: 50 Gauss-Legendre nodes "
                     "(numpy.polynomial.legendre.leggauss) mapped to [0,1], zero baseline, "
                     "float32 forward/backward, accumulated in float64"),
            "max_abs_diff": max_abs,
            "max_rel_diff": max_rel,
            "max_rel_diff_definition": "max|alibi - tape| / max|tape|",
            "max_elementwise_rel_diff": max_rel_elem,
        },
    }
    print(f"mlp: attributions {alibi_attr.shape}, deltas {exp.data['deltas']}, "
          f"tape check max_rel={max_rel:.3g} max_abs={max_abs:.3g} elem_rel={max_rel_elem:.3g}")

    # ---------------- (b) Embedding text model ----------------
    seed_all(SEED)
    tok = tf.keras.Input(shape=(10,), dtype="int32", name="tokens")
    e = tf.keras.layers.Embedding(50, 8, name="embedding")(tok)
    p = tf.keras.layers.GlobalAveragePooling1D(name="pool")(e)
    o = tf.keras.layers.Dense(2, name="logits")(p)
    emb = tf.keras.Model(tok, o, name="emb")
    rng = np.random.default_rng(SEED + 1)
    X_emb = rng.integers(1, 50, size=(4, 10)).astype(np.int32)
    t_emb = np.array([0, 1, 1, 0], dtype=np.int64)
    layer = emb.layers[1]
    assert isinstance(layer, tf.keras.layers.Embedding), layer
    ig2 = IntegratedGradients(emb, layer=layer, method=METHOD, n_steps=N_STEPS,
                              internal_batch_size=INTERNAL_BATCH_SIZE)
    exp2 = ig2.explain(X_emb, baselines=None, target=t_emb)
    arrays["emb/X"] = X_emb
    desc["emb/X"] = "token ids, int32 (4, 10), default_rng(1).integers(1, 50) (no id 0 in X)"
    arrays["emb/target"] = t_emb
    desc["emb/target"] = "target class per row"
    emb_layers = store_weights(arrays, desc, "emb", emb)
    store_explanation(arrays, desc, "emb", exp2)
    # baseline at the layer, as Alibi forms it: the embedding of the all-zero-id input
    E = layer.weights[0].numpy()
    arrays["emb/layer_baseline"] = E[np.zeros_like(X_emb)]
    desc["emb/layer_baseline"] = ("baseline at the Embedding output as Alibi forms it for "
                                  "baselines=None: E[0] at every position, (4, 10, 8)")
    a2 = np.asarray(exp2.data["attributions"][0])
    # completeness at the layer, recomputed here for the record
    pred2 = np.asarray(exp2.data["predictions"])
    base_out = emb(np.zeros_like(X_emb)).numpy()
    gap = pred2[np.arange(4), t_emb] - base_out[np.arange(4), t_emb]
    info["cases"]["emb"] = {
        "model": ("Input(10, int32 ids) -> Embedding(50, 8, name=embedding) -> "
                  "GlobalAveragePooling1D(name=pool) -> Dense(2, name=logits)"),
        "layers": emb_layers,
        "explainer": {"layer": "model.layers[1] (the Embedding layer object)",
                      "method": METHOD, "n_steps": N_STEPS,
                      "internal_batch_size": INTERNAL_BATCH_SIZE},
        "explain": {"baselines": None, "target": t_emb.tolist(),
                    "attribute_to_layer_inputs": False},
        "alibi_meta": jsonable(exp2.meta),
        "notes": ("baselines=None with a layer: Alibi makes np.zeros(X.shape) in INPUT space "
                  "(token id 0) and forwards it through the model to the layer output, so the "
                  "layer baseline is E[0] per position. Attributions are w.r.t. the Embedding "
                  "output, shape (4, 10, 8). Deltas use model(X) and model(zeros ids)."),
        "completeness_gap_f_x_minus_f_baseline": gap.tolist(),
        "sum_attributions": a2.reshape(4, -1).sum(1).tolist(),
    }
    print(f"emb: attributions {a2.shape}, deltas {exp2.data['deltas']}")

    info["arrays"] = {k: {"shape": list(v.shape), "dtype": str(v.dtype), "description": desc[k]}
                      for k, v in arrays.items()}
    OUT_NPZ.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT_NPZ, **arrays)
    OUT_JSON.write_text(json.dumps(info, indent=2, sort_keys=False) + "\n")
    print(f"wrote {OUT_NPZ} ({OUT_NPZ.stat().st_size} bytes) and {OUT_JSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
