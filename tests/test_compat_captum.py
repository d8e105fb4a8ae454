"""integrad.compat.captum against Captum's own classes (float64, seeded), and its intended differences."""

import copy

import numpy as np
import pytest
import torch

ca = pytest.importorskip("captum.attr")

from conftest import mlp  # noqa: E402
from integrad.compat import captum as ic  # noqa: E402

D = torch.float64
AGREEING_RULES = ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle"]


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def assert_same_structure(ours, theirs, tol=1e-6):
    """Same nesting (tensor / tuple / list) and values within ``tol`` relative."""
    assert type(ours) is type(theirs)
    if isinstance(theirs, (tuple, list)):
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            assert_same_structure(o, t, tol)
    else:
        assert ours.shape == theirs.shape
        assert rel_err(ours, theirs) <= tol


# ---------------------------------------------------------------------------- models
class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.body = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                        torch.nn.Linear(6 * 4 * 4, 4))

    def forward(self, x):
        return self.body(self.conv(x))


class TextNet(torch.nn.Module):
    """Token ids and a mask (an additional forward argument) -> 2 logits."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(20, 6)
        self.head = torch.nn.Linear(6, 2)

    def forward(self, ids, mask, scale=1.0):
        h = torch.tanh(self.emb(ids)) * mask.unsqueeze(-1)
        return scale * self.head(h.sum(1) / mask.sum(1, keepdim=True))


class TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 5), torch.nn.Linear(3, 5)
        self.head = torch.nn.Linear(5, 3)

    def forward(self, x, y, scale=1.0):
        return self.head(torch.tanh(self.a(x)) * torch.sigmoid(self.b(y))) * scale


class Rank3(torch.nn.Module):
    """Output of shape (batch, 3, 4): targets are tuples."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(5, 12)

    def forward(self, x):
        return torch.tanh(self.lin(x)).view(-1, 3, 4)


