"""integrad.metrics: closed forms, agreement with Captum, the sanity check's promises, bad input."""

import math

import pytest
import torch

import integrad
from integrad.metrics import (comprehensiveness, deletion_auc, infidelity, insertion_auc, randomisation_check,
                              sensitivity_max, spearman, sufficiency)
from conftest import Counting, mlp, randn


def cnn(seed=0):
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                              torch.nn.Linear(3 * 4 * 4, 3)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return net


def seeded_noise(std, seed=123):
    """The same draws at every call of the same shape: both libraries see identical perturbations."""
    def perturb(x, baseline=None):
        I = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype) * std
        return I, x - I
    return perturb


def seeded_subset(p=0.5, seed=7):
    def perturb(x, baseline):
        mask = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype) < p
        return mask.to(x.dtype), torch.where(mask, baseline, x)
    return perturb


def saliency(model, target):
    """Gradient of one class; a 1-tuple for a 1-tuple, as Captum's first call needs."""
    def explain(x):
        z = (x[0] if isinstance(x, tuple) else x).detach().requires_grad_(True)
        with torch.enable_grad():
            grad, = torch.autograd.grad(model(z)[:, target].sum(), z)
        return (grad,) if isinstance(x, tuple) else grad
    return explain


# ---------------------------------------------------------------------------- Captum agreement
MODELS = {"mlp": (lambda: mlp([5, 8, 3]), (4, 5)), "cnn": (cnn, (3, 1, 6, 6))}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_matches_captum_given_the_same_perturbations(name, normalize):
    from captum.metrics import infidelity as captum_infidelity

    make, shape = MODELS[name]
    model, x = make(), randn(0, *shape)
    attr = integrad.integrated_gradients(model, x, target=[0, 2, 1, 0][:shape[0]], n_steps=8).attributions
    base = randn(3, 1, *shape[1:])
    for perturb, target in ((seeded_noise(0.1), 1), (seeded_subset(), [0, 2, 1, 0][:shape[0]])):
        ours = infidelity(model, x, attr, perturb=perturb, n_perturb=6, baseline=base, target=target,
                          normalize=normalize)
        theirs = captum_infidelity(model, perturb, x, attr, baselines=base, target=target, n_perturb_samples=6,
                                   normalize=normalize)
        assert ours.shape == (shape[0],)
        assert (ours - theirs).abs().max() <= 1e-6 * max(1.0, theirs.abs().max())
        assert (ours - theirs).abs().max() < 1e-12


def test_builtin_noise_is_the_documented_seeded_gaussian():
    from captum.metrics import infidelity as captum_infidelity

    model, x = mlp([5, 8, 3]), randn(0, 4, 5)
    attr = randn(1, 4, 5)
    draws = torch.randn((4 * 6, 5), generator=torch.Generator().manual_seed(11), dtype=x.dtype) * 0.2

    def same_draws(inp):
        return draws, inp - draws

    ours = infidelity(model, x, attr, perturb="noise", scale=0.2, n_perturb=6, target=2, seed=11)
    theirs = captum_infidelity(model, same_draws, x, attr, target=2, n_perturb_samples=6)
    assert (ours - theirs).abs().max() < 1e-12


@pytest.mark.parametrize("name", list(MODELS))
def test_sensitivity_max_matches_captum_given_the_same_perturbations(name):
    from captum.metrics import sensitivity_max as captum_sensitivity

    make, shape = MODELS[name]
    model, x = make(), randn(0, *shape)

    def perturb(inp):  # uniform noise of radius 0.05, the same draws at every call of one shape
        g = torch.Generator().manual_seed(5)
        return inp + (torch.rand(inp.shape, generator=g, dtype=inp.dtype) * 2 - 1) * 0.05

    explain = saliency(model, 1)
    ours = sensitivity_max(explain, x, perturb=perturb, n_perturb=7)
    theirs = captum_sensitivity(explain, x, perturb_func=perturb, n_perturb_samples=7)
    assert ours.shape == (shape[0],) and (ours > 0).all()
    assert (ours - theirs).abs().max() < 1e-12
    # and the default draw is the documented seeded uniform noise
    g = torch.Generator().manual_seed(3)
    draws = (torch.rand((shape[0] * 7, *shape[1:]), generator=g, dtype=x.dtype) * 2 - 1) * 0.05
    theirs = captum_sensitivity(explain, x, perturb_func=lambda inp: inp + draws, n_perturb_samples=7)
    ours = sensitivity_max(explain, x, perturb_radius=0.05, n_perturb=7, seed=3)
    assert (ours - theirs).abs().max() < 1e-12


