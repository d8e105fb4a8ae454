"""Tabular reason codes: one-hot regrouping, completeness, ordering, shipped models, CLI, bad input."""

import csv
import json
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("sklearn")

import integrad  # noqa: E402
from integrad.tabular import explain_row, load_tabular_model  # noqa: E402

AUC_FLOOR = {"german-credit": 0.75, "breast-cancer": 0.97}


@pytest.fixture(scope="module")
def credit():
    return load_tabular_model("german-credit", dtype=torch.float64)


@pytest.fixture(scope="module")
def codes(credit):
    return explain_row(credit, 0, n_steps=32)


# ---------------------------------------------------------------------------- regrouping, completeness
def test_onehot_group_attribution_is_sum_of_its_columns(credit, codes):
    encoded = codes.result.attributions[0]
    by_name = {r.feature: r.attribution for r in codes.features}
    for column, idx in credit.encoder.groups.items():
        assert by_name[column] == pytest.approx(float(encoded[idx].sum()), abs=1e-12)
    assert sum(len(i) > 1 for i in credit.encoder.groups.values()) == 13  # the categorical columns
    assert [r.feature for r in codes.features] == credit.columns


def test_regrouped_attributions_sum_to_fx_minus_mean_baseline(credit, codes):
    total = sum(r.attribution for r in codes.features)
    assert total - (codes.f_x - codes.f_baseline) == pytest.approx(codes.delta, abs=1e-10)
    assert abs(codes.delta) < 1e-6
    # F(baseline) is the mean of F over the reference rows (Expected Gradients)
    with torch.no_grad():
        mean_f = credit.model(credit.reference(128, seed=0)).mean()
    assert codes.f_baseline == pytest.approx(float(mean_f), abs=1e-12)


def test_reference_average_equals_separate_runs_per_baseline(credit):
    codes = explain_row(credit, 5, n_reference=4, n_steps=16, seed=3)
    x = credit.encode(credit.data[5])
    separate = [integrad.integrated_gradients(credit.model, x, baseline=b, n_steps=16).attributions[0]
                for b in credit.reference(4, seed=3)]
    torch.testing.assert_close(codes.result.attributions[0], torch.stack(separate).mean(0), rtol=1e-10, atol=1e-12)
    assert int(codes.result.n_evals[0]) == 4 * 16


@pytest.mark.parametrize("baseline", ["mean", "zero"])
def test_single_baselines_start_where_named(credit, baseline):
    codes = explain_row(credit, 1, baseline=baseline, n_steps=32)
    start = (credit.encode([credit.data[i] for i in credit.train_index]).mean(0, keepdim=True)
             if baseline == "mean" else torch.zeros(1, credit.encoder.width, dtype=torch.float64))
    with torch.no_grad():
        assert codes.f_baseline == pytest.approx(float(credit.model(start)[0]), abs=1e-12)
    assert sum(r.attribution for r in codes.features) == pytest.approx(codes.f_x - codes.f_baseline, abs=1e-6)


def test_tensor_baseline_matches_named_zero_and_checks_shape(credit):
    zero = explain_row(credit, 3, baseline="zero", n_steps=16)
    given = explain_row(credit, 3, baseline=torch.zeros(credit.encoder.width), n_steps=16)
    assert [r.attribution for r in given.features] == [r.attribution for r in zero.features]
    with pytest.raises(ValueError, match=r"baseline: expected an encoded tensor of shape \(61,\) or \(K, 61\); "
                                         r"got \(2, 30\)"):
        explain_row(credit, 3, baseline=torch.zeros(2, 30))


def test_linear_user_module_gets_closed_form_reason_codes():
    class Linear(torch.nn.Module):
        feature_names = ["a", "b", "c"]

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64))

        def forward(self, x):
            return x @ self.w

    g = torch.Generator().manual_seed(0)
    ref = [dict(zip("abc", r)) for r in torch.randn(10, 3, generator=g, dtype=torch.float64).tolist()]
    row = {"a": 1.5, "b": -2.0, "c": 4.0}
    codes = explain_row(Linear(), row, reference=ref, n_reference=10)
    mean = torch.tensor([[r[c] for c in "abc"] for r in ref], dtype=torch.float64).mean(0)
    expected = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64) * (torch.tensor([1.5, -2.0, 4.0]) - mean)
    assert [r.attribution for r in codes.features] == pytest.approx(expected.tolist(), abs=1e-12)
    assert [r.value for r in codes.features] == [1.5, -2, 4]


