"""Ground-truth models and agreement metrics: the constructions, the closed forms, the metrics' definitions."""

import itertools
import math

import pytest
import torch

import integrad
from integrad import groundtruth as gt

F64 = torch.float64


# ---------------------------------------------------------------------------- OpenXAI's generator
def test_true_attribution_is_the_masked_weights_of_the_rows_cluster():
    data = gt.synthetic(500, 12, 4, seed=3, dtype=F64)
    for n in range(0, 500, 37):
        c = int(data.cluster[n])
        assert torch.equal(data.true_attr[n], data.weights[c] * data.masks[c])
    # the label is the threshold of the ground-truth logit, and the model labels every row right
    assert torch.equal(data.y, ((data.X * data.true_attr).sum(1) > 0).long())
    assert torch.equal((data.model()(data.X, data.cluster) > 0).long(), data.y)
    assert torch.equal((data.model(probability=True)(data.X, data.cluster) > 0.5).long(), data.y)
    # rows split over the clusters as evenly as possible
    counts = torch.bincount(data.cluster, minlength=4)
    assert int(counts.max() - counts.min()) <= 1


def test_masks_are_bernoulli_half_and_weights_uniform():
    data = gt.synthetic(400, 20, 200, seed=0)
    # 4,000 Bernoulli(0.5) draws: standard deviation of the mean 0.0079; measured 0.482
    assert abs(data.masks.double().mean().item() - 0.5) < 0.03
    # U(-1, 1): mean 0, standard deviation 1/sqrt(3) = 0.577; measured 0.0005 and 0.574
    assert data.weights.abs().max() < 1
    assert abs(data.weights.double().mean().item()) < 0.03
    assert abs(data.weights.double().std().item() - 1 / math.sqrt(3)) < 0.02


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_are_roughly_balanced(seed):
    # 50 clusters: each cluster's share of 1s varies, their mean has a standard deviation of
    # about 0.04; measured 0.535, 0.527, 0.451 for seeds 0-2. Band: [0.4, 0.6].
    assert 0.4 <= gt.synthetic(20000, 20, 50, seed=seed).balance <= 0.6


def test_generator_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = gt.synthetic(300, 6, 3, seed=7), gt.synthetic(300, 6, 3, seed=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)
    for name in ("X", "y", "cluster", "true_attr", "weights", "masks", "centres"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.X, gt.synthetic(300, 6, 3, seed=8).X)
    # float32 data are the float64 numbers rounded: the same draws
    c = gt.synthetic(300, 6, 3, seed=7, dtype=F64)
    assert torch.equal(c.X.float(), a.X) and torch.equal(c.cluster, a.cluster)


@pytest.mark.parametrize("probability", [False, True])
def test_cluster_model_ig_equals_its_closed_form(probability):
    data = gt.synthetic(200, 8, 3, seed=1, dtype=F64)
    f = data.model(probability=probability)
    x, c = data.X[:20], data.cluster[:20]
    base = torch.linspace(-1, 1, 8, dtype=F64)
    res = integrad.integrated_gradients(f, x, baseline=base, forward_args=(c,), n_steps=64)
    assert (res.attributions - f.exact_ig(x, c, base)).abs().max() < 1e-13
    # completeness of the closed form itself
    assert torch.allclose(f.exact_ig(x, c, base).sum(1), f(x, c) - f(base.expand_as(x), c), atol=1e-13)


# ---------------------------------------------------------------------------- unit models
def _ig(model, x, baseline, n_steps=128):
    return integrad.integrated_gradients(model, x, baseline=baseline, n_steps=n_steps).attributions


def test_weighted_features_truth_is_weights_times_difference():
    f = gt.weighted_features(6, seed=2).double()
    x, base = f.sample(30, seed=0, dtype=F64), f.sample(1, seed=1, dtype=F64)[0]
    assert torch.allclose(f.truth(x, base), f.linear * (x - base), atol=1e-15)
    assert (_ig(f, x, base) - f.truth(x, base)).abs().max() < 1e-13


def test_interacting_pair_splits_the_product_equally_from_zero():
    f = gt.interacting_pair(4, pair=(1, 3), coefficient=2.0, linear=0.0).double()
    x = f.sample(25, seed=0, dtype=F64)
    half = 2.0 * x[:, 1] * x[:, 3] / 2
    t = f.truth(x)
    assert torch.allclose(t[:, 1], half, atol=1e-15) and torch.allclose(t[:, 3], half, atol=1e-15)
    assert t[:, [0, 2]].abs().max() == 0
    assert (_ig(f, x, 0.0) - t).abs().max() < 1e-13
    # and from another baseline, with the linear terms on
    g = gt.interacting_pair(4, seed=3).double()
    base = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=F64)
    assert (_ig(g, x, base) - g.truth(x, base)).abs().max() < 1e-13