def test_sensitivity_max_of_integrated_gradients_matches_captum_and_ignores_chunking():
    from captum.metrics import sensitivity_max as captum_sensitivity

    model, x = mlp([5, 8, 3]), randn(0, 3, 5)

    def explain(inp):
        return integrad.integrated_gradients(model, inp, target=0, n_steps=8)

    def perturb(inp):  # a function of the values only: Captum's and our blocks see the same perturbations
        return inp + 0.03 * torch.sin(7 * inp)

    theirs = captum_sensitivity(lambda z: explain(z).attributions_tuple if isinstance(z, tuple) else
                                explain(z).attributions, x, perturb_func=perturb, n_perturb_samples=4,
                                max_examples_per_batch=6)
    for batch_size in (None, 4):
        ours = sensitivity_max(explain, x, perturb=perturb, n_perturb=4, batch_size=batch_size)
        assert (ours - theirs).abs().max() < 1e-12


# ---------------------------------------------------------------------------- closed forms
def test_infidelity_is_zero_for_exact_attributions_of_a_linear_model():
    w = randn(1, 6)
    x, base = randn(0, 3, 6), randn(2, 1, 6)
    f = lambda z: z @ w
    ig = (x - base) * w  # IG of a linear model: exact, additive
    assert infidelity(f, x, ig, perturb="subset", baseline=base, n_perturb=20).abs().max() < 1e-12
    grad = w.expand(3, 6)  # local attributions: the "noise" perturbation
    assert infidelity(f, x, grad, perturb="noise", n_perturb=20).abs().max() < 1e-12
    # halved attributions are wrong by the factor, unless normalised
    assert infidelity(f, x, ig / 2, perturb="subset", baseline=base, n_perturb=20).min() > 1e-3
    assert infidelity(f, x, ig / 2, perturb="subset", baseline=base, n_perturb=20, normalize=True).max() < 1e-12


def linear_case(D=6):
    w, x = randn(1, D), randn(0, 2, D)
    return (lambda z: z @ w), x, w * x  # baseline 0: the IG attributions


@pytest.mark.parametrize("steps", [6, 3])
def test_deletion_and_insertion_curves_of_a_linear_model_are_the_sorted_partial_sums(steps):
    f, x, a = linear_case(6)
    per_step = 6 // steps
    for b in range(2):
        top = a[b].sort(descending=True).values
        inserted = torch.cat([torch.zeros(1, dtype=a.dtype), top.cumsum(0)])[::per_step]
        deleted = a[b].sum() - inserted
        d = deletion_auc(f, x, a, steps=steps)
        i = insertion_auc(f, x, a, steps=steps)
        assert torch.allclose(d.values[b], deleted, atol=1e-12)
        assert torch.allclose(i.values[b], inserted, atol=1e-12)
        trapezoid = lambda v: float((v[1:] + v[:-1]).sum() / (2 * steps))
        assert d.auc[b].item() == pytest.approx(trapezoid(deleted), abs=1e-12)
        assert i.auc[b].item() == pytest.approx(trapezoid(inserted), abs=1e-12)
    assert torch.equal(d.fractions, torch.arange(steps + 1, dtype=x.dtype) / steps)


def test_true_ordering_beats_every_other_ordering_pointwise_on_a_linear_model():
    f, x, a = linear_case(8)
    best_del, best_ins = deletion_auc(f, x, a, steps=8), insertion_auc(f, x, a, steps=8)
    worst_del, worst_ins = deletion_auc(f, x, -a, steps=8), insertion_auc(f, x, -a, steps=8)
    assert (best_del.auc < worst_del.auc).all() and (best_ins.auc > worst_ins.auc).all()
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        other = randn(int(torch.randint(100, (1,), generator=g)), 2, 8)
        assert (best_del.values <= deletion_auc(f, x, other, steps=8).values + 1e-12).all()
        assert (best_ins.values >= insertion_auc(f, x, other, steps=8).values - 1e-12).all()
    # the insertion curve by the true ordering adds ever smaller increments: concave
    inc = best_ins.values.diff(dim=1)
    assert (inc.diff(dim=1) <= 1e-12).all()


