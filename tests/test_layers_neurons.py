"""Layer and neuron IG: split models, several layers, neuron selectors, local attributions."""

import pytest
import torch

import integrad
from conftest import Counting, mlp, randn






class Parallel(torch.nn.Module):
    """head(l1(x) + l2(x)): two branches whose outputs meet in a sum."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.head = mlp([4, 8, 5]), mlp([4, 5], seed=1), mlp([5, 7, 1], seed=2)

    def forward(self, x):
        return self.head(self.l1(x) + self.l2(x))


class Pair(torch.nn.Module):
    """A layer returning a tuple of two tensors."""

    def __init__(self):
        super().__init__()
        self.a, self.b = mlp([4, 3]), mlp([4, 2], seed=1)

    def forward(self, x):
        return self.a(x), self.b(x)


class PairModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pair, self.head = Pair(), mlp([5, 6, 1], seed=3)

    def forward(self, x):
        u, v = self.pair(x)
        return self.head(torch.cat([u, v], 1))


def close(a, b, tol=1e-12):
    return (a - b).abs().max() <= tol * max(b.abs().max(), 1e-300)


# ---------------------------------------------------------------- layer input and several layers
def test_layer_input_equals_ig_of_submodel_from_that_layer():
    net = mlp([4, 8, 6, 1])
    x = randn(0, 3, 4)
    res = integrad.integrated_gradients(net, x, layer=net[2], layer_input=True, n_steps=30, baseline=0.5)
    h = net[:2](x).detach()  # what net[2] receives
    h_base = net[:2](torch.full((1, 4), 0.5, dtype=torch.float64)).detach()
    sub = integrad.integrated_gradients(net[2:], h, baseline=h_base, n_steps=30)
    assert res.attributions.shape == (3, 8)
    assert close(res.attributions, sub.attributions)
    assert (res.delta - sub.delta).abs().max() <= 1e-12
    assert res.settings.get("layer_input") is True


def test_layer_input_of_last_linear_is_closed_form():
    net = mlp([4, 8, 1])
    x = randn(0, 3, 4)
    res = integrad.integrated_gradients(net, x, layer=net[2], layer_input=True, n_steps=4)
    h, h0 = net[:2](x).detach(), net[:2](torch.zeros(1, 4, dtype=torch.float64)).detach()
    assert close(res.attributions, net[2].weight.detach() * (h - h0))


def test_parallel_layers_share_one_path_and_are_complete():
    model = Parallel().eval()
    x = randn(0, 3, 4)
    res = integrad.integrated_gradients(model, x, layer=[model.l1, model.l2], n_steps=64)
    assert isinstance(res.attributions, tuple) and len(res.attributions) == 2
    assert [a.shape for a in res.attributions] == [(3, 5), (3, 5)]
    assert res.delta.abs().max() <= 1e-10
    # both branches are interpolated together: their sum moves on a straight line, so the
    # two attributions add up to IG of the head from the summed baseline activations
    zero = torch.zeros(1, 4, dtype=torch.float64)
    s_x, s_0 = (model.l1(x) + model.l2(x)).detach(), (model.l1(zero) + model.l2(zero)).detach()
    head = integrad.integrated_gradients(model.head, s_x, baseline=s_0, n_steps=64)
    assert close(res.attributions[0] + res.attributions[1], head.attributions, 1e-10)
    # and each branch's share is its displacement times the same path-integrated gradient
    d1, d2 = (model.l1(x) - model.l1(zero)).detach(), (model.l2(x) - model.l2(zero)).detach()
    assert close(res.attributions[0] / d1, res.attributions[1] / d2, 1e-9)


def test_layer_followed_by_inplace_relu():
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(inplace=True),
                                torch.nn.Linear(6, 1)).double().eval()
    x = randn(0, 3, 4)
    res = integrad.integrated_gradients(model, x, layer=model[0], n_steps=64)
    assert res.attributions.shape == (3, 6)
    # the layer's output goes into relu: per unit, IG of a relu then a weight, exactly
    h, h0 = model[0](x).detach(), model[0](torch.zeros(1, 4, dtype=torch.float64)).detach()
    w = model[2].weight.detach()[0]
    expected = w * (h.clamp_min(0) - h0.clamp_min(0))
    # fixed nodes straddle relu's kink: the error is at most one node weight of the jump
    assert (res.attributions - expected).abs().max() <= 0.05 * expected.abs().max()
    exact = integrad.integrated_gradients(model, x, layer=model[0], method="piecewise")
    assert close(exact.attributions, expected, 1e-10)
    assert res.delta.abs().max() <= 0.05 * (res.f_x - res.f_baseline).abs().max()
    assert exact.delta.abs().max() <= 1e-12


def test_layer_returning_tuple_gives_one_attribution_per_tensor():
    model = PairModel().eval()
    x = randn(0, 3, 4)
    res = integrad.integrated_gradients(model, x, layer=model.pair, n_steps=64)
    assert isinstance(res.attributions, tuple)
    assert [a.shape for a in res.attributions] == [(3, 3), (3, 2)]
    assert res.delta.abs().max() <= 1e-10
    zero = torch.zeros(1, 4, dtype=torch.float64)
    u, v = model.pair(x)
    u0, v0 = model.pair(zero)
    head = integrad.integrated_gradients(model.head, torch.cat([u, v], 1).detach(),
                                         baseline=torch.cat([u0, v0], 1).detach(), n_steps=64)
    assert close(torch.cat(res.attributions, 1), head.attributions)


# ---------------------------------------------------------------- neurons
def conv_net():
    g = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1).double()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g, dtype=torch.float64) / 4)
    later = Counting(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(75, 1).double()))
    return torch.nn.Sequential(conv, torch.nn.Tanh(), later).eval()


def test_neuron_equals_ig_of_submodel_to_that_unit():
    net = mlp([4, 8, 6, 1])
    x = randn(0, 3, 4)
    res = integrad.integrated_gradients(net, x, neuron=(net[0], 3), n_steps=20)
    sub = integrad.integrated_gradients(lambda z: net[0](z)[:, 3], x, n_steps=20)
    assert close(res.attributions, sub.attributions)
    assert (res.f_x - net[0](x)[:, 3]).abs().max() <= 1e-12
    # a linear unit: IG is exact, w * (x - 0)
    assert close(res.attributions, net[0].weight.detach()[3] * x)
    assert res.delta.abs().max() <= 1e-12


def test_neuron_tuple_selector_on_conv_output():
    net = conv_net()
    x = randn(1, 2, 2, 5, 5)
    res = integrad.integrated_gradients(net, x, neuron=(net[1], (2, 1, 3)), n_steps=20)
    sub = integrad.integrated_gradients(lambda z: torch.tanh(net[0](z))[:, 2, 1, 3], x, n_steps=20)
    assert res.attributions.shape == x.shape
    assert close(res.attributions, sub.attributions)
    neg = integrad.integrated_gradients(net, x, neuron=(net[1], (-1, 1, 3)), n_steps=20)
    assert close(neg.attributions, sub.attributions)


def test_neuron_slice_selector_sums_the_units():
    net = conv_net()
    x = randn(1, 2, 2, 5, 5)
    res = integrad.integrated_gradients(net, x, neuron=(net[1], (slice(0, 2), 1, slice(None))), n_steps=20)
    parts = [integrad.integrated_gradients(net, x, neuron=(net[1], (c, 1, j)), n_steps=20).attributions
             for c in range(2) for j in range(5)]
    assert close(res.attributions, sum(parts))


def test_neuron_callable_selector():
    net = conv_net()
    x = randn(1, 2, 2, 5, 5)
    res = integrad.integrated_gradients(net, x, neuron=(net[1], lambda out: out[:, 1].mean((1, 2))), n_steps=20)
    sub = integrad.integrated_gradients(lambda z: torch.tanh(net[0](z))[:, 1].mean((1, 2)), x, n_steps=20)
    assert close(res.attributions, sub.attributions)


def test_forward_pass_stops_at_the_neuron_module():
    net = conv_net()
    x = randn(1, 2, 2, 5, 5)
    integrad.integrated_gradients(net, x, neuron=(net[1], (0, 0, 0)), n_steps=8)
    integrad.integrated_gradients(net, x, neuron=(net[0], (0, 0, 0)), rtol=1e-3)
    integrad.expected_gradients(net, x, references=x, neuron=(net[1], (0, 0, 0)), n_samples=4)
    assert net[2].calls == 0


@pytest.mark.parametrize("selector", [(3, 0, 0), (0, 5, 0), (0, 0, -6), 7, (0, 0)])
def test_neuron_index_out_of_range_or_wrong_depth_is_refused(selector):
    net = conv_net()
    with pytest.raises(ValueError, match="^neuron:"):
        integrad.integrated_gradients(net, randn(1, 2, 2, 5, 5), neuron=(net[1], selector))


def test_neuron_with_target_is_refused():
    net = conv_net()
    with pytest.raises(ValueError, match="^neuron:"):
        integrad.integrated_gradients(net, randn(1, 2, 2, 5, 5), neuron=(net[1], 0), target=0)


# ---------------------------------------------------------------- local attributions
def test_multiply_by_inputs_false_is_the_path_integrated_gradient():
    net = mlp([4, 8, 6, 1])
    x = randn(0, 3, 4)
    full = integrad.integrated_gradients(net, x, baseline=0.5, n_steps=20)
    local = integrad.integrated_gradients(net, x, baseline=0.5, n_steps=20, multiply_by_inputs=False)
    assert close(local.attributions * (x - 0.5), full.attributions)
    assert (local.delta - full.delta).abs().max() <= 1e-15  # still IG's completeness gap
    assert local.settings.get("multiply_by_inputs") is False


def test_multiply_by_inputs_false_on_linear_model_is_the_weights():
    w = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)
    x = randn(0, 3, 4)
    local = integrad.integrated_gradients(lambda z: z @ w, x, n_steps=3, multiply_by_inputs=False)
    assert close(local.attributions, w.expand(3, 4))
    assert local.delta.abs().max() <= 1e-12


def test_multiply_by_inputs_false_at_a_layer():
    net = mlp([4, 8, 6, 1])
    x = randn(0, 3, 4)
    full = integrad.integrated_gradients(net, x, layer=net[1], n_steps=20)
    local = integrad.integrated_gradients(net, x, layer=net[1], n_steps=20, multiply_by_inputs=False)
    h, h0 = net[:2](x).detach(), net[:2](torch.zeros(1, 4, dtype=torch.float64)).detach()
    assert close(local.attributions * (h - h0), full.attributions)
    assert (local.delta - full.delta).abs().max() <= 1e-15


class _ProductAfterRelu(torch.nn.Module):
    def __init__(self, inplace):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2, bias=False).double()
        with torch.no_grad():
            self.lin.weight.copy_(torch.eye(2, dtype=torch.float64))
        self.act = torch.nn.ReLU(inplace=inplace)

    def forward(self, x):
        h = self.act(self.lin(x))
        return h[:, 0] * h[:, 1]


@pytest.mark.parametrize("inplace", [False, True])
def test_layer_read_is_not_changed_by_inplace_op_after_it(inplace):
    # path in the Linear's output from (-1, 0) to (1, 2): F = relu(h0) relu(h1); exact IG is
    # (1.5, 0.5) (h0 is negative for the first half of the path)
    net = _ProductAfterRelu(inplace)
    x, b = torch.tensor([[1.0, 2.0]], dtype=torch.float64), torch.tensor([[-1.0, 0.0]], dtype=torch.float64)
    res = integrad.integrated_gradients(net, x, baseline=b, layer=net.lin, rtol=1e-10)
    assert torch.allclose(res.attributions, torch.tensor([[1.5, 0.5]], dtype=torch.float64), atol=1e-8)


def test_layer_list_comes_back_in_the_order_given():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.second = torch.nn.Linear(3, 4).double(), torch.nn.Linear(3, 2).double()

        def forward(self, x):  # first runs before second
            return torch.cat([self.first(x), self.second(x)], 1).tanh().sum(1)

    net, x = Net(), torch.randn(2, 3, dtype=torch.float64)
    swapped = integrad.integrated_gradients(net, x, layer=[net.second, net.first])
    ordered = integrad.integrated_gradients(net, x, layer=[net.first, net.second])
    assert [tuple(a.shape) for a in swapped.attributions] == [(2, 2), (2, 4)]
    assert torch.equal(swapped.attributions[0], ordered.attributions[1])
    assert torch.equal(swapped.attributions[1], ordered.attributions[0])
