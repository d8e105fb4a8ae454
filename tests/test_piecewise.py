"""method='piecewise': exact IG for piecewise-linear models, checked against closed forms."""


import pytest
import torch

import integrad
from conftest import Counting, mlp
from test_closed_forms import relu_net_exact_ig


def one_hidden_layer(seed, outputs=1):
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(24, 5, generator=g, dtype=torch.float64)
    b1 = torch.randn(24, generator=g, dtype=torch.float64)
    w2 = torch.randn(outputs, 24, generator=g, dtype=torch.float64)
    x = torch.randn(5, generator=g, dtype=torch.float64) * 2
    return w1, b1, w2, x


def test_saturating_kink_is_exact_in_two_pieces():
    # F(x) = 1 - ReLU(1 - x) at x = 2.7: one kink at alpha = 1/2.7
    x = torch.tensor([[2.7]], dtype=torch.float64)
    res = integrad.integrated_gradients(lambda z: 1 - torch.relu(1 - z), x, target=0, method="piecewise")
    assert abs(res.attributions.item() - 1.0) < 1e-13
    assert res.n_evals.item() == 2 and res.converged.item()
    kink = res.path_alphas[0][1].item()
    assert abs(kink - 1 / 2.7) < 1e-12


def test_linear_model_is_one_piece():
    w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    x = torch.tensor([[0.5, 1.5, -2.0]], dtype=torch.float64)
    res = integrad.integrated_gradients(lambda z: z @ w, x, baseline=0.25, method="piecewise")
    torch.testing.assert_close(res.attributions[0], w * (x[0] - 0.25), rtol=0, atol=1e-15)
    assert res.n_evals.item() == 1


@pytest.mark.parametrize("seed", range(5))
def test_relu_network_matches_the_analytic_kinks(seed):
    w1, b1, w2, x = one_hidden_layer(seed)
    base = torch.zeros(5, dtype=torch.float64)
    exact = relu_net_exact_ig(w1, b1, w2[0], x, base)
    res = integrad.integrated_gradients(lambda z: torch.relu(z @ w1.T + b1) @ w2[0], x[None], method="piecewise")
    torch.testing.assert_close(res.attributions[0], exact, rtol=1e-12, atol=1e-12)
    a, s = w1 @ base + b1, w1 @ (x - base)
    kinks = {round(float(k), 9) for k in (-a / s) if 0 < k < 1}
    assert res.n_evals.item() == len(kinks) + 1


def softmax_reference(w1, b1, w2, x, cls):
    """IG of softmax(w2 relu(w1 z + b1))[cls] from zero: GL-64 on each piece between the analytic kinks."""
    a, s = b1, w1 @ x
    cuts = [0.0, *sorted(float(k) for k in (-a / s) if 0 < k < 1), 1.0]
    nodes, weights = (torch.tensor(v, dtype=torch.float64) for v in
                      (integrad.rule("gausslegendre", 64).nodes, integrad.rule("gausslegendre", 64).weights))
    total = torch.zeros_like(x)
    for lo, hi in zip(cuts, cuts[1:]):
        for t, wt in zip(lo + (hi - lo) * nodes, (hi - lo) * weights):
            z = (t * x).requires_grad_(True)
            (g,) = torch.autograd.grad(torch.softmax(w2 @ torch.relu(w1 @ z + b1), 0)[cls], z)
            total += wt * g
    return x * total


def test_softmax_head_is_integrated_to_rounding():
    w1, b1, w2, x = one_hidden_layer(7, outputs=3)
    for cls in range(3):
        ref = softmax_reference(w1, b1, w2, x, cls)
        res = integrad.integrated_gradients(lambda z: torch.relu(z @ w1.T + b1) @ w2.T, x[None], target=cls,
                                            head=lambda out: out.softmax(-1), method="piecewise")
        torch.testing.assert_close(res.attributions[0], ref, rtol=1e-11, atol=1e-13)
        assert abs(res.delta.item()) < 1e-13