class Pair(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(5, 4), torch.nn.Linear(5, 3)

    def forward(self, x):
        return torch.tanh(self.a(x)), self.b(x)


class TupleNet(torch.nn.Module):
    """A layer returning a tuple (``pair``) next to an independent branch (``side``)."""

    def __init__(self):
        super().__init__()
        self.pair, self.side = Pair(), torch.nn.Linear(5, 2)
        self.head = torch.nn.Linear(9, 2)

    def forward(self, x):
        u, v = self.pair(x)
        return self.head(torch.cat([u, torch.sin(v), torch.tanh(self.side(x))], 1))


def seeded(module):
    torch.manual_seed(0)
    return module.to(D).eval()


def rand(*shape):
    return torch.randn(*shape, dtype=D)


def text_batch():
    ids = torch.tensor([[3, 5, 7, 1, 0], [2, 9, 4, 4, 6], [8, 1, 1, 0, 0]])
    return ids, (ids != 0).to(D)


# ---------------------------------------------------------------------------- IntegratedGradients
@pytest.mark.parametrize("method", AGREEING_RULES)
def test_ig_matches_captum_per_example_targets_and_delta(method):
    net, x, b = mlp([5, 16, 16, 3]), rand(4, 5), rand(1, 5)
    kw = dict(baselines=b, target=[0, 2, 1, 2], method=method, n_steps=24, return_convergence_delta=True)
    (ours, d_ours), (theirs, d_theirs) = ic.IntegratedGradients(net).attribute(x, **kw), \
        ca.IntegratedGradients(net).attribute(x, **kw)
    assert_same_structure(ours, theirs)
    assert d_ours.shape == d_theirs.shape == (4,)
    assert (d_ours - d_theirs).abs().max() <= 1e-6 * theirs.abs().sum(1).max()


def test_ig_matches_captum_on_cnn():
    net, x = seeded(SmallCNN()), rand(3, 3, 8, 8)
    kw = dict(target=torch.tensor([0, 3, 1]), n_steps=16)
    assert_same_structure(ic.IntegratedGradients(net).attribute(x, **kw),
                          ca.IntegratedGradients(net).attribute(x, **kw))


def test_ig_tuple_inputs_forward_args_and_internal_batch_size():
    net, x, y = seeded(TwoInputs()), rand(3, 4), rand(3, 3)
    kw = dict(baselines=(0.5, rand(1, 3)), target=1, additional_forward_args=(2.0,), n_steps=20,
              internal_batch_size=7, return_convergence_delta=True)
    rows = []

    def counted(*args):
        rows.append(args[0].shape[0])
        return net(*args)

    ours, theirs = ic.IntegratedGradients(counted).attribute((x, y), **kw), \
        ca.IntegratedGradients(net).attribute((x, y), **kw)
    assert max(rows) <= 7 and sum(rows) >= 3 * 20  # internal_batch_size: interpolated rows per call
    assert isinstance(ours[0], tuple) and len(ours[0]) == 2
    assert_same_structure(ours[0], theirs[0])
    assert (ours[1] - theirs[1]).abs().max() <= 1e-8


@pytest.mark.parametrize("target", [(1, 2), [(0, 1), (2, 3), (1, 0)]], ids=["tuple", "list_of_tuples"])
def test_ig_tuple_targets_on_rank3_output(target):
    net, x = seeded(Rank3()), rand(3, 5)
    assert_same_structure(ic.IntegratedGradients(net).attribute(x, target=target, n_steps=16),
                          ca.IntegratedGradients(net).attribute(x, target=target, n_steps=16))


def test_multiply_by_inputs_false_matches_captum():
    net, x = mlp([5, 8, 3]), rand(3, 5)
    assert_same_structure(ic.IntegratedGradients(net, multiply_by_inputs=False).attribute(x, target=2, n_steps=16),
                          ca.IntegratedGradients(net, multiply_by_inputs=False).attribute(x, target=2, n_steps=16))
    assert_same_structure(
        ic.LayerIntegratedGradients(net, net[1], multiply_by_inputs=False).attribute(x, target=0, n_steps=16),
        ca.LayerIntegratedGradients(net, net[1], multiply_by_inputs=False).attribute(x, target=0, n_steps=16))


def test_riemann_trapezoid_is_captums_rescaled_by_n_over_n_minus_1():
    # intended difference: Captum's trapezoid weights sum to (n-1)/n
    net, x, n = mlp([5, 8, 3]), rand(2, 5), 10
    ours = ic.IntegratedGradients(net).attribute(x, target=1, method="riemann_trapezoid", n_steps=n)
    theirs = ca.IntegratedGradients(net).attribute(x, target=1, method="riemann_trapezoid", n_steps=n)
    assert rel_err(ours * (n - 1) / n, theirs) <= 1e-6


# ---------------------------------------------------------------------------- LayerIntegratedGradients
@pytest.mark.parametrize("layer_input", [False, True], ids=["output", "input"])
def test_layer_ig_matches_captum_on_cnn(layer_input):
    net, x = seeded(SmallCNN()), rand(2, 3, 8, 8)
    kw = dict(target=[1, 2], n_steps=16, attribute_to_layer_input=layer_input, return_convergence_delta=True)
    ours, theirs = ic.LayerIntegratedGradients(net, net.body[2]).attribute(x, **kw), \
        ca.LayerIntegratedGradients(net, net.body[2]).attribute(x, **kw)
    assert_same_structure(ours[0], theirs[0])
    assert (ours[1] - theirs[1]).abs().max() <= 1e-6 * theirs[0].abs().sum()


def test_layer_ig_embedding_with_token_ids_and_forward_args():
    net, (ids, mask) = seeded(TextNet()), text_batch()
    kw = dict(baselines=torch.zeros_like(ids), target=1, additional_forward_args=(mask, 3.0), n_steps=20,
              return_convergence_delta=True)
    ours, theirs = ic.LayerIntegratedGradients(net, net.emb).attribute(ids, **kw), \
        ca.LayerIntegratedGradients(net, net.emb).attribute(ids, **kw)
    assert ours[0].shape == (3, 5, 6)
    assert_same_structure(ours[0], theirs[0])
    assert (ours[1] - theirs[1]).abs().max() <= 1e-8


def test_layer_ig_on_layer_returning_a_tuple():
    net, x = seeded(TupleNet()), rand(3, 5)
    ours = ic.LayerIntegratedGradients(net, net.pair).attribute(x, target=0, n_steps=16)
    assert isinstance(ours, tuple) and [t.shape for t in ours] == [(3, 4), (3, 3)]
    assert_same_structure(ours, ca.LayerIntegratedGradients(net, net.pair).attribute(x, target=0, n_steps=16))


@pytest.mark.filterwarnings("ignore:Multiple layers provided")
@pytest.mark.parametrize("names", [("side",), ("pair", "side"), ("side", "pair")])
def test_layer_ig_list_of_layers_gives_captums_list(names):
    net, x = seeded(TupleNet()), rand(3, 5)
    layers = [getattr(net, n) for n in names]
    kw = dict(target=1, n_steps=16, return_convergence_delta=True)
    ours, theirs = ic.LayerIntegratedGradients(net, layers).attribute(x, **kw), \
        ca.LayerIntegratedGradients(net, layers).attribute(x, **kw)
    assert isinstance(ours[0], list)
    assert_same_structure(ours[0], theirs[0])
    assert (ours[1] - theirs[1]).abs().max() <= 1e-8


@pytest.mark.parametrize("index, layer_input", [(0, False), (1, True), (1, False), (2, True)],
                         ids=["linear_output", "relu_input", "relu_output", "head_input"])
def test_layer_ig_around_inplace_relu(index, layer_input):
    # Captum fails on the first two ("a leaf Variable ... in-place"); integrad is compared with
    # Captum on the same model with an out-of-place ReLU
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(inplace=True), torch.nn.Linear(8, 3)).to(D).eval()
    twin = copy.deepcopy(net)
    twin[1] = torch.nn.ReLU()
    x, kw = rand(4, 5), dict(target=2, n_steps=16, attribute_to_layer_input=layer_input)
    assert_same_structure(ic.LayerIntegratedGradients(net, net[index]).attribute(x, **kw),
                          ca.LayerIntegratedGradients(twin, twin[index]).attribute(x, **kw))


