"""Baselines: shapes, seeds, blur properties against a slow oracle, averaging and completeness."""

import math

import numpy as np
import pytest
import torch

import integrad
from integrad import baselines as B
from conftest import mlp


def images(dtype=torch.float64, shape=(2, 3, 9, 11), seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


ALL = {
    "zero": lambda x: B.zero(x),
    "constant": lambda x: B.constant(x, 0.5),
    "constant_per_channel": lambda x: B.constant(x, torch.tensor([0.1, 0.2, 0.3])),
    "uniform": lambda x: B.uniform(x, seed=1),
    "gaussian": lambda x: B.gaussian(x, 0.2, seed=1),
    "blurred": lambda x: B.blurred(x, 1.5),
    "max_distance": lambda x: B.max_distance(x, 0.0, 1.0),
}
RANDOM = {
    "uniform": lambda x, s: B.uniform(x, -1.0, 2.0, seed=s),
    "gaussian": lambda x, s: B.gaussian(x, 0.3, seed=s),
    "from_data": lambda x, s: B.from_data(x, 2, seed=s),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(ALL))
def test_baseline_keeps_shape_dtype_and_device(name, dtype):
    x = images(dtype)
    b = ALL[name](x)
    assert b.shape == x.shape and b.dtype == dtype and b.device == x.device
    assert torch.isfinite(b).all()


@pytest.mark.parametrize("name", list(RANDOM))
def test_random_baseline_same_seed_same_tensor_other_seed_other_tensor(name):
    x = images(shape=(6, 3, 5, 5))
    assert torch.equal(RANDOM[name](x, 7), RANDOM[name](x, 7))
    assert not torch.equal(RANDOM[name](x, 7), RANDOM[name](x, 8))


@pytest.mark.parametrize("name", list(RANDOM))
def test_random_baseline_leaves_global_rng_alone(name):
    x = images(shape=(6, 3, 5, 5))
    state = torch.get_rng_state()
    RANDOM[name](x, 3)
    assert torch.equal(state, torch.get_rng_state())


def test_random_baseline_accepts_a_generator():
    x = images()
    a = B.uniform(x, seed=torch.Generator().manual_seed(5))
    assert torch.equal(a, B.uniform(x, seed=5))


def test_uniform_within_bounds_and_gaussian_has_requested_spread():
    x = images(shape=(20, 3, 32, 32))
    u = B.uniform(x, -2.0, 3.0, seed=0)
    assert u.min() >= -2.0 and u.max() < 3.0
    noise = B.gaussian(x, 0.25, seed=0) - x
    assert abs(noise.std().item() - 0.25) < 0.005 and abs(noise.mean().item()) < 0.005


def test_constant_per_channel_value():
    x = images()
    b = B.constant(x, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    assert torch.equal(b[:, 1], torch.full_like(b[:, 1], 0.2))
    assert torch.equal(B.constant(x, 0.5), torch.full_like(x, 0.5))


def test_max_distance_picks_the_farther_bound_ties_to_low():
    x = torch.tensor([[0.1, 0.9, 0.5, 0.0, 1.0]], dtype=torch.float64)
    assert B.max_distance(x, 0.0, 1.0).tolist() == [[1.0, 0.0, 0.0, 1.0, 0.0]]
    hi = torch.tensor([1.0, 1.0, 4.0, 1.0, 1.0], dtype=torch.float64)
    assert B.max_distance(x, 0.0, hi).tolist() == [[1.0, 0.0, 4.0, 1.0, 0.0]]


def test_from_data_draws_distinct_rows_of_the_reference():
    ref = torch.arange(10, dtype=torch.float64).view(10, 1).expand(10, 4).contiguous()
    b = B.from_data(ref, 6, seed=0)
    assert b.shape == (6, 4)
    rows = b[:, 0].tolist()
    assert len(set(rows)) == 6 and set(rows) <= set(range(10))
    assert torch.equal(b, ref[b[:, 0].long()])


# ---------------------------------------------------------------------------- blur
def slow_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur following the definition: a 2-d weighted sum over reflected neighbours."""
    h, w = img.shape
    r = math.ceil(4 * sigma)
    t = np.arange(-r, r + 1)
    k = np.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()

    def reflect(i, n):
        return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)

    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            out[i, j] = sum(k[a + r] * k[b + r] * img[reflect(i + a, h), reflect(j + b, w)]
                            for a in t for b in t)
    return out


def test_blur_matches_slow_definition():
    x = images(shape=(1, 2, 11, 12))
    got = B.blurred(x, 1.2)
    for c in range(2):
        np.testing.assert_allclose(got[0, c].numpy(), slow_blur(x[0, c].numpy(), 1.2), rtol=0, atol=1e-12)


def test_blur_preserves_a_constant_image():
    x = torch.full((2, 3, 10, 13), 0.37, dtype=torch.float64)
    assert torch.allclose(B.blurred(x, 2.5), x, atol=1e-14, rtol=0)
    # even when the kernel is cut to fit a small image
    assert torch.allclose(B.blurred(x, 50.0), x, atol=1e-14, rtol=0)


def test_blur_with_vanishing_sigma_is_identity():
    x = images()
    assert torch.equal(B.blurred(x, 0.0), x)
    assert torch.allclose(B.blurred(x, 1e-3), x, atol=1e-12, rtol=0)


def test_blur_preserves_the_sum_of_an_image_away_from_its_border():
    x = torch.zeros(1, 3, 32, 32, dtype=torch.float64)
    x[..., 14:18, 13:19] = images(shape=(1, 3, 4, 6))
    y = B.blurred(x, 1.5)  # radius 6: mass stays inside the image
    assert torch.allclose(y.sum((2, 3)), x.sum((2, 3)), atol=1e-12, rtol=0)
    assert y[..., 8:24, 7:25].sum().item() == pytest.approx(x.sum().item(), abs=1e-12)


def test_blur_treats_channels_and_batch_independently_and_takes_one_image():
    x = images(shape=(2, 3, 8, 8))
    y = B.blurred(x, 1.0)
    assert torch.allclose(B.blurred(x[1, 2:3], 1.0), y[1, 2:3], atol=1e-14)
    assert B.blurred(x[0], 1.0).shape == (3, 8, 8)


# ---------------------------------------------------------------------------- averaging
def test_averaged_over_baselines_keeps_completeness_against_the_mean():
    net = mlp([6, 16, 16, 3], act=torch.nn.Tanh)
    x = images(shape=(4, 6))
    bases = [0.0, B.constant(x, 0.5), B.uniform(x, seed=2)]
    res = B.averaged(net, x, bases, target=1, n_steps=32)
    f_b = torch.stack([net(torch.broadcast_to(torch.as_tensor(b, dtype=torch.float64), x.shape))[:, 1]
                       for b in bases]).mean(0)
    assert torch.allclose(res.f_baseline, f_b, atol=1e-12)
    assert torch.allclose(res.total, (res.f_x - f_b).double(), atol=1e-9)
    assert res.delta.abs().max() < 1e-9
    assert res.n_evals.tolist() == [3 * 32] * 4
    assert res.settings["n_baselines"] == 3


def test_averaged_is_the_mean_of_single_runs():
    net = mlp([5, 8, 2], act=torch.nn.Softplus)
    x = images(shape=(3, 5))
    bases = B.from_data(images(shape=(10, 5), seed=1), 4, seed=0)
    res = B.averaged(net, x, bases, target=0, n_steps=8)
    singles = [integrad.integrated_gradients(net, x, baseline=b, target=0, n_steps=8) for b in bases]
    assert torch.allclose(res.attributions, torch.stack([s.attributions for s in singles]).mean(0), atol=1e-14)
    assert torch.allclose(res.delta, torch.stack([s.delta for s in singles]).mean(0), atol=1e-14)


def test_averaged_with_per_example_targets_extra_arguments_and_rtol():
    net = mlp([5, 8, 3], act=torch.nn.Tanh)
    x = images(shape=(3, 5))
    scale = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    model = lambda z, s: net(z) * s[:, None]
    bases = [0.0, B.uniform(x, seed=3)]
    for kw in ({"n_steps": 8}, {"rtol": 1e-6}):
        res = B.averaged(model, x, bases, target=[0, 2, 1], forward_args=(scale,), **kw)
        singles = [integrad.integrated_gradients(model, x, baseline=b, target=[0, 2, 1], forward_args=(scale,), **kw)
                   for b in bases]
        assert torch.allclose(res.attributions, torch.stack([s.attributions for s in singles]).mean(0), atol=1e-12)
        assert res.n_evals.tolist() == (singles[0].n_evals + singles[1].n_evals).tolist()
    assert res.converged.all() and (res.error < 1e-5).all()


def test_averaged_linear_model_closed_form():
    w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    x = torch.tensor([[1.0, 1.0, 1.0], [0.5, 2.0, -1.0]], dtype=torch.float64)
    bases = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype=torch.float64)
    res = B.averaged(lambda z: z @ w, x, bases, n_steps=2)
    assert torch.allclose(res.attributions, w * (x - bases.mean(0)), atol=1e-14)


def test_averaged_rejects_baseline_keyword_and_empty_lists():
    net = mlp([3, 2])
    x = images(shape=(1, 3))
    with pytest.raises(TypeError, match="baseline"):
        B.averaged(net, x, [0.0], baseline=1.0)
    with pytest.raises(TypeError, match="baselines: .*empty"):
        B.averaged(net, x, [])
    with pytest.raises(ValueError, match=r"baselines: .*\(K, \.\.\.\)"):
        B.averaged(net, x, torch.zeros(0, 3))


# ---------------------------------------------------------------------------- neutral?
def test_baseline_report_uniform_prediction_is_neutral():
    model = lambda z: torch.zeros(z.shape[0], 10)  # noqa: E731
    r = B.baseline_report(model, torch.zeros(2, 4), target=3)
    assert r.max_probability == pytest.approx([0.1, 0.1])
    assert r.entropy_ratio == pytest.approx([1.0, 1.0])
    assert r.neutral == [True, True] and r.f_baseline == [0.0, 0.0]


def test_baseline_report_confident_prediction_is_not_neutral():
    model = lambda z: torch.tensor([[10.0, 0.0, 0.0, 0.0]]).expand(z.shape[0], 4)  # noqa: E731
    r = B.baseline_report(model, torch.zeros(1, 4))
    assert r.top_class == [0] and r.max_probability[0] > 0.99
    assert r.entropy_ratio[0] < 0.05 and r.neutral == [False]


def test_baseline_report_single_logit_reads_as_binary():
    r = B.baseline_report(lambda z: torch.zeros(z.shape[0], 1), torch.zeros(3, 2))
    assert r.entropy_ratio == pytest.approx([1.0] * 3) and r.max_probability == pytest.approx([0.5] * 3)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, exc, pattern", [
    (lambda x: B.zero([1.0, 2.0]), TypeError, "x: expected a torch.Tensor; got list"),
    (lambda x: B.zero(x.long()), TypeError, "x: expected a floating point tensor; got dtype torch.int64"),
    (lambda x: B.constant(x, float("nan")), TypeError, "value: expected a finite number"),
    (lambda x: B.constant(x, torch.ones(4)), ValueError, r"value: shape \(4\) neither broadcasts"),
    (lambda x: B.uniform(x, 1.0, 0.0), ValueError, "low, high: expected numbers with low < high"),
    (lambda x: B.uniform(x, seed=1.5), TypeError, "seed: expected an int or a torch.Generator; got float"),
    (lambda x: B.gaussian(x, -1.0), ValueError, "sigma: expected a finite number >= 0; got -1.0"),
    (lambda x: B.blurred(x, float("inf")), ValueError, "sigma: expected a finite number >= 0"),
    (lambda x: B.blurred(x[0, 0, 0], 1.0), ValueError,
     r"x: expected images of shape \(\.\.\., H, W\); got shape \(11\)"),
    (lambda x: B.max_distance(x, 1.0, 0.0), ValueError, "low, high: expected low <= high"),
    (lambda x: B.max_distance(x, 0.0, torch.ones(5)), ValueError,
     r"low, high: shapes \(\) and \(5\) do not broadcast"),
    (lambda x: B.from_data(x, 3), ValueError, r"k: expected an int in 1\.\.2 \(rows of reference\); got 3"),
    (lambda x: B.baseline_report(lambda z: z.flatten(1), x, target=10**6), ValueError,
     "target: expected a class index"),
])
def test_bad_arguments_name_argument_expected_and_received(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call(images())