def test_multiclass_user_module_explains_predicted_or_given_class():
    class ThreeWay(torch.nn.Module):
        feature_names, classes = ["a", "b"], ["x", "y", "z"]

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 3).double()

        def forward(self, x):
            return self.lin(x)

    net, row = ThreeWay(), {"a": 1.0, "b": 2.0}
    with torch.no_grad():
        logits = net(torch.tensor([[1.0, 2.0]], dtype=torch.float64))[0]
    predicted = explain_row(net, row, baseline="zero", n_steps=8)
    assert predicted.target == predicted.label == "xyz"[int(logits.argmax())]
    chosen = explain_row(net, row, baseline="zero", target=2, n_steps=8)
    assert chosen.target == "z" and chosen.f_x == pytest.approx(float(logits[2]))
    assert chosen.target_probability == pytest.approx(float(logits.softmax(0)[2]))
    # probability is the predicted label's, as for text and images
    assert chosen.probability == pytest.approx(float(logits.softmax(0).max()))
    with pytest.raises(ValueError, match=r"target: expected a class index in 0..2; got 5"):
        explain_row(net, row, baseline="zero", target=5)
    with pytest.raises(ValueError, match=r"reference: baseline='reference' needs rows"):
        explain_row(net, row)
    with pytest.raises(ValueError, match=r"row: missing column\(s\) 'b'; unexpected column\(s\) 'c'"):
        explain_row(net, {"a": 1.0, "c": 2.0}, baseline="zero")


def test_user_object_with_encoder_and_groups(credit):
    class Wrapped:  # the .model / .encode contract, with .columns and .groups
        model, columns, groups = credit.model, credit.columns, credit.encoder.groups
        classes = ("bad", "good")

        def encode(self, rows):
            return credit.encoder.encode(rows, dtype=torch.float64)

    ref = [credit.data[i] for i in credit.train_index]
    mine = explain_row(Wrapped(), credit.data[7], reference=ref, n_steps=16)
    theirs = explain_row(credit, 7, n_steps=16)
    assert mine.target == theirs.target == "good"
    # same pool, same seed, same draw: identical reason codes
    assert [r.attribution for r in mine.features] == pytest.approx([r.attribution for r in theirs.features], abs=1e-12)


# ---------------------------------------------------------------------------- ordering and signs
@pytest.mark.parametrize("k", [0, 3, 5])
def test_reason_codes_are_ordered_and_signed(credit, k):
    codes = explain_row(credit, 2, k=k, n_steps=16)
    up = [r.attribution for r in codes.toward]
    down = [r.attribution for r in codes.against]
    assert len(up) <= k and len(down) <= k
    assert all(a > 0 for a in up) and all(a < 0 for a in down)
    assert up == sorted(up, reverse=True) and down == sorted(down)
    if k:
        assert up[0] == max(r.attribution for r in codes.features)
        assert down[0] == min(r.attribution for r in codes.features)


def test_direction_follows_the_positive_class(credit, codes):
    assert codes.target == "good" and credit.classes == ("bad", "good")
    assert codes.label == ("good" if codes.f_x > 0 else "bad")
    p_good = float(torch.sigmoid(torch.tensor(codes.f_x)))
    assert codes.target_probability == pytest.approx(p_good)
    assert codes.probability == pytest.approx(p_good if codes.label == "good" else 1 - p_good)


# ---------------------------------------------------------------------------- shipped models
@pytest.mark.parametrize("name", list(AUC_FLOOR))
def test_shipped_model_heldout_auc(name):
    from sklearn.metrics import roc_auc_score

    tm = load_tabular_model(name)
    test = list(tm.test_index)
    assert not set(test) & set(tm.train_index) and len(test) + len(tm.train_index) == len(tm.data)
    with torch.no_grad():
        scores = tm.model(tm.encode([tm.data[i] for i in test]))
    auc = roc_auc_score(tm.y[test].numpy(), scores.double().numpy())
    assert auc > AUC_FLOOR[name]
    assert auc == pytest.approx(tm.metrics["test_auc"], abs=1e-3)  # the number in the model card
    # stratified: the held-out part has the table's class balance
    assert float(tm.y[test].float().mean()) == pytest.approx(float(tm.y.float().mean()), abs=0.01)


