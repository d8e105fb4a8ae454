"""Explain one row of a tabular classifier: reason codes from Integrated Gradients.

Each original column gets the summed attribution of its encoded features (a categorical
column's one-hot indicators are added back together), so completeness carries over: the
column attributions add up to ``F(x) - F(baseline)``, up to the reported gap ``delta``.

Baselines
---------
``"reference"`` (default)
    ``n_reference`` training rows drawn with ``seed``; IG runs from each of them and the
    attributions are averaged (Expected Gradients with a fixed reference set), so the sum
    equals ``F(x)`` minus the *mean* of ``F`` over the reference rows. It is
    :func:`integrad.baselines.averaged`: one engine call for all the baselines.
``"mean"``
    The mean encoded training row (numeric means; category frequencies in a one-hot group).
``"zero"``
    All encoded features zero: standardised numerics at their training mean, no category set.
A Tensor
    Encoded baselines, shape ``(features,)`` or ``(K, features)``.

Which models
------------
``model`` may be

1. a :class:`~integrad.models._tabular.TabularModel` (``load_tabular_model``); ``row`` may
   then be an index into its table;
2. any object with ``.model`` (an ``nn.Module`` mapping encoded floats ``(batch, features)``
   to logits) and ``.encode(rows)`` (a list of dicts ``column -> raw value`` to a float
   tensor ``(rows, features)``); optional ``.columns`` (raw column names, checked for
   missing and extra columns), ``.groups`` (``column -> list of encoded feature indices``;
   default one feature per column) and ``.classes`` (class names);
3. a plain ``nn.Module`` taking the columns' values as floats, ``(batch, n_columns)``, in the
   order of ``model.feature_names`` if it has one, else of the row's keys. This is the
   contract of ``integrad explain tabular --model module:factory --data file.csv``: every
   CSV column numeric, in file order.

The output is ``(batch,)`` or ``(batch, 1)`` (one logit for the positive class, attributed
as is; ``classes`` default ``("0", "1")``) or ``(batch, C)`` logits (the predicted class's
logit is attributed unless ``target=`` says otherwise).

>>> from integrad.tabular import explain_row, load_tabular_model
>>> credit = load_tabular_model("german-credit")
>>> codes = explain_row(credit, 0)
>>> codes.target, abs(codes.delta) < 1e-3
('good', True)
"""

from __future__ import annotations

import html
import math
import weakref
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .baselines import averaged
from .methods.expected import expected_gradients
from .methods.ig import integration
from .core.result import Attribution, OneExample
from .models._tabular import TabularEncoder, TabularModel, load_tabular_model

__all__ = ["Reason", "ReasonCodes", "explain_row", "load_tabular_model", "BASELINES"]

BASELINES = ("reference", "mean", "zero")
# Gauss-Legendre nodes per baseline path by default. On the embedded German-credit MLP (GELU;
# 16 rows, benchmarks/accuracy.py, docs/accuracy.md) 4 nodes are within 5e-6 (estimate 1.7e-3)
# and 8 within 3e-11; 8 leave room for users' ReLU models, whose error the 128-path average
# divides further (paths err independently)
N_STEPS = 8


@dataclass(frozen=True)
class Reason:
    """One original column: its raw value and its attribution (one-hot parts summed).

    ``stderr`` (Expected Gradients only) is the standard error of the attribution; for a
    one-hot group it is the sum of its indicators' standard errors, an upper bound.
    """

    feature: str
    value: Any
    attribution: float
    stderr: float | None = None