def test_probability_curves_are_bounded_and_batching_does_not_change_them():
    model, x = cnn(), randn(0, 3, 1, 6, 6)
    pixel = integrad.integrated_gradients(model, x, target=2, n_steps=8).attributions.abs()
    head = lambda out: out.softmax(-1)
    ref = deletion_auc(model, x, pixel, target=2, head=head, steps=9)
    assert ((ref.values >= 0) & (ref.values <= 1)).all() and ((ref.auc >= 0) & (ref.auc <= 1)).all()
    assert torch.allclose(ref.values[:, 0], model(x).softmax(-1)[:, 2].detach(), atol=1e-12)
    assert torch.allclose(ref.values[:, -1], model(torch.zeros_like(x)).softmax(-1)[:, 2].detach(), atol=1e-12)
    counted = Counting(model)
    again = deletion_auc(counted, x, pixel, target=2, head=head, steps=9, batch_size=7)
    assert torch.allclose(again.values, ref.values, atol=1e-14)
    assert counted.calls == math.ceil(3 * 10 / 7) and counted.rows == 30


def test_attributions_of_one_channel_remove_whole_pixels():
    x = randn(0, 2, 3, 2, 2)
    f = lambda z: z.sum((1, 2, 3))
    a = randn(1, 2, 1, 2, 2)
    res = deletion_auc(f, x, a, steps=4)
    for b in range(2):
        pixel_sums = x[b].sum(0).flatten()[a[b, 0].flatten().argsort(descending=True)]
        expected = x[b].sum() - torch.cat([torch.zeros(1, dtype=x.dtype), pixel_sums.cumsum(0)])
        assert torch.allclose(res.values[b], expected, atol=1e-12)


# ---------------------------------------------------------------------------- randomisation
def trained_mlp():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(256, 6, generator=g, dtype=torch.float64)
    y = ((X[:, 0] - 2 * X[:, 1] + 0.5 * X[:, 2]) > 0).long()
    net = mlp([6, 16, 16, 2])
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    return net.eval(), X[:8]


