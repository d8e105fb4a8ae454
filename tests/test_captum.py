"""Captum as an independent oracle (float64), and the trapezoid bug it carries."""

import pytest
import torch

captum_attr = pytest.importorskip("captum.attr")

import integrad  # noqa: E402
from conftest import mlp  # noqa: E402

CAPTUM_NAMES = {"riemann_left": "riemann_left", "riemann_right": "riemann_right",
                "riemann_middle": "riemann_middle", "gausslegendre": "gausslegendre"}


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(32, 5))

    def forward(self, x):
        return self.body(x)


class TextNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(30, 8)
        self.pos = torch.nn.Parameter(torch.randn(6, 8) * 0.1)
        self.enc = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, ids, mask):
        h = self.enc(self.emb(ids) + self.pos, src_key_padding_mask=~mask)
        return self.head((h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True))


@pytest.mark.parametrize("method", list(CAPTUM_NAMES))
def test_agrees_with_captum_on_mlp(method):
    net = mlp([6, 32, 32, 3], act=torch.nn.ReLU)
    x, b = torch.randn(4, 6, dtype=torch.float64), torch.randn(1, 6, dtype=torch.float64)
    ours = integrad.integrated_gradients(net, x, baseline=b, target=2, method=method, n_steps=40)
    theirs = captum_attr.IntegratedGradients(net).attribute(x, baselines=b, target=2, n_steps=40,
                                                            method=CAPTUM_NAMES[method])
    assert rel_err(ours.attributions, theirs) <= 1e-6


@pytest.mark.parametrize("method", list(CAPTUM_NAMES))
def test_agrees_with_captum_on_cnn(method):
    net = SmallCNN().double().eval()
    x = torch.randn(3, 3, 12, 12, dtype=torch.float64)
    ours = integrad.integrated_gradients(net, x, target=[0, 3, 4], method=method, n_steps=24)
    theirs = captum_attr.IntegratedGradients(net).attribute(x, target=[0, 3, 4], n_steps=24,
                                                            method=CAPTUM_NAMES[method])
    assert rel_err(ours.attributions, theirs) <= 1e-6


@pytest.mark.parametrize("method", ["riemann_middle", "gausslegendre"])
def test_agrees_with_captum_layer_ig_through_embedding(method):
    net = TextNet().double().eval()
    ids = torch.randint(1, 30, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    pad = torch.zeros_like(ids)
    ours = integrad.integrated_gradients(net, ids, baseline=pad, target=1, forward_args=(mask,), layer=net.emb,
                                         method=method, n_steps=32)
    theirs = captum_attr.LayerIntegratedGradients(net, net.emb).attribute(
        ids, baselines=pad, target=1, additional_forward_args=(mask,), n_steps=32, method=method)
    assert rel_err(ours.attributions, theirs) <= 1e-6


@pytest.mark.parametrize("n", [2, 5, 50])
def test_captum_trapezoid_is_scaled_by_n_minus_1_over_n(n):
    # On a linear model every correct rule is exact; Captum's trapezoid weights sum to
    # (n - 1)/n, so its attributions come out scaled by exactly that factor.
    w = torch.randn(5, dtype=torch.float64)
    f = lambda z: z @ w
    x = torch.randn(3, 5, dtype=torch.float64)
    ours = integrad.integrated_gradients(f, x, method="trapezoid", n_steps=n).attributions
    theirs = captum_attr.IntegratedGradients(f).attribute(x, n_steps=n, method="riemann_trapezoid")
    torch.testing.assert_close(ours, w * x, atol=1e-12, rtol=0)
    torch.testing.assert_close(theirs, ours * (n - 1) / n, atol=1e-7, rtol=1e-7)
