"""Paths other than the straight line: the plug-in protocol, Blur IG, against closed forms and PAIR saliency."""

import numpy as np
import pytest
import torch

import integrad
from integrad.paths import BlurPath, _blur, straight


def tanh_mlp(seed=0, d=5, out=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.Tanh(), torch.nn.Linear(16, out)).double().eval()


def small_cnn(seed=0, act=torch.nn.Softplus):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), act(), torch.nn.Conv2d(6, 6, 3, padding=1), act(),
                               torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(24, 4)).double().eval()


def bowed(c):
    """A curved path from b to x: b + alpha (x - b) + alpha (1 - alpha) c (c: a fixed bend)."""
    def path(x, b, a):
        a = a.view(*a.shape, *[1] * (x.dim() - 1))
        d, bend = (x - b)[:, None], c.view(1, 1, *c.shape)
        return b[:, None] + a * d + a * (1 - a) * bend, d + (1 - 2 * a) * bend
    return path


# ---------------------------------------------------------------------------- the protocol
def test_straight_plug_in_equals_ig_with_fixed_rules_rtol_and_several_targets():
    net, x = tanh_mlp(), torch.randn(4, 5, dtype=torch.float64)
    for kw in ({"target": 1, "n_steps": 16}, {"target": 1, "rtol": 1e-6}, {"targets": [0, 2], "n_steps": 8}):
        ig = integrad.integrated_gradients(net, x, **kw)
        along = integrad.integrated_gradients(net, x, path=straight, **kw)
        torch.testing.assert_close(along.attributions, ig.attributions, rtol=0, atol=1e-14)
        torch.testing.assert_close(along.delta, ig.delta, rtol=0, atol=1e-14)
        assert torch.equal(along.n_evals, ig.n_evals)
    assert along.settings["path"] == "straight"


def test_any_path_of_a_separable_quadratic_gives_x_squared_minus_b_squared():
    # F = sum z_i^2: phi_i = x_i^2 - b_i^2 along every path from b to x (the integrand of the
    # bowed path is a cubic polynomial in alpha: Gauss-Legendre with 2 nodes is exact)
    x, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    c = torch.tensor([3.0, -2.0, 0.5, 7.0], dtype=torch.float64)
    res = integrad.integrated_gradients(lambda z: (z ** 2).sum(1), x, baseline=b, path=bowed(c), n_steps=2)
    torch.testing.assert_close(res.attributions, x ** 2 - b ** 2, rtol=0, atol=1e-12)
    assert res.delta.abs().max() < 1e-12


def test_a_curved_path_differs_from_the_straight_line_yet_is_complete():
    net, x = tanh_mlp(1), torch.randn(3, 5, dtype=torch.float64)
    c = torch.tensor([2.0, -1.0, 0.0, 1.5, -3.0], dtype=torch.float64)
    curved = integrad.integrated_gradients(net, x, target=0, path=bowed(c), n_steps=64)
    ig = integrad.integrated_gradients(net, x, target=0, n_steps=64)
    assert curved.delta.abs().max() < 1e-12
    torch.testing.assert_close(curved.f_x, ig.f_x)
    assert (curved.attributions - ig.attributions).abs().max() > 1e-2  # a different path, different shares
    # rtol on the curved path reaches the 64-node answer
    tight = integrad.integrated_gradients(net, x, target=0, path=bowed(c), rtol=1e-8)
    assert tight.converged.all()
    torch.testing.assert_close(tight.attributions, curved.attributions, rtol=0, atol=1e-7)


def test_the_same_path_reparametrised_gives_the_same_attributions():
    net, x = tanh_mlp(2), torch.randn(2, 5, dtype=torch.float64)

    def slow_start(x, b, a):  # the straight line at alpha^2
        a = a.view(*a.shape, 1)
        return b[:, None] + a ** 2 * (x - b)[:, None], 2 * a * (x - b)[:, None]

    ig = integrad.integrated_gradients(net, x, target=2, n_steps=32)
    re = integrad.integrated_gradients(net, x, target=2, path=slow_start, n_steps=32)
    torch.testing.assert_close(re.attributions, ig.attributions, rtol=0, atol=1e-12)


