"""RSA stage: RDMs of embeddings vs ground-truth reference RDMs, with permutation tests and bootstrap CIs.

Laid out like rsatoolbox's workflow: :mod:`.rdm` (calc_rdm), :mod:`.references` (model RDMs),
:mod:`.compare` (compare_rdms), :mod:`.inference` (permutation test, bootstrap), :mod:`.runner`
(the RSA step of a run).
"""

from spatial_probing.rsa.compare import COMPARISON_METHODS, compare_rdms
from spatial_probing.rsa.inference import (
    PermutationResult, bootstrap_ci, bootstrap_samples, item_permutations, permutation_test,
)
from spatial_probing.rsa.rdm import RDM_METHODS, calc_rdm, condition_centroids, to_square
from spatial_probing.rsa.references import REFERENCES, NotApplicable, Reference, applicable_references, build_reference
from spatial_probing.rsa.runner import RSA_COLUMNS, RSASettings, RSAUnit, run_rsa
from spatial_probing.rsa.meaning import MEANING_COLUMNS, MeaningSettings, build_triples, meaning_rows, run_meaning

__all__ = ["COMPARISON_METHODS", "MEANING_COLUMNS", "MeaningSettings", "build_triples", "meaning_rows", "run_meaning", "RDM_METHODS", "REFERENCES", "RSA_COLUMNS", "NotApplicable", "PermutationResult",
           "RSASettings", "RSAUnit", "Reference", "applicable_references", "bootstrap_ci", "bootstrap_samples",
           "build_reference", "calc_rdm", "compare_rdms", "condition_centroids", "item_permutations",
           "permutation_test", "run_rsa", "to_square"]
