"""integrad.audit: the axioms checked on a model, catching the methods that break them."""

import json

import pytest
import torch

import integrad
from integrad.axioms import audit


class Saturating(torch.nn.Module):
    """The seed's example: F(x) = 1 - ReLU(1 - x) (flat beyond 1), and a second, ignored feature."""

    def forward(self, x):
        return 1 - torch.relu(1 - x[:, 0]) + 0.0 * x[:, 1]


SATURATED = torch.tensor([[2.0, 0.5], [3.0, 1.0]], dtype=torch.float64)


def tanh_mlp(seed=0, d=6):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double().eval()


def test_gradients_fail_sensitivity_and_completeness_on_the_saturation_example_and_ig_passes():
    for method in ("gradient", "gradient_x_input"):
        report = audit(Saturating(), SATURATED, method=method)
        assert report["completeness"].passed is False and report["completeness"].value == pytest.approx(1.0)
        assert report["sensitivity"].passed is False and report["sensitivity"].value == 0.0
        assert not report.passed
    ig = audit(Saturating(), SATURATED, rule="piecewise")  # exact IG on this piecewise-linear model
    assert ig.passed, str(ig)
    assert ig["completeness"].value < 1e-12 and ig["sensitivity"].value == pytest.approx(1.0)
    assert ig["dummy"].passed and "1 ignored feature(s) (found by perturbation)" in ig["dummy"].detail


def test_ig_passes_every_applicable_check_on_a_smooth_network():
    report = audit(tanh_mlp(), torch.randn(4, 6, dtype=torch.float64), target=1, n_steps=32)
    assert report.passed, str(report)
    applicable = {c.name for c in report.checks if c.passed is not None}
    assert {"completeness", "sensitivity", "linearity", "implementation invariance (traced)", "batch invariance",
            "chunk invariance", "dtype invariance"} <= applicable


def _drops_feature(model, inputs, baseline=0.0, target=None, **kw):
    a = integrad.integrated_gradients(model, inputs, baseline=baseline, target=target, **kw).attributions.clone()
    a[:, 0] = 0.0
    return a


def _scaled(model, inputs, baseline=0.0, target=None, **kw):
    return 0.9 * integrad.integrated_gradients(model, inputs, baseline=baseline, target=target, **kw).attributions


def _batch_dependent(model, inputs, baseline=0.0, target=None, **kw):
    a = integrad.integrated_gradients(model, inputs, baseline=baseline, target=target, **kw).attributions
    return a - a.mean(0, keepdim=True) + a.mean()  # each row depends on the others


def test_broken_methods_are_caught():
    x = torch.randn(4, 6, dtype=torch.float64)
    dropped = audit(tanh_mlp(), x, method=_drops_feature, target=1)
    assert dropped["sensitivity"].passed is False and dropped["completeness"].passed is False
    scaled = audit(tanh_mlp(), x, method=_scaled, target=1)
    assert scaled["completeness"].passed is False and scaled["completeness"].value == pytest.approx(0.1, rel=1e-6)
    mixed = audit(tanh_mlp(), x, method=_batch_dependent, target=1)
    assert mixed["batch invariance"].passed is False


def test_symmetry_declared_or_found_and_dummy_declared():
    w = torch.tensor([1.0, 1.0, -2.0, 0.0], dtype=torch.float64)

    class Sym(torch.nn.Module):  # symmetric in features 0 and 1, ignores feature 3
        def forward(self, x):
            return torch.tanh(x @ w) + x[:, 0] * x[:, 1]

    x = torch.randn(3, 4, dtype=torch.float64)
    found = audit(Sym(), x, n_steps=32)
    assert found["symmetry"].passed and "(0, 1)" not in found["symmetry"].detail  # counted, not listed
    assert "1 symmetric pair(s) (found by swapping)" in found["symmetry"].detail
    declared = audit(Sym(), x, n_steps=32, symmetric=[(0, 1)], dummy=[3])
    assert declared["symmetry"].passed and declared["dummy"].passed and "declared" in declared["dummy"].detail

    def unequal(model, inputs, baseline=0.0, target=None):  # favours the first of any pair
        a = integrad.integrated_gradients(model, inputs, baseline=baseline, target=target, n_steps=32).attributions
        return a * torch.tensor([1.5, 0.5, 1.0, 1.0], dtype=a.dtype)

    assert audit(Sym(), x, method=unequal, symmetric=[(0, 1)])["symmetry"].passed is False