@dataclass(frozen=True, eq=False)
class ReasonCodes(OneExample):
    """Why a tabular model scored one row as it did.

    Attributes
    ----------
    model : str
    target : str
        The class whose logit is attributed: positive attributions push towards it.
    label, probability : str, float
        The predicted class and its probability (as for text and images).
    target_probability : float
        The model's probability of ``target`` (the class explained).
    features : tuple of Reason
        Every original column, in the model's column order.
    toward, against : tuple of Reason
        The ``k`` columns pushing hardest towards ``target`` (largest first) and away from it
        (most negative first).
    baseline : str
        What the path started from.
    result : Attribution
        Encoded-feature attributions, shape ``(1, features)``, averaged over the baselines in
        float64; ``f_baseline`` is the mean over the baselines and ``n_evals`` their total.
    feature_names : tuple of str
        Names of the encoded features (``column=category`` for indicators).
    """

    model: str
    target: str
    label: str
    probability: float
    features: tuple[Reason, ...]
    toward: tuple[Reason, ...]
    against: tuple[Reason, ...]
    baseline: str
    result: Attribution = field(repr=False)
    target_probability: float = float("nan")
    feature_names: tuple[str, ...] = field(repr=False, default=())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, with the keys every explanation's ``to_dict`` has.

        ``target["index"]`` is None for a model with a single logit.
        """
        item = lambda r: {"feature": r.feature, "value": r.value, "attribution": r.attribution} | (
            {} if r.stderr is None else {"stderr": r.stderr})
        return self._common_dict(
            model=self.model, baseline=self.baseline, prediction=(self.label, self.probability),
            target=(self.result.settings.get("target"), self.target, self.target_probability)) | {
            "toward": [item(r) for r in self.toward], "against": [item(r) for r in self.against],
            "features": [item(r) for r in self.features],
        }

    def to_html(self) -> str:
        """A self-contained HTML page around :meth:`_repr_html_` (all text escaped)."""
        title = html.escape(f"integrad: reason codes of {self.model}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
                f"<body>{self._repr_html_()}</body></html>")

    def _repr_html_(self) -> str:
        from .viz._text import NEGATIVE_HEX, POSITIVE_HEX

        scale = max((abs(r.attribution) for r in self.features), default=0.0) or 1.0
        rows = []
        for r in sorted(self.features, key=lambda r: -abs(r.attribution)):
            colour = POSITIVE_HEX if r.attribution > 0 else NEGATIVE_HEX
            bar = (f"<div style='background:{colour};height:0.8em;"
                   f"width:{100 * abs(r.attribution) / scale:.1f}px'></div>")
            rows.append(f"<tr><td>{html.escape(r.feature)}</td><td>{html.escape(_fmt_value(r.value))}</td>"
                        f"<td style='text-align:right'>{r.attribution:+.4f}"
                        f"{'' if r.stderr is None else f' ± {r.stderr:.4f}'}</td><td>{bar}</td></tr>")
        caption = html.escape(f"{self.model}: predicted {self.label}; P({self.target}) = {self.target_probability:.3f}; "
                              f"F(x) = {self.f_x:.4f}, F(baseline) = {self.f_baseline:.4f} ({self.baseline}), "
                              f"δ = {self.delta:+.2e}; {self.accuracy}")
        return (f"<table><caption>{caption}</caption><tr><th>feature</th><th>value</th>"
                f"<th>attribution to {html.escape(self.target)}</th><th></th></tr>{''.join(rows)}</table>")

    def to_png(self, path: Any, *, max_features: int = 12, dpi: int = 120) -> None:
        """Horizontal bar chart of the largest attributions (the rest summed in one bar)."""
        from .viz._bars import save_bars

        ranked = sorted(self.features, key=lambda r: -abs(r.attribution))
        shown, rest = ranked[:max_features], ranked[max_features:]
        names = [f"{r.feature} = {_fmt_value(r.value)}" for r in shown]
        values = [r.attribution for r in shown]
        if rest:
            names.append(f"({len(rest)} other features)")
            values.append(sum(r.attribution for r in rest))
        save_bars(path, names, values, xlabel=f"attribution to the logit of {self.target!r}",
                  title=f"{self.model}: predicted {self.label}, P({self.target}) = {self.target_probability:.3f}\n"
                        f"F(x) = {self.f_x:.3f}, F(baseline) = {self.f_baseline:.3f}, δ = {self.delta:+.1e}\n"
                        f"{self.accuracy}\nbaseline: {self.baseline}", width=9, row_height=0.4, max_label=60,
                  dpi=dpi)


def explain_row(
    model: Any,
    row: int | Mapping[str, Any],
    *,
    baseline: str | torch.Tensor = "reference",
    reference: Sequence[Mapping[str, Any]] | torch.Tensor | None = None,
    n_reference: int | None = None,
    k: int = 5,
    target: int | None = None,
    method: str | None = None,
    n_steps: int | None = None,
    rtol: float | None = None,
    max_evals: int = 4097,
    n_samples: int = 256,
    batch_size: int | None = None,
    seed: int = 0,
) -> ReasonCodes:
    """Reason codes for one row: each original column's share of the model's logit.

    Parameters
    ----------
    model : TabularModel, object with ``.model`` and ``.encode``, or nn.Module
        See the module docstring for the contract.
    row : int or dict
        Raw values by column name; an int indexes a ``TabularModel``'s table.
    baseline : {"reference", "mean", "zero"} or Tensor
        See the module docstring.
    reference : list of dict or Tensor, optional
        Rows to draw the baselines from (raw, or encoded ``(rows, features)``); default the
        ``TabularModel``'s training rows. Required for other models with "reference"/"mean".
    n_reference : int, optional
        Baselines drawn from ``reference`` with ``seed`` (all rows if there are fewer);
        default 128 for IG, every reference row for Expected Gradients.
    k : int
        Length of ``toward`` and ``against``.
    target : int, optional
        Class index for models with several output logits; default the predicted class.
    method, n_steps, rtol, max_evals, batch_size
        As in :func:`integrad.integrated_gradients`, per baseline (with none of method, n_steps
        and rtol, Gauss-Legendre with ``N_STEPS`` nodes); or
        ``method="expected_gradients"`` (with ``baseline="reference"``): Expected Gradients
        over the reference rows, ``n_samples`` gradient evaluations, each column with its
        standard error (:func:`integrad.expected_gradients`).
    n_samples : int
        Expected Gradients only: samples (gradient evaluations).
    seed : int
        Picks the reference rows, and seeds Expected Gradients' draws.

    Returns
    -------
    ReasonCodes

    References
    ----------
    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
    Erion, Janizek, Sturmfels, Lundberg & Lee, "Improving performance of deep learning models
    with axiomatic attribution priors and expected gradients", Nature Machine Intelligence 2021.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k: expected an int >= 0; got {k!r}")
    eg = method == "expected_gradients"
    if eg and (n_steps is not None or rtol is not None):
        raise ValueError("method='expected_gradients' takes n_samples=, not n_steps= or rtol= (those are for IG's "
                         "quadrature)")
    if n_reference is not None and (isinstance(n_reference, bool) or not isinstance(n_reference, int)
                                    or n_reference < 1):
        raise ValueError(f"n_reference: expected an int >= 1; got {n_reference!r}")
    if eg and not isinstance(baseline, torch.Tensor) and baseline != "reference":
        raise ValueError(f"method='expected_gradients' draws its baselines from the reference rows; use "
                         f"baseline='reference' (or a (K, features) tensor), not {baseline!r}")
    n_reference = n_reference if n_reference is not None else (None if eg else 128)
    ad, raw, x = _row(model, row)
    base, described = _baselines(ad, model, baseline, reference, n_reference, seed, x)
    # A single-logit model's prediction is F(x), which the attribution run computes anyway: the
    # model's forward pass is made here only for models with several logits (the target is the
    # argmax) and on the first call, which learns the model's output width.
    width = _WIDTH.get(ad.module)
    logits = None if width == 1 else _logits(ad.module, x)
    n_out = width if logits is None else logits.shape[1]
    classes = ad.classes(n_out)
    if n_out == 1:
        if target is not None:
            raise ValueError(f"target: the model outputs a single logit (for {classes[1]!r}); leave target=None")
        t = None
    else:
        probs = logits.softmax(-1)[0]
        t = int(probs.argmax()) if target is None else target
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < logits.shape[1]:
            raise ValueError(f"target: expected a class index in 0..{logits.shape[1] - 1}; got {target!r}")
        prob, target_name, label = float(probs[t]), classes[t], classes[int(probs.argmax())]
        label_prob = float(probs.max())

    if eg:
        res = expected_gradients(ad.module, x, references=base, n_samples=n_samples, seed=seed, target=t,
                                 batch_size=batch_size)
        described = f"{described}; expected gradients, {n_samples} samples"
    else:
        res = averaged(ad.module, x, base, target=t, batch_size=batch_size,
                       **integration(method, n_steps, rtol, max_evals, N_STEPS))
    if n_out == 1:
        logit = float(res.f_x[0]) if logits is None else float(logits[0, 0])
        prob = _sigmoid(logit)
        target_name, label = classes[1], classes[int(logit > 0)]
        label_prob = prob if logit > 0 else 1.0 - prob
    attr = res.attributions.double()
    err = None if res.stderr is None else res.stderr.double()
    f_x, f_b = res.f_x.double(), res.f_baseline.double()
    # Kept in float64 so the reported numbers satisfy sum - (F(x) - F(baseline)) = delta exactly.
    result = Attribution(attributions=attr, delta=attr.sum(1) - (f_x - f_b), f_x=f_x, f_baseline=f_b,
                         n_evals=res.n_evals, stderr=err, settings=dict(res.settings) | {"baseline": described},
                         error=res.error, converged=res.converged)
    groups, column = ad.layout(x.shape[1], raw)
    sums = np.bincount(column, weights=attr[0].cpu().numpy(), minlength=len(groups)).tolist()
    errs = [None] * len(groups) if err is None else \
        np.bincount(column, weights=err[0].cpu().numpy(), minlength=len(groups)).tolist()
    features = tuple(Reason(col, _plain(raw.get(col)), s, e) for col, s, e in zip(groups, sums, errs))
    toward = tuple(sorted((r for r in features if r.attribution > 0), key=lambda r: -r.attribution)[:k])
    against = tuple(sorted((r for r in features if r.attribution < 0), key=lambda r: r.attribution)[:k])
    return ReasonCodes(model=ad.name, target=target_name, label=label, probability=label_prob,
                       target_probability=prob, features=features,
                       toward=toward, against=against, baseline=described, result=result,
                       feature_names=tuple(ad.feature_names(x.shape[1])))