# ---------------------------------------------------------------------------- NeuronIntegratedGradients
def test_neuron_ig_int_selector_matches_captum():
    net, x = mlp([5, 8, 8, 3]), rand(3, 5)
    assert_same_structure(ic.NeuronIntegratedGradients(net, net[1]).attribute(x, 4, n_steps=16),
                          ca.NeuronIntegratedGradients(net, net[1]).attribute(x, 4, n_steps=16))


@pytest.mark.parametrize("selector", [(2, 1, 3), (1, slice(0, 3), 2)], ids=["ints", "slice"])
def test_neuron_ig_tuple_selector_on_cnn_matches_captum(selector):
    net, x = seeded(SmallCNN()), rand(2, 3, 8, 8)
    kw = dict(baselines=0.1, n_steps=16, internal_batch_size=5)
    assert_same_structure(ic.NeuronIntegratedGradients(net, net.conv).attribute(x, selector, **kw),
                          ca.NeuronIntegratedGradients(net, net.conv).attribute(x, selector, **kw))


# ---------------------------------------------------------------------------- NoiseTunnel
@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel_without_noise_is_the_wrapped_method(nt_type):
    net, x = mlp([5, 8, 3]), rand(3, 5)
    kw = dict(nt_type=nt_type, nt_samples=4, stdevs=0.0, target=[0, 1, 2], n_steps=16, return_convergence_delta=True)
    (ours, d_ours) = ic.NoiseTunnel(ic.IntegratedGradients(net)).attribute(x, **kw)
    (theirs, d_theirs) = ca.NoiseTunnel(ca.IntegratedGradients(net)).attribute(x, **kw)
    ig = ic.IntegratedGradients(net).attribute(x, target=[0, 1, 2], n_steps=16)
    expected = {"smoothgrad": ig, "smoothgrad_sq": ig ** 2, "vargrad": torch.zeros_like(ig)}[nt_type]
    scale = ig.abs().max() ** (1 if nt_type == "smoothgrad" else 2)
    assert (ours - expected).abs().max() <= 1e-12 * scale
    assert (ours - theirs).abs().max() <= 1e-6 * scale
    assert d_ours.shape == d_theirs.shape == (12,)
    assert (d_ours - d_theirs).abs().max() <= 1e-8


