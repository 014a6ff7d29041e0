"""Probe stage: probes with controls, layer curves, MDL and paired statistics.

* estimators — :class:`LinearProbe`, :class:`MLPProbe` (scikit-learn compatible);
* batched — all layers × seeds × (task, control) × inner-CV problems fitted together (per-problem
  L-BFGS in lockstep, preconditioned, duplicates fitted once);
* tasks — :class:`TaskSpec` metadata and task classes in a registry (:func:`get_task`);
* engine — :func:`probe_arrays` on feature arrays; runner — tasks × encoders → run tables.
"""

from __future__ import annotations

import lazy_loader

# Names load on first use (PEP 562), so `spatial-probing --help` and a cached run import no heavy library.
__getattr__, __dir__, _ = lazy_loader.attach(__name__, submod_attrs={
    "batched": ["fit_softmax_batched", "predict_log_proba_batched"],
    "controls": ["chance_level", "control_labels", "majority_label"],
    "engine": ["LayerSeedResult", "ProbeSettings", "probe_arrays"],
    "estimators": ["LinearProbe", "MLPProbe"],
    "mdl": ["online_codelength"],
    "runner": ["UnitConfig", "assemble", "compare_encoders", "run_unit", "run_units"],
    "splits": ["SPLIT_POLICIES", "inner_fold_masks", "outer_folds", "overlap_report"],
    "stats": ["bootstrap_metric", "holm", "mcnemar_exact", "metric_value", "paired_permutation"],
    "tasks": ["TASKS", "ProbingTask", "TaskSpec", "get_task", "list_tasks", "register_task"],
})

__all__ = [
    "SPLIT_POLICIES", "TASKS", "LayerSeedResult", "LinearProbe", "MLPProbe", "ProbeSettings", "ProbingTask",
    "TaskSpec", "UnitConfig", "assemble", "bootstrap_metric", "chance_level", "compare_encoders", "control_labels",
    "fit_softmax_batched", "get_task", "holm", "inner_fold_masks", "list_tasks", "majority_label", "mcnemar_exact",
    "metric_value", "online_codelength", "outer_folds", "overlap_report", "paired_permutation", "predict_log_proba_batched",
    "probe_arrays", "register_task", "run_unit", "run_units",
]
