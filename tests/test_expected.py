"""Expected Gradients: exact on linear models, completeness in expectation, calibrated stderr, seeds."""

import pytest
import torch

import integrad
from conftest import Counting, mlp, randn

W = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)
SAMPLERS = ["sobol", "random"]
# Sobol's stderr comes from 8 replicates: a t distribution with 7 degrees of freedom, whose
# two-sided tail beyond this many standard errors is that of a normal beyond 4 (6.3e-5).
T7_AS_4_SIGMA = 8.45


def linear(x):
    return x @ W




def eg_expectation(model, x, refs, target=None):
    """The exact EG expectation: mean over all references of IG with 64-node Gauss-Legendre."""
    return sum(integrad.integrated_gradients(model, x, baseline=r, target=target, n_steps=64).attributions
               for r in refs) / refs.shape[0]


# ---------------------------------------------------------------- linear models: closed forms
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_identical_references_give_exact_ig_on_linear_model(sampler):
    x, r = randn(0, 3, 4), randn(1, 4)
    res = integrad.expected_gradients(linear, x, references=r.expand(5, 4).clone(), n_samples=16, sampler=sampler)
    assert (res.attributions - W * (x - r)).abs().max() <= 1e-12
    assert res.stderr.shape == res.attributions.shape
    assert (res.f_baseline - r @ W).abs().max() <= 1e-12
    assert res.delta.abs().max() <= 1e-12
    assert res.n_evals.tolist() == [16, 16, 16]


@pytest.mark.parametrize("sampler", [
    "sobol",
    "random",
])
def test_stderr_zero_when_every_sample_is_equal(sampler):
    x, r = randn(0, 3, 4), randn(1, 4)
    res = integrad.expected_gradients(linear, x, references=r.expand(5, 4).clone(), n_samples=16, sampler=sampler)
    assert res.stderr.abs().max() <= 1e-12 * res.attributions.abs().max()


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("n_samples", [1, 5, 64])
def test_completeness_exact_per_draw_on_linear_model(sampler, n_samples):
    x, refs = randn(0, 3, 4), randn(1, 7, 4)
    res = integrad.expected_gradients(linear, x, references=refs, n_samples=n_samples, sampler=sampler)
    assert (res.f_x - x @ W).abs().max() <= 1e-12
    assert (res.total - (res.f_x - res.f_baseline)).abs().max() <= 1e-12
    assert res.delta.abs().max() <= 1e-12
    # f_baseline is a mean of F over drawn references, so it lies within their range
    f_refs = refs @ W
    assert (res.f_baseline >= f_refs.min() - 1e-12).all() and (res.f_baseline <= f_refs.max() + 1e-12).all()


def test_one_sample_is_exact_ig_from_one_drawn_reference():
    x, refs = randn(0, 4, 4), randn(1, 7, 4)
    res = integrad.expected_gradients(linear, x, references=refs, n_samples=1, sampler="random", seed=3)
    for b in range(4):
        k = int((refs @ W - res.f_baseline[b]).abs().argmin())
        assert abs(float(refs[k] @ W - res.f_baseline[b])) <= 1e-12
        assert (res.attributions[b] - W * (x[b] - refs[k])).abs().max() <= 1e-12


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_linear_model_converges_to_mean_reference_within_stderr(sampler):
    x, refs = randn(0, 2, 4), randn(1, 5, 4)
    res = integrad.expected_gradients(linear, x, references=refs, n_samples=4096, sampler=sampler)
    expected = W * (x - refs.mean(0))
    assert (res.stderr > 0).all()
    bound = 4.0 if sampler == "random" else T7_AS_4_SIGMA
    assert ((res.attributions - expected).abs() <= bound * res.stderr).all()
    assert (res.attributions - expected).abs().max() <= 0.05 * expected.abs().max()


def test_multiply_by_inputs_false_gives_mean_gradient_on_linear_model():
    x, refs = randn(0, 3, 4), randn(1, 7, 4)
    res = integrad.expected_gradients(linear, x, references=refs, n_samples=32, multiply_by_inputs=False)
    assert (res.attributions - W).abs().max() <= 1e-12
    assert res.delta.abs().max() <= 1e-12  # still the completeness gap of EG itself


