"""Probe stage: probes with controls, layer curves, MDL and paired statistics.

* estimators — :class:`LinearProbe`, :class:`MLPProbe` (scikit-learn compatible);
* batched — all layers × seeds × (task, control) × inner-CV problems fitted together (per-problem
  L-BFGS in lockstep, preconditioned, duplicates fitted once);
* tasks — :class:`TaskSpec` metadata and task classes in a registry (:func:`get_task`);
* engine — :func:`probe_arrays` on feature arrays; runner — tasks × encoders → run tables.
"""

from __future__ import annotations

from spatial_probing.probe.batched import fit_softmax_batched, predict_log_proba_batched
from spatial_probing.probe.controls import chance_level, control_labels, majority_label
from spatial_probing.probe.engine import LayerSeedResult, ProbeSettings, probe_arrays
from spatial_probing.probe.estimators import LinearProbe, MLPProbe
from spatial_probing.probe.mdl import online_codelength
from spatial_probing.probe.runner import UnitConfig, assemble, compare_encoders, run_unit, run_units
from spatial_probing.probe.splits import SPLIT_POLICIES, inner_fold_masks, outer_folds, overlap_report
from spatial_probing.probe.stats import bootstrap_metric, holm, mcnemar_exact, metric_value, paired_permutation
from spatial_probing.probe.tasks import TASKS, ProbingTask, TaskSpec, get_task, list_tasks, register_task

__all__ = [
    "SPLIT_POLICIES", "TASKS", "LayerSeedResult", "LinearProbe", "MLPProbe", "ProbeSettings", "ProbingTask",
    "TaskSpec", "UnitConfig", "assemble", "bootstrap_metric", "chance_level", "compare_encoders", "control_labels",
    "fit_softmax_batched", "get_task", "holm", "inner_fold_masks", "list_tasks", "majority_label", "mcnemar_exact",
    "metric_value", "online_codelength", "outer_folds", "overlap_report", "paired_permutation", "predict_log_proba_batched",
    "probe_arrays", "register_task", "run_unit", "run_units",
]
