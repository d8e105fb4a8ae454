"""integrad's own methods through the conformance kit (integrad.testing.check_method)."""

import pytest
import torch

import integrad
from integrad.testing import ALL, as_method, check_method, reference_models


def _without(*names):
    return tuple(c for c in ALL if c not in names)


@pytest.mark.parametrize("label, method, kwargs", [
    ("IG, 50 Gauss-Legendre nodes", "integrated_gradients", {}),
    ("IG, rtol", "integrated_gradients", {"rtol": 1e-4}),
    ("Guided IG", as_method(integrad.guided_ig, n_steps=64), {}),
    ("Blur IG", as_method(integrad.blur_ig, max_sigma=2.0), {"models": ["cnn"]}),
    # IDGI splits each step's change of F by the squared gradient: not linear in F, and a
    # feature with a small gradient gets little even when it alone differs from the baseline
    ("IDGI", as_method(integrad.idgi, n_steps=64), {"claims": _without("linearity", "sensitivity")}),
    # SmoothGrad's noise for an example depends on the batch it is drawn with (one generator per call)
    ("SmoothGrad-IG", as_method(integrad.smoothgrad, n_samples=8, noise=0.05, seed=0),
     {"claims": _without("batch invariance")}),
])
def test_integrad_methods_keep_what_they_claim(label, method, kwargs):
    reports = check_method(method, **kwargs)
    assert reports and all(r.checks for r in reports.values())


@pytest.mark.parametrize("method", ["gradient", "gradient_x_input"])
def test_gradients_are_refused_for_sensitivity_and_completeness(method):
    with pytest.raises(AssertionError) as info:
        check_method(method)
    text = str(info.value)
    assert "saturating: completeness" in text and "saturating: sensitivity" in text


def test_a_method_that_scales_by_0_9_or_drops_a_feature_is_refused():
    def scaled(model, inputs, baseline=0.0, target=None):
        return 0.9 * integrad.integrated_gradients(model, inputs, baseline=baseline, target=target).attributions

    def dropped(model, inputs, baseline=0.0, target=None):
        a = integrad.integrated_gradients(model, inputs, baseline=baseline, target=target).attributions.clone()
        a.view(a.shape[0], -1)[:, 0] = 0.0
        return a

    with pytest.raises(AssertionError, match="completeness"):
        check_method(scaled)
    with pytest.raises(AssertionError, match="sensitivity"):
        check_method(dropped, models=["saturating"])


def test_reference_models_are_fixed_and_leave_the_global_generator_alone():
    state = torch.random.get_rng_state()
    a, b = reference_models(), reference_models()
    assert torch.equal(torch.random.get_rng_state(), state)
    for name in a:
        torch.testing.assert_close(a[name][1], b[name][1])
        for p, q in zip(a[name][0].parameters(), b[name][0].parameters()):
            torch.testing.assert_close(p, q)


@pytest.mark.parametrize("kwargs, words", [
    ({"claims": ["completness"]}, "claims: unknown check(s) ['completness']"),
    ({"models": ["resnet"]}, "models: expected some of saturating, symmetric, mlp, cnn"),
    ({"models": []}, "models: expected some of"),
])
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as info:
        check_method("integrated_gradients", **kwargs)
    assert words in str(info.value)
