"""Error-controlled integration (rtol=): estimates that bound the truth, at few evaluations."""

import math

import pytest
import torch

import integrad

RTOL = 1e-3


def separable_case(seed):
    """A separable F(z) = sum_i f_i(z_i) whose IG is known exactly: f_i(x_i) - f_i(b_i).

    Each feature is a polynomial, a kink at a random point of the path, or a near-step
    sigmoid, so the integrands cover smooth, kinked and almost discontinuous shapes.
    """
    g = torch.Generator().manual_seed(seed)
    d = 4
    kinds = torch.randint(0, 3, (d,), generator=g).tolist()
    c = torch.rand(d, generator=g, dtype=torch.float64) * 0.8 + 0.1  # kink / step location on the path
    coef = torch.randn(d, 5, generator=g, dtype=torch.float64)
    sharp = 20 + 60 * torch.rand(d, generator=g, dtype=torch.float64)
    x = torch.ones(1, d, dtype=torch.float64)  # baseline 0, so z_i = alpha on the path

    def parts(z):
        out = []
        for i, k in enumerate(kinds):
            zi = z[:, i]
            if k == 0:
                out.append(sum(coef[i, p] * zi ** (p + 1) for p in range(5)))
            elif k == 1:
                out.append(coef[i, 0] * torch.relu(zi - c[i]) + coef[i, 1] * zi)
            else:
                out.append(coef[i, 0] * torch.sigmoid(sharp[i] * (zi - c[i])))
        return torch.stack(out, 1)

    f = lambda z: parts(z).sum(1)
    exact = (parts(x) - parts(torch.zeros_like(x)))[0]
    return f, x, exact


@pytest.mark.parametrize("rtol", [1e-2, RTOL])
def test_error_estimate_bounds_true_error_and_meets_rtol(rtol):
    bounded = met = 0
    n = 60
    for seed in range(n):
        f, x, exact = separable_case(seed)
        res = integrad.integrated_gradients(f, x, rtol=rtol)
        true_rel = ((res.attributions[0] - exact).norm() / exact.norm()).item()
        bounded += res.error.item() >= true_rel
        met += true_rel <= rtol
        assert res.converged.item()
    assert bounded >= 0.95 * n, bounded
    assert met >= 0.95 * n, met


def fixed_rule_needs(f, x, exact, rtol):
    needs = {}
    for m in integrad.METHODS:
        n = 2
        while n <= 1 << 14:
            a = integrad.integrated_gradients(f, x, method=m, n_steps=n).attributions
            if abs(a.item() - exact) <= rtol * abs(exact):
                break
            n *= 2
        needs[m] = n
    return needs


def test_saturating_kink_reaches_rtol_with_few_evaluations(record_property):
    # F(x) = 1 - ReLU(1 - x) at x = 2.7: the kink sits at alpha = 1/2.7 ~ 0.37, no dyadic point.
    f = lambda z: 1 - torch.relu(1 - z[:, 0])
    x = torch.tensor([[2.7]], dtype=torch.float64)
    res = integrad.integrated_gradients(f, x, rtol=RTOL)
    assert abs(res.attributions.item() - 1.0) <= RTOL
    assert res.converged.item()
    needs = fixed_rule_needs(f, x, 1.0, RTOL)
    record_property("adaptive_evals", int(res.n_evals.item()))
    record_property("fixed_rule_evals", needs)
    # the bar: at most a third of the cheapest fixed rule that reaches the accuracy
    assert res.n_evals.item() * 3 <= min(needs.values()), (res.n_evals.item(), needs)


def mlp(seed, act):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 32), act(), torch.nn.Linear(32, 32), act(),
                               torch.nn.Linear(32, 3), torch.nn.Softmax(-1)).double().eval()


def test_batch_equals_each_example_alone():
    net = mlp(1, torch.nn.ReLU)
    x = torch.randn(5, 6, dtype=torch.float64) * 2
    together = integrad.integrated_gradients(net, x, target=1, rtol=1e-3)
    for i in range(5):
        alone = integrad.integrated_gradients(net, x[i:i + 1], target=1, rtol=1e-3)
        assert alone.n_evals.item() == together.n_evals[i].item()
        torch.testing.assert_close(alone.attributions[0], together.attributions[i], atol=1e-13, rtol=1e-12)


