"""Integrated Hessians against closed forms, a slow double-integral oracle and path_explain."""

import importlib.util
import pathlib
import sys
import warnings

import numpy as np
import pytest
import torch

import integrad
from conftest import Counting, mlp, randn
from integrad.core.rules import gauss_log


def product(x):
    return x[:, 0] * x[:, 1]


def smooth_mlp(F, act=torch.nn.Tanh, seed=0):
    return mlp([F, 16, 16, 1], act=act, seed=seed)


def relative(a, b):
    return float((a - b).detach().norm() / b.norm())


# ------------------------------------------------------------------ the rule
@pytest.mark.parametrize("n", [1, 2, 5, 40, 200])  # 1,024 measured too (error 1e-16); its dense eigen-solve is slow on busy cores
def test_log_rule_is_exact_on_t_to_the_k_times_minus_log_t(n):
    r = gauss_log(n)
    assert abs(r.weights.sum() - 1.0) < 1e-14 and (r.weights > 0).all()
    assert (r.nodes > 0).all() and (r.nodes < 1).all() and (np.diff(r.nodes) > 0).all()
    k = np.arange(2 * n)[:, None]
    exact = 1.0 / (k[:, 0] + 1.0) ** 2  # int_0^1 t^k (-ln t) dt
    assert np.abs((r.weights * r.nodes**k).sum(1) - exact).max() < 2e-15
    assert r.degree == 2 * n - 1


def test_log_rule_matches_the_published_two_point_table():
    # Abramowitz & Stegun 25.4.45 / table 25.7
    r = gauss_log(2)
    assert np.allclose(r.nodes, [0.112008806166976, 0.602276908118738], atol=1e-14)
    assert np.allclose(r.weights, [0.718539319030384, 0.281460680969616], atol=1e-14)


# ------------------------------------------------------------------ closed forms
def test_product_of_two_features_splits_into_four_quarters():
    x = randn(0, 5, 2)
    res = integrad.integrated_hessians(product, x, n_steps=2)
    want = (x[:, 0] * x[:, 1] / 4)[:, None, None].expand(5, 2, 2)
    assert torch.allclose(res.attributions, want, rtol=0, atol=1e-14)
    ig = integrad.integrated_gradients(product, x, n_steps=2).attributions
    assert torch.allclose(res.attributions.sum(-1), ig, atol=1e-14)
    assert torch.allclose(ig, (x[:, 0] * x[:, 1] / 2)[:, None].expand(5, 2), atol=1e-14)
    assert res.row_sum_gap.abs().max() < 1e-14 and res.delta.abs().max() < 1e-14


def test_one_node_is_exact_for_gamma_but_the_row_check_reports_the_plain_rules_error():
    x = randn(0, 3, 2)
    res = integrad.integrated_hessians(product, x, n_steps=1)
    assert torch.allclose(res.attributions, (x[:, 0] * x[:, 1] / 4)[:, None, None].expand(3, 2, 2), atol=1e-14)
    # phi from the same single gradient, at t = 1/4: half the true IG, and the gap says so
    assert torch.allclose(res.row_sum_gap, (x[:, 0] * x[:, 1] / 4)[:, None].expand(3, 2), atol=1e-14)


def test_quadratic_form_closed_form_from_a_nonzero_baseline():
    F = 4
    a = randn(1, F, F)
    A, b = a + a.T, randn(2, F)
    x, x0 = randn(3, 6, F), randn(4, 1, F)

    def model(z):
        return 0.5 * ((z @ A) * z).sum(1) + z @ b

    res = integrad.integrated_hessians(model, x, baseline=x0, n_steps=2)
    d = x - x0
    # int t (-ln t) dt = 1/4 for H = A; the diagonal adds d_i int (-ln t) (A (x' + t d) + b)_i dt
    want = d[:, :, None] * d[:, None, :] * A / 4 + torch.diag_embed(d * ((x0 @ A + b) + (d @ A) / 4))
    assert torch.allclose(res.attributions, want, rtol=0, atol=1e-12)
    assert res.row_sum_gap.abs().max() < 1e-12 and res.settings["symmetry_gap"] < 1e-12


def test_self_completeness_a_function_of_one_feature_is_all_on_its_diagonal_entry():
    x, x0 = randn(20, 4, 3), randn(21, 4, 3)
    res = integrad.integrated_hessians(lambda z: torch.sin(2 * z[:, 1]), x, baseline=x0, n_steps=24)
    want = torch.zeros(4, 3, 3, dtype=torch.float64)
    want[:, 1, 1] = torch.sin(2 * x[:, 1]) - torch.sin(2 * x0[:, 1])
    assert (res.attributions - want).abs().max() < 1e-12