def test_noise_tunnel_over_layer_ig_without_noise():
    net, x = seeded(TwoInputs()), (rand(3, 4), rand(3, 3))
    kw = dict(nt_type="smoothgrad", nt_samples=3, stdevs=(0.0, 0.0), target=2, n_steps=16)
    assert_same_structure(ic.NoiseTunnel(ic.LayerIntegratedGradients(net, net.a)).attribute(x, **kw),
                          ca.NoiseTunnel(ca.LayerIntegratedGradients(net, net.a)).attribute(x, **kw))


def test_noise_tunnel_over_neuron_ig_without_noise():
    net, x = seeded(SmallCNN()), rand(2, 3, 8, 8)
    kw = dict(nt_type="smoothgrad", nt_samples=2, stdevs=0.0, n_steps=12)
    ours = ic.NoiseTunnel(ic.NeuronIntegratedGradients(net, net.conv)).attribute(x, neuron_selector=(1, 2, 2), **kw)
    assert_same_structure(ours, ca.NeuronIntegratedGradients(net, net.conv).attribute(x, (1, 2, 2), n_steps=12))


def test_noise_tunnel_baseline_drawn_from_a_one_row_distribution_is_that_baseline():
    net, x, b = mlp([5, 8, 3]), rand(3, 5), rand(1, 5)
    ours = ic.NoiseTunnel(ic.IntegratedGradients(net)).attribute(
        x, nt_samples=3, stdevs=0.0, draw_baseline_from_distrib=True, baselines=b, target=1, n_steps=16)
    assert_same_structure(ours, ca.IntegratedGradients(net).attribute(x, baselines=b, target=1, n_steps=16))


def test_noise_tunnel_on_token_ids_noises_the_embeddings():
    # intended difference: Captum adds the noise to the ids and fails (captum#1281)
    net, (ids, mask) = seeded(TextNet()), text_batch()
    nt = ic.NoiseTunnel(ic.LayerIntegratedGradients(net, net.emb))
    kw = dict(target=0, additional_forward_args=(mask,), n_steps=16, nt_samples=4)
    calm = nt.attribute(ids, stdevs=0.0, **kw)
    noisy = nt.attribute(ids, stdevs=0.3, **kw)
    assert_same_structure(calm, ca.LayerIntegratedGradients(net, net.emb).attribute(
        ids, target=0, additional_forward_args=(mask,), n_steps=16))
    assert noisy.shape == calm.shape and torch.isfinite(noisy).all() and not torch.equal(noisy, calm)
    assert torch.equal(noisy, nt.attribute(ids, stdevs=0.3, **kw))  # seeded


# ---------------------------------------------------------------------------- GradientShap
def per_sample(gs, x, refs, S, **kw):
    """``S`` single-sample GradientShap draws per example: (batch, S, *features)."""
    a = gs.attribute(x.repeat_interleave(S, 0), refs, n_samples=1, **kw)
    return a.reshape(x.shape[0], S, *x.shape[1:])


def test_gradient_shap_on_a_linear_model_is_w_times_x_minus_mean_baseline():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1).to(D)
    x, refs, S = rand(3, 4), rand(20, 4), 2000
    np.random.seed(0)
    expected = net.weight[0] * (x - refs.mean(0))
    se = (net.weight[0] * refs.std(0)).abs() / S ** 0.5
    ours, delta = ic.GradientShap(net).attribute(x, refs, n_samples=S, return_convergence_delta=True)
    theirs = ca.GradientShap(net).attribute(x, refs, n_samples=S)
    assert ((ours - expected).abs() <= 5 * se).all() and ((theirs - expected).abs() <= 5 * se).all()
    assert delta.shape == (3 * S,) and delta.abs().max() <= 1e-10  # per sample, exact for a linear model