def test_pertinent_negative_truth_depends_on_the_baseline():
    f = gt.pertinent_negative(6, n_negative=2, seed=4).double()
    x = f.sample(40, seed=0, dtype=F64)
    assert set(x[:, 4:].unique().tolist()) == {0.0, 1.0}
    u = f.negative[4:]
    absent = x[:, 4:] == 0
    present_base = torch.tensor([0, 0, 0, 0, 1, 1], dtype=F64)
    from_zero, from_present = f.truth(x), f.truth(x, present_base)
    # absent from an absent baseline: no credit; absent from a present baseline: u_k
    assert from_zero[:, 4:][absent].abs().max() == 0
    assert torch.allclose(from_present[:, 4:][absent], u.expand_as(absent)[absent], atol=1e-15)
    assert torch.allclose(from_zero[:, 4:][~absent], -u.expand_as(absent)[~absent], atol=1e-15)
    for base in (0.0, present_base):
        assert (_ig(f, x, base) - f.truth(x, base)).abs().max() < 1e-13


def test_shattered_gradients_defeat_gradient_times_input_not_ig_at_enough_nodes():
    f = gt.shattered_gradients(10, seed=0).double()  # b = 0.1, omega = 100
    x = f.sample(100, seed=1, dtype=F64)
    t = f.truth(x)
    z = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(f(z).sum(), z)
    # measured: gradient x input 36 off (the truth is at most 2.9); 50 nodes 8.3; 300 nodes 4e-14
    assert (grad * x - t).abs().max() > 10 * t.abs().max()
    assert (_ig(f, x, 0.0, n_steps=50) - t).abs().max() > 1.0
    assert (_ig(f, x, 0.0, n_steps=300) - t).abs().max() < 1e-10


def test_unit_truth_is_the_baseline_shapley_value():
    # one model with every kind of term; Shapley by enumerating all 2^4 coalitions (the slow oracle)
    f = gt.UnitModel(torch.tensor([0.3, -0.7, 0.0, 1.1], dtype=F64),
                     amplitude=torch.tensor([0.2, 0.0, 0.5, 0.1], dtype=F64),
                     frequency=torch.tensor([3.0, 1.0, 7.0, 2.0], dtype=F64),
                     negative=torch.tensor([0.0, 0.0, 0.8, 0.0], dtype=F64),
                     pairs=[(0, 1), (1, 3)], coefficients=torch.tensor([1.5, -0.6], dtype=F64), k=2)
    x = torch.tensor([[0.9, -1.3, 1.0, 0.4], [-0.2, 0.7, 0.0, -1.8]], dtype=F64)
    base = torch.tensor([0.1, 0.5, 1.0, -0.3], dtype=F64)
    d = 4
    shap = torch.zeros_like(x)
    for i in range(d):
        others = [j for j in range(d) if j != i]
        for r in range(d):
            for s in itertools.combinations(others, r):
                w = math.factorial(r) * math.factorial(d - r - 1) / math.factorial(d)
                z = base.expand_as(x).clone()
                z[:, list(s)] = x[:, list(s)]
                z_i = z.clone()
                z_i[:, i] = x[:, i]
                shap[:, i] += w * (f(z_i) - f(z))
    assert (f.truth(x, base) - shap).abs().max() < 1e-14
    assert (_ig(f, x, base, n_steps=100) - shap).abs().max() < 1e-12


# ---------------------------------------------------------------------------- agreement metrics
def test_identical_explanations_agree_fully():
    a = torch.randn(6, 9, generator=torch.Generator().manual_seed(0), dtype=F64)
    for fn in (gt.feature_agreement, gt.rank_agreement, gt.sign_agreement):
        assert torch.equal(fn(a, a, 4), torch.ones(6, dtype=F64))


def test_reversed_ranks():
    truth = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    rev = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]])
    # all five shared, only the middle one in the same position
    assert gt.feature_agreement(rev, truth, 5).item() == 1.0
    assert gt.rank_agreement(rev, truth, 5).item() == pytest.approx(0.2)
    # top 2: {0, 1} against {4, 3}; top 3 share feature 2 only, at the same (last) rank
    assert gt.feature_agreement(rev, truth, 2).item() == 0.0
    assert gt.feature_agreement(rev, truth, 3).item() == pytest.approx(1 / 3)
    assert gt.rank_agreement(rev, truth, 3).item() == pytest.approx(1 / 3)


def test_sign_flips():
    truth = torch.tensor([[4.0, -3.0, 2.0, 1.0]])
    assert gt.sign_agreement(-truth, truth, 4).item() == 0.0
    assert gt.feature_agreement(-truth, truth, 4).item() == 1.0  # ranks by |value|
    assert gt.rank_agreement(-truth, truth, 4).item() == 1.0
    one = truth.clone()
    one[0, 1] = 3.0
    assert gt.sign_agreement(one, truth, 3).item() == pytest.approx(2 / 3)
    assert gt.sign_agreement(one, truth, 1).item() == 1.0


def test_ties_go_to_the_lower_index_and_a_shared_truth_broadcasts():
    assert gt.top_k(torch.tensor([[0.0, 0.0, 1.0, 0.0]]), 3).tolist() == [[2, 0, 1]]
    a = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]])
    assert gt.feature_agreement(a, torch.tensor([1.0, 0.0, 0.0]), 1).tolist() == [1.0, 0.0]


