"""The IG axioms as property tests on small random networks (float64, seeded)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import integrad
from conftest import mlp

SETTINGS = settings(max_examples=20, deadline=None)
seeds = st.integers(0, 2**16)
widths = st.integers(2, 6)


def rand(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@SETTINGS
@given(seed=seeds, d=widths)
def test_completeness_smooth_network(seed, d):
    net = mlp([d, 16, 16, 3], act=torch.nn.Softplus, seed=seed)
    x, b = rand(seed, 4, d), rand(seed + 1, d)
    res = integrad.integrated_gradients(net, x, baseline=b, target=2, n_steps=64)
    assert (res.delta.abs() <= 1e-9 * (1 + (res.f_x - res.f_baseline).abs())).all()
    torch.testing.assert_close(res.f_x, net(x)[:, 2])
    torch.testing.assert_close(res.f_baseline, net(b[None])[:, 2].expand(4))


@SETTINGS
@given(seed=seeds, d=widths, i=st.integers(0, 5))
def test_sensitivity_single_differing_feature(seed, d, i):
    # Input and baseline differ in one feature only and the outputs differ: that feature gets
    # all of F(x) - F(x'), every other feature exactly 0.
    i = i % d
    net = mlp([d, 8, 1], act=torch.nn.Tanh, seed=seed)
    b = rand(seed, 1, d)
    x = b.clone()
    x[0, i] += 1.5
    res = integrad.integrated_gradients(net, x, baseline=b, n_steps=64)
    change = (res.f_x - res.f_baseline).item()
    if abs(change) > 1e-6:
        assert abs(res.attributions[0, i].item()) > 0
        assert abs(res.attributions[0, i].item() - change) < 1e-9
    others = torch.cat([res.attributions[0, :i], res.attributions[0, i + 1:]])
    assert (others == 0).all()


@SETTINGS
@given(seed=seeds, d=widths)
def test_dummy_feature_gets_zero(seed, d):
    net = mlp([d + 1, 8, 1], act=torch.nn.ReLU, seed=seed)
    with torch.no_grad():
        net[0].weight[:, d] = 0.0  # the network ignores the last feature
    res = integrad.integrated_gradients(net, rand(seed, 3, d + 1), baseline=rand(seed + 2, d + 1))
    assert (res.attributions[:, d] == 0).all()


@SETTINGS
@given(seed=seeds, d=widths, a=st.floats(-3, 3), c=st.floats(-3, 3))
def test_linearity(seed, d, a, c):
    f1 = mlp([d, 8, 1], act=torch.nn.Tanh, seed=seed)
    f2 = mlp([d, 8, 1], act=torch.nn.ReLU, seed=seed + 1)
    x, b = rand(seed, 3, d), rand(seed + 3, d)
    ig = lambda f: integrad.integrated_gradients(f, x, baseline=b, n_steps=32).attributions
    combo = ig(lambda z: a * f1(z) + c * f2(z))
    torch.testing.assert_close(combo, a * ig(f1) + c * ig(f2), atol=1e-12, rtol=1e-10)


@SETTINGS
@given(seed=seeds, d=widths)
def test_symmetry_preservation(seed, d):
    # F symmetric in features 0 and 1 (it sees only their sum and product); with x0 = x1 and
    # b0 = b1 the two features get identical attributions.
    g = mlp([d, 8, 1], act=torch.nn.Tanh, seed=seed)

    def f(z):
        sym = torch.stack([z[:, 0] + z[:, 1], z[:, 0] * z[:, 1]], 1)
        return g(torch.cat([sym, z[:, 2:]], 1) if d > 2 else sym[:, :d])

    x, b = rand(seed, 2, d), rand(seed + 5, d)
    x[:, 1], b[1] = x[:, 0], b[0]
    res = integrad.integrated_gradients(f, x, baseline=b, n_steps=32)
    torch.testing.assert_close(res.attributions[:, 0], res.attributions[:, 1], atol=1e-13, rtol=0)


@SETTINGS
@given(seed=seeds, d=widths, scale=st.floats(0.1, 10))
def test_implementation_invariance(seed, d, scale):
    # net2 permutes net1's hidden ReLU units and rescales them by a positive factor
    # (ReLU(c z) / c = ReLU(z)): a different network computing the same function.
    net1 = mlp([d, 12, 2], act=torch.nn.ReLU, seed=seed)
    net2 = mlp([d, 12, 2], act=torch.nn.ReLU, seed=seed + 99)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        net2[0].weight.copy_(net1[0].weight[perm] * scale)
        net2[0].bias.copy_(net1[0].bias[perm] * scale)
        net2[2].weight.copy_(net1[2].weight[:, perm] / scale)
        net2[2].bias.copy_(net1[2].bias)
    x, b = rand(seed, 3, d), rand(seed + 7, d)
    r1 = integrad.integrated_gradients(net1, x, baseline=b, target=1)
    r2 = integrad.integrated_gradients(net2, x, baseline=b, target=1)
    torch.testing.assert_close(r1.attributions, r2.attributions, atol=1e-10, rtol=1e-9)