# ---------------------------------------------------------------- smooth models: statistics
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_completeness_in_expectation_on_tanh_mlp(sampler):
    net = mlp([4, 16, 1])
    x, refs = randn(0, 3, 4), randn(1, 6, 4)
    deltas = {}
    for n in (16, 256):
        runs = [integrad.expected_gradients(net, x, references=refs, n_samples=n, sampler=sampler, seed=s)
                for s in range(8)]
        for r in runs:
            assert (r.delta - (r.total - (r.f_x - r.f_baseline))).abs().max() <= 1e-12
        deltas[n] = torch.stack([r.delta for r in runs])  # (seeds, batch)
    d = deltas[256]
    spread = d.std(0, correction=1)
    # zero mean: the seeds' mean gap is within 4 standard errors of 0
    assert (d.mean(0).abs() <= 4 * spread / d.shape[0] ** 0.5).all()
    # the gap is sampling error: it shrinks as samples grow (by ~4x for 16x the samples)
    assert (spread < 0.5 * deltas[16].std(0, correction=1)).all()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_stderr_is_calibrated_against_exact_expectation(sampler):
    net = mlp([4, 16, 1])
    x, refs = randn(0, 3, 4), randn(1, 6, 4)
    exact = eg_expectation(net, x, refs)
    inside = []
    for seed in range(20):
        res = integrad.expected_gradients(net, x, references=refs, n_samples=64, sampler=sampler, seed=seed)
        inside.append(((res.attributions - exact).abs() <= 2 * res.stderr).double().mean())
    coverage = float(torch.stack(inside).mean())
    # nominal: 95.4% for random (normal), 91.4% for sobol (t with 7 degrees of freedom)
    assert 0.85 <= coverage <= 0.995, coverage


def test_sobol_stderr_smaller_than_random_on_smooth_mlp():
    net = mlp([4, 16, 1])
    x, refs = randn(0, 3, 4), randn(1, 6, 4)
    err = {s: torch.stack([integrad.expected_gradients(net, x, references=refs, n_samples=256, sampler=s,
                                                       seed=seed).stderr.mean() for seed in range(5)]).mean()
           for s in SAMPLERS}
    assert err["sobol"] <= err["random"], err


# ---------------------------------------------------------------- seeds
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_seed_reproduces_and_another_differs(sampler):
    net = mlp([4, 8, 1])
    x, refs = randn(0, 3, 4), randn(1, 6, 4)
    run = lambda seed: integrad.expected_gradients(net, x, references=refs, n_samples=16, sampler=sampler,
                                                   seed=seed)
    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a.attributions, b.attributions) and torch.equal(a.stderr, b.stderr)
    assert torch.equal(a.f_baseline, b.f_baseline)
    g1, g2 = run(torch.Generator().manual_seed(7)), run(torch.Generator().manual_seed(7))
    assert torch.equal(g1.attributions, g2.attributions)
    assert torch.equal(g1.attributions, a.attributions)  # an int seeds a fresh generator
    assert (a.attributions - c.attributions).abs().max() > 1e-6


def test_global_rng_untouched():
    net = mlp([4, 8, 1])
    x, refs = randn(0, 3, 4), randn(1, 6, 4)
    state = torch.get_rng_state()
    for sampler in SAMPLERS:
        integrad.expected_gradients(net, x, references=refs, n_samples=16, sampler=sampler)
    assert torch.equal(state, torch.get_rng_state())


# ---------------------------------------------------------------- targets, shapes, batching
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_targets_equal_separate_calls_with_same_seed(sampler):
    net = mlp([4, 8, 5])
    x, refs = randn(0, 3, 4), randn(1, 6, 4)
    many = integrad.expected_gradients(net, x, references=refs, targets=[0, 3, 4], n_samples=32, sampler=sampler,
                                       seed=2)
    assert many.attributions.shape == (3, 3, 4) and many.stderr.shape == (3, 3, 4)
    assert many.delta.shape == many.f_x.shape == many.f_baseline.shape == (3, 3)
    for j, c in enumerate([0, 3, 4]):
        one = integrad.expected_gradients(net, x, references=refs, target=c, n_samples=32, sampler=sampler, seed=2)
        scale = one.attributions.abs().max()
        assert (many.attributions[:, j] - one.attributions).abs().max() <= 1e-12 * scale
        assert (many.stderr[:, j] - one.stderr).abs().max() <= 1e-12 * scale
        for name in ("delta", "f_x", "f_baseline"):
            assert (getattr(many, name)[:, j] - getattr(one, name)).abs().max() <= 1e-12