def test_batch_norm_folded_copy_and_report_outputs(tmp_path):
    torch.manual_seed(1)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.Softplus(),
                              torch.nn.Flatten(), torch.nn.Linear(3 * 36, 2)).double()
    with torch.no_grad():
        cnn[1].running_mean.uniform_(-1, 1), cnn[1].running_var.uniform_(0.5, 2)
    cnn.eval()
    report = audit(cnn, torch.rand(2, 1, 6, 6, dtype=torch.float64), target=0, n_steps=16)
    folded = report["implementation invariance (batch norm folded)"]
    assert folded.passed and folded.value < 1e-10
    report.save(tmp_path / "audit.json")
    report.save(tmp_path / "audit.html")
    data = json.loads((tmp_path / "audit.json").read_text())
    assert data["passed"] is True and {c["name"] for c in data["checks"]} >= {"completeness", "symmetry"}
    page = (tmp_path / "audit.html").read_text()
    assert page.startswith("<!doctype html>") and "http" not in page and "batch norm folded" in page
    assert "<style>" in report._repr_html_()


@pytest.mark.parametrize("kwargs, error, words", [
    ({"method": "lime"}, ValueError, "method: expected 'integrated_gradients', 'gradient'"),
    ({"method": 3}, TypeError, "method: expected a name or a callable"),
    ({"tol": 0}, ValueError, "tol: expected a number in (0, 1)"),
    ({"dummy": [7]}, ValueError, "dummy: expected flat feature indices in 0..5"),
    ({"symmetric": [(1, 1)]}, ValueError, "symmetric: expected pairs of two different flat feature indices"),
    ({"method": lambda m, x, baseline, target: x[:, :2]}, ValueError, "method: expected attributions of the "
                                                                      "inputs' shape (4, 6)"),
])
def test_bad_arguments(kwargs, error, words):
    with pytest.raises(error) as info:
        audit(tanh_mlp(), torch.randn(4, 6, dtype=torch.float64), target=1, **kwargs)
    assert words in str(info.value)


def test_inputs_must_be_a_float_batch():
    with pytest.raises(ValueError, match=r"inputs: expected a float tensor of shape \(batch, \*features\); got "
                                         r"torch.int64 tensor of shape \(2, 3\)"):
        audit(tanh_mlp(d=3), torch.ones(2, 3, dtype=torch.long))


def test_linearity_over_user_heads_on_a_one_output_model():
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double().eval()
    x = torch.randn(3, 3, dtype=torch.float64)
    heads = (lambda o: torch.sigmoid(o[:, 0]), lambda o: o[:, 0] ** 2)
    report = audit(net, x, heads=heads, n_steps=32)
    assert report["linearity"].passed and "(the heads given)" in report["linearity"].detail
    assert audit(net, x, n_steps=8)["linearity"].passed is None  # one output and no heads: not applicable
    with pytest.raises(TypeError, match="heads: expected two callables"):
        audit(net, x, heads=(heads[0],))


def test_baselines_broadcast_like_the_inputs():
    net, x = tanh_mlp(), torch.randn(3, 6, dtype=torch.float64)
    one_row = torch.randn(1, 6, dtype=torch.float64)
    a = audit(net, x, baseline=one_row, target=0, n_steps=16)
    b = audit(net, x, baseline=one_row[0], target=0, n_steps=16)
    assert a.passed and b.passed and a["batch invariance"].value == 0.0
    with pytest.raises(ValueError, match=r"baseline: expected a number or a tensor broadcastable to the inputs' "
                                         r"shape \(3, 6\); got shape \(2, 6\)"):
        audit(net, x, baseline=torch.zeros(2, 6, dtype=torch.float64), target=0)
    with pytest.raises(TypeError, match="baseline: expected a number or a tensor; got str"):
        audit(net, x, baseline="black", target=0)


def test_several_outputs_need_a_target_for_every_method():
    net = torch.nn.Linear(3, 2).double()
    with pytest.raises(ValueError, match="target: the model gives 2 outputs per example; give target="):
        audit(net, torch.randn(2, 3, dtype=torch.float64), method="gradient")
