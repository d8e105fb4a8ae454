"""IG against integrals known in closed form (float64)."""

import math

import pytest
import torch

import integrad
from integrad import METHODS

ATOL = 1e-12


def steps(method):
    return 2 if method == "trapezoid" else 1


@pytest.mark.parametrize("method", METHODS)
def test_linear_model_exact_for_every_rule(method):
    w = torch.randn(6, dtype=torch.float64)
    x = torch.randn(4, 6, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    for n in (steps(method), 7, 50):
        res = integrad.integrated_gradients(lambda z: z @ w + 3.0, x, baseline=b, method=method, n_steps=n)
        torch.testing.assert_close(res.attributions, w * (x - b), atol=ATOL, rtol=0)
        assert res.delta.abs().max() < ATOL


def test_product_from_zero_baseline_splits_evenly():
    x = torch.tensor([[3.0, 5.0], [-2.0, 0.5]], dtype=torch.float64)
    res = integrad.integrated_gradients(lambda z: z[:, 0] * z[:, 1], x)
    half = (x[:, 0] * x[:, 1] / 2).unsqueeze(1).expand(-1, 2)
    torch.testing.assert_close(res.attributions, half, atol=ATOL, rtol=0)


def test_separable_function_attributes_each_term():
    # F = 5x + y^2 + sin z: each feature gets exactly its own term's change.
    def f(v):
        return 5 * v[:, 0] + v[:, 1] ** 2 + torch.sin(v[:, 2])

    x = torch.tensor([[1.0, 2.0, 3.0], [-0.5, 0.7, -2.0]], dtype=torch.float64)
    b = torch.tensor([0.2, -1.0, 0.5], dtype=torch.float64)
    res = integrad.integrated_gradients(f, x, baseline=b, n_steps=20)
    expected = torch.stack([5 * (x[:, 0] - b[0]), x[:, 1] ** 2 - b[1] ** 2, torch.sin(x[:, 2]) - math.sin(0.5)], 1)
    torch.testing.assert_close(res.attributions, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(res.f_x - res.f_baseline, expected.sum(1), atol=ATOL, rtol=0)


@pytest.mark.parametrize("method", METHODS)
def test_saturated_relu_gets_full_attribution(method):
    # F(x) = 1 - ReLU(1 - x) at x = 2: the gradient there is 0, yet IG attributes the whole
    # change F(2) - F(0) = 1 (the gradient is 1 on the first half of the path).
    x = torch.tensor([[2.0]], dtype=torch.float64)
    res = integrad.integrated_gradients(lambda z: 1 - torch.relu(1 - z[:, 0]), x, method=method, n_steps=64)
    # at most one node can sit on the wrong side of the kink: error <= weight x |x| = 2/n
    assert abs(res.attributions.item() - 1.0) <= 2 / 64 + 1e-12


def test_saturated_relu_exact_when_nodes_straddle_the_kink_evenly():
    # Midpoint nodes (k + 1/2)/50 put 25 nodes on each side of the kink at alpha = 1/2.
    x = torch.tensor([[2.0]], dtype=torch.float64)
    res = integrad.integrated_gradients(lambda z: 1 - torch.relu(1 - z[:, 0]), x, method="riemann_middle", n_steps=50)
    assert abs(res.attributions.item() - 1.0) < 1e-12
    assert abs(res.delta.item()) < 1e-12


def relu_net_exact_ig(w1, b1, w2, x, base):
    """Exact IG of x -> w2 . relu(w1 x + b1) along the line: integrate each linear piece.

    The pre-activations are affine in alpha, so each unit kinks at most once; between
    kinks the gradient is constant and its integral is (piece length) x (gradient).
    """
    d = x - base
    a, s = w1 @ base + b1, w1 @ d
    kinks = sorted({float(k) for k in (-a / s).tolist() if 0 < k < 1})
    cuts = [0.0, *kinks, 1.0]
    total = torch.zeros_like(x)
    for lo, hi in zip(cuts, cuts[1:]):
        mid = (lo + hi) / 2
        active = ((a + mid * s) > 0).to(x.dtype)
        total += (hi - lo) * (w2 * active) @ w1
    return d * total


def test_relu_network_converges_to_exact_piecewise_linear_reference():
    g = torch.Generator().manual_seed(3)
    w1 = torch.randn(32, 5, generator=g, dtype=torch.float64)
    b1 = torch.randn(32, generator=g, dtype=torch.float64)
    w2 = torch.randn(32, generator=g, dtype=torch.float64)
    x = torch.randn(5, generator=g, dtype=torch.float64)
    base = torch.zeros(5, dtype=torch.float64)
    exact = relu_net_exact_ig(w1, b1, w2, x, base)
    errors = []
    for n in (64, 256, 1024):
        res = integrad.integrated_gradients(lambda z: torch.relu(z @ w1.T + b1) @ w2, x[None], n_steps=n)
        errors.append((res.attributions[0] - exact).norm().item() / exact.norm().item())
    # Kinks limit every fixed rule to O(1/n): the error falls with n and is small at 1024.
    assert errors[0] > errors[2] and errors[2] < 5e-3, errors
    assert abs(exact.sum().item() - (torch.relu(w1 @ x + b1) @ w2 - torch.relu(b1) @ w2).item()) < 1e-12