def test_one_number_per_example_inputs():
    x = torch.tensor([3.0, 1.0], dtype=torch.float64)
    cube = lambda z: z**3
    res = integrad.expected_gradients(cube, x, references=torch.tensor([0.0, 1.0], dtype=torch.float64),
                                      n_samples=512, sampler="random")
    assert res.attributions.shape == res.stderr.shape == (2,)
    assert (res.f_x - x**3).abs().max() <= 1e-12
    # E over references {0, 1}: x^3 - (0 + 1) / 2
    assert ((res.attributions - (x**3 - 0.5)).abs() <= 4 * res.stderr).all()
    assert (res.total - (res.f_x - res.f_baseline) - res.delta).abs().max() <= 1e-12


def test_samples_batched_into_few_model_calls():
    net = Counting(mlp([4, 8, 1]))
    x, refs = randn(0, 3, 4), randn(1, 6, 4)
    calls = {}
    integrad.expected_gradients(net, x, references=refs, n_samples=2)  # the row-independence probe, once per model
    for n in (8, 64):
        net.calls = 0
        integrad.expected_gradients(net, x, references=refs, n_samples=n)
        calls[n] = net.calls
    assert calls[8] == calls[64] <= 3
    net.calls, net.rows = 0, 0
    integrad.expected_gradients(net, x, references=refs, n_samples=64, batch_size=16)
    # F at inputs and references in one call, then 3 * 64 samples in blocks of 16
    assert net.calls == 1 + 3 * 64 // 16


def test_result_independent_of_batch_size():
    net = mlp([4, 8, 2])
    x, refs = randn(0, 3, 4), randn(1, 6, 4)
    ref = integrad.expected_gradients(net, x, references=refs, target=1, n_samples=40)
    for bs in (1, 7, 1000):
        res = integrad.expected_gradients(net, x, references=refs, target=1, n_samples=40, batch_size=bs)
        assert (res.attributions - ref.attributions).abs().max() <= 1e-12 * ref.attributions.abs().max()
        assert (res.stderr - ref.stderr).abs().max() <= 1e-12 * ref.attributions.abs().max()


def test_layer_attribution_exact_on_model_linear_in_embedding():
    emb = torch.nn.Embedding(10, 4).double()
    head = torch.nn.Linear(12, 1).double()
    model = torch.nn.Sequential(emb, torch.nn.Flatten(), head).eval()
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    refs = torch.tensor([[0, 0, 0], [7, 8, 9], [0, 9, 0]])
    res = integrad.expected_gradients(model, ids, references=refs, layer=emb, n_samples=1, seed=1)
    assert res.attributions.shape == (2, 3, 4)
    w = head.weight.detach().view(3, 4)
    e_x, e_refs = emb(ids).detach(), emb(refs).detach()
    f_refs = (e_refs * w).sum((1, 2)) + head.bias.detach()
    for b in range(2):  # one sample: IG from one drawn reference, exact for a linear head
        k = int((f_refs - res.f_baseline[b]).abs().argmin())
        assert (res.attributions[b] - w * (e_x[b] - e_refs[k])).abs().max() <= 1e-12
    assert res.delta.abs().max() <= 1e-12


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("options, name", [
    (dict(references=torch.zeros(5, 3, dtype=torch.float64)), "references"),
    (dict(references=torch.zeros(4, dtype=torch.float64)), "references"),
    (dict(references=torch.zeros(0, 4, dtype=torch.float64)), "references"),
    (dict(references=torch.zeros(5, 4, dtype=torch.float64), n_samples=0), "n_samples"),
    (dict(references=torch.zeros(5, 4, dtype=torch.float64), sampler="bogus"), "sampler"),
])
def test_bad_arguments_raise_value_error_naming_argument(options, name):
    net = mlp([4, 8, 1])
    with pytest.raises(ValueError, match=rf"^{name}"):
        integrad.expected_gradients(net, randn(0, 3, 4), **options)


def test_wrong_reference_shape_error_shows_expected_and_received_shapes():
    with pytest.raises(ValueError, match=r"\(K, 4\).*\(5, 3\)"):
        integrad.expected_gradients(mlp([4, 8, 1]), randn(0, 3, 4), references=torch.zeros(5, 3))