def deep_net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                               torch.nn.LeakyReLU(0.1), torch.nn.Linear(32, 32), torch.nn.ReLU6(),
                               torch.nn.Linear(32, 3)).double().eval()


def patterns_on_grid(net, x, base, n):
    """Activation-pattern changes seen on an n-point grid along the path (a lower bound on kinks)."""
    alphas = torch.linspace(0, 1, n, dtype=torch.float64)[1:-1]
    acts = []
    hooks = [m.register_forward_hook(lambda m, i, o: acts.append(
        torch.stack([i[0] > 0, i[0] > 6]) if isinstance(m, torch.nn.ReLU6) else (i[0] > 0)[None]))
        for m in net if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.ReLU6))]
    with torch.no_grad():
        net(base + alphas[:, None] * (x - base))
    for h in hooks:
        h.remove()
    pattern = torch.cat([a.permute(1, 0, 2).flatten(1) for a in acts], 1)
    return int((pattern[1:] != pattern[:-1]).any(1).sum())


def test_deep_network_is_complete_and_agrees_with_fine_rules():
    net = deep_net()
    x = torch.randn(4, 6, dtype=torch.float64) * 2
    res = integrad.integrated_gradients(net, x, target=[0, 1, 2, 0], head=lambda o: o.softmax(-1),
                                        method="piecewise")
    assert res.converged.all()
    assert (res.delta.abs() <= 1e-13).all(), res.delta
    fine = integrad.integrated_gradients(net, x, target=[0, 1, 2, 0], head=lambda o: o.softmax(-1),
                                         method="riemann_middle", n_steps=1 << 14)
    rel = (res.attributions - fine.attributions).norm(dim=1) / res.attributions.norm(dim=1)
    assert (rel < 2e-4).all(), rel  # the fixed rule's own O(1/n) error
    for e in range(4):
        seen = patterns_on_grid(net, x[e], torch.zeros(6, dtype=torch.float64), 20001)
        assert seen + 1 <= res.n_evals[e] <= seen + 4, (seen, res.n_evals[e])


def test_batch_equals_each_example_alone():
    net = deep_net(1)
    x = torch.randn(3, 6, dtype=torch.float64) * 2
    together = integrad.integrated_gradients(net, x, target=1, method="piecewise")
    for i in range(3):
        alone = integrad.integrated_gradients(net, x[i:i + 1], target=1, method="piecewise")
        assert alone.n_evals.item() == together.n_evals[i].item()
        torch.testing.assert_close(alone.attributions[0], together.attributions[i], rtol=1e-13, atol=1e-15)


def test_layer_and_forward_kwargs():
    net = deep_net(2)
    x = torch.randn(2, 6, dtype=torch.float64)
    scale = torch.tensor([[1.0], [3.0]], dtype=torch.float64)

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, z, *, scale):
            return self.net(z) * scale

    model = Scaled()
    res = integrad.integrated_gradients(model, x, target=0, forward_kwargs={"scale": scale}, method="piecewise")
    assert (res.delta.abs() < 1e-13).all()
    plain = integrad.integrated_gradients(net, x, target=0, method="piecewise")
    torch.testing.assert_close(res.attributions, plain.attributions * scale, rtol=1e-12, atol=1e-14)
    layered = integrad.integrated_gradients(model, x, target=0, forward_kwargs={"scale": scale},
                                            layer=net[2], method="piecewise")
    assert layered.attributions.shape == (2, 32) and (layered.delta.abs() < 1e-13).all()


def test_trace_runs_from_baseline_to_input():
    net = deep_net(3)
    x = torch.randn(2, 6, dtype=torch.float64)
    res = integrad.integrated_gradients(net, x, target=2, head=lambda o: o.softmax(-1), method="piecewise")
    for e in range(2):
        keep = ~torch.isnan(res.path_alphas[e])
        a, v, s = res.path_alphas[e][keep], res.path_values[e][keep], res.path_slopes[e][keep]
        assert keep.sum() == res.n_evals[e] + 1  # each piece's start, and the end
        assert a[0] == 0 and a[-1] == 1 and (a.diff() > 0).all()
        assert abs(v[0] - res.f_baseline[e]) < 1e-12 and abs(v[-1] - res.f_x[e]) < 1e-12
        integral = ((s[1:] + s[:-1]) / 2 * a.diff()).sum()  # trapezoid on the trace
        assert abs(integral - (res.f_x[e] - res.f_baseline[e])) < 1e-3