_ADAPTERS: "weakref.WeakKeyDictionary[TabularModel, _Adapter]" = weakref.WeakKeyDictionary()
_REFERENCE: "weakref.WeakKeyDictionary[TabularModel, dict]" = weakref.WeakKeyDictionary()
_WIDTH: "weakref.WeakKeyDictionary[torch.nn.Module, int]" = weakref.WeakKeyDictionary()


def _reference(model: TabularModel, n: int | None, seed: int) -> torch.Tensor:
    """``model.reference(n, seed=seed)``, drawn once per model and kept (never modified here)."""
    kept = _REFERENCE.setdefault(model, {})
    train = model.encoded_train()
    key = (n, seed)
    if key not in kept or kept[key][0] is not train:
        kept[key] = (train, model.reference(n, seed=seed))
    return kept[key][1]


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _logits(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's logits for one encoded row, ``(1, n_out)`` in float64; learns ``n_out``."""
    with torch.no_grad():
        out = module(x)
    out = out if isinstance(out, torch.Tensor) else getattr(out, "logits", out)
    logits = out.detach().double().reshape(1, -1)
    _WIDTH[module] = logits.shape[1]
    return logits


# ---------------------------------------------------------------------------- adapters
class _Adapter:
    """The one interface explain_row needs, over the three kinds of model it accepts."""

    def __init__(self, module, encode, columns, groups=None, classes=None, names=None, name="model"):
        self.module, self._encode, self.columns, self.name = module, encode, columns, name
        self._groups, self._classes, self._names = groups, classes, names
        self._layout: tuple[dict[str, list[int]], np.ndarray] | None = None

    def encode(self, rows: list[Mapping[str, Any]]) -> torch.Tensor:
        if self.columns is not None:
            for i, r in enumerate(rows):
                _check_columns(r, self.columns, f"rows[{i}]" if len(rows) > 1 else "row")
        x = self._encode(rows)
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] != len(rows) or not x.is_floating_point():
            got = f"{x.dtype} of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"model.encode: expected a float tensor of shape ({len(rows)}, features); got {got}")
        return x

    def groups(self, width: int, raw: Mapping[str, Any]) -> dict[str, list[int]]:
        if self._groups is not None:
            return {str(c): list(i) for c, i in dict(self._groups).items()}
        columns = self.columns if self.columns is not None else list(raw)
        if len(columns) != width:
            raise ValueError(f"model: encode() gives {width} features for {len(columns)} columns; give the "
                             "model a .groups mapping each column to the indices of its encoded features")
        return {c: [i] for i, c in enumerate(columns)}

    def layout(self, width: int, raw: Mapping[str, Any]) -> tuple[dict[str, list[int]], np.ndarray]:
        """:meth:`groups`, and each encoded feature's original column index (kept when fixed)."""
        if self._layout is not None and self._layout[1].shape[0] == width:
            return self._layout
        groups = self.groups(width, raw)
        column = np.zeros(width, dtype=np.int64)
        for j, idx in enumerate(groups.values()):
            column[idx] = j
        if self._groups is not None or self.columns is not None:  # not from the row's own keys
            self._layout = (groups, column)
        return groups, column

    def feature_names(self, width: int) -> list[str]:
        return list(self._names) if self._names is not None else [f"x{i}" for i in range(width)]

    def classes(self, n_out: int) -> tuple[str, ...]:
        want = 2 if n_out == 1 else n_out
        names = tuple(str(c) for c in self._classes) if self._classes is not None else tuple(map(str, range(want)))
        if len(names) != want:
            raise ValueError(f"model.classes: {len(names)} names for a model with {n_out} output(s); expected {want}")
        return names


