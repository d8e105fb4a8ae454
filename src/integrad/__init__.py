"""integrad: Integrated Gradients done right.

>>> import torch, integrad
>>> res = integrad.integrated_gradients(lambda x: (x ** 2).sum(1), torch.tensor([[1.0, 2.0]]))
>>> res.attributions
tensor([[1., 4.]])

Attributes are imported lazily, so ``import integrad`` pulls in no framework, plotting or
cluster library; the first use of a function loads what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "integrated_gradients": "._engine",
    "Attribution": "._result",
    "rule": "._quadrature",
    "Rule": "._quadrature",
    "METHODS": "._quadrature",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from ._engine import integrated_gradients as integrated_gradients
    from ._quadrature import METHODS as METHODS, Rule as Rule, rule as rule
    from ._result import Attribution as Attribution


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