def test_pgi_of_a_linear_model_is_the_half_normal_mean():
    # f = w . x: perturbing the features S moves f by w_S . eps ~ N(0, sigma^2 |w_S|^2),
    # so E|change| = sigma |w_S| sqrt(2/pi)
    w = torch.tensor([3.0, -2.0, 0.5, 0.1], dtype=F64)
    f = lambda x: x @ w  # noqa: E731
    x = torch.zeros(2, 4, dtype=F64)
    a = w.expand(2, 4)
    pgi = gt.pgi(f, x, a, 2, noise=0.1, n_samples=20000, seed=0)
    pgu = gt.pgu(f, x, a, 2, noise=0.1, n_samples=20000, seed=0)
    expect_i, expect_u = 0.1 * math.sqrt(13 * 2 / math.pi), 0.1 * math.sqrt(0.26 * 2 / math.pi)
    assert torch.allclose(pgi, torch.full((2,), expect_i, dtype=F64), rtol=0.03)
    assert torch.allclose(pgu, torch.full((2,), expect_u, dtype=F64), rtol=0.03)
    assert gt.pgu(f, x, a, 4).abs().max() == 0  # nothing left to perturb
    # seeded: the same draws again, other draws with another seed
    assert torch.equal(gt.pgi(f, x, a, 2, seed=5), gt.pgi(f, x, a, 2, seed=5))
    assert not torch.equal(gt.pgi(f, x, a, 2, seed=5), gt.pgi(f, x, a, 2, seed=6))


def test_pgi_repeats_batch_first_forward_args_per_noisy_copy():
    data = gt.synthetic(200, 6, 2, seed=0, dtype=F64)
    f = data.model(probability=True)
    rows = torch.nonzero(data.cluster == 1).flatten()[:10]
    x, a = data.X[rows], data.true_attr[rows]
    with_args = gt.pgi(f, x, a, 3, seed=1, forward_args=(data.cluster[rows],))
    closure = gt.pgi(lambda z: f(z, torch.ones(z.shape[0], dtype=torch.int64)), x, a, 3, seed=1)
    assert torch.equal(with_args, closure)


def test_metrics_take_an_attribution_result():
    f = gt.weighted_features(5, seed=0).double()
    x = f.sample(8, seed=0, dtype=F64)
    res = integrad.integrated_gradients(f, x, n_steps=4)
    assert torch.equal(gt.rank_agreement(res, f.truth(x), 3), torch.ones(8, dtype=F64))
    assert gt.pgi(f, x, res, 3).shape == (8,)


# ---------------------------------------------------------------------------- bad input
A = torch.ones(2, 4)


@pytest.mark.parametrize("call, error, match", [
    (lambda: gt.feature_agreement(A, A, 0), ValueError, r"k: expected an int in \[1, 4\]; got 0"),
    (lambda: gt.rank_agreement(A, A, 5), ValueError, r"k: expected an int in \[1, 4\]; got 5"),
    (lambda: gt.sign_agreement(A, A, True), TypeError, r"k: expected an int; got bool"),
    (lambda: gt.feature_agreement(A, torch.ones(2, 3), 2), ValueError, r"truth: expected the shape of attributions \(2, 4\)"),
    (lambda: gt.feature_agreement(torch.tensor([[1.0, float("nan")]]), torch.ones(1, 2), 1), ValueError,
     r"attributions: contains NaN or Inf \(rows \[0\]\)"),
    (lambda: gt.rank_agreement([[1.0, 2.0]], torch.ones(1, 2), 1), TypeError, r"attributions: expected a torch.Tensor"),
    (lambda: gt.pgi(lambda x: x.sum(1), A, A, 2, noise=0.0), ValueError, r"noise: expected a finite number > 0"),
    (lambda: gt.pgu(lambda x: x, A, A, 2), ValueError, r"model: expected one number per row, shape \(2,\)"),
    (lambda: gt.pgi(lambda x: x.sum(1), A, torch.ones(3, 4), 2), ValueError,
     r"attributions: expected the shape of inputs \(2, 4\); got \(3, 4\)"),
    (lambda: gt.synthetic(3, 4, 5), ValueError, r"n_rows: expected an int >= 5; got 3"),
    (lambda: gt.synthetic(10, 4, 2, seed=1.5), TypeError, r"seed: expected an int or a torch.Generator; got float"),
    (lambda: gt.synthetic(10, 4, 2).model()(torch.ones(2, 4), torch.tensor([0, 2])), ValueError,
     r"cluster: ids must be in \[0, 1\]"),
    (lambda: gt.interacting_pair(4, pair=(1, 1)), ValueError, r"pairs: each \(i, j\) needs i != j"),
    (lambda: gt.weighted_features(10).truth(torch.ones(2, 3)), ValueError, r"x: expected 10 features; got shape \(2, 3\)"),
    (lambda: gt.weighted_features(3).truth(torch.ones(2, 3), torch.ones(2)), ValueError,
     r"baseline: shape \(2\) does not broadcast to x's \(2, 3\)"),
])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
