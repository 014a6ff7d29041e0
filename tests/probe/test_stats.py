"""Paired tests and bootstrap intervals against scipy / statsmodels / sklearn reference values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import accuracy_score, f1_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from spatial_probing.probe.stats import (bootstrap_mean, bootstrap_metric, holm, mcnemar_exact, metric_value,
                                        paired_permutation)


@pytest.mark.parametrize("n11,n10,n01,n00", [(30, 12, 3, 20), (5, 0, 0, 5), (10, 7, 8, 2), (0, 1, 9, 0), (50, 20, 20, 1)])
def test_mcnemar_matches_statsmodels_exact(n11: int, n10: int, n01: int, n00: int) -> None:
    a = np.array([1] * n11 + [1] * n10 + [0] * n01 + [0] * n00, bool)
    b = np.array([1] * n11 + [0] * n10 + [1] * n01 + [0] * n00, bool)
    ref = mcnemar([[n11, n10], [n01, n00]], exact=True).pvalue
    assert mcnemar_exact(a, b) == pytest.approx(ref, abs=1e-12)


def test_permutation_exact_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=10), rng.normal(size=10) + 0.5
    ref = sps.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
                               n_resamples=10**6, alternative="two-sided").pvalue
    assert paired_permutation(a, b, n_permutations=2**10) == pytest.approx(ref, rel=1e-9)


def test_permutation_monte_carlo_close_to_exact() -> None:
    rng = np.random.default_rng(4)
    a = rng.integers(0, 2, 60).astype(float)
    b = np.where(rng.random(60) < 0.8, a, 1 - a)
    mc = paired_permutation(a, b, n_permutations=20000, seed=1)
    assert mc == pytest.approx(mcnemar_exact(a > 0, b > 0), abs=0.03)  # binary sign flips ≈ exact McNemar
    assert paired_permutation(a, a) == 1.0


def test_metric_values_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    yt, yp = rng.choice(list("abcde"), 300), rng.choice(list("abcdef"), 300)
    assert metric_value("accuracy", yt, yp) == pytest.approx(accuracy_score(yt, yp))
    assert metric_value("macro_f1", yt, yp) == pytest.approx(f1_score(yt, yp, average="macro"))
    value, lo, hi = bootstrap_metric("macro_f1", yt, yp, n_boot=300)
    assert lo <= value <= hi and value == pytest.approx(f1_score(yt, yp, average="macro"))


def test_bootstrap_interval_matches_scipy_percentile() -> None:
    rng = np.random.default_rng(1)
    correct = rng.random(400) < 0.7
    value, lo, hi = bootstrap_metric("accuracy", correct, np.ones(400, bool), n_boot=20000, seed=0)
    ref = sps.bootstrap((correct.astype(float),), np.mean, n_resamples=20000, method="percentile",
                        rng=np.random.default_rng(5)).confidence_interval
    assert value == pytest.approx(correct.mean())
    assert lo == pytest.approx(ref.low, abs=0.006) and hi == pytest.approx(ref.high, abs=0.006)


def test_bootstrap_edge_cases_and_errors() -> None:
    assert np.isnan(bootstrap_metric("accuracy", [], [])[0])
    v, lo, hi = bootstrap_metric("accuracy", ["a"], ["a"])
    assert v == 1.0 and np.isnan(lo) and np.isnan(hi)
    with pytest.raises(ValueError, match="same length"):
        bootstrap_metric("accuracy", ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="unknown metric"):
        metric_value("auc", ["a"], ["a"])


def test_holm_keeps_nan_out_of_the_family() -> None:
    out = holm([0.01, np.nan, 0.04, 0.03])
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], [0.03, 0.06, 0.06])


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.random(12) ** 3
    p[[2, 5]] = p[1]  # ties
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=0, atol=1e-15)


def test_bootstrap_mean_of_differences_matches_scipy() -> None:
    """Selectivity's interval: the mean of per-item (task − control) correctness differences in {-1, 0, 1}."""
    rng = np.random.default_rng(2)
    diff = rng.choice([-1.0, 0.0, 1.0], size=500, p=[0.2, 0.5, 0.3])
    value, lo, hi = bootstrap_mean(diff, n_boot=20000, seed=0)
    ref = sps.bootstrap((diff,), np.mean, n_resamples=20000, method="percentile",
                        rng=np.random.default_rng(5)).confidence_interval
    assert value == pytest.approx(0.1, abs=0.05) and value == pytest.approx(diff.mean())
    assert lo == pytest.approx(ref.low, abs=0.01) and hi == pytest.approx(ref.high, abs=0.01)
    assert lo < value - 0.02 and hi > value + 0.02