def _row(model: Any, row: Any) -> tuple[_Adapter, dict[str, Any], torch.Tensor]:
    """The model's adapter, the raw row and its encoding ``(1, features)``."""
    ad = _adapt(model, row)
    raw = _raw_row(model, row)
    # a row of a TabularModel's own table is already encoded (the same numbers, cached)
    x = model.encoded_rows()[row:row + 1] if isinstance(model, TabularModel) and isinstance(row, int) \
        else ad.encode([raw])
    return ad, raw, x


def _adapt(model: Any, row: Any) -> _Adapter:
    if isinstance(model, TabularModel):  # fixed: made once per model
        ad = _ADAPTERS.get(model)
        if ad is None or ad.module is not model.model:
            enc = model.encoder
            ad = _Adapter(model.model, model.encode, None, enc.groups, model.classes, enc.feature_names, model.name)
            _ADAPTERS[model] = ad
        return ad
    if isinstance(model, torch.nn.Module):
        names = getattr(model, "feature_names", None)
        if names is None:
            if not isinstance(row, Mapping):
                raise TypeError(f"row: expected a dict of column -> value; got {type(row).__name__}")
            names = list(row)
        cols = [str(c) for c in names]
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        encoder = TabularEncoder.identity(cols)
        return _Adapter(model, lambda rows: encoder.encode(rows, dtype=dtype), cols,
                        classes=getattr(model, "classes", None), names=cols, name=type(model).__name__)
    if isinstance(getattr(model, "model", None), torch.nn.Module) and callable(getattr(model, "encode", None)):
        cols = getattr(model, "columns", None)
        return _Adapter(model.model, model.encode, None if cols is None else [str(c) for c in cols],
                        getattr(model, "groups", None), getattr(model, "classes", None),
                        getattr(model, "feature_names", None), type(model).__name__)
    raise TypeError(f"model: expected a TabularModel, an nn.Module, or an object with .model (nn.Module) and "
                    f".encode(rows); got {type(model).__name__}")