def test_float32_model():
    net = deep_net(4).float()
    x = torch.randn(3, 6) * 2
    res = integrad.integrated_gradients(net, x, target=0, method="piecewise")
    ref = integrad.integrated_gradients(net.double(), x.double(), target=0, method="piecewise")
    assert res.attributions.dtype == torch.float32
    torch.testing.assert_close(res.attributions.double(), ref.attributions, rtol=1e-4, atol=1e-5)


def test_max_evals_exhausted_warns_and_reports():
    # one piece short: the early probe counts at most the crossings (pieces - 1), so it lets
    # the run start, and the run runs out of passes
    net = deep_net(5)
    x = torch.randn(1, 6, dtype=torch.float64) * 3
    pieces = int(integrad.integrated_gradients(net, x, target=0, method="piecewise").n_evals[0])
    with pytest.warns(UserWarning, match=rf"more than max_evals={pieces - 1} linear pieces"):
        res = integrad.integrated_gradients(net, x, target=0, method="piecewise", max_evals=pieces - 1)
    assert not res.converged.all() and (res.n_evals <= pieces - 1).all()


def test_far_too_many_pieces_refused_early():
    net = Counting(deep_net(5))
    x = torch.randn(2, 6, dtype=torch.float64) * 3
    with pytest.raises(ValueError, match=r"crosses at least \d+ kinks .* more than max_evals=3 linear pieces.*rtol="):
        integrad.integrated_gradients(net, x, target=0, method="piecewise", max_evals=3)
    assert net.calls < 10  # refused after the first passes and the probe, not after running out


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.att = torch.nn.MultiheadAttention(2, 1, batch_first=True)

    def forward(self, z):
        seq = z.view(-1, 3, 2)
        return self.att(seq, seq, seq, need_weights=False)[0].flatten(1)


@pytest.mark.parametrize("model,target,pattern", [
    (lambda: mlp([6, 8, 2], act=torch.nn.Tanh), 0, r"applies tanh to path-dependent values"),
    (lambda: torch.nn.Sequential(deep_net(), torch.nn.Softmax(-1)), 0, r"applies softmax .*head=lambda out"),
    (lambda: torch.nn.Sequential(torch.nn.Unflatten(1, (1, 2, 3)), torch.nn.MaxPool2d((2, 1)),
                                 torch.nn.Flatten(), torch.nn.Linear(3, 2)).double(), 0,
     r"calls max_pool2d on path-dependent values; its kinks cannot be located"),
    (lambda: Attention().double(), 0, r"applies multi_head_attention_forward to path-dependent values"),
    (lambda: (lambda z: (z * z).sum(1)), None, r"not piecewise linear along the path of example 0"),
    (lambda: (lambda z: torch.relu(z * z - 1).sum(1)), None, r"not piecewise linear along the path of example 0"),
])
def test_models_that_are_not_piecewise_linear_are_refused(model, target, pattern):
    x = torch.randn(2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match=pattern):
        integrad.integrated_gradients(model(), x, target=target, method="piecewise")


@pytest.mark.parametrize("kw,pattern", [
    ({"rtol": 1e-3}, r"method='piecewise' integrates each linear piece exactly .*drop rtol=0.001"),
    ({"n_steps": 8}, r"drop rtol=None and n_steps=8"),
    ({"max_evals": 0}, r"max_evals: expected an int >= 1 .*got 0"),
    ({"head": "softmax"}, r"head: expected a callable .*got str"),
])
def test_bad_arguments(kw, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        integrad.integrated_gradients(lambda z: z.sum(1), torch.ones(1, 2, dtype=torch.float64),
                                      method="piecewise", **kw)
