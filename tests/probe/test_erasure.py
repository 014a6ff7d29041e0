"""LEACE erasure on planted directions: the erased target drops to chance, an orthogonal one is untouched."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_probing.probe.erasure import ProbeTarget, erasure_table, fit_erasure


def _planted(seed: int = 0, n: int = 800, d: int = 32):
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.normal(size=(d, 2)))[0].T  # two orthonormal directions
    y1, y2 = rng.integers(0, 2, n), rng.integers(0, 2, n)
    X = rng.normal(size=(n, d)) + 4.0 * np.outer(y1 - 0.5, u[0]) + 4.0 * np.outer(y2 - 0.5, u[1])
    train, test = np.arange(n // 2), np.arange(n // 2, n)
    return X.astype(np.float32), y1, y2, train, test


def test_leace_erases_the_planted_target_and_spares_the_orthogonal_one_random_control_does_neither():
    X, y1, y2, train, test = _planted()
    fit = fit_erasure(X[train], y1[train], source="dir", n_random=3, seed=0)
    assert fit.rank == 1  # two classes: one direction
    targets = [ProbeTarget("dir", X, y1, train, test), ProbeTarget("other", X, y2, train, test)]
    t = erasure_table(fit, targets, Cs=(0.1, 1.0), n_boot=300).set_index(["target", "condition"])
    assert t.loc[("dir", "original"), "accuracy"] > 0.95 and t.loc[("other", "original"), "accuracy"] > 0.95
    # LEACE: the erased target's probe is at chance (its interval covers the majority share), the other intact
    dir_leace = t.loc[("dir", "leace")]
    assert dir_leace.ci_low <= dir_leace.chance + 0.02 and dir_leace.accuracy < 0.6
    assert dir_leace.drop_ci_low > 0.3
    other_leace = t.loc[("other", "leace")]
    assert other_leace.accuracy > 0.95 and other_leace.drop_ci_low <= 0 <= other_leace.drop_ci_high + 1e-12
    # the random same-rank control drops neither target
    assert t.loc[("dir", "random"), "accuracy"] > 0.9 and t.loc[("other", "random"), "accuracy"] > 0.9
    assert t.loc[("dir", "random"), "drop_ci_high"] < 0.1
    assert (t.xs("random", level="condition")["rank"] == 1).all()


def test_multiclass_source_rank_is_classes_minus_one_and_random_erasers_differ():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 10))
    y = rng.integers(0, 4, 300)
    X[np.arange(300), y] += 3
    fit = fit_erasure(X, y, n_random=2, seed=0)
    assert fit.rank == 3
    a, b = (fit.apply(e, X) for e in fit.random)
    assert not np.allclose(a, b)
    # LEACE leaves no linear trace of the classes: the class means coincide after erasure
    Xe = fit.apply(fit.leace, X)
    means = np.stack([Xe[y == c].mean(0) for c in range(4)])
    np.testing.assert_allclose(means - means.mean(0), 0, atol=1e-4)


def test_single_class_source_is_a_clear_error():
    with pytest.raises(ValueError, match="single class"):
        fit_erasure(np.zeros((5, 3)), ["a"] * 5, source="s")


def test_run_erasure_on_registered_tasks_writes_the_table(tmp_path, monkeypatch):
    from conftest_models import build_tiny_sbert

    from spatial_probing.probe.erasure import ErasureSettings, run_erasure

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = build_tiny_sbert(tmp_path / "sbert")
    settings = ErasureSettings(source="synthetic-relation", targets=["synthetic-argument-order"], n_random=1,
                               Cs=[1.0], n_boot=100, max_train=120, max_test=60)
    paths = run_erasure(settings, ["sbert-mpnet", "static:sbert-mpnet"], tmp_path / "run",
                        model_paths={"sbert-mpnet": model}, cache_dir=tmp_path / "cache",
                        task_options={"synthetic-relation": {"n_scenes": 40},
                                      "synthetic-argument-order": {"n_scenes": 40}},
                        device="cpu", log=lambda *_: None, show_progress=False)
    import pandas as pd

    t = pd.read_csv(paths["erasure"].with_suffix(".csv"))
    assert set(t.encoder) == {"sbert-mpnet"}  # the lexical floor is not erased by default
    assert set(t.target) == {"synthetic-relation", "synthetic-argument-order"}
    assert set(t.condition) == {"original", "leace", "random"}
    assert (t[t.condition != "original"]["rank"] == t[t.condition == "leace"]["rank"].iloc[0]).all()
    with pytest.raises(ValueError, match="unknown task"):
        ErasureSettings(source="no-such-task")