@pytest.mark.parametrize("path, kwargs, error, words", [
    (42, {}, TypeError, "path: expected a callable"),
    (lambda x, b, a: x, {}, TypeError, "path: expected a pair of tensors"),
    (lambda x, b, a: (x, x), {}, ValueError, "should have shape (4, 2, 5)"),
    (lambda x, b, a: (torch.zeros(*a.shape, 5, dtype=x.dtype),) * 2, {}, ValueError, "must end at the input"),
    (straight, {"method": "piecewise"}, ValueError, "piecewise"),
    (straight, {"multiply_by_inputs": False}, ValueError, "multiply_by_inputs"),
])
def test_bad_paths_get_clear_errors(path, kwargs, error, words):
    net, x = tanh_mlp(), torch.randn(4, 5, dtype=torch.float64)
    with pytest.raises(error) as info:
        integrad.integrated_gradients(net, x, target=0, path=path, **kwargs)
    assert words in str(info.value)


def test_a_path_takes_one_input_tensor_and_no_layer():
    net = tanh_mlp()
    two = lambda a, b: net(torch.cat([a, b], 1))  # noqa: E731
    with pytest.raises(ValueError, match="path: a path takes one input tensor; got 2 inputs"):
        integrad.integrated_gradients(two, (torch.randn(2, 2).double(), torch.randn(2, 3).double()), target=0,
                                      path=straight)
    with pytest.raises(ValueError, match="drop layer="):
        integrad.integrated_gradients(net, torch.randn(2, 5).double(), target=0, path=straight, layer=net[0])


# ---------------------------------------------------------------------------- Blur IG
def test_blur_matches_scipy_with_the_same_radius_and_its_velocity_is_exact():
    ndimage = pytest.importorskip("scipy.ndimage")
    torch.manual_seed(0)
    x = torch.rand(2, 3, 12, 10, dtype=torch.float64)
    path = BlurPath(5.0)
    for s in (0.3, 1.0, 3.7):
        z, dz = _blur(x, s, path.radius, (2, 3))
        ref = np.stack([ndimage.gaussian_filter(x[i].numpy(), sigma=[0, s, s], mode="constant",
                                                radius=[0, path.radius, path.radius]) for i in range(2)])
        np.testing.assert_allclose(z.numpy(), ref, rtol=0, atol=1e-14)
    for sqrt in (False, True):
        p = BlurPath(5.0, sqrt=sqrt)
        a = torch.tensor([[0.0, 0.3, 0.9, 1.0]], dtype=torch.float64).expand(2, 4)
        z, v = p(x, x, a)
        assert torch.equal(z[:, -1], x)  # ends at the image
        h = 1e-6
        fd = (p(x, x, a[:, :3] + h)[0] - p(x, x, a[:, :3] - h)[0]) / (2 * h)
        torch.testing.assert_close(v[:, :3], fd, rtol=0, atol=1e-7)


@pytest.mark.parametrize("sqrt", [False, True])
def test_blur_ig_is_complete_against_the_blurred_image_and_converges(sqrt):
    net, x = small_cnn(), torch.rand(2, 3, 12, 12, dtype=torch.float64)
    gaps = [integrad.blur_ig(net, x, max_sigma=4.0, sqrt=sqrt, target=1, n_steps=n).delta.abs().max().item()
            for n in (8, 32, 128)]
    assert gaps[2] < 1e-7 and gaps[2] < gaps[0]
    res = integrad.blur_ig(net, x, max_sigma=4.0, sqrt=sqrt, target=1, n_steps=128)
    blurred = BlurPath(4.0, sqrt=sqrt)(x, x, torch.zeros(2, 1, dtype=torch.float64))[0][:, 0]
    with torch.no_grad():
        torch.testing.assert_close(res.f_baseline, net(blurred)[:, 1])
    assert res.settings["path"].startswith("blur (max_sigma=4") and "blurred" in res.settings["baseline"]


