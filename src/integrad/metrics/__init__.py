"""Faithfulness metrics: is an attribution true to the model it explains?

- :func:`deletion_auc`, :func:`insertion_auc`: the output as the top features are removed or
  put back (Petsiuk et al. 2018; Samek et al. 2017).
- :func:`infidelity`, :func:`sensitivity_max`: Yeh et al. 2019, as Captum defines them.
- :func:`randomisation_check`: the cascading model-randomisation sanity check (Adebayo et al. 2018).
- :func:`comprehensiveness`, :func:`sufficiency`: token rationales of text classifiers (ERASER,
  DeYoung et al. 2020).

Every metric runs without autograd on the model (``sensitivity_max`` and
``randomisation_check`` call your explanation function, which may use it), leaves the model's
mode and parameters as found, and returns detached tensors with one value per example.
"""

from ._curves import Curve as Curve, deletion_auc as deletion_auc, insertion_auc as insertion_auc
from ._eraser import ErasureScore as ErasureScore, comprehensiveness as comprehensiveness, \
    sufficiency as sufficiency
from ._randomisation import RandomisationCheck as RandomisationCheck, randomisation_check as randomisation_check, \
    spearman as spearman
from ._yeh import infidelity as infidelity, sensitivity_max as sensitivity_max

__all__ = ["Curve", "ErasureScore", "RandomisationCheck", "comprehensiveness", "deletion_auc", "infidelity",
           "insertion_auc", "randomisation_check", "sensitivity_max", "spearman", "sufficiency"]
