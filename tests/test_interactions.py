"""Tabular interactions: Integrated Hessians summed by original column, and their heatmap."""

import pytest
import torch

pytest.importorskip("sklearn")

import integrad  # noqa: E402
from integrad.interactions import explain_interactions  # noqa: E402
from integrad.tabular import load_tabular_model  # noqa: E402


@pytest.fixture(scope="module")
def credit():
    return load_tabular_model("german-credit", dtype=torch.float64)


def test_column_rows_sum_to_ig_from_the_same_baseline(credit):
    pairs = explain_interactions(credit, 3, top=61)
    x = credit.encoded_rows()[3:4]
    mean = credit.encoded_train().mean(0, keepdim=True)
    ig = integrad.integrated_gradients(credit.model, x, baseline=mean, n_steps=64).attributions[0]
    per_column = {c: float(ig[idx].sum()) for c, idx in credit.encoder.groups.items()}
    assert len(pairs.columns) == len(credit.encoder.groups)  # top larger than the columns: all of them
    for name, total, row in zip(pairs.columns, pairs.attributions, pairs.matrix):
        assert total == pytest.approx(per_column[name], abs=1e-10)
        assert row.sum() == pytest.approx(per_column[name], abs=1e-10)
    torch.testing.assert_close(torch.tensor(pairs.matrix), torch.tensor(pairs.matrix).T, rtol=0, atol=1e-12)
    sizes = [abs(a) for a in pairs.attributions]
    assert sizes == sorted(sizes, reverse=True)


def test_a_product_of_two_columns_interacts_by_the_closed_form():
    class Product(torch.nn.Module):
        feature_names = ["a", "b", "c"]

        def forward(self, x):
            return x[:, 0] * x[:, 1] + 0.0 * x[:, 2]

    pairs = explain_interactions(Product(), {"a": 2.0, "b": -3.0, "c": 1.0}, baseline="zero", top=3)
    # F = a b from zero: every entry of the (a, b) block is a b / 4 = -1.5
    at = {n: i for i, n in enumerate(pairs.columns)}
    for p in ("a", "b"):
        for q in ("a", "b"):
            assert pairs.matrix[at[p], at[q]] == pytest.approx(-1.5, abs=1e-6)
    assert pairs.matrix[at["c"]] == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)


def test_heatmap_and_dict(credit, tmp_path):
    pytest.importorskip("matplotlib")
    pairs = explain_interactions(credit, 0, top=5)
    pairs.to_png(tmp_path / "pairs.png")
    assert (tmp_path / "pairs.png").stat().st_size > 5000
    d = pairs.to_dict()
    assert d["columns"] == list(pairs.columns) and len(d["matrix"]) == 5 and "mean of" in d["baseline"]


@pytest.mark.parametrize("kwargs, words", [
    ({"top": 0}, "top: expected an int >= 1"),
    ({"baseline": "reference"}, "baseline: expected 'mean', 'zero' or an encoded tensor"),
    ({"baseline": torch.zeros(2, 61, dtype=torch.float64)}, "baseline: Integrated Hessians take one baseline row"),
])
def test_bad_settings(credit, kwargs, words):
    with pytest.raises(ValueError, match=words):
        explain_interactions(credit, 0, **kwargs)


def test_heatmap_checks_its_matrix():
    pytest.importorskip("matplotlib")
    from integrad.viz._interactions import plot_interactions

    with pytest.raises(ValueError, match=r"matrix: expected a square \(k, k\) array with k = len\(names\) = 2"):
        plot_interactions([[1.0, 2.0, 3.0]], ["a", "b"])
