"""RSA stage: RDMs of embeddings vs ground-truth reference RDMs, with permutation tests and bootstrap CIs.

Laid out like rsatoolbox's workflow: :mod:`.rdm` (calc_rdm), :mod:`.references` (model RDMs),
:mod:`.compare` (compare_rdms), :mod:`.inference` (permutation test, bootstrap), :mod:`.runner`
(the RSA step of a run).
"""

import lazy_loader

# Names load on first use (PEP 562), so `spatial-probing --help` and a cached run import no heavy library.
__getattr__, __dir__, _ = lazy_loader.attach(__name__, submod_attrs={
    "compare": ["COMPARISON_METHODS", "compare_rdms"],
    "inference": ["PermutationResult", "bootstrap_ci", "bootstrap_samples", "item_permutations", "permutation_test"],
    "rdm": ["RDM_METHODS", "calc_rdm", "condition_centroids", "to_square"],
    "references": ["REFERENCES", "NotApplicable", "Reference", "applicable_references", "build_reference"],
    "runner": ["RSA_COLUMNS", "RSASettings", "RSAUnit", "run_rsa"],
    "meaning": ["MEANING_COLUMNS", "MeaningSettings", "build_triples", "meaning_rows", "run_meaning"],
})

__all__ = ["COMPARISON_METHODS", "MEANING_COLUMNS", "MeaningSettings", "build_triples", "meaning_rows", "run_meaning", "RDM_METHODS", "REFERENCES", "RSA_COLUMNS", "NotApplicable", "PermutationResult",
           "RSASettings", "RSAUnit", "Reference", "applicable_references", "bootstrap_ci", "bootstrap_samples",
           "build_reference", "calc_rdm", "compare_rdms", "condition_centroids", "item_permutations",
           "permutation_test", "run_rsa", "to_square"]
