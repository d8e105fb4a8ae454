"""The error estimate every result carries: it bounds the true per-feature error, and not by much."""

import pytest
import torch

import integrad
from conftest import mlp, randn
from integrad.baselines import averaged


def relu_net(seed=0):
    return mlp([10, 64, 64, 3], act=torch.nn.ReLU, seed=seed)


def true_error(res, ref):
    a, r = res.attributions.reshape(res.attributions.shape[0], -1), ref.attributions.reshape(ref.attributions.shape[0], -1)
    return (a - r).norm(dim=1) / r.norm(dim=1)


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_left", "riemann_middle", "trapezoid"])
def test_fixed_rule_estimate_bounds_the_error_on_relu_nets(method):
    # exact reference: piecewise integration; 24 paths x 4 step counts per rule
    ratios = []
    for seed in range(4):
        net, x = relu_net(seed), randn(seed, 6, 10) * 2
        ref = integrad.integrated_gradients(net, x, target=0, method="piecewise")
        for n in (8, 16, 32, 64):
            res = integrad.integrated_gradients(net, x, target=0, method=method, n_steps=n)
            ratios += (res.error / true_error(res, ref)).tolist()
    ratios = torch.tensor(ratios)
    assert (ratios >= 1).float().mean() >= 0.85, ratios  # few kinks per path: the jump model is noisiest here
    assert ratios.median() <= 3, ratios


def test_estimate_is_tiny_and_honest_on_a_smooth_model():
    net, x = mlp([6, 16, 1], act=torch.nn.Tanh), randn(0, 4, 6)
    ref = integrad.integrated_gradients(net, x, n_steps=200)
    for n in (4, 8, 16):
        res = integrad.integrated_gradients(net, x, n_steps=n)
        e = true_error(res, ref)
        assert (res.error >= e).all(), (n, res.error, e)
    assert (integrad.integrated_gradients(net, x, n_steps=16).error < 1e-8).all()


def test_estimate_does_not_depend_on_block_size():
    net, x = relu_net(), randn(0, 5, 10)
    one = integrad.integrated_gradients(net, x, target=1, n_steps=40)
    for bs in (7, 13, 40, 81):
        other = integrad.integrated_gradients(net, x, target=1, n_steps=40, batch_size=bs)
        torch.testing.assert_close(other.error, one.error, rtol=1e-9, atol=1e-15)


def test_estimate_with_several_targets_equals_one_target_at_a_time():
    net, x = relu_net(), randn(1, 4, 10)
    many = integrad.integrated_gradients(net, x, targets=[0, 2], n_steps=24, batch_size=30)
    for j, t in enumerate((0, 2)):
        single = integrad.integrated_gradients(net, x, target=t, n_steps=24)
        torch.testing.assert_close(many.error[:, j], single.error, rtol=1e-9, atol=1e-15)


def test_every_method_carries_an_error_estimate():
    net, x, refs = relu_net(), randn(2, 3, 10), randn(3, 8, 10)
    results = [
        integrad.integrated_gradients(net, x, target=0),
        integrad.integrated_gradients(net, x, target=0, rtol=1e-2),
        integrad.expected_gradients(net, x, references=refs, target=0, n_samples=32),
        integrad.smoothgrad(net, x, target=0, n_samples=4),
        averaged(net, x, refs[:4], target=0, n_steps=16),
    ]
    for res in results:
        assert res.error is not None and res.error.shape == (3,) and torch.isfinite(res.error).all()


def test_expected_gradients_error_is_the_standard_errors_norm():
    net, x, refs = relu_net(), randn(2, 3, 10), randn(3, 8, 10)
    res = integrad.expected_gradients(net, x, references=refs, target=0, n_samples=64)
    torch.testing.assert_close(res.error, res.stderr.norm(dim=1) / res.attributions.norm(dim=1))


def test_piecewise_result_is_exact_and_says_so():
    net, x = relu_net(), randn(0, 2, 10)
    res = integrad.integrated_gradients(net, x, target=0, method="piecewise")
    assert res.error is None
    from integrad.core.result import accuracy_line

    assert accuracy_line(float("nan"), 1e-12, res.settings).startswith("exact")


def test_accuracy_line_verdicts():
    from integrad.core.result import accuracy_line

    fixed = {"method": "gausslegendre", "n_steps": 50}
    assert "within 1%" in accuracy_line(0.004, 0.001, fixed)
    assert "more than 1%: rtol=0.01 reaches it, or about n_steps=200" in accuracy_line(0.04, 0.001, fixed)
    assert "lower rtol" in accuracy_line(0.04, 0.001, {"method": "adaptive", "rtol": 0.1})


def test_sampled_methods_verdict_asks_for_more_samples():
    from integrad.core.result import accuracy_line

    line = accuracy_line(0.3, 0.1, {"method": "gausslegendre", "n_steps": 16, "smoothgrad": {"n_samples": 8}})
    assert "more samples" in line and "n_steps" not in line


def test_one_node_has_no_estimate_and_says_so():
    from integrad.core.result import accuracy_line

    res = integrad.integrated_gradients(lambda z: (z ** 2).sum(1), randn(0, 2, 3), n_steps=1)
    assert torch.isinf(res.error).all()
    assert accuracy_line(float(res.error[0]), 0.1, res.settings).startswith("error unknown")
