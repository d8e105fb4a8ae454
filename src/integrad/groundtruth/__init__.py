"""Models whose explanations are known, and metrics that score an explanation against them.

* :func:`synthetic` — OpenXAI's synthetic data: Gaussian clusters, each labelled by its own
  sparse linear rule, whose masked weights are the true explanation; :class:`ClusterLinear`
  is the rule as a differentiable model (cluster id as a forward argument).
* :func:`weighted_features`, :func:`pertinent_negative`, :func:`shattered_gradients`,
  :func:`interacting_pair` — XAI-Units-style unit tests, each a :class:`UnitModel` with a
  closed-form :meth:`UnitModel.truth` (its exact IG, equal to its baseline Shapley value).
* :func:`feature_agreement`, :func:`rank_agreement`, :func:`sign_agreement` (top-``k``
  agreement with the truth) and :func:`pgi`, :func:`pgu` (prediction gaps under Gaussian
  noise on the important / unimportant features), each one number per example.

>>> import integrad
>>> from integrad import groundtruth as gt
>>> data = gt.synthetic(300, 8, 3, seed=0, dtype=__import__("torch").float64)
>>> f = data.model()
>>> res = integrad.integrated_gradients(f, data.X[:4], forward_args=(data.cluster[:4],))
>>> bool((res.attributions - f.exact_ig(data.X[:4], data.cluster[:4])).abs().max() < 1e-12)
True
>>> gt.feature_agreement(data.true_attr[:4], data.true_attr[:4], 3)
tensor([1., 1., 1., 1.], dtype=torch.float64)

References
----------
Agarwal, Krishna, Saxena, Pawelczyk, Johnson, Puri, Zitnik & Lakkaraju, "OpenXAI: Towards a
Transparent Evaluation of Model Explanations", NeurIPS 2022 Datasets and Benchmarks.
"XAI-Units: Benchmarking Explainability Methods with Unit Tests", FAccT 2025.
Krishna et al., "The Disagreement Problem in Explainable Machine Learning", 2022.
"""

from ._metrics import (feature_agreement as feature_agreement, pgi as pgi, pgu as pgu,
                       rank_agreement as rank_agreement, sign_agreement as sign_agreement, top_k as top_k)
from ._synthetic import ClusterLinear as ClusterLinear, SyntheticData as SyntheticData, synthetic as synthetic
from ._units import (UnitModel as UnitModel, interacting_pair as interacting_pair,
                     pertinent_negative as pertinent_negative, shattered_gradients as shattered_gradients,
                     weighted_features as weighted_features)

__all__ = ["synthetic", "SyntheticData", "ClusterLinear", "UnitModel", "weighted_features", "pertinent_negative",
           "shattered_gradients", "interacting_pair", "top_k", "feature_agreement", "rank_agreement",
           "sign_agreement", "pgi", "pgu"]