def test_randomisation_decorrelates_integrated_gradients_and_leaves_the_model_alone():
    net, x = trained_mlp()
    net.train()  # mode must come back as found
    net[2].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grads = {n: p.requires_grad for n, p in net.named_parameters()}
    rng = torch.get_rng_state()
    check = randomisation_check(net, x, lambda m, z: integrad.integrated_gradients(m, z, target=1, n_steps=16))
    assert check.layers == ("4", "2", "0")
    assert check.rank_correlation.shape == (4, 8) and check.rank_correlation_abs.shape == (4, 8)
    assert torch.allclose(check.rank_correlation[0], torch.ones(8, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(check.rank_correlation_abs[0], torch.ones(8, dtype=torch.float64), atol=1e-12)
    mean = check.rank_correlation_abs.mean(1)
    assert mean[-1] < 0.6 and mean[-1] < mean[0] - 0.3
    assert net.training and all(m.training for m in net.modules())
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert {n: p.requires_grad for n, p in net.named_parameters()} == grads
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG stream is untouched
    again = randomisation_check(net, x, lambda m, z: integrad.integrated_gradients(m, z, target=1, n_steps=16))
    assert torch.equal(again.rank_correlation, check.rank_correlation)  # seeded


def test_randomisation_of_chosen_layers_and_of_modules_without_reset_parameters():
    class Scale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.linspace(1.0, 2.0, 4, dtype=torch.float64))

        def forward(self, z):
            return z * self.w

    net = torch.nn.Sequential(Scale(), torch.nn.Linear(4, 1).double())
    x = randn(0, 5, 4)
    check = randomisation_check(net, x, lambda m, z: integrad.integrated_gradients(m, z), layers=[net[0]], seed=3)
    assert check.layers == ("0",)
    assert check.rank_correlation[1].mean() < 0.9  # input-times-weight scaled by random factors


def test_spearman_matches_scipy_with_ties():
    from scipy.stats import spearmanr

    a = torch.tensor([[1.0, 2.0, 2.0, 3.0, 0.0, 0.0], [5.0, 1.0, 4.0, 4.0, 2.0, 1.0]], dtype=torch.float64)
    b = randn(0, 2, 6).round()
    ours = spearman(a, b)
    for r in range(2):
        assert ours[r].item() == pytest.approx(spearmanr(a[r], b[r]).statistic, abs=1e-12)


# ---------------------------------------------------------------------------- ERASER
class BagOfWords(torch.nn.Module):
    """logit_1 - logit_0 = sum of the weights of the attended tokens: a known closed form."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([0.0, 0.5, 0.1, -0.2, 0.3, 0.0, 0.2, 4.0], dtype=torch.float64))

    def forward(self, ids, attention_mask=None):
        mask = torch.ones_like(ids) if attention_mask is None else attention_mask
        s = (self.w[ids] * mask).sum(1)
        return torch.stack([torch.zeros_like(s), s], 1)


def test_comprehensiveness_and_sufficiency_find_the_known_important_token():
    model = BagOfWords()
    ids = torch.tensor([[1, 2, 3, 7, 4, 6, 2, 3, 4, 6, 2, 1]])  # CLS=1 ... SEP=1; token 7 decides
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, [0, -1]] = True
    mask = torch.ones_like(ids)
    w = model.w.detach()
    attr = w[ids].clone()  # exact for a bag of words
    sig = lambda t: 1 / (1 + math.exp(-t))
    total = float(w[ids].sum())
    n = 10  # countable tokens; bins of 1, 5, 10, 20, 50% take 1, 1, 1, 2, 5 of them
    counts = [1, 1, 1, 2, 5]
    inner = sorted(w[ids[0, 1:-1]].tolist(), reverse=True)
    comp = comprehensiveness(model, ids, attr, attention_mask=mask, special_tokens_mask=special)
    suff = sufficiency(model, ids, attr, attention_mask=mask, special_tokens_mask=special)
    assert comp.target.tolist() == [1] and comp.probability.item() == pytest.approx(sig(total), abs=1e-12)
    expected_comp = [sig(total) - sig(total - sum(inner[:k])) for k in counts]
    specials = float(w[ids[0, [0, -1]]].sum())
    expected_suff = [sig(total) - sig(specials + sum(inner[:k])) for k in counts]
    assert comp.by_bin[0].tolist() == pytest.approx(expected_comp, abs=1e-12)
    assert suff.by_bin[0].tolist() == pytest.approx(expected_suff, abs=1e-12)
    assert comp.score.item() == pytest.approx(sum(expected_comp) / 5, abs=1e-12)
    assert n == int((~special).sum())
    # deleting tokens equals replacing them by a token of weight 0 for a bag of words
    replaced = comprehensiveness(model, ids, attr, special_tokens_mask=special, replace_with=0)
    assert torch.allclose(replaced.by_bin, comp.by_bin, atol=1e-12)
    # the reversed ranking is worse on both
    worse_c = comprehensiveness(model, ids, -attr, attention_mask=mask, special_tokens_mask=special)
    worse_s = sufficiency(model, ids, -attr, attention_mask=mask, special_tokens_mask=special)
    assert comp.score > worse_c.score and suff.score < worse_s.score


def test_eraser_on_the_embedded_sentiment_model_with_explain_text():
    from integrad.models import load_sentiment_model
    from integrad.text import explain_text

    model, tok = load_sentiment_model()
    texts = ["a wonderful, moving film with a brilliant cast", "dull and far too long, i hated every minute"]
    exs = explain_text(model, tok, texts, n_steps=16)
    enc = tok(texts, padding=True, return_tensors="pt", return_special_tokens_mask=True)
    attr = torch.cat([e.result.attributions.sum(-1) for e in exs])
    assert attr.shape == enc["input_ids"].shape
    common = dict(attention_mask=enc["attention_mask"], special_tokens_mask=enc["special_tokens_mask"])
    comp = comprehensiveness(model, enc["input_ids"], attr, **common)
    suff = sufficiency(model, enc["input_ids"], attr, **common)
    assert comp.target.tolist() == [1, 0]
    assert comp.probability.tolist() == pytest.approx([e.probability for e in exs], abs=1e-5)
    rev_c = comprehensiveness(model, enc["input_ids"], -attr, **common)
    rev_s = sufficiency(model, enc["input_ids"], -attr, **common, replace_with=tok.mask_token_id)
    suff_mask = sufficiency(model, enc["input_ids"], attr, **common, replace_with=tok.mask_token_id)
    assert (comp.score > rev_c.score).all() and (suff_mask.score < rev_s.score).all()
    assert (comp.by_bin[:, -1] > 0.3).all()  # erasing half the words (the sentiment ones) flips the mood
    assert suff.by_bin.shape == (2, 5) and not model.training


# ---------------------------------------------------------------------------- bad input
def _net():
    return mlp([4, 3])


X = randn(0, 2, 4)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: deletion_auc(_net(), X.tolist(), X, target=0), TypeError, r"inputs: expected a torch.Tensor"),
    (lambda: deletion_auc(_net(), X, randn(1, 2, 5), target=0), ValueError,
     r"attributions: expected shape \(2, 4\) .*got \(2, 5\)"),
    (lambda: insertion_auc(_net(), X, X, target=0, steps=0), ValueError, r"steps: expected an int >= 1; got 0"),
    (lambda: deletion_auc(_net(), X, X, target=7), ValueError, r"target: class index 7 is out of range"),
    (lambda: deletion_auc(_net(), X, X * float("nan"), target=0), ValueError, r"attributions: contains NaN"),
    (lambda: infidelity(_net(), X, X, perturb="gauss", target=0), ValueError,
     r"perturb: expected one of 'noise', 'subset' or a callable"),
    (lambda: infidelity(_net(), X, X, perturb=seeded_noise(0.1), scale=0.3, target=0), ValueError,
     r"scale: sets the built-in perturbations only"),
    (lambda: infidelity(_net(), X, X, perturb=lambda x, b: (x[:1], x), target=0), ValueError,
     r"perturb: expected shape \(20, 4\), like the rows it was given \(perturbation\); got \(1, 4\)"),
    (lambda: infidelity(_net(), X, X, perturb=lambda x, b: x, target=0), TypeError,
     r"perturb: expected a callable returning \(perturbation, perturbed inputs\)"),
    (lambda: infidelity(_net(), X, X, n_perturb=0, target=0), ValueError, r"n_perturb: expected an int >= 1"),
    (lambda: infidelity(_net(), X, X, perturb="subset", scale=1.5, target=0), ValueError,
     r"scale: expected a finite number in \(0, 1.0\]"),
    (lambda: sensitivity_max(lambda x: x[:1], X), ValueError,
     r"explain_fn: expected attributions with one row per input row, shape \(2, \.\.\.\); got \(1, 4\)"),
    (lambda: sensitivity_max(lambda x: x, X, perturb=lambda x: x, perturb_radius=0.1), ValueError,
     r"perturb_radius: sets the default uniform noise only"),
    (lambda: sensitivity_max("saliency", X), TypeError, r"explain_fn: expected a callable"),
    (lambda: randomisation_check(lambda x: x, X, lambda m, x: x), TypeError, r"model: expected an nn.Module"),
    (lambda: randomisation_check(_net(), X, lambda m, x: x, layers=["head"]), ValueError,
     r"layers\[0\]: model has no module named 'head' \(modules with parameters: '0'\)"),
    (lambda: randomisation_check(_net(), X, lambda m, x: x, layers=[torch.nn.Linear(2, 2)]), ValueError,
     r"layers\[0\]: this Linear is not a module of model"),
    (lambda: comprehensiveness(BagOfWords(), torch.ones(1, 4), torch.ones(1, 4)), TypeError,
     r"input_ids: expected integer token ids"),
    (lambda: comprehensiveness(BagOfWords(), torch.ones(1, 4, dtype=torch.long), torch.ones(1, 4, 8),
                               replace_with=0), ValueError, r"attributions: .* got \(1, 4, 8\) \(sum the embedding"),
    (lambda: sufficiency(BagOfWords(), torch.ones(1, 4, dtype=torch.long), torch.ones(1, 4)), ValueError,
     r"replace_with: None deletes the erased tokens, which needs attention_mask="),
    (lambda: sufficiency(BagOfWords(), torch.ones(1, 4, dtype=torch.long), torch.ones(1, 4), replace_with=0,
                         bins=[0.1, 2]), ValueError, r"bins\[1\]: expected a fraction of the tokens in \(0, 1\]"),
    (lambda: comprehensiveness(BagOfWords(), torch.ones(1, 4, dtype=torch.long), torch.ones(1, 4), replace_with=0,
                               attention_mask=torch.ones(1, 3)), ValueError,
     r"attention_mask: expected shape \(1, 4\) like input_ids; got \(1, 3\)"),
    (lambda: deletion_auc(mlp([5, 3]), X, X, target=0), RuntimeError,
     r"model: raised on a block of 42 rows of shape \(42, 4\)"),
])
def test_bad_input_is_refused_naming_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