# ------------------------------------------------------------------ smooth models, float64
def double_integral_oracle(model, x, x0, n=24):
    """Gamma from the paper's double integral, tensor-product Gauss-Legendre in (alpha, beta),
    dense Hessians point by point: slow, independent of the -ln t substitution."""
    r = integrad.rule("gausslegendre", n)
    a = torch.tensor(r.nodes, dtype=torch.float64)
    w = torch.tensor(r.weights, dtype=torch.float64)
    ab, wab = (a[:, None] * a[None, :]).reshape(-1), (w[:, None] * w[None, :]).reshape(-1)
    out = []
    for xi, bi in zip(x, x0.expand_as(x)):
        d = xi - bi
        f = lambda z: model(z[None])[0, 0]
        total = torch.zeros(d.numel(), d.numel(), dtype=torch.float64)
        for s, ws in zip(ab, wab):
            z = bi + s * d
            H = torch.autograd.functional.hessian(f, z)
            g = torch.autograd.functional.jacobian(f, z)
            total += ws * (s * d[:, None] * d[None, :] * H + torch.diag(d * g))
        out.append(total)
    return torch.stack(out)


def test_matches_the_double_integral_oracle():
    model = smooth_mlp(3)
    x, x0 = randn(5, 2, 3), randn(6, 1, 3) * 0.5
    res = integrad.integrated_hessians(model, x, baseline=x0, n_steps=24)
    oracle = double_integral_oracle(model, x, x0)
    assert relative(res.attributions, oracle) < 1e-12  # measured 1.7e-15


@pytest.mark.parametrize("act", [torch.nn.Tanh, torch.nn.Softplus])
def test_rows_sum_to_integrated_gradients_and_the_matrix_is_symmetric(act):
    model = smooth_mlp(6, act)
    x = randn(7, 4, 6) * 2
    res = integrad.integrated_hessians(model, x, baseline=0.2, n_steps=32)
    ig = integrad.integrated_gradients(model, x, baseline=0.2, n_steps=64).attributions
    # measured: rows vs IG 1.7e-11 (tanh), 1.3e-15 (softplus); the reported gap 2.2e-7 and 1e-14
    # (it weighs the same gradients with a rule of degree n - 1, so it errs on the safe side)
    assert (res.attributions.sum(-1) - ig).abs().max() < 1e-6
    assert res.row_sum_gap.abs().max() < 1e-6
    gamma = res.attributions
    assert (gamma - gamma.transpose(1, 2)).abs().max() < 1e-10
    assert res.settings["symmetry_gap"] < 1e-10
    assert res.delta.abs().max() < 1e-6  # all of Gamma sums to F(x) - F(baseline)
    assert torch.allclose(res.f_x, model(x)[:, 0]) and torch.allclose(res.f_baseline, model(torch.full_like(x, 0.2))[:, 0])


def test_converges_spectrally_with_n_steps():
    model = smooth_mlp(5, torch.nn.Softplus)
    x = randn(8, 3, 5) * 2
    ref = integrad.integrated_hessians(model, x, n_steps=256).attributions
    errors = [relative(integrad.integrated_hessians(model, x, n_steps=n).attributions, ref) for n in (2, 4, 8, 16, 32)]
    # measured: 6.6e-3, 1.0e-4, 1.2e-8, 6.8e-16, 5.8e-16
    assert all(b < a / 4 for a, b in zip(errors, errors[1:4]))
    assert errors[3] < 1e-8 and errors[4] < 1e-12


# ------------------------------------------------------------------ path_explain
_PE = pathlib.Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" \
    / "path_explain" / "explainers" / "path_explainer_torch.py"


