"""The one result type of every integrad method: values, completeness gap, provenance."""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

__all__ = ["Attribution", "OneExample"]

_FORMAT = "integrad.Attribution/1"


@dataclass(frozen=True, eq=False)
class Attribution:
    """Attributions with the numbers that say how far to trust them.

    Attributes
    ----------
    attributions : Tensor or tuple of Tensor
        Same structure and shapes as ``inputs`` (or as the layer's output when ``layer=``
        was given).
    delta : Tensor, shape (batch,)
        Completeness gap ``sum(attributions) - (F(x) - F(baseline))`` per example; 0 for
        exact integration (same sign convention as Captum).
    f_x, f_baseline : Tensor, shape (batch,)
        The attributed scalar at the input and at the baseline.
    n_evals : Tensor of int64, shape (batch,)
        Gradient evaluations of the model made for each example.
    settings : dict
        The options that produced this result (method, n_steps, target, ...).
    error : Tensor, shape (batch,), optional
        Estimated error of the attribution vector (error-controlled mode only).
    converged : Tensor of bool, shape (batch,), optional
        Whether the requested tolerance was met (error-controlled mode only).
    stderr : Tensor or tuple of Tensor, optional
        Standard error of each attribution, shaped like ``attributions`` (sampled methods:
        Expected Gradients, SmoothGrad).
    path_alphas, path_values, path_slopes : Tensor, shape (batch, m), optional
        Where the gradient was evaluated along the path, ``F`` there, and the slope
        ``dF/dalpha = grad F . (x - x')`` (NaN-padded when examples used different counts);
        kept from the evaluations already made, for convergence plots and saturation checks.
    row_sum_gap : Tensor, optional
        Integrated Hessians only: ``sum_j Gamma_ij - phi_i``, how far each row of interactions
        is from the Integrated Gradients ``phi`` of the same evaluations (zero for exact
        integration), shape ``(batch, *features)``; ``(batch,)`` with ``interaction_index=j``
        (column ``j`` against ``phi_j``).
    """

    attributions: torch.Tensor | tuple[torch.Tensor, ...]
    delta: torch.Tensor
    f_x: torch.Tensor
    f_baseline: torch.Tensor
    n_evals: torch.Tensor
    settings: Mapping[str, Any] = field(default_factory=dict)
    error: torch.Tensor | None = None
    converged: torch.Tensor | None = None
    path_alphas: torch.Tensor | None = None
    path_values: torch.Tensor | None = None
    path_slopes: torch.Tensor | None = None
    stderr: torch.Tensor | tuple[torch.Tensor, ...] | None = None
    row_sum_gap: torch.Tensor | None = None

    _OPTIONAL = ("error", "converged", "path_alphas", "path_values", "path_slopes", "row_sum_gap")

    # ------------------------------------------------------------------ derived views
    @property
    def attributions_tuple(self) -> tuple[torch.Tensor, ...]:
        a = self.attributions
        return a if isinstance(a, tuple) else (a,)

    @property
    def total(self) -> torch.Tensor:
        """Sum of all attributions per example, shape (batch,) (``(batch, n_targets)`` with ``targets=``)."""
        lead = self.delta.shape
        return sum(a.reshape(*lead, -1).sum(-1, dtype=torch.float64) for a in self.attributions_tuple)

    @property
    def relative_delta(self) -> torch.Tensor:
        """``|delta| / |F(x) - F(baseline)|`` per example (inf where the two are equal)."""
        change = (self.f_x - self.f_baseline).abs().double()
        return self.delta.abs().double() / change

    def native(self) -> Any:
        """The attributions in the model's own framework: ``jax.Array`` for a JAX model, ``tf.Tensor``
        for a TensorFlow/Keras one, tensors for PyTorch (``settings['framework']`` says which)."""
        from ..backends.foreign import to_native

        return to_native(self.attributions, self.settings.get("framework", "torch"))

    def numpy(self) -> Any:
        """The attributions as numpy arrays (a tuple for several inputs)."""
        from ..backends.foreign import to_native

        return to_native(self.attributions, "numpy")

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write to ``path`` as safetensors: tensors plus the settings as JSON metadata."""
        from safetensors.torch import save_file

        tensors = {f"attributions.{i}": a for i, a in enumerate(self.attributions_tuple)}
        if self.stderr is not None:
            tensors |= {f"stderr.{i}": a for i, a in enumerate(_as_tuple(self.stderr))}
        tensors |= {"delta": self.delta, "f_x": self.f_x, "f_baseline": self.f_baseline,
                    "n_evals": self.n_evals}
        tensors |= {k: getattr(self, k) for k in self._OPTIONAL if getattr(self, k) is not None}
        meta = {
            "format": _FORMAT,
            "tuple": json.dumps(isinstance(self.attributions, tuple)),
            "settings": json.dumps(dict(self.settings), default=str),
        }
        where = os.path.dirname(os.path.abspath(os.fspath(path)))
        if not os.path.isdir(where):
            raise FileNotFoundError(f"path: the folder {where!r} does not exist; create it first")
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, os.fspath(path), meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Attribution":
        """Read a result written by :meth:`save`."""
        from safetensors import safe_open

        name = os.fspath(path)
        if not os.path.isfile(name):
            raise FileNotFoundError(f"path: no file {name!r}")
        try:
            with safe_open(name, framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != _FORMAT:
                    raise ValueError(f"path: {name!r} is not an integrad result "
                                     f"(format {meta.get('format')!r}, expected {_FORMAT!r})")
                t = {k: f.get_tensor(k) for k in f.keys()}
        except ValueError:
            raise
        except Exception as err:  # safetensors reports a corrupt or foreign file in its own types
            raise ValueError(f"path: {name!r} is not a readable integrad result (a safetensors file written by "
                             f"Attribution.save): {type(err).__name__}: {err}") from None
        missing = [k for k in ("attributions.0", "delta", "f_x", "f_baseline", "n_evals") if k not in t] + \
            [k for k in ("tuple", "settings") if k not in meta]
        if missing:
            raise ValueError(f"path: {name!r} is an incomplete integrad result (missing {', '.join(missing)})")
        n_attr = sum(k.startswith("attributions.") for k in t)
        attrs = tuple(t[f"attributions.{i}"] for i in range(n_attr))
        as_tuple = json.loads(meta["tuple"])
        errs = tuple(t[f"stderr.{i}"] for i in range(n_attr)) if "stderr.0" in t else None
        return cls(
            attributions=attrs if as_tuple else attrs[0],
            stderr=None if errs is None else errs if as_tuple else errs[0],
            delta=t["delta"], f_x=t["f_x"], f_baseline=t["f_baseline"], n_evals=t["n_evals"],
            settings=json.loads(meta["settings"]), **{k: t.get(k) for k in cls._OPTIONAL},
        )

    # ------------------------------------------------------------------ display
    def _summary_rows(self) -> list[tuple[str, str]]:
        s = self.settings
        shapes = ", ".join(str(tuple(a.shape)) for a in self.attributions_tuple)
        rel = self.relative_delta
        rel = rel[torch.isfinite(rel)]
        method = f"{s.get('method')} ({s.get('n_steps')} steps)" if s.get("n_steps") else str(s.get("method"))
        if s.get("n_samples") and not s.get("n_steps"):
            method += f" ({s['n_samples']} samples, {s.get('sampler')})"
        smooth = s.get("smoothgrad")
        if isinstance(smooth, Mapping):
            method = f"smoothgrad ({smooth.get('mode')}, {smooth.get('n_samples')} noisy copies) of {method}"
        rows = [
            ("method", method),
            ("attributions", shapes + (f" at layer {s['layer']}" if s.get("layer") else "")),
            ("target", str(s.get("target"))),
            ("F(x)", _fmt(self.f_x)),
            ("F(baseline)", _fmt(self.f_baseline)),
            ("completeness gap |delta|", f"max {self.delta.abs().max().item():.3g}"
             + (f" ({rel.max().item():.2%} of |F(x) - F(baseline)|)" if rel.numel() else "")),
            ("model gradient evaluations", f"{int(self.n_evals.sum())} "
             f"({int(self.n_evals.min())}-{int(self.n_evals.max())} per example)"),
        ]
        if self.stderr is not None:
            errs = torch.cat([e.reshape(-1) for e in _as_tuple(self.stderr)]).double()
            rows.append(("standard error", f"mean {errs.mean().item():.3g}, max {errs.max().item():.3g} "
                         "(per attribution)"))
        if self.row_sum_gap is not None:
            rows.append(("interaction rows - IG |gap|", f"max {self.row_sum_gap.abs().max().item():.3g}"))
        if self.converged is not None:
            rows.append(("tolerance met", f"{int(self.converged.sum())} of {self.converged.numel()} examples "
                         f"(estimated relative error up to {self.error.max().item():.2g}, rtol={s.get('rtol')})"))
        return rows

    def __repr__(self) -> str:
        body = "\n".join(f"  {k}: {v}" for k, v in self._summary_rows())
        return f"Attribution(batch={self.delta.shape[0]})\n{body}"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td>{html.escape(v)}</td></tr>" for k, v in self._summary_rows())
        return f"<table><caption>integrad Attribution (batch={self.delta.shape[0]})</caption>{rows}</table>"


def _as_tuple(a: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return a if isinstance(a, tuple) else (a,)


def _fmt(t: torch.Tensor, k: int = 4) -> str:
    vals = ", ".join(f"{v:.4g}" for v in t.flatten()[:k].tolist())
    return f"[{vals}{', ...' if t.numel() > k else ''}]"


class OneExample:
    """Scalar views of a one-example ``result`` for the domain explanations (text, image, row).

    Mixed into their frozen dataclasses, which hold the :class:`Attribution` as ``result``.
    """

    result: Attribution

    @property
    def f_x(self) -> float:
        return float(self.result.f_x[0])

    @property
    def f_baseline(self) -> float:
        return float(self.result.f_baseline[0])

    @property
    def delta(self) -> float:
        """Completeness gap: sum of attributions - (F(x) - F(baseline))."""
        return float(self.result.delta[0])

    @property
    def relative_delta(self) -> float:
        """``|delta| / |F(x) - F(baseline)|``."""
        return float(self.result.relative_delta[0])

    @property
    def error(self) -> float:
        """Estimated relative error of the attributions, ``||a - exact|| / ||a||`` (NaN if unknown)."""
        e = self.result.error
        return float("nan") if e is None else float(e.reshape(-1)[0])

    @property
    def accuracy(self) -> str:
        """One line on how far to trust the attributions: the error estimate and the gap, and a verdict."""
        return accuracy_line(self.error, self.relative_delta, self.result.settings)

    def _common_dict(self, *, model: Any, target: tuple[Any, str, float | None], prediction: tuple[str, float],
                     baseline: Any) -> dict[str, Any]:
        """The keys every explanation's ``to_dict`` has, in one vocabulary.

        Numbers JSON cannot hold (NaN: no estimate for exact results; Inf: a zero
        ``F(x) - F(baseline)``) become None, so ``json.dumps`` writes standard JSON.
        """
        from .. import __version__

        index, label, probability = target
        return {
            "model": model,
            "target": {"index": index, "label": label, "probability": probability},
            "prediction": {"label": prediction[0], "probability": prediction[1]},
            "baseline": baseline,
            "f_x": self.f_x, "f_baseline": self.f_baseline, "delta": self.delta,
            "relative_delta": _json_number(self.relative_delta), "error": _json_number(self.error),
            "accuracy": self.accuracy, "n_evals": int(self.result.n_evals.sum()), "attributions_file": None,
            "settings": dict(self.result.settings), "integrad_version": __version__,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the result as safetensors (:meth:`Attribution.save`); ``Attribution.load`` reads it.

        The explanation's :meth:`to_dict` (less ``settings``, stored already) is kept in the
        settings under ``"explanation"``, so the file holds everything the explanation says.
        """
        from dataclasses import replace

        summary = {k: v for k, v in self.to_dict().items() if k != "settings"}
        replace(self.result, settings=dict(self.result.settings) | {"explanation": summary}).save(path)


