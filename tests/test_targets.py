"""Targets: many at once equal one at a time (at one target's cost), tuple targets, (batch,) inputs."""

import pytest
import torch

import integrad
from conftest import Counting, mlp, randn
from integrad import baselines






class TwoInputs(torch.nn.Module):
    """(batch, 3) and (batch, 2, 2) inputs -> 5 outputs."""

    def __init__(self):
        super().__init__()
        self.net = mlp([7, 8, 5])

    def forward(self, a, b):
        return self.net(torch.cat([a, b.flatten(1)], 1))


class Text(torch.nn.Module):
    """Token ids -> embedding -> tanh MLP with 5 outputs."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4).double()
        self.net = mlp([12, 8, 5])

    def forward(self, ids):
        return self.net(self.emb(ids).flatten(1))


def assert_target_axis_matches(many, ones, tol=1e-12):
    """``many`` (with a target axis) against one result per target."""
    for j, one in enumerate(ones):
        for a, b in zip(many.attributions_tuple, one.attributions_tuple):
            assert (a[:, j] - b).abs().max() <= tol * b.abs().max()
        for name in ("delta", "f_x", "f_baseline"):
            assert (getattr(many, name)[:, j] - getattr(one, name)).abs().max() <= tol


# ---------------------------------------------------------------- many targets = separate calls
@pytest.mark.parametrize("batch_size", [None, 7])
@pytest.mark.parametrize("targets", [[0, 3, 4], "all"])
def test_many_targets_equal_separate_calls(targets, batch_size):
    net = mlp([4, 8, 5])
    x = randn(0, 3, 4)
    many = integrad.integrated_gradients(net, x, targets=targets, n_steps=12, batch_size=batch_size, baseline=0.2)
    classes = [0, 3, 4] if targets != "all" else list(range(5))
    assert many.attributions.shape == (3, len(classes), 4)
    assert many.delta.shape == many.f_x.shape == many.f_baseline.shape == (3, len(classes))
    ones = [integrad.integrated_gradients(net, x, target=c, n_steps=12, batch_size=batch_size, baseline=0.2)
            for c in classes]
    assert_target_axis_matches(many, ones)
    assert (many.total - (many.f_x - many.f_baseline) - many.delta).abs().max() <= 1e-12


def test_many_targets_equal_separate_calls_on_tuple_inputs():
    model = TwoInputs().eval()
    xs = (randn(0, 3, 3), randn(1, 3, 2, 2))
    many = integrad.integrated_gradients(model, xs, targets=[1, 2], n_steps=12, batch_size=5)
    assert isinstance(many.attributions, tuple)
    assert many.attributions[0].shape == (3, 2, 3) and many.attributions[1].shape == (3, 2, 2, 2)
    ones = [integrad.integrated_gradients(model, xs, target=c, n_steps=12) for c in (1, 2)]
    assert_target_axis_matches(many, ones)


def test_many_targets_equal_separate_calls_at_embedding_layer():
    model = Text().eval()
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    many = integrad.integrated_gradients(model, ids, layer=model.emb, targets=[0, 2, 4], n_steps=12)
    assert many.attributions.shape == (2, 3, 3, 4)
    ones = [integrad.integrated_gradients(model, ids, layer=model.emb, target=c, n_steps=12) for c in (0, 2, 4)]
    assert_target_axis_matches(many, ones)


def test_many_targets_equal_separate_calls_in_smoothgrad():
    net = mlp([4, 8, 5])
    x = randn(0, 3, 4)
    many = integrad.smoothgrad(net, x, targets=[1, 4], n_samples=4, n_steps=8, seed=3)
    ones = [integrad.smoothgrad(net, x, target=c, n_samples=4, n_steps=8, seed=3) for c in (1, 4)]
    assert_target_axis_matches(many, ones)


@pytest.mark.parametrize("batch_size", [None, 7])
def test_many_targets_cost_the_model_calls_of_one(batch_size):
    net = Counting(mlp([4, 8, 5]))
    x = randn(0, 3, 4)
    integrad.integrated_gradients(net, x, target=0, n_steps=2)  # the row-independence probe, once per model
    net.calls = 0
    integrad.integrated_gradients(net, x, target=0, n_steps=12, batch_size=batch_size)
    one = net.calls
    net.calls = 0
    integrad.integrated_gradients(net, x, targets=list(range(5)), n_steps=12, batch_size=batch_size)
    assert net.calls == one


# ---------------------------------------------------------------- tuple targets, odd output shapes
G = randn(7, 6, 4)


def rank3(x):
    """(batch, 4) -> (batch, 2, 3)."""
    return torch.tanh(x @ G.T).view(-1, 2, 3)


def test_tuple_target_equals_callable_target_on_rank3_output():
    x = randn(0, 3, 4)
    a = integrad.integrated_gradients(rank3, x, target=(1, 2), n_steps=12)
    b = integrad.integrated_gradients(rank3, x, target=lambda out: out[:, 1, 2], n_steps=12)
    assert (a.attributions - b.attributions).abs().max() <= 1e-12 * b.attributions.abs().max()
    assert (a.f_x - rank3(x)[:, 1, 2]).abs().max() <= 1e-12


def test_list_of_tuples_targets_each_example():
    x = randn(0, 3, 4)
    per = [(0, 1), (1, 2), (1, 0)]
    res = integrad.integrated_gradients(rank3, x, target=per, n_steps=12)
    for i, t in enumerate(per):
        one = integrad.integrated_gradients(lambda z, t=t: rank3(z)[:, t[0], t[1]], x[i:i + 1], n_steps=12)
        assert (res.attributions[i] - one.attributions[0]).abs().max() <= 1e-12 * one.attributions.abs().max()
    many = integrad.integrated_gradients(rank3, x, targets=[(0, 1), (1, 2)], n_steps=12)
    assert many.attributions.shape == (3, 2, 4)
    assert (many.attributions[:, 1] - integrad.integrated_gradients(rank3, x, target=(1, 2), n_steps=12)
            .attributions).abs().max() <= 1e-12


def test_target_none_on_one_value_in_rank3_output():
    x = randn(0, 3, 4)
    res = integrad.integrated_gradients(lambda z: (z**2).sum(1).view(-1, 1, 1), x, n_steps=2)
    assert (res.attributions - x**2).abs().max() <= 1e-12


# ---------------------------------------------------------------- one number per example
X1 = torch.tensor([3.0, 1.0], dtype=torch.float64)


def cube(x):
    return x**3


def test_scalar_inputs_fixed_rule_and_baseline():
    res = integrad.integrated_gradients(cube, X1, n_steps=2)  # Gauss-Legendre 2 is exact for 3 a^2 x^3
    assert res.attributions.shape == (2,)
    assert (res.attributions - X1**3).abs().max() <= 1e-12
    b = torch.tensor([1.0, -1.0], dtype=torch.float64)
    res = integrad.integrated_gradients(cube, X1, baseline=b, n_steps=2)
    assert (res.attributions - (X1**3 - b**3)).abs().max() <= 1e-12


def test_scalar_inputs_rtol():
    res = integrad.integrated_gradients(cube, X1, rtol=1e-4)
    assert res.attributions.shape == (2,) and res.converged.all()
    assert ((res.attributions - X1**3).abs() <= 1e-4 * X1**3).all()


def test_scalar_inputs_rtol_exact_on_cubic_in_float64():
    res = integrad.integrated_gradients(cube, X1, rtol=1e-10)
    assert res.converged.all()
    assert ((res.attributions - X1**3).abs() <= 1e-12 * X1**3).all()


def test_scalar_inputs_piecewise():
    x = torch.tensor([3.0, -1.0, 0.5], dtype=torch.float64)
    res = integrad.integrated_gradients(torch.nn.ReLU(), x, baseline=-2.0, method="piecewise")
    assert (res.attributions - x.clamp_min(0)).abs().max() <= 1e-12  # relu(x) - relu(-2)


def test_scalar_inputs_averaged_baselines():
    res = baselines.averaged(cube, X1, [0.0, 1.0], n_steps=2)
    assert (res.attributions - (X1**3 - 0.5)).abs().max() <= 1e-12  # mean of x^3 - 0 and x^3 - 1
    assert (res.f_baseline - 0.5).abs().max() <= 1e-12


def test_scalar_inputs_expected_gradients():
    res = integrad.expected_gradients(cube, X1, references=torch.zeros(3, dtype=torch.float64), n_samples=256)
    assert res.attributions.shape == res.stderr.shape == (2,)
    assert ((res.attributions - X1**3).abs() <= 4 * res.stderr).all()


def test_scalar_inputs_smoothgrad():
    plain = integrad.smoothgrad(cube, X1, noise=0.0, n_samples=2, n_steps=2)
    assert (plain.attributions - X1**3).abs().max() <= 1e-12
    s = 0.2
    res = integrad.smoothgrad(cube, X1, noise=s, noise_scale="absolute", n_samples=2000, n_steps=2, seed=1)
    assert (res.attributions - (res.f_x - res.f_baseline)).abs().max() <= 1e-12
    assert ((res.attributions - (X1**3 + 3 * X1 * s**2)).abs() <= 4 * res.stderr).all()  # E[(x + e)^3]


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize("options", [dict(rtol=1e-3), dict(method="piecewise")])
def test_many_targets_refused_with_refining_placements(options):
    net = mlp([4, 8, 5], act=torch.nn.ReLU)
    with pytest.raises(ValueError, match="^targets:"):
        integrad.integrated_gradients(net, randn(0, 3, 4), targets=[0, 1], **options)


def test_all_targets_refused_on_rank3_output():
    with pytest.raises(ValueError, match="^targets:.*'all'"):
        integrad.integrated_gradients(rank3, randn(0, 3, 4), targets="all")