@pytest.mark.parametrize("stdevs", [0.0, 0.3])
def test_gradient_shap_agrees_with_captum_in_distribution(stdevs):
    net, x, refs, S = mlp([5, 12, 3]), rand(3, 5), rand(16, 5), 2000
    np.random.seed(0)
    ours = per_sample(ic.GradientShap(net), x, refs, S, stdevs=stdevs, target=1)
    theirs = per_sample(ca.GradientShap(net), x, refs, S, stdevs=stdevs, target=1)
    se = ((ours.var(1) + theirs.var(1)) / S).sqrt()
    assert ((ours.mean(1) - theirs.mean(1)).abs() <= 5 * se).all()
    # n_samples=S is the mean of those S draws (same seed, same rows)
    mean = ic.GradientShap(net).attribute(x, refs, n_samples=S, stdevs=stdevs, target=1)
    assert (mean - ours.mean(1)).abs().max() <= 1e-12


def test_gradient_shap_tuple_inputs_and_delta_shape_match_captum():
    net, x = seeded(TwoInputs()), (rand(2, 4), rand(2, 3))
    refs = (rand(6, 4), rand(6, 3))
    kw = dict(n_samples=5, target=[0, 2], additional_forward_args=2.0, return_convergence_delta=True)
    ours, theirs = ic.GradientShap(net).attribute(x, refs, **kw), ca.GradientShap(net).attribute(x, refs, **kw)
    assert isinstance(ours[0], tuple) and [a.shape for a in ours[0]] == [a.shape for a in theirs[0]]
    assert ours[1].shape == theirs[1].shape == (10,)


# ---------------------------------------------------------------------------- errors
def _bad_calls():
    net, x = mlp([5, 8, 3]), rand(2, 5)
    ig, refs = ic.IntegratedGradients(net), rand(4, 5)
    return {
        "rule": lambda: ig.attribute(x, target=0, method="simpson"),
        "n_steps": lambda: ig.attribute(x, target=0, n_steps=0),
        "baseline_shape": lambda: ig.attribute(x, baselines=rand(3, 4), target=0),
        "target_range": lambda: ig.attribute(x, target=7),
        "forward_func": lambda: ic.IntegratedGradients(3),
        "device_ids": lambda: ic.LayerIntegratedGradients(net, net[0], device_ids=[0]),
        "grad_kwargs": lambda: ic.LayerIntegratedGradients(net, net[0]).attribute(x, target=0, grad_kwargs={}),
        "neuron_input": lambda: ic.NeuronIntegratedGradients(net, net[0]).attribute(
            x, 1, attribute_to_neuron_input=True),
        "nt_type": lambda: ic.NoiseTunnel(ig).attribute(x, nt_type="smooth", target=0),
        "nt_samples": lambda: ic.NoiseTunnel(ig).attribute(x, nt_samples=0, target=0),
        "stdevs_differ": lambda: ic.NoiseTunnel(ic.IntegratedGradients(lambda a, b: (a + b).sum(1))).attribute(
            (x, x), stdevs=(0.1, 0.2)),
        "stdevs_type": lambda: ic.NoiseTunnel(ig).attribute(x, stdevs="big", target=0),
        "unknown_kwarg": lambda: ic.NoiseTunnel(ig).attribute(x, target=0, n_step=3),
        "wrap_gradient_shap": lambda: ic.NoiseTunnel(ic.GradientShap(net)),
        "gs_n_samples": lambda: ic.GradientShap(net).attribute(x, refs, n_samples=0, target=0),
        "gs_baselines": lambda: ic.GradientShap(net).attribute(x, 0.0, target=0),
        "gs_baseline_shape": lambda: ic.GradientShap(net).attribute(x, rand(4, 3), target=0),
        "gs_inputs": lambda: ic.GradientShap(net).attribute(x.tolist(), refs, target=0),
    }


@pytest.mark.parametrize("case", list(_bad_calls()))
def test_bad_arguments_raise_value_or_type_error_not_assertion(case):
    with pytest.raises((ValueError, TypeError)):
        _bad_calls()[case]()
