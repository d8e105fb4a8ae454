"""``integrad audit`` on every embedded model, and its report in a real browser."""

import json

import pytest

from browser import need_browser, render


@pytest.mark.parametrize("model, extra", [
    ("german-credit", ()), ("breast-cancer", ()), ("mnist", ("--n-steps", 8)),
    ("imagenet", ("--n-steps", 4)), ("sentiment", ("--n-steps", 8)),
])
def test_audit_runs_on_every_embedded_model(model, extra, invoke, tmp_path):
    pytest.importorskip("sklearn")
    res = invoke("audit", model, "--examples", 2, *extra, "--json", "a.json", "--html", "a.html")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "a.json").read_text())
    names = {c["name"]: c for c in data["checks"]}
    assert {"completeness", "sensitivity", "batch invariance", "chunk invariance", "dtype invariance"} <= set(names)
    assert names["sensitivity"]["passed"] is True and names["chunk invariance"]["passed"] is True
    assert names["implementation invariance (traced)"]["passed"] is True  # fx or torch.export copied every one
    assert "audit of integrated_gradients on" in res.output and (tmp_path / "a.html").stat().st_size > 1000


def test_gradient_fails_where_ig_passes(invoke):
    pytest.importorskip("sklearn")
    res = invoke("audit", "german-credit", "--examples", 2, "--method", "gradient")
    assert res.exit_code == 0 and "FAIL  completeness" in res.output


@pytest.mark.parametrize("args, words", [
    (("resnet",), "MODEL: expected one of mnist, german-credit"),
    (("mnist", "--examples", 0), "--examples: expected an int >= 1"),
    (("mnist", "--method", "gradient", "--n-steps", 4), "--rule and --n-steps: IG's options"),
    (("mnist", "--json", "missing/dir/a.json"), "missing"),
])
def test_bad_arguments_exit_2(args, words, invoke):
    res = invoke("audit", *args)
    assert res.exit_code == 2 and words in res.output, res.output


def test_audit_report_renders_in_headless_chromium(tmp_path):
    need_browser()
    import torch

    from integrad.axioms import audit

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double().eval()
    page = tmp_path / "audit.html"
    audit(net, torch.randn(3, 4, dtype=torch.float64), target=0, n_steps=16).save(page)
    state = render(page, tmp_path / "audit.png", tmp_path / "profile")
    assert state["title"].startswith("audit of integrated_gradients")
    assert [m for m in state["console"] if m["level"] in ("SEVERE", "WARNING")] == []
    assert not [r for r in state["resources"] if not r.startswith("data:")]
    assert (tmp_path / "audit.png").stat().st_size > 1000