def test_blur_ig_channels_last_equals_channels_first():
    net, x = small_cnn(1), torch.rand(2, 3, 10, 10, dtype=torch.float64)
    last = lambda z: net(z.permute(0, 3, 1, 2))  # noqa: E731
    a = integrad.blur_ig(net, x, max_sigma=3.0, target=0, n_steps=16).attributions
    b = integrad.blur_ig(last, x.permute(0, 2, 3, 1), max_sigma=3.0, dims=(1, 2), target=0, n_steps=16).attributions
    torch.testing.assert_close(b.permute(0, 3, 1, 2), a, rtol=0, atol=1e-13)


@pytest.mark.parametrize("kwargs, words", [
    ({"max_sigma": 0}, "max_sigma: expected a finite number > 0"),
    ({"max_sigma": float("inf")}, "max_sigma: expected a finite number > 0"),
    ({"dims": (1,)}, "dims: expected two axes"),
    ({"dims": (0, 1)}, "dims: expected two different spatial axes"),
])
def test_blur_ig_bad_settings(kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        integrad.blur_ig(small_cnn(), torch.rand(1, 3, 8, 8, dtype=torch.float64), target=0, n_steps=4, **kwargs)


def test_blur_ig_refuses_inputs_without_two_spatial_axes():
    with pytest.raises(ValueError, match=r"inputs: Blur IG blurs two spatial axes.*got shape \(2, 5\)"):
        integrad.blur_ig(tanh_mlp(), torch.randn(2, 5, dtype=torch.float64), target=0)


# ---------------------------------------------------------------------------- against PAIR saliency
def _saliency_blur_ig(net, x, target, radius, **kwargs):
    """saliency 0.2.1's Blur IG on one CHW image (it takes HWC), its blur given the same radius."""
    blur_mod = pytest.importorskip("saliency.core.blur_ig")
    from scipy import ndimage

    def call(batch, call_model_args=None, expected_keys=None):
        z = torch.tensor(np.asarray(batch)).permute(0, 3, 1, 2).requires_grad_(True)
        net(z)[:, target].sum().backward()
        return {blur_mod.INPUT_OUTPUT_GRADIENTS: z.grad.permute(0, 2, 3, 1).numpy()}

    same_radius = lambda image, sigma: image if sigma == 0 else ndimage.gaussian_filter(  # noqa: E731
        image, sigma=[sigma, sigma, 0], mode="constant", radius=[radius, radius, 0])
    old, blur_mod.gaussian_blur = blur_mod.gaussian_blur, same_radius
    try:
        out = blur_mod.BlurIG().GetMask(x.permute(1, 2, 0).numpy(), call, **kwargs)
    finally:
        blur_mod.gaussian_blur = old
    return torch.tensor(out).permute(2, 0, 1)


def test_blur_ig_equals_saliency_where_saliency_is_right():
    # saliency sums sigma_i = i * max_sigma / steps (i < steps), each times a forward
    # difference in sigma: integrad's right Riemann rule in alpha with the exact derivative
    net, x = small_cnn(2), torch.rand(2, 3, 10, 10, dtype=torch.float64)
    ours = integrad.blur_ig(net, x, max_sigma=4.0, target=3, method="riemann_right", n_steps=24).attributions
    r = BlurPath(4.0).radius
    for i in range(2):
        theirs = _saliency_blur_ig(net, x[i], 3, r, max_sigma=4.0, steps=24, grad_step=1e-7, batch_size=5)
        assert ((ours[i] - theirs).norm() / theirs.norm()).item() < 1e-5


def test_saliency_batched_sqrt_blur_ig_is_wrong_and_integrad_is_not():
    # saliency's sqrt spacing has unequal sigma steps, but a batch of steps is multiplied by
    # the *last* step's difference: with batch_size > 1 its answer moves away from the truth
    net, x = small_cnn(3), torch.rand(3, 10, 10, dtype=torch.float64)
    truth = integrad.blur_ig(net, x[None], max_sigma=2.0, sqrt=True, target=0, n_steps=256).attributions[0]
    r = BlurPath(2.0).radius
    kw = dict(max_sigma=4.0, steps=400, grad_step=1e-7, sqrt=True)  # saliency's max_sigma is sigma_max^2 there
    one = _saliency_blur_ig(net, x, 0, r, batch_size=1, **kw)
    batched = _saliency_blur_ig(net, x, 0, r, batch_size=50, **kw)
    err = lambda a: ((a - truth).norm() / truth.norm()).item()  # noqa: E731
    assert err(one) < 2e-2  # a first-order rule at 400 steps: right, to its discretisation
    assert err(batched) > 5 * err(one)  # the batching bug
    ours = integrad.blur_ig(net, x[None], max_sigma=2.0, sqrt=True, target=0, n_steps=64, batch_size=7).attributions[0]
    assert err(ours) < 1e-6  # block size never changes integrad's answer


# ---------------------------------------------------------------------------- the documented plug-in
def _documented_plug_in():
    """The coarse-to-fine path of docs/paths.md, run from the page itself."""
    import pathlib
    import re

    page = (pathlib.Path(__file__).parents[1] / "docs" / "paths.md").read_text(encoding="utf-8")
    code = re.search(r"## A worked plug-in.*?```python\n(.*?)```", page, re.S).group(1)
    scope = {}
    exec(compile(code, "docs/paths.md", "exec"), scope)  # noqa: S102 - our own documentation
    return scope["CoarseToFine"]


def test_the_documented_coarse_to_fine_path_works_end_to_end():
    CoarseToFine = _documented_plug_in()
    net = small_cnn(5)
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    path = CoarseToFine(stages=5)
    fine = integrad.integrated_gradients(net, x, target=1, path=path, n_steps=128)
    res = integrad.integrated_gradients(net, x, target=1, path=path, n_steps=32)
    change = (res.f_x - res.f_baseline).abs()
    assert (res.delta.abs() / change).max() < 1e-10
    true = (res.attributions - fine.attributions).flatten(1).norm(dim=1) / fine.attributions.flatten(1).norm(dim=1)
    assert (res.error >= true).all() and (true < 1e-9).all()
    assert res.settings["path"] == "coarse to fine (5 SVD stages)"
    with torch.no_grad():
        torch.testing.assert_close(res.f_baseline, net(torch.zeros_like(x))[:, 1])  # starts at the baseline
    tight = integrad.integrated_gradients(net, x, target=1, path=path, rtol=1e-6)
    true = (tight.attributions - fine.attributions).flatten(1).norm(dim=1) / fine.attributions.flatten(1).norm(dim=1)
    assert tight.converged.all() and (true <= 1e-6).all()
    ig = integrad.integrated_gradients(net, x, target=1, n_steps=32)
    apart = (res.attributions - ig.attributions).flatten(1).norm(dim=1) / ig.attributions.flatten(1).norm(dim=1)
    assert (apart > 0.02).all(), apart  # another path, other shares (4% apart here)


# ---------------------------------------------------------------------------- explain_image by name
def test_explain_image_runs_the_path_methods_by_name():
    from integrad.image import explain_image

    torch.manual_seed(6)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Softplus(), torch.nn.AdaptiveAvgPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(16, 5)).eval()
    image = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(6))
    blur = explain_image(net, image, method="blur_ig", n_steps=16)
    assert blur.result.settings["path"] == "blur (max_sigma=50)" and "blurred" in blur.baseline
    assert blur.result.n_evals.tolist() == [16]
    guided = explain_image(net, image, method="guided_ig", n_steps=20)
    assert guided.result.n_evals.tolist() == [21] and guided.baseline == "black"
    ig = explain_image(net, image, n_steps=16)
    assert guided.target == ig.target == blur.target  # all explain the predicted class, from their own start
    weighted = explain_image(net, image, method="idgi", n_steps=20)
    assert abs(weighted.delta) < 1e-5 * abs(weighted.f_x - weighted.f_baseline)
    assert "completeness gap" in weighted.accuracy


@pytest.mark.parametrize("kwargs, words", [
    ({"method": "blur_ig", "baseline": "grey"}, "baseline: Blur IG starts at the blurred image"),
    ({"method": "guided_ig", "rtol": 0.01}, "rtol: method='guided_ig' walks a fixed number of steps"),
    ({"method": "idgi", "smooth": 4}, "smooth: SmoothGrad averages IG on the straight line"),
])
def test_explain_image_path_methods_refuse_what_does_not_apply(kwargs, words):
    from integrad.image import explain_image

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    with pytest.raises(ValueError, match=words):
        explain_image(net, torch.rand(3, 8, 8), **kwargs)
