"""SmoothGrad around IG and EG: noise-free limits, closed forms, where the noise lands, seeds, cost."""

import pytest
import torch

import integrad
from conftest import Counting, mlp, randn




def square_sum(x):
    return (x**2).sum(1)




class Text(torch.nn.Module):
    """Token ids -> embedding -> linear: linear in the embedding. Records the ids it is fed."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = torch.nn.Embedding(10, 4).double()
        self.lin = torch.nn.Linear(12, 1).double()
        with torch.no_grad():
            self.emb.weight.copy_(torch.randn(10, 4, generator=g, dtype=torch.float64))
            self.lin.weight.copy_(torch.randn(1, 12, generator=g, dtype=torch.float64))
        self.seen = []

    def forward(self, ids):
        self.seen.append(ids)
        return self.lin(self.emb(ids).flatten(1))


# ---------------------------------------------------------------- noise-free limits
def test_zero_noise_equals_integrated_gradients():
    net = mlp([4, 16, 1])
    x = randn(0, 3, 4)
    ig = integrad.integrated_gradients(net, x, baseline=0.3, n_steps=20)
    sg = integrad.smoothgrad(net, x, noise=0.0, n_samples=3, baseline=0.3, n_steps=20)
    assert (sg.attributions - ig.attributions).abs().max() <= 1e-12 * ig.attributions.abs().max()
    for name in ("delta", "f_x", "f_baseline"):
        assert (getattr(sg, name) - getattr(ig, name)).abs().max() <= 1e-12
    assert sg.stderr.abs().max() <= 1e-12
    assert sg.n_evals.tolist() == [3 * 20] * 3


def test_zero_noise_equals_expected_gradients_with_same_seed():
    net = mlp([4, 16, 1])
    x, refs = randn(0, 3, 4), randn(1, 6, 4)
    eg = integrad.expected_gradients(net, x, references=refs, n_samples=8, sampler="random", seed=3)
    sg = integrad.smoothgrad(net, x, method="expected_gradients", references=refs, sampler="random", noise=0.0,
                             n_samples=8, seed=3)
    # 8 copies of one sample each draw the same (reference, alpha) pairs as 8 samples of EG
    assert (sg.attributions - eg.attributions).abs().max() <= 1e-12 * eg.attributions.abs().max()
    for name in ("delta", "f_x", "f_baseline"):
        assert (getattr(sg, name) - getattr(eg, name)).abs().max() <= 1e-12


def test_zero_noise_eg_with_identical_references_is_exact_on_linear_model():
    w = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)
    x, r = randn(0, 3, 4), randn(1, 4)
    sg = integrad.smoothgrad(lambda z: z @ w, x, method="eg", references=r.expand(4, 4).clone(), noise=0.0,
                             n_samples=3, n_samples_per_copy=5, sampler="sobol")
    assert (sg.attributions - w * (x - r)).abs().max() <= 1e-12
    assert sg.n_evals.tolist() == [15] * 3


def test_zero_noise_square_is_ig_squared_and_var_is_zero():
    net = mlp([4, 16, 1])
    x = randn(0, 3, 4)
    ig = integrad.integrated_gradients(net, x, n_steps=20).attributions
    sq = integrad.smoothgrad(net, x, noise=0.0, n_samples=3, n_steps=20, mode="square")
    var = integrad.smoothgrad(net, x, noise=0.0, n_samples=3, n_steps=20, mode="var")
    assert (sq.attributions - ig**2).abs().max() <= 1e-12 * (ig**2).max()
    assert var.attributions.abs().max() <= 1e-24
    assert torch.isnan(sq.delta).all() and torch.isnan(var.delta).all()


# ---------------------------------------------------------------- closed forms with noise
def test_mean_square_var_match_gaussian_moments():
    # IG of sum(x^2) from 0 at x + e is (x + e)^2 per feature: moments of a shifted Gaussian
    x, s = torch.tensor([[1.0, -0.5, 2.0]], dtype=torch.float64), 0.5
    run = lambda mode: integrad.smoothgrad(square_sum, x, noise=s, noise_scale="absolute", n_samples=4000,
                                           n_steps=2, mode=mode, seed=1)
    mean, sq, var = run("mean"), run("square"), run("var")
    assert ((mean.attributions - (x**2 + s**2)).abs() <= 4 * mean.stderr).all()
    assert ((sq.attributions - (x**4 + 6 * x**2 * s**2 + 3 * s**4)).abs() <= 4 * sq.stderr).all()
    assert ((var.attributions - (4 * x**2 * s**2 + 2 * s**4)).abs() <= 4 * var.stderr).all()
    assert mean.delta.abs().max() <= 1e-12  # exact rule: each copy is complete
    # same seed, same copies: the population variance is E[a^2] - E[a]^2
    assert (var.attributions - (sq.attributions - mean.attributions**2)).abs().max() <= 1e-10


@pytest.mark.parametrize("seed", range(4))
def test_vargrad_is_nonnegative(seed):
    net = mlp([4, 16, 1])
    res = integrad.smoothgrad(net, randn(seed, 3, 4), noise=0.3, n_samples=5, n_steps=8, mode="var", seed=seed)
    assert (res.attributions >= 0).all()
    assert res.attributions.max() > 0


# ---------------------------------------------------------------- where the noise lands
def test_text_noise_lands_in_embeddings_not_token_ids():
    model = Text().eval()
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    res = integrad.smoothgrad(model, ids, layer=model.emb, n_samples=64, noise=0.1, n_steps=4)
    assert res.attributions.shape == (2, 3, 4)
    assert all(s.dtype == torch.long for s in model.seen)
    rows = {tuple(r) for r in ids.tolist()} | {(0, 0, 0)}
    assert all(tuple(r) in rows for s in model.seen for r in s.tolist())
    w = model.lin.weight.detach().view(3, 4)
    e_x, e_pad = model.emb(ids).detach(), model.emb(torch.zeros_like(ids)).detach()
    # linear in the embedding: each copy is exact, the noise averages out
    assert res.delta.abs().max() <= 1e-12
    assert (res.stderr > 0).all()
    assert ((res.attributions - w * (e_x - e_pad)).abs() <= 4 * res.stderr).all()
    # the path starts at the (unperturbed) baseline embeddings
    assert (res.f_baseline - model(torch.zeros_like(ids)).detach()[:, 0]).abs().max() <= 1e-12


def test_relative_noise_is_a_fraction_of_the_example_range():
    net = mlp([4, 16, 1])
    x = torch.tensor([[0.3, -1.2, 2.0, 0.1]], dtype=torch.float64)
    rel = integrad.smoothgrad(net, x, noise=0.15, n_samples=6, n_steps=8, seed=4)
    ab = integrad.smoothgrad(net, x, noise=0.15 * 3.2, noise_scale="absolute", n_samples=6, n_steps=8, seed=4)
    assert (rel.attributions - ab.attributions).abs().max() <= 1e-12 * ab.attributions.abs().max()
    plain = integrad.integrated_gradients(net, x, n_steps=8)
    assert (rel.attributions - plain.attributions).abs().max() > 1e-4  # the noise did something


def test_relative_noise_invariant_to_input_scale():
    net = mlp([4, 16, 1])
    x, c = randn(0, 3, 4), 10.0
    a = integrad.smoothgrad(net, x, n_samples=6, n_steps=8, seed=2)
    b = integrad.smoothgrad(lambda z: net(z / c), c * x, n_samples=6, n_steps=8, seed=2)
    assert (a.attributions - b.attributions).abs().max() <= 1e-12 * a.attributions.abs().max()


# ---------------------------------------------------------------- seeds and cost
def test_same_seed_reproduces_and_another_differs():
    net = mlp([4, 16, 1])
    x = randn(0, 3, 4)
    run = lambda seed: integrad.smoothgrad(net, x, n_samples=4, n_steps=8, seed=seed)
    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a.attributions, b.attributions) and torch.equal(a.stderr, b.stderr)
    g1, g2 = run(torch.Generator().manual_seed(5)), run(torch.Generator().manual_seed(5))
    assert torch.equal(g1.attributions, g2.attributions)
    assert torch.equal(g1.attributions, a.attributions)  # an int seeds a fresh generator
    assert (a.attributions - c.attributions).abs().max() > 1e-6
    state = torch.get_rng_state()
    run(5)
    integrad.smoothgrad(net, x, method="eg", references=x, n_samples=4)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("method", ["integrated_gradients", "expected_gradients"])
def test_all_copies_in_one_engine_call(method):
    net = Counting(mlp([4, 8, 1]))
    x = randn(0, 3, 4)
    options = dict(n_steps=10) if method == "integrated_gradients" else dict(references=randn(1, 5, 4))
    calls = {}
    integrad.smoothgrad(net, x, method=method, n_samples=1, **options)  # the row-independence probe, once per model
    for n in (2, 8):
        net.calls = 0
        integrad.smoothgrad(net, x, method=method, n_samples=n, **options)
        calls[n] = net.calls
    assert calls[2] == calls[8] <= 3


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("options, name", [
    (dict(mode="bogus"), "mode"),
    (dict(noise=-1), "noise"),
    (dict(noise=float("nan")), "noise"),
    (dict(method="bogus"), "method"),
    (dict(noise_scale="bogus"), "noise_scale"),
    (dict(n_samples=0), "n_samples"),
])
def test_bad_arguments_raise_value_error_naming_argument(options, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        integrad.smoothgrad(mlp([4, 8, 1]), randn(0, 3, 4), **options)


@pytest.mark.parametrize("method, options, name", [
    ("integrated_gradients", dict(references=torch.zeros(2, 4)), "references"),
    ("integrated_gradients", dict(sampler="sobol"), "sampler"),
    ("expected_gradients", dict(references=torch.zeros(2, 4), n_steps=8), "n_steps"),
    ("expected_gradients", dict(references=torch.zeros(2, 4), baseline=0.0), "baseline"),
])
def test_options_of_the_other_method_are_refused_by_name(method, options, name):
    with pytest.raises(TypeError, match=rf"{name} is not an option of {method}"):
        integrad.smoothgrad(mlp([4, 8, 1]), randn(0, 3, 4), method=method, **options)


def test_expected_gradients_without_references_is_refused():
    with pytest.raises(TypeError, match="references"):
        integrad.smoothgrad(mlp([4, 8, 1]), randn(0, 3, 4), method="expected_gradients")


def test_bad_rule_error_names_rule():
    with pytest.raises(ValueError, match=r"^rule:"):
        integrad.smoothgrad(mlp([4, 8, 1]), randn(0, 3, 4), rule="bogus")