def test_relu_network_reaches_tolerance_against_fine_reference():
    net = mlp(2, torch.nn.ReLU)
    x = torch.randn(4, 6, dtype=torch.float64) * 2
    ref = integrad.integrated_gradients(net, x, target=0, method="riemann_middle", n_steps=1 << 14).attributions
    res = integrad.integrated_gradients(net, x, target=0, rtol=1e-2)
    rel = (res.attributions - ref).norm(dim=1) / ref.norm(dim=1)
    assert (rel <= 1e-2).all() and res.converged.all()
    assert (res.error >= rel * 0.5).all()  # the estimate is of the right size, not wildly optimistic


def test_smooth_network_stops_early():
    net = mlp(3, torch.nn.Tanh)
    x = torch.randn(4, 6, dtype=torch.float64)
    res = integrad.integrated_gradients(net, x, target=0, rtol=1e-3)
    assert res.converged.all() and res.n_evals.max() <= 20
    # the contract is relative to the attribution vector (F(x) - F(x') may be far smaller
    # when attributions cancel); Gauss-Legendre 200 is exact to rounding on a tanh path
    ref = integrad.integrated_gradients(net, x, target=0, n_steps=200).attributions
    true = (res.attributions - ref).norm(dim=1) / ref.norm(dim=1)
    assert (true <= 1e-3).all() and (res.error >= true).all(), (true, res.error)
    assert (res.delta.abs() <= 1e-3 * res.attributions.abs().sum(1)).all()


def test_max_evals_exhausted_warns_and_reports():
    net = mlp(4, torch.nn.ReLU)
    x = torch.randn(3, 6, dtype=torch.float64) * 3
    with pytest.warns(UserWarning, match=r"did not reach the tolerance within max_evals=9"):
        res = integrad.integrated_gradients(net, x, target=0, rtol=1e-6, max_evals=9)
    assert not res.converged.all() and (res.n_evals <= 9).all()
    assert "tolerance met" in repr(res)


def test_trace_comes_from_the_evaluations_made():
    net = mlp(5, torch.nn.Tanh)
    x = torch.randn(2, 6, dtype=torch.float64)
    for kw in ({"rtol": 1e-4}, {"method": "trapezoid", "n_steps": 65}):
        res = integrad.integrated_gradients(net, x, target=2, **kw)
        for e in range(2):
            keep = ~torch.isnan(res.path_alphas[e])
            a, v, s = res.path_alphas[e][keep], res.path_values[e][keep], res.path_slopes[e][keep]
            assert keep.sum() == res.n_evals[e]
            assert a[0] == 0 and a[-1] == 1 and (a.diff() > 0).all()
            assert abs(v[0] - res.f_baseline[e]) < 1e-12 and abs(v[-1] - res.f_x[e]) < 1e-12
            # the slope integrates to F(x) - F(baseline) (trapezoid on the trace)
            integral = ((s[1:] + s[:-1]) / 2 * a.diff()).sum()
            assert abs(integral - (res.f_x[e] - res.f_baseline[e])) < 1e-3


@pytest.mark.parametrize("kw,pattern", [
    ({"rtol": 1e-3, "n_steps": 50}, r"rtol: error-controlled integration chooses its own points; drop"),
    ({"rtol": 1e-3, "method": "trapezoid"}, r"drop method='trapezoid'"),
    ({"rtol": -1.0}, r"rtol: expected a finite number >= 0; got -1.0"),
    ({"rtol": 0.0}, r"rtol=0 with atol=0 can never be met"),
    ({"rtol": 1e-3, "atol": math.nan}, r"atol: expected a finite number >= 0; got nan"),
    ({"rtol": 1e-3, "max_evals": 3}, r"max_evals: expected an int >= 5 .*got 3"),
])
def test_bad_tolerance_arguments(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        integrad.integrated_gradients(lambda z: z.sum(1), torch.ones(1, 2, dtype=torch.float64), **kw)
