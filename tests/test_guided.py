"""Guided IG: the straight line at max_dist=0, PAIR saliency's sums, and the one-sided rule's bias."""

import types

import numpy as np
import pytest
import torch

import integrad


def tanh_mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double().eval()


def small_cnn(seed=4):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(6, 6, 3, padding=1),
                               torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(24, 4)).double().eval()


@pytest.mark.parametrize("rule, method, nodes", [("left", "riemann_left", 50), ("trapezoid", "trapezoid", 51)])
def test_max_dist_zero_is_ig_on_the_straight_line(rule, method, nodes):
    net, x = tanh_mlp(), torch.randn(4, 6, dtype=torch.float64)
    gig = integrad.guided_ig(net, x, target=1, n_steps=50, max_dist=0.0, rule=rule)
    ig = integrad.integrated_gradients(net, x, target=1, method=method, n_steps=nodes)
    torch.testing.assert_close(gig.attributions, ig.attributions, rtol=0, atol=1e-14)
    assert gig.n_evals.tolist() == [nodes] * 4


def _saliency_guided_ig():
    module = pytest.importorskip("saliency.core.guided_ig")
    # saliency 0.2.1 calls np.quantile(..., interpolation="lower"); numpy 2.4 renamed that
    # keyword to method= (same computation). Its module gets numpy with the old spelling.
    shim = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    shim.quantile = lambda a, q, interpolation="linear", **kw: np.quantile(a, q, method=interpolation, **kw)
    return module, shim


@pytest.mark.parametrize("max_dist", [0.02, 0.1, 1.0])
def test_left_rule_equals_saliency_guided_ig(max_dist, monkeypatch):
    module, shim = _saliency_guided_ig()
    monkeypatch.setattr(module, "np", shim)
    net = small_cnn()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = integrad.guided_ig(net, x, target=2, n_steps=40, max_dist=max_dist, rule="left").attributions
    for i in range(2):
        def grad(z):
            z = torch.tensor(z).requires_grad_(True)
            net(z[None])[0, 2].backward()
            return z.grad.numpy()
        theirs = torch.tensor(module.guided_ig_impl(x[i].numpy(), np.zeros((3, 8, 8)), grad, steps=40, fraction=0.25,
                                                    max_dist=max_dist))
        assert ((ours[i] - theirs).norm() / theirs.norm()).item() < 1e-12


def test_the_one_sided_rule_is_biased_and_the_trapezoid_is_not():
    # Against the same construction with 2,000 steps (the limit path): at 50 steps the
    # paper's one-sided sums are ~70x farther off than the trapezoid on the same path
    net, x = tanh_mlp(), torch.randn(4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = integrad.guided_ig(net, x, target=1, n_steps=2000, max_dist=0.1).attributions
    err = lambda a: ((a - ref).norm(dim=1) / ref.norm(dim=1)).max().item()  # noqa: E731
    trap = integrad.guided_ig(net, x, target=1, n_steps=50, max_dist=0.1)
    left = integrad.guided_ig(net, x, target=1, n_steps=50, max_dist=0.1, rule="left")
    assert err(left.attributions) > 20 * err(trap.attributions)
    assert left.delta.abs().max() > 20 * trap.delta.abs().max()
    true = (trap.attributions - ref).norm(dim=1) / ref.norm(dim=1)
    assert (trap.error >= true).all()  # the estimate (the rules' difference) bounds the trapezoid's error
    assert left.error is None  # no gradient at the input: nothing to compare the one-sided sums with


def test_examples_advance_together_as_they_would_alone():
    net, x = small_cnn(), torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    together = integrad.guided_ig(net, x, target=0, n_steps=20, batch_size=2)
    for i in range(3):
        alone = integrad.guided_ig(net, x[i:i + 1], target=0, n_steps=20)
        torch.testing.assert_close(alone.attributions[0], together.attributions[i], rtol=0, atol=1e-14)


def test_an_example_at_its_baseline_gets_zeros():
    net, x = tanh_mlp(), torch.randn(2, 6, dtype=torch.float64)
    x[1] = 0.0
    res = integrad.guided_ig(net, x, target=0, n_steps=10)
    assert torch.equal(res.attributions[1], torch.zeros(6, dtype=torch.float64))
    assert res.delta.abs().max() < 1e-3


@pytest.mark.parametrize("kwargs, words", [
    ({"fraction": 0}, "fraction: expected a number in (0, 1]"),
    ({"fraction": 1.5}, "fraction: expected a number in (0, 1]"),
    ({"max_dist": -0.1}, "max_dist: expected a number in [0, 1]"),
    ({"max_dist": float("nan")}, "max_dist: expected a number in [0, 1]"),
    ({"rule": "middle"}, "rule: expected 'trapezoid', 'left' or 'idgi'"),
    ({"n_steps": 0}, "n_steps: expected an int >= 1"),
])
def test_bad_settings_get_clear_errors(kwargs, words):
    with pytest.raises(ValueError) as info:
        integrad.guided_ig(tanh_mlp(), torch.randn(2, 6, dtype=torch.float64), target=0, **kwargs)
    assert words in str(info.value)


def test_one_input_tensor():
    net = tanh_mlp()
    with pytest.raises(ValueError, match="inputs: Guided IG takes one input tensor; got 2"):
        integrad.guided_ig(lambda a, b: net(torch.cat([a, b], 1)), (torch.randn(2, 2).double(), torch.randn(2, 4).double()),
                           target=0)


def test_automatic_blocks_that_grow_after_the_memory_probe(monkeypatch):
    # a probe block of one row, then blocks sized by the measured memory: every example is
    # evaluated once per step (the block loop once stepped by the probe's size)
    import integrad.backends.torch as backend

    monkeypatch.setattr(backend, "PROBE_BYTES", 1)
    monkeypatch.setattr(backend, "SMALL_BYTES", 1)
    net, x = small_cnn(), torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    auto = integrad.guided_ig(net, x, target=1, n_steps=6)
    fixed = integrad.guided_ig(net, x, target=1, n_steps=6, batch_size=5)
    torch.testing.assert_close(auto.attributions, fixed.attributions, rtol=0, atol=1e-14)