def _json_number(x: float) -> float | None:
    return x if math.isfinite(x) else None


ACCURATE = 0.01  # the per-feature relative error the verdicts call accurate


def accuracy_line(error: float, relative_delta: float, settings: Mapping[str, Any]) -> str:
    """``estimated error 4.1% (more than 1%: rtol=0.01 reaches it); gap 0.52%`` and the like."""
    gap = f"completeness gap {relative_delta:.2%} of |F(x) - F(baseline)|"
    if error != error:  # NaN: exact modes (piecewise) have no estimate
        exact = settings.get("method") == "piecewise"
        return f"exact (piecewise-linear model); {gap}" if exact else gap
    if error <= ACCURATE:
        return f"estimated error {_pct(error)} (within {ACCURATE:.0%}); {gap}"
    if math.isinf(error):  # one node: no neighbour to compare the gradient with
        return f"error unknown (a single node gives no estimate; use n_steps >= 2); {gap}"
    n = settings.get("n_steps")
    if settings.get("smoothgrad") or settings.get("method") == "expected_gradients":
        hint = "use more samples: the standard error falls like 1/sqrt(n_samples)"
    elif settings.get("rtol") is not None:
        hint = "raise max_evals or lower rtol"
    elif n:
        # fixed rules converge like 1/n on ReLU networks, the slowest case: a safe guess
        more = math.ceil(n * error / ACCURATE)
        step = 10 ** max(len(str(more)) - 2, 0)  # rounded up to two significant digits
        more = -(-more // step) * step
        hint = f"rtol={ACCURATE:g} reaches it, or about n_steps={max(more, n + 1)}"
    else:
        hint = "use more samples"
    return f"estimated error {_pct(error)} (more than {ACCURATE:.0%}: {hint}); {gap}"


def _pct(x: float) -> str:
    return f"{x:.2%}" if x >= 1e-4 else f"{x:.1e}"


def pick_rows(res: Attribution, rows: slice, **settings: Any) -> Attribution:
    """The examples ``rows`` of ``res`` (every per-example field), with ``settings`` updated."""
    def pick(t):
        if t is None:
            return None
        return tuple(a[rows] for a in t) if isinstance(t, tuple) else t[rows]

    fields = {k: pick(getattr(res, k)) for k in ("attributions", "delta", "f_x", "f_baseline", "n_evals", "stderr",
                                                  *Attribution._OPTIONAL)}
    return Attribution(settings=dict(res.settings) | settings, **fields)
