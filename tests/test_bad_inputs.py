"""Bad input gets a clear error naming the argument (or a correct result), never a raw traceback."""

import pytest
import torch

import integrad
from conftest import mlp, randn


def net():
    return mlp([4, 8, 1])


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_input_is_refused_naming_the_example(value):
    x = randn(0, 3, 4)
    x[1, 2] = value
    with pytest.raises(ValueError, match=r"inputs: contains NaN or Inf \(examples \[1\]\)"):
        integrad.integrated_gradients(net(), x)


def test_inputs_and_baselines_that_require_grad_give_detached_results():
    x = randn(0, 2, 4).requires_grad_(True)
    b = randn(1, 1, 4).requires_grad_(True)
    res = integrad.integrated_gradients(net(), x, baseline=b)
    for t in (res.attributions, res.delta, res.f_x, res.f_baseline):
        assert not t.requires_grad
    res.attributions.numpy()  # no "requires grad" error
    assert x.grad is None and b.grad is None


@pytest.mark.parametrize("n_steps", [True, 1.0])
def test_n_steps_of_the_wrong_type_is_refused_even_after_a_cached_call(n_steps):
    integrad.integrated_gradients(net(), randn(0, 1, 4), n_steps=1)
    with pytest.raises(TypeError, match="n_steps: expected an int"):
        integrad.integrated_gradients(net(), randn(0, 1, 4), n_steps=n_steps)


def test_absurd_n_steps_is_a_clear_error_not_a_memory_error():
    with pytest.raises(ValueError, match=r"n_steps: at most 1,048,576 nodes"):
        integrad.integrated_gradients(net(), randn(0, 1, 4), n_steps=10**12)


def test_many_gauss_legendre_nodes_are_built_fast_and_exact():
    import time

    start = time.perf_counter()
    r = integrad.rule("gausslegendre", 3000)
    assert time.perf_counter() - start < 5.0  # numpy's dense eigen-solve takes ~8 s here
    assert abs(r.weights.sum() - 1.0) < 1e-13
    # exact on polynomials: the integral of a^k over [0, 1] is 1 / (k + 1)
    for k in (1, 7, 40, 501):
        assert abs((r.weights * r.nodes**k).sum() - 1.0 / (k + 1)) < 1e-13


def test_newton_nodes_match_the_eigen_solver_where_both_run():
    import numpy as np
    from integrad.core.rules import _gauss_legendre_newton

    for n in (101, 257):
        x, w = np.polynomial.legendre.leggauss(n)
        y, v = _gauss_legendre_newton(n)
        assert np.abs(x - y).max() < 1e-14 and np.abs(w - v).max() < 1e-13


@pytest.mark.parametrize("kw, pattern", [
    (dict(atol=1e-3), r"atol: given without rtol="),
    (dict(max_evals=100), r"max_evals: applies to rtol= and method='piecewise' only"),
    (dict(max_memory=1 << 20, batch_size=8), r"max_memory: caps automatic chunking, but batch_size=8"),
])
def test_options_that_would_be_ignored_are_refused(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        integrad.integrated_gradients(net(), randn(0, 2, 4), **kw)


def test_feature_size_mismatch_names_the_users_inputs_not_only_the_block():
    x = randn(0, 2, 5)  # the model takes 4 features
    with pytest.raises(RuntimeError, match=r"model: raised on a block of \d+ interpolated rows \(your inputs: "
                                           r"\(batch, 5\) with batch = 2"):
        integrad.integrated_gradients(net(), x)


def test_unknown_forward_kwarg_is_reported_with_context():
    def model(x, *, scale=1.0):
        return (x * scale).sum(1)

    with pytest.raises(TypeError, match="unexpected keyword argument 'shift'"):
        integrad.integrated_gradients(model, randn(0, 2, 3), forward_kwargs={"shift": 1.0})


def test_save_into_a_missing_folder_and_load_of_bad_files_are_clear(tmp_path):
    res = integrad.integrated_gradients(net(), randn(0, 2, 4))
    with pytest.raises(FileNotFoundError, match="path: the folder .* does not exist"):
        res.save(tmp_path / "missing" / "run.safetensors")
    with pytest.raises(FileNotFoundError, match="path: no file"):
        integrad.Attribution.load(tmp_path / "nothing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="is not a readable integrad result"):
        integrad.Attribution.load(junk)
    good = tmp_path / "good.safetensors"
    res.save(good)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(ValueError, match="is not a readable integrad result"):
        integrad.Attribution.load(truncated)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="is not an integrad result"):
        integrad.Attribution.load(foreign)
    assert torch.equal(integrad.Attribution.load(good).attributions, res.attributions)


def test_train_mode_batch_norm_is_left_as_found_and_gives_deterministic_results():
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Dropout(0.5),
                                torch.nn.Linear(6, 1)).double().train()
    stats = [t.clone() for t in (model[1].running_mean, model[1].running_var)]
    x = randn(0, 5, 4)
    with pytest.warns(UserWarning, match="run in eval mode here and are restored after"):
        first = integrad.integrated_gradients(model, x)
    with pytest.warns(UserWarning):
        second = integrad.integrated_gradients(model, x)
    assert torch.equal(model[1].running_mean, stats[0]) and torch.equal(model[1].running_var, stats[1])
    assert model.training and model[1].training and model[2].training
    assert torch.equal(first.attributions, second.attributions)
    # the same as the eval-mode model
    ref = integrad.integrated_gradients(model.eval(), x)
    assert torch.equal(ref.attributions, first.attributions)