def test_encoder_round_trips_raw_rows(credit):
    rows = credit.data[:20]
    back = credit.encoder.decode(credit.encode(rows))
    for raw, dec in zip(rows, back):
        assert dec.keys() == raw.keys()
        for c, v in raw.items():
            assert dec[c] == (pytest.approx(v, abs=1e-9) if isinstance(v, float) else v)


def test_import_does_not_pull_matplotlib_and_png_is_written(tmp_path, codes):
    code = ("import sys, integrad.tabular, integrad.cli.tabular; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    pytest.importorskip("matplotlib")
    codes.to_png(tmp_path / "why.png")
    assert (tmp_path / "why.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_escaped():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1, 1).double()

        def forward(self, x):
            return self.lin(x)

    codes = explain_row(Net(), {"<b>x</b>": 2.0}, baseline="zero", n_steps=4)
    page = codes._repr_html_()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    json.dumps(codes.to_dict())


# ---------------------------------------------------------------------------- CLI
def _invoke(args, cwd=None, monkeypatch=None):
    import typer
    from typer.testing import CliRunner

    from integrad.cli.tabular import tabular

    app = typer.Typer()
    app.command()(tabular)
    if cwd is not None:
        monkeypatch.chdir(cwd)
    return CliRunner().invoke(app, args)


def test_cli_json_reason_codes_sum_to_fx_minus_baseline(tmp_path):
    out = tmp_path / "out.json"
    res = _invoke(["--dataset", "german-credit", "--row", "0", "--json", str(out), "--k", "3"])
    assert res.exit_code == 0, res.output
    assert "completeness gap" in res.output and "prediction: good" in res.output
    d = json.loads(out.read_text())
    total = sum(f["attribution"] for f in d["features"])
    assert len(d["features"]) == 20 and len(d["toward"]) <= 3 and len(d["against"]) <= 3
    assert abs(total - (d["f_x"] - d["f_baseline"])) <= abs(d["delta"]) + 1e-9
    assert abs(d["delta"]) < 1e-4


def _write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_cli_user_module_factory(tmp_path, monkeypatch):
    (tmp_path / "tab_user_model_ok.py").write_text(textwrap.dedent("""
        import torch

        def build():
            net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
            torch.manual_seed(0)
            return net.double()
    """))
    g = torch.Generator().manual_seed(1)
    _write_csv(tmp_path / "d.csv", [dict(zip("xyz", r)) for r in torch.randn(30, 3, generator=g).tolist()])
    res = _invoke(["--model", "tab_user_model_ok:build", "--data", "d.csv", "--row", "4", "--json", "o.json"],
                  cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "o.json").read_text())
    assert [f["feature"] for f in d["features"]] == ["x", "y", "z"]
    assert abs(sum(f["attribution"] for f in d["features"]) - (d["f_x"] - d["f_baseline"])) <= abs(d["delta"]) + 1e-9


@pytest.fixture(scope="module")
def credit_rows():
    return load_tabular_model("german-credit").data[:5]


@pytest.mark.parametrize("case", ["row_out_of_range", "csv_missing_column", "csv_extra_column", "model_no_colon",
                                  "model_bad_module", "model_missing_attribute", "model_without_data",
                                  "unknown_dataset", "csv_row_out_of_range", "bad_baseline"])
def test_cli_bad_input_exits_2_with_clear_message(case, tmp_path, monkeypatch, credit_rows):
    (tmp_path / "tab_user_model_attr.py").write_text("def build():\n    raise AssertionError('unused')\n")
    _write_csv(tmp_path / "d.csv", [{"x": 1.0}])
    _write_csv(tmp_path / "missing.csv", [{k: v for k, v in r.items() if k != "purpose"} for r in credit_rows])
    _write_csv(tmp_path / "extra.csv", [r | {"zzz": 1} for r in credit_rows])
    args, message = {
        "row_out_of_range": (["--row", "5000"], "--row: 5000 is out of range; the german-credit table has 1000 rows"),
        "csv_missing_column": (["--data", "missing.csv", "--row", "0"], "missing column(s) 'purpose'"),
        "csv_extra_column": (["--data", "extra.csv", "--row", "0"], "unexpected column(s) 'zzz'"),
        "model_no_colon": (["--model", "tab_user_model_attr", "--data", "d.csv", "--row", "0"],
                           "--model: expected 'module:factory'"),
        "model_bad_module": (["--model", "no_such_module_xyz:build", "--data", "d.csv", "--row", "0"],
                             "--model: cannot import module 'no_such_module_xyz'"),
        "model_missing_attribute": (["--model", "tab_user_model_attr:nothere", "--data", "d.csv", "--row", "0"],
                                    "--model: module 'tab_user_model_attr' has no attribute 'nothere'"),
        "model_without_data": (["--model", "tab_user_model_attr:build", "--row", "0"], "--model: needs --data"),
        "unknown_dataset": (["--dataset", "mnist", "--row", "0"], "unknown tabular model 'mnist'; expected one of "
                            "german-credit, breast-cancer"),
        "csv_row_out_of_range": (["--data", "extra.csv", "--row", "9"], "--row: 9 is out of range; extra.csv has 5"),
        "bad_baseline": (["--row", "0", "--baseline", "median"], "baseline: expected one of reference, mean, zero"),
    }[case]
    res = _invoke(args, cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == 2, res.output
    flat = " ".join(res.output.split())
    assert flat.startswith("error: ") and message in flat, flat
    assert "Traceback" not in res.output


# ---------------------------------------------------------------------------- expected gradients
def test_expected_gradients_reason_codes_carry_stderr_and_complete_in_expectation(credit):
    eg = explain_row(credit, 0, method="expected_gradients", n_samples=512, seed=1)
    assert eg.result.n_evals.tolist() == [512]
    assert all(r.stderr is not None and r.stderr >= 0 for r in eg.features)
    # the reported numbers are consistent: the columns add up to F(x) - F(baseline) + delta
    total = sum(r.attribution for r in eg.features)
    assert total - (eg.f_x - eg.f_baseline) == pytest.approx(eg.delta, abs=1e-10)
    # completeness in expectation: the gap is within a few (summed, so upper-bound) standard errors
    assert abs(eg.delta) <= 4 * sum(r.stderr for r in eg.features)
    # the same expectation as IG averaged over every training row, within the stated error
    exact = explain_row(credit, 0, n_reference=len(credit.train_index), n_steps=32)
    ref = {r.feature: r.attribution for r in exact.features}
    within = [abs(r.attribution - ref[r.feature]) <= 4 * r.stderr + 1e-9 for r in eg.features]
    assert sum(within) >= len(within) - 1
    again = explain_row(credit, 0, method="expected_gradients", n_samples=512, seed=1)
    assert [r.attribution for r in again.features] == [r.attribution for r in eg.features]


def test_expected_gradients_refuses_a_single_baseline(credit):
    with pytest.raises(ValueError, match="method='expected_gradients' draws its baselines"):
        explain_row(credit, 0, method="expected_gradients", baseline="zero")


def test_cli_expected_gradients_writes_stderr(tmp_path):
    out = tmp_path / "eg.json"
    done = subprocess.run([sys.executable, "-m", "integrad.cli", "explain", "tabular", "--dataset", "german-credit",
                           "--row", "3", "--method", "expected_gradients", "--n-samples", "64", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert all("stderr" in f for f in data["features"]) and "±" in done.stdout


def test_single_logit_prediction_is_the_forward_pass_on_every_call(credit):
    """After the first call the prediction comes from F(x) of the attribution run (no extra
    forward pass); it must be the model's own sigmoid probability and label, row after row."""
    x = credit.encoded_rows()
    for row in (3, 4, 3, 7):
        codes = explain_row(credit, row, n_steps=8)
        with torch.no_grad():
            logit = float(credit.model(x[row:row + 1])[0])
        p = 1.0 / (1.0 + torch.exp(torch.tensor(-logit, dtype=torch.float64)).item())
        assert codes.target_probability == pytest.approx(p, rel=1e-9)
        assert codes.label == credit.classes[int(logit > 0)]
        assert codes.probability == pytest.approx(p if logit > 0 else 1 - p, rel=1e-9)


def test_category_values_stay_strings_and_numbers_become_numbers():
    from integrad.tabular import _plain

    assert [_plain(v) for v in ("A11", "12", "1.5", "-3", "", " 4")] == ["A11", 12, 1.5, -3, "", 4]
    assert isinstance(_plain(3.0), int) and _plain(2.5) == 2.5 and _plain(None) is None