def _raw_row(model: Any, row: Any) -> dict[str, Any]:
    if isinstance(row, Mapping):
        return dict(row)
    if isinstance(row, int) and not isinstance(row, bool):
        if not isinstance(model, TabularModel):
            raise TypeError("row: an index needs a TabularModel (which carries its table); pass the row as a dict")
        if not 0 <= row < len(model.data):
            raise IndexError(f"row: {row} is out of range; the {model.name} table has {len(model.data)} rows "
                             f"(0..{len(model.data) - 1})")
        return dict(model.data[row])
    raise TypeError(f"row: expected a dict of column -> value or a row index; got {type(row).__name__}")


def _check_columns(row: Mapping[str, Any], columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in row]
    extra = [c for c in row if c not in set(columns)]
    if missing or extra:
        parts = ([f"missing column(s) {', '.join(map(repr, missing))}"] if missing else []) + \
                ([f"unexpected column(s) {', '.join(map(repr, extra))}"] if extra else [])
        raise ValueError(f"{name}: {'; '.join(parts)}; the model expects {', '.join(columns)}")


def _baselines(ad, model, baseline, reference, n_reference, seed, x) -> tuple[torch.Tensor, str]:
    """Encoded baselines ``(K, features)`` and a description of them."""
    width = x.shape[1]
    if isinstance(baseline, torch.Tensor):
        ok = baseline.shape == (width,) or (baseline.dim() == 2 and baseline.shape[1] == width and len(baseline))
        if not ok:
            raise ValueError(f"baseline: expected an encoded tensor of shape ({width},) or (K, {width}); "
                             f"got {tuple(baseline.shape)}")
        b = baseline.to(x.dtype).reshape(-1, width)
        return b, f"tensor{tuple(b.shape)}"
    if baseline == "zero":
        return torch.zeros(1, width, dtype=x.dtype), "zero"
    if baseline not in BASELINES:
        raise ValueError(f"baseline: expected one of {', '.join(BASELINES)} or a tensor; got {baseline!r}")
    if reference is None and isinstance(model, TabularModel):
        if baseline == "mean":
            train = model.encoded_train()
            return train.mean(0, keepdim=True), f"mean of {train.shape[0]} training rows"
        b = _reference(model, n_reference, seed)
        return b, f"reference ({b.shape[0]} training rows, seed {seed})"
    if reference is None:
        raise ValueError(f"reference: baseline={baseline!r} needs rows to draw baselines from for this model; pass "
                         "reference=<training rows> (only a TabularModel carries its own), or baseline='zero'")
    pool = reference.to(x.dtype) if isinstance(reference, torch.Tensor) else ad.encode(list(reference))
    if pool.dim() != 2 or pool.shape[1] != width or pool.shape[0] == 0:
        raise ValueError(f"reference: expected rows encoding to shape (rows, {width}); got {tuple(pool.shape)}")
    if baseline == "mean":
        return pool.mean(0, keepdim=True), f"mean of {pool.shape[0]} reference rows"
    pick = torch.randperm(pool.shape[0], generator=torch.Generator().manual_seed(seed))[:n_reference]
    return pool[pick], f"reference ({len(pick)} of {pool.shape[0]} rows, seed {seed})"


_NUMBER_START = set("+-.0123456789 \t\nnNiI")  # what float() may parse


def _plain(value: Any) -> Any:
    """JSON-friendly raw value: numbers as float (integers as int), the rest as str."""
    if value is None:
        return None
    if isinstance(value, (bool, int, float)):
        return int(value) if isinstance(value, float) and value.is_integer() else value
    if isinstance(value, str) and value[:1] not in _NUMBER_START:  # a category: no float() attempt
        return value
    try:
        v = float(value)
        return int(v) if v.is_integer() and "." not in str(value) else v
    except (TypeError, ValueError):
        return str(value)


def _fmt_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
