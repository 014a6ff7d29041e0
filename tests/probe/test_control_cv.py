"""``ProbeSettings.control_cv``: the control task's C searched once (first seed) or for every seed."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_probing.probe import ProbeSettings, probe_arrays


def _run(control_cv: str):
    """A planted 3-way task (its C: the weakest penalty) and controls whose C differs from the task's."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 8))
    y = np.array(["a", "b", "c"], dtype=object)[(X[:, :3] + 0.3 * rng.normal(size=(400, 3))).argmax(1)]
    settings = ProbeSettings(seeds=(0, 1, 2), Cs=(0.001, 1.0, 100.0), inner_folds=3, max_iter=200, mdl_seeds=0,
                             control_cv=control_cv, device="cpu")
    return probe_arrays({"x": X[:300]}, y[:300], {"x": X[300:]}, groups_train=[f"g{i}" for i in range(300)],
                        control_types_train=[f"t{i % 40}" for i in range(300)],
                        control_types_test=[f"t{i % 40}" for i in range(100)], settings=settings)


def test_first_seed_reuses_the_first_controls_C_and_changes_nothing_else():
    first, every = _run("first-seed"), _run("every-seed")
    # the task's search and the first seed's control are the same problems in both modes
    for a, b in zip(first, every):
        assert (a.C, a.cv_accuracy) == (b.C, b.cv_accuracy)
        np.testing.assert_array_equal(a.y_pred, b.y_pred)
        np.testing.assert_array_equal(a.control_true, b.control_true)
    assert (first[0].control_C, first[0].control_cv_accuracy) == (every[0].control_C, every[0].control_cv_accuracy)
    np.testing.assert_array_equal(first[0].control_pred, every[0].control_pred)
    # the controls' C is not the task's (else reusing the wrong label set's C would go unseen)
    assert first[0].control_C != first[0].C
    # later seeds: the first seed's control C, no search of their own (NaN), each refitted on its own labels
    for r in first[1:]:
        assert r.control_C == first[0].control_C and np.isnan(r.control_cv_accuracy)
    assert len({tuple(r.control_pred) for r in first}) == 3
    # every-seed searches each control: all CV accuracies exist and they differ between the seeds' mappings
    assert all(np.isfinite(r.control_cv_accuracy) for r in every)
    assert len({r.control_cv_accuracy for r in every}) == 3


def test_control_cv_is_validated():
    with pytest.raises(ValueError, match="control_cv"):
        ProbeSettings(control_cv="sometimes")


def test_run_config_passes_control_cv_to_every_unit() -> None:
    from spatial_probing.pipeline import RunConfig

    every = RunConfig(tasks=["synthetic-relation"], encoders=["bow:"], control_cv="every-seed")
    assert {u.settings.control_cv for u in every.units()} == {"every-seed"}
    default = RunConfig(tasks=["synthetic-relation"], encoders=["bow:"])
    assert {u.settings.control_cv for u in default.units()} == {"first-seed"}
