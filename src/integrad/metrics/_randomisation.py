"""The model-randomisation sanity check (Adebayo et al., NeurIPS 2018)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ..core import checks as C
from . import _common as M

__all__ = ["RandomisationCheck", "randomisation_check", "spearman"]


@dataclass(frozen=True, eq=False)
class RandomisationCheck:
    """Rank correlations between the attributions of a model and of its randomised copies.

    Attributes
    ----------
    layers : tuple of str
        The re-initialised modules in order: step ``i`` has ``layers[:i]`` randomised.
    rank_correlation : Tensor, shape (steps + 1, batch)
        Spearman correlation of the signed attributions with the original ones, per example.
        Step 0 (nothing randomised) repeats the explanation: below 1 only for a random
        explanation, whose noise floor it then shows. NaN where the attributions are constant.
    rank_correlation_abs : Tensor, shape (steps + 1, batch)
        The same for ``|attributions|``.
    """

    layers: tuple[str, ...]
    rank_correlation: torch.Tensor
    rank_correlation_abs: torch.Tensor


def randomisation_check(model: torch.nn.Module, inputs: Any,
                        explain_fn: Callable[[torch.nn.Module, Any], Any], *,
                        layers: Sequence[str | torch.nn.Module] | None = None, seed: int = 0) -> RandomisationCheck:
    """Cascading model randomisation: do the attributions change when the weights they explain are random?

    A deep copy of ``model`` is re-initialised one module at a time, from the output down,
    keeping the earlier ones random (cascading); after each step the attributions are
    recomputed and compared with those of the trained copy by rank correlation. An
    explanation that depends on what the model learned decorrelates quickly; one that stays
    close to 1 explains the input more than the model. ``model`` itself is never changed.

    Ties weigh on the rank correlation of ``|attributions|``: features that get exactly zero
    whatever the weights (the black background of an MNIST digit under any method that
    multiplies by ``x - x'``; padding and special tokens) share one rank in both, so the
    correlation of magnitudes stays near 1 after full randomisation (0.99 on the embedded
    MNIST CNN, ``docs/faithfulness.md``). Read the signed correlation there, or compare only
    the features where input and baseline differ.

    Parameters
    ----------
    model : nn.Module
    inputs : Tensor, shape (batch, ...)
        Passed to ``explain_fn`` unchanged (floating point or token ids).
    explain_fn : callable
        ``explain_fn(model, inputs)`` returns attributions of shape ``(batch, ...)``, a
        Tensor or an Attribution (a tuple of tensors is concatenated per example), e.g.
        ``lambda m, x: integrad.integrated_gradients(m, x, target=0)``.
    layers : list of module names or modules of ``model``, optional
        The modules to re-initialise, first randomised first (output end first). Default:
        every module that holds parameters itself, in reverse registration order (the last
        registered taken as the closest to the output).
    seed : int
        Re-initialisation uses each module's ``reset_parameters()`` under a forked global
        RNG seeded from ``seed`` and the step, so the caller's RNG state is left as it was;
        a module without ``reset_parameters`` has each of its own parameters redrawn from a
        zero-mean normal of that parameter's standard deviation (1 if it has none), from a
        seeded ``torch.Generator``. A container named in ``layers`` has all its parameter
        holding submodules re-initialised in one step.

    Returns
    -------
    RandomisationCheck

    Examples
    --------
    >>> import torch, integrad
    >>> from integrad.metrics import randomisation_check
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    >>> check = randomisation_check(net, torch.randn(2, 3),
    ...                             lambda m, x: integrad.integrated_gradients(m, x))
    >>> check.layers, check.rank_correlation.shape
    (('2', '0'), torch.Size([3, 2]))

    References
    ----------
    Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim, "Sanity Checks for Saliency Maps",
    NeurIPS 2018.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected an nn.Module (its layers are re-initialised on a copy); got "
                        f"{type(model).__name__}")
    M.check_callable(explain_fn, "explain_fn", "explain_fn(model, inputs) -> attributions of shape (batch, ...)")
    x = M.check_tensor(inputs, "inputs", floating=False)
    seed = M.check_seed(seed)
    names = _layer_names(model, layers)
    twin = copy.deepcopy(model)
    modules = dict(twin.named_modules())
    ref = _flat(explain_fn(twin, x), x.shape[0])
    signed, absolute = [], []
    for step in range(len(names) + 1):
        if step:
            _reinitialise(modules[names[step - 1]], seed * 1_000_003 + step)
        e = _flat(explain_fn(twin, x), x.shape[0])
        if e.shape != ref.shape:
            raise ValueError(f"explain_fn: returned shape {C.shape(e)} after randomising {names[step - 1]!r}, "
                             f"{C.shape(ref)} before")
        signed.append(spearman(ref, e))
        absolute.append(spearman(ref.abs(), e.abs()))
    return RandomisationCheck(layers=tuple(names), rank_correlation=torch.stack(signed),
                              rank_correlation_abs=torch.stack(absolute))


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b`` (ties get mean ranks)."""
    ra, rb = _ranks(a.double()), _ranks(b.double())
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))


def _ranks(t: torch.Tensor) -> torch.Tensor:
    s = t.sort(dim=1).values
    below = torch.searchsorted(s, t.contiguous(), right=False)
    upto = torch.searchsorted(s, t.contiguous(), right=True)
    return (below + upto - 1).double() / 2  # 0-based mean rank of each tie group


def _flat(e: Any, batch: int) -> torch.Tensor:
    parts = e.attributions if hasattr(e, "attributions") and hasattr(e, "delta") else e
    parts = parts if isinstance(parts, tuple) else (parts,)
    for p in parts:
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"explain_fn: expected a Tensor, a tuple of them or an Attribution; got "
                            f"{type(p).__name__}")
        if p.dim() == 0 or p.shape[0] != batch:
            raise ValueError(f"explain_fn: expected attributions with one row per example, shape ({batch}, ...); "
                             f"got {C.shape(p)}")
    return torch.cat([p.detach().reshape(batch, -1).double() for p in parts], 1)


def _layer_names(model: torch.nn.Module, layers: Any) -> list[str]:
    named = list(model.named_modules())
    if layers is None:
        names = [n for n, m in named if any(True for _ in m.parameters(recurse=False))][::-1]
        if not names:
            raise ValueError("model: has no parameters; there is nothing to randomise")
        return names
    if isinstance(layers, (str, torch.nn.Module)) or not isinstance(layers, Sequence) or not layers:
        raise TypeError(f"layers: expected a non-empty list of module names or modules of model; got "
                        f"{type(layers).__name__}")
    by_name, by_id = dict(named), {id(m): n for n, m in named}
    names = []
    for i, layer in enumerate(layers):
        if isinstance(layer, str):
            if layer not in by_name:
                known = ", ".join(repr(n) for n, m in named if n and any(True for _ in m.parameters(recurse=False)))
                raise ValueError(f"layers[{i}]: model has no module named {layer!r} (modules with parameters: "
                                 f"{known})")
            names.append(layer)
        elif isinstance(layer, torch.nn.Module):
            if id(layer) not in by_id:
                raise ValueError(f"layers[{i}]: this {type(layer).__name__} is not a module of model")
            names.append(by_id[id(layer)])
        else:
            raise TypeError(f"layers[{i}]: expected a module name or a module of model; got {type(layer).__name__}")
        if not any(True for _ in by_name[names[-1]].parameters()):
            raise ValueError(f"layers[{i}]: module {names[-1]!r} has no parameters to randomise")
    return names


def _reinitialise(module: torch.nn.Module, seed: int) -> None:
    """Re-initialise every submodule of ``module`` that holds parameters itself."""
    for j, sub in enumerate(m for m in module.modules() if any(True for _ in m.parameters(recurse=False))):
        own = list(sub.parameters(recurse=False))
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            cuda = sorted({p.device.index or 0 for p in own if p.is_cuda})
            with torch.random.fork_rng(devices=cuda):
                torch.manual_seed(seed + 7919 * j)
                reset()
            continue
        gen = torch.Generator().manual_seed(seed + 7919 * j)
        with torch.no_grad():
            for p in own:
                std = float(p.std()) if p.numel() > 1 else 0.0
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * (std if std > 0 else 1.0))
