"""IDGI: the important-direction weighting, against its formula and closed forms, on three paths."""

import pytest
import torch

import integrad
from integrad.paths import BlurPath


def tanh_mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double().eval()


def test_linear_model_splits_the_output_change_by_squared_weights():
    w = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)
    x, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    res = integrad.idgi(lambda z: z @ w, x, baseline=b, n_steps=7)
    expected = (w ** 2 / (w ** 2).sum()) * ((x - b) @ w)[:, None]
    torch.testing.assert_close(res.attributions, expected, rtol=0, atol=1e-14)


def test_matches_the_formula_evaluated_point_by_point():
    net, x = tanh_mlp(), torch.randn(2, 6, dtype=torch.float64)
    n = 12
    res = integrad.idgi(net, x, target=2, n_steps=n)
    for e in range(2):
        want = torch.zeros(6, dtype=torch.float64)
        share = f_prev = None
        for j in range(n + 1):
            z = (j / n * x[e]).requires_grad_(True)
            f = net(z[None])[0, 2]
            (g,) = torch.autograd.grad(f, z)
            if f_prev is not None:
                want += share * (f.item() - f_prev)
            share, f_prev = g ** 2 / (g ** 2).sum(), f.item()
        torch.testing.assert_close(res.attributions[e], want, rtol=0, atol=1e-14)


def test_complete_by_construction_and_the_same_in_any_block_size():
    net, x = tanh_mlp(1), torch.randn(5, 6, dtype=torch.float64)
    a = integrad.idgi(net, x, target=0, n_steps=30)
    b = integrad.idgi(net, x, target=0, n_steps=30, batch_size=7)
    assert a.delta.abs().max() < 1e-14
    torch.testing.assert_close(a.attributions, b.attributions, rtol=0, atol=1e-15)
    assert a.n_evals.tolist() == [31] * 5 and a.error is None


def test_guided_ig_with_max_dist_zero_and_idgi_is_idgi_on_the_straight_line():
    net, x = tanh_mlp(2), torch.randn(3, 6, dtype=torch.float64)
    straight = integrad.idgi(net, x, target=1, n_steps=40)
    guided = integrad.guided_ig(net, x, target=1, n_steps=40, max_dist=0.0, rule="idgi")
    torch.testing.assert_close(guided.attributions, straight.attributions, rtol=0, atol=1e-14)
    free = integrad.guided_ig(net, x, target=1, n_steps=40, max_dist=1.0, rule="idgi")
    assert free.delta.abs().max() < 1e-13


def test_on_the_blur_path():
    torch.manual_seed(3)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Softplus(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 64, 2)).double().eval()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    res = integrad.idgi(cnn, x, target=0, path=BlurPath(3.0), n_steps=20)
    blur = integrad.blur_ig(cnn, x, max_sigma=3.0, target=0, n_steps=20)
    torch.testing.assert_close(res.f_baseline, blur.f_baseline)  # the same path: from the blurred image
    assert res.delta.abs().max() < 1e-13 and res.settings["path"] == "blur (max_sigma=3)"


@pytest.mark.parametrize("kwargs, error, words", [
    ({"n_steps": 0}, ValueError, "n_steps: expected an int >= 1"),
    ({"path": "blur"}, TypeError, "path: expected a callable"),
])
def test_bad_settings(kwargs, error, words):
    with pytest.raises(error, match=words):
        integrad.idgi(tanh_mlp(), torch.randn(2, 6, dtype=torch.float64), target=0, **kwargs)
