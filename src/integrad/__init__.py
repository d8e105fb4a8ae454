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
    "integrated_gradients": ".methods.ig",
    "expected_gradients": ".methods.expected",
    "smoothgrad": ".methods.smooth",
    "integrated_hessians": ".methods.hessians",
    "softplus_relus": ".methods.hessians",
    "blur_ig": ".methods.blur",
    "guided_ig": ".methods.guided",
    "idgi": ".methods.idgi",
    "audit": ".axioms",
    "Attribution": ".core.result",
    "rule": ".core.rules",
    "Rule": ".core.rules",
    "METHODS": ".core.rules",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from .axioms import audit as audit
    from .core.result import Attribution as Attribution
    from .core.rules import METHODS as METHODS, Rule as Rule, rule as rule
    from .methods.blur import blur_ig as blur_ig
    from .methods.expected import expected_gradients as expected_gradients
    from .methods.guided import guided_ig as guided_ig
    from .methods.idgi import idgi as idgi
    from .methods.hessians import integrated_hessians as integrated_hessians, softplus_relus as softplus_relus
    from .methods.ig import integrated_gradients as integrated_gradients
    from .methods.smooth import smoothgrad as smoothgrad


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