def path_explain_torch():
    # its package __init__ imports TensorFlow: load the torch explainer file alone
    spec = importlib.util.spec_from_file_location("path_explainer_torch", _PE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PathExplainerTorch


@pytest.mark.skipif(not _PE.is_file(), reason="path-explain==0.0.7 not installed (make install adds it, --no-deps)")
def test_agrees_with_path_explain_within_its_grid_error():
    """path_explain's integrated mode (use_expectation=False) averages over an m x m grid of
    (alpha, beta) = (i / (m - 1), k / (m - 1)), end points included, m = sqrt(num_samples): a
    first-order rule. Its error halves when m doubles, and Richardson extrapolation of two
    grids removes that first-order term, so both must approach our result.
    Measured on this MLP: relative error 7.8e-3 (m = 10), 3.7e-3 (m = 20), 1.8e-3 (m = 40);
    extrapolated from (10, 20) 1.6e-4, from (20, 40) 3.9e-5 (second order: 4x per doubling).
    path_explain stores gradients in float32, so nothing below ~1e-7 could be asked of it."""
    model = smooth_mlp(5)
    x = randn(9, 3, 5)
    ours = integrad.integrated_hessians(model, x, n_steps=32).attributions
    explainer = path_explain_torch()(model)
    grids = {}
    for m in (10, 20):
        grids[m] = explainer.interactions(x.clone().requires_grad_(True), torch.zeros(1, 5, dtype=torch.float64),
                                          num_samples=m * m, use_expectation=False, verbose=False).detach().double()
    e10, e20 = relative(grids[10], ours), relative(grids[20], ours)
    assert e10 < 1.2e-2 and 1.8 < e10 / e20 < 2.3
    h10, h20 = 1 / 9, 1 / 19  # the grid spacing
    extrapolated = (h10 * grids[20] - h20 * grids[10]) / (h10 - h20)
    assert relative(extrapolated, ours) < 4e-4


# ------------------------------------------------------------------ one column, shapes, batches
def test_interaction_index_is_the_column_of_the_full_matrix_from_one_product_per_point():
    model = mlp([6, 12, 1], act=torch.nn.Softplus)
    x = randn(10, 3, 2, 3)
    full = integrad.integrated_hessians(model_2x3(model), x, n_steps=16)
    assert full.attributions.shape == (3, 2, 3, 2, 3)
    for index, flat in (((1, 0), 3), (4, 4)):
        col = integrad.integrated_hessians(model_2x3(model), x, n_steps=16, interaction_index=index)
        assert col.attributions.shape == (3, 2, 3)
        want = full.attributions.reshape(3, 6, 6)[:, :, flat].reshape(3, 2, 3)
        assert (col.attributions - want).abs().max() < 1e-14
        assert col.settings["hessian_vector_products"] == 16 and full.settings["hessian_vector_products"] == 16 * 6
        # the column sums to phi_j as well (Gamma is symmetric)
        assert col.row_sum_gap.shape == (3,) and col.row_sum_gap.abs().max() < 1e-6


def model_2x3(inner):
    return torch.nn.Sequential(torch.nn.Flatten(), inner)


def test_multi_rank_inputs_equal_the_flattened_problem():
    inner = mlp([6, 12, 1], act=torch.nn.Tanh)
    x = randn(11, 4, 2, 3)
    res = integrad.integrated_hessians(model_2x3(inner), x, baseline=randn(12, 2, 3), n_steps=12)
    flat = integrad.integrated_hessians(inner, x.reshape(4, 6), baseline=randn(12, 2, 3).reshape(6), n_steps=12)
    assert res.attributions.shape == (4, 2, 3, 2, 3) and res.row_sum_gap.shape == (4, 2, 3)
    assert (res.attributions.reshape(4, 6, 6) - flat.attributions).abs().max() < 1e-14


def test_batch_rows_are_independent_and_chunking_does_not_change_the_result():
    model = smooth_mlp(5)
    x = randn(13, 6, 5)
    whole = integrad.integrated_hessians(model, x, n_steps=8)
    alone = torch.cat([integrad.integrated_hessians(model, x[i:i + 1], n_steps=8).attributions for i in range(6)])
    assert (whole.attributions - alone).abs().max() < 1e-14
    for batch_size in (1, 3, 7, 40):  # fewer products than features per call, and several points per call
        chunked = integrad.integrated_hessians(model, x, n_steps=8, batch_size=batch_size)
        assert (chunked.attributions - whole.attributions).abs().max() < 1e-14


def test_counts_model_rows_and_leaves_the_model_as_found():
    model = Counting(smooth_mlp(4)).train()
    params = [p.requires_grad for p in model.parameters()]
    x = randn(14, 3, 4)
    res = integrad.integrated_hessians(model, x, n_steps=5)
    # 3 rows for the row-independence check, 3 x 5 path points, 2 x 3 for F(x) and F(baseline)
    assert model.rows == 3 + 15 + 6
    assert res.n_evals.tolist() == [5, 5, 5]
    assert model.training and [p.requires_grad for p in model.parameters()] == params
    assert all(p.grad is None for p in model.parameters())
    assert not any(t.requires_grad for t in (res.attributions, res.delta, res.row_sum_gap, res.f_x))


def test_target_and_forward_args_follow_their_examples():
    x = randn(15, 4, 2)
    scale = randn(16, 4, 1)

    def model(z, s):
        return torch.stack([z[:, 0] + z[:, 1], s[:, 0] * z[:, 0] * z[:, 1]], 1)

    res = integrad.integrated_hessians(model, x, target=1, forward_args=(scale,), n_steps=3)
    want = (scale[:, 0] * x[:, 0] * x[:, 1] / 4)[:, None, None].expand(4, 2, 2)
    assert torch.allclose(res.attributions, want, atol=1e-14)


def test_float32_inputs_give_float32_results():
    model = mlp([4, 8, 1], dtype=torch.float32)
    res = integrad.integrated_hessians(model, randn(17, 2, 4).float(), n_steps=8)
    assert res.attributions.dtype == torch.float32 and res.row_sum_gap.abs().max() < 1e-3


def test_save_and_load_keep_the_row_check(tmp_path):
    res = integrad.integrated_hessians(smooth_mlp(3), randn(18, 2, 3), n_steps=4)
    res.save(tmp_path / "ih.safetensors")
    back = integrad.Attribution.load(tmp_path / "ih.safetensors")
    assert torch.equal(back.row_sum_gap, res.row_sum_gap) and torch.equal(back.attributions, res.attributions)
    assert "interaction rows - IG" in repr(res)


# ------------------------------------------------------------------ ReLU networks
def test_relu_network_warns_once_and_its_softplus_copy_has_interactions():
    relu = mlp([4, 16, 1], act=torch.nn.ReLU)
    x = randn(19, 3, 4)
    with pytest.warns(UserWarning, match="Hessian is exactly zero") as record:
        res = integrad.integrated_hessians(relu, x, n_steps=8, batch_size=4)  # several blocks, one warning
    assert sum("Hessian is exactly zero" in str(w.message) for w in record) == 1
    off = res.attributions - torch.diag_embed(torch.diagonal(res.attributions, dim1=1, dim2=2))
    assert off.abs().max() == 0
    smooth = integrad.softplus_relus(relu, beta=10.0)
    assert isinstance(relu[1], torch.nn.ReLU) and isinstance(smooth[1], torch.nn.Softplus)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        soft = integrad.integrated_hessians(smooth, x, n_steps=64)
    off = soft.attributions - torch.diag_embed(torch.diagonal(soft.attributions, dim1=1, dim2=2))
    assert off.abs().max() > 1e-3
    # a large beta approaches the ReLU network's own output
    assert (integrad.softplus_relus(relu, beta=1e3)(x) - relu(x)).abs().max() < 1e-2


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kw, error, pattern", [
    (dict(inputs=(randn(0, 2, 3),)), TypeError, r"inputs: expected one tensor of shape \(batch, \*features\); got a tuple"),
    (dict(method="gausslegendre"), ValueError, r"method: expected 'gausslog'.*got 'gausslegendre'"),
    (dict(n_steps=0), ValueError, r"n_steps: expected an int from 1 to 1,024"),
    (dict(n_steps=2.0), TypeError, r"n_steps: expected an int; got float"),
    (dict(interaction_index=3), ValueError, r"interaction_index: flat index 3 is out of range for 3 features"),
    (dict(interaction_index=(0, 1)), ValueError, r"interaction_index: \(0, 1\) is not an index into the feature "
                                                 r"shape \(3,\)"),
    (dict(interaction_index=1.0), TypeError, r"interaction_index: expected None, an int .* got float"),
    (dict(inputs=torch.ones(2, 3, dtype=torch.long)), TypeError, r"inputs: dtype torch.int64 cannot be interpolated"),
    (dict(baseline=torch.zeros(4)), ValueError, r"baseline: shape \(4\) does not broadcast to one example \(3,\)"),
    (dict(batch_size=0), ValueError, r"batch_size: expected None \(automatic\) or an int >= 1; got 0"),
    (dict(steps=8), TypeError, r"did you mean n_steps\?"),
])
def test_bad_arguments_are_named(kw, error, pattern):
    args = dict(inputs=randn(0, 2, 3)) | kw
    with pytest.raises(error, match=pattern):
        integrad.integrated_hessians(smooth_mlp(3), args.pop("inputs"), **args)


def test_non_finite_inputs_and_bad_softplus_arguments_are_refused():
    x = randn(0, 2, 3)
    x[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"inputs: contains NaN or Inf \(examples \[1\]\)"):
        integrad.integrated_hessians(smooth_mlp(3), x)
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        integrad.softplus_relus(lambda z: z.relu())
    with pytest.raises(ValueError, match="model: Sequential has no nn.ReLU module to replace"):
        integrad.softplus_relus(smooth_mlp(3))
    with pytest.raises(ValueError, match="beta: expected a finite number > 0; got 0"):
        integrad.softplus_relus(mlp([3, 4, 1], act=torch.nn.ReLU), beta=0)