def test_float64_inputs_into_a_float32_model_say_which_dtypes_differ():
    model = mlp([4, 8, 1], dtype=torch.float32)
    with pytest.raises(RuntimeError, match=r"the inputs are float64 but the model's parameters are float32"):
        integrad.integrated_gradients(model, randn(0, 2, 4))


@pytest.mark.parametrize("argv, flag", [
    (["explain", "tabular", "--row", "0", "--json", "{missing}/r.json"], "--json"),
    (["explain", "tabular", "--row", "0", "--png", "{missing}/r.png"], "--png"),
    (["explain", "text", "good", "--html", "{missing}/t.html"], "--html"),
    (["explain", "text", "good", "--json", "{missing}/t.json"], "--json"),
    (["explain", "image", "chelsea", "--out", "{missing}/c.png"], "--out"),
    (["explain", "image", "chelsea", "--json", "{folder}"], "--json"),
    (["demo", "--out", "{missing}/report.html"], "--out"),
])
def test_cli_refuses_unwritable_outputs_before_any_work(argv, flag, tmp_path):
    from typer.testing import CliRunner
    from integrad.cli import app

    missing = tmp_path / "no" / "such"
    args = [a.format(missing=missing, folder=tmp_path) for a in argv]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    flat = " ".join(res.output.split())
    assert flat.startswith(f"error: {flag}:") and ("does not exist" in flat or "is a folder" in flat), flat
    assert "Traceback" not in res.output


@pytest.mark.parametrize("kw, hint", [
    (dict(baselines=0.0), "did you mean baseline?"),
    (dict(additional_forward_args=()), "did you mean forward_args?"),
    (dict(internal_batch_size=4), "did you mean batch_size?"),
    (dict(attribute_to_layer_inputs=True), "did you mean layer_input?"),  # Alibi's
    (dict(target_fn=lambda out: out[:, 0]), "did you mean target \\(a callable\\)?"),  # Alibi's
])
def test_captum_and_alibi_argument_names_get_a_did_you_mean(kw, hint):
    with pytest.raises(TypeError, match=f"unexpected keyword argument .*; {hint}"):
        integrad.integrated_gradients(net(), randn(0, 2, 4), **kw)


def test_riemann_trapezoid_points_to_the_correct_rule():
    with pytest.raises(ValueError, match="did you mean 'trapezoid'"):
        integrad.integrated_gradients(net(), randn(0, 2, 4), method="riemann_trapezoid")


def test_zero_dim_and_numpy_integer_targets_are_accepted():
    import numpy as np

    model = mlp([4, 8, 3])
    x = randn(0, 2, 4)
    ref = integrad.integrated_gradients(model, x, target=2).attributions
    for t in (torch.tensor(2), np.int64(2)):
        assert torch.equal(integrad.integrated_gradients(model, x, target=t).attributions, ref)


def test_model_changing_its_input_in_place_gets_a_hint():
    with pytest.raises(RuntimeError, match="the model changes its input in place"):
        integrad.integrated_gradients(lambda x: x.relu_().sum(1), randn(0, 2, 3))


def test_layer_baseline_id_outside_the_vocabulary_is_explained():
    emb = torch.nn.Embedding(10, 3).double()
    with pytest.raises(IndexError, match="baseline token ids are in the vocabulary"):
        integrad.integrated_gradients(lambda ids: emb(ids).sum((1, 2)), torch.tensor([[1, 2]]), baseline=50,
                                      layer=emb)


def test_meta_device_inputs_are_refused():
    with pytest.raises(ValueError, match="inputs: is on the meta device"):
        integrad.integrated_gradients(net(), torch.empty(2, 4, device="meta"))


def test_every_explanation_json_names_the_integrad_version(tmp_path):
    import json

    from integrad.tabular import explain_row, load_tabular_model

    codes = explain_row(load_tabular_model("german-credit"), 0, n_steps=8)
    assert json.loads(json.dumps(codes.to_dict()))["integrad_version"] == integrad.__version__


def test_model_whose_rows_interact_is_refused():
    with pytest.raises(ValueError, match=r"^model: rows of a batch interact .* alone but .* in a batch"):
        integrad.integrated_gradients(lambda z: (z - z.mean(0)).sum(1), randn(0, 3, 4))
    with pytest.raises(ValueError, match=r"^model: rows of a batch interact"):  # one example: next to its baseline
        integrad.integrated_gradients(lambda z: (z - z.mean(0)).sum(1), randn(0, 1, 4), baseline=randn(1, 1, 4))


def test_row_independence_is_probed_once_per_model():
    from conftest import Counting

    counted = Counting(net())
    integrad.integrated_gradients(counted, randn(0, 3, 4), n_steps=4)
    first = counted.calls
    counted.calls = 0
    integrad.integrated_gradients(counted, randn(1, 3, 4), n_steps=4)
    assert counted.calls == first - 2  # the probe's two forwards, not repeated


def test_expected_gradients_row_refuses_quadrature_options():
    from integrad.tabular import explain_row, load_tabular_model

    with pytest.raises(ValueError, match=r"expected_gradients' takes n_samples=, not n_steps= or rtol="):
        explain_row(load_tabular_model("german-credit"), 0, method="expected_gradients", n_steps=8)


def test_piecewise_with_n_steps_is_refused_naming_both():
    with pytest.raises(ValueError, match=r"method='piecewise' .* drop rtol=None and n_steps=8"):
        integrad.integrated_gradients(mlp([4, 8, 1], act=torch.nn.ReLU), randn(0, 2, 4), method="piecewise",
                                      n_steps=8)
