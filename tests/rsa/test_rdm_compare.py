"""RDMs against scipy's pdist and rsatoolbox's calc_rdm; comparisons against rsatoolbox's compare; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from rsatoolbox.data import Dataset
from rsatoolbox.rdm import RDMs, calc_rdm as rsa_calc_rdm, compare as rsa_compare
from scipy.spatial.distance import pdist

from spatial_probing.rsa import calc_rdm, compare_rdms, condition_centroids, to_square

RSATOOLBOX_NAMES = {"rho_a": "rho-a", "spearman": "spearman", "kendall_tau_a": "tau-a"}


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(25, 7))


@pytest.mark.parametrize(("method", "metric", "scale"), [("cosine", "cosine", 1), ("correlation", "correlation", 1),
                                                         ("euclidean", "euclidean", 1), ("sqeuclidean", "sqeuclidean", 7)])
def test_rdm_methods_match_pdist(x: np.ndarray, method: str, metric: str, scale: int) -> None:
    got = calc_rdm(x, method=method)
    assert got.dtype == np.float64 and got.shape == (25 * 24 // 2,)
    np.testing.assert_allclose(got, pdist(x, metric) / scale, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("ours", "theirs"), [("sqeuclidean", "euclidean"), ("correlation", "correlation")])
def test_rdm_conventions_match_rsatoolbox(x: np.ndarray, ours: str, theirs: str) -> None:
    expected = rsa_calc_rdm(Dataset(x), method=theirs).get_vectors()[0]
    np.testing.assert_allclose(calc_rdm(x, method=ours), expected, rtol=0, atol=1e-12)


def test_square_form_and_centroids(x: np.ndarray) -> None:
    sq = to_square(calc_rdm(x))
    assert sq.shape == (25, 25) and np.allclose(sq, sq.T) and not np.diag(sq).any()
    names, cents = condition_centroids(x, ["b", "a"] * 12 + ["a"])
    assert list(names) == ["a", "b"] and cents.dtype == np.float32
    np.testing.assert_allclose(cents[1], x[0:24:2].mean(axis=0), rtol=1e-6)


def _reference_cases(rng: np.random.Generator, m: int) -> list[np.ndarray]:
    labels = rng.integers(0, 4, size=m)
    return [rng.normal(size=m), labels.astype(float), (labels > 1).astype(float)]  # continuous, many ties, binary


@pytest.mark.parametrize("method", ["rho_a", "spearman", "kendall_tau_a"])
def test_comparisons_equal_rsatoolbox(method: str) -> None:
    rng = np.random.default_rng(1)
    for trial in range(5):
        a = calc_rdm(rng.normal(size=(12 + trial, 4)))
        for b in _reference_cases(rng, a.size):
            expected = rsa_compare(RDMs(a[None]), RDMs(b[None]), method=RSATOOLBOX_NAMES[method])[0, 0]
            assert compare_rdms(a, b, method=method) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("method", ["rho_a", "spearman", "kendall_tau_a"])
def test_nan_pairs_are_left_out_like_rsatoolbox(method: str) -> None:
    rng = np.random.default_rng(2)
    a, b = calc_rdm(rng.normal(size=(15, 3))), rng.integers(0, 3, 105).astype(float)
    a[::4], b[::4] = np.nan, np.nan
    expected = rsa_compare(RDMs(a[None]), RDMs(b[None]), method=RSATOOLBOX_NAMES[method])[0, 0]
    assert compare_rdms(a, b, method=method) == pytest.approx(expected, abs=1e-10)
    assert compare_rdms(a, b, method=method) == compare_rdms(a[~np.isnan(a)], b[~np.isnan(b)], method=method)


def test_identical_rdms_correlate_perfectly(x: np.ndarray) -> None:
    a = calc_rdm(x)
    for method in ("rho_a", "spearman", "kendall_tau_a"):
        assert compare_rdms(a, a, method=method) == pytest.approx(1.0, abs=1e-12)  # no ties: rho_a = tau_a = 1
        assert compare_rdms(a, -a, method=method) == pytest.approx(-1.0, abs=1e-12)


def test_bad_input_gives_clear_errors(x: np.ndarray) -> None:
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf \(first: row 3\)"):
        calc_rdm(bad)
    with pytest.raises(ValueError, match="at least 3 items"):
        calc_rdm(x[:2])
    with pytest.raises(ValueError, match="2-D"):
        calc_rdm(x[0])
    with pytest.raises(ValueError, match="unknown RDM method 'manhattan'"):
        calc_rdm(x, method="manhattan")
    with pytest.raises(ValueError, match="row 0 is all-zero"):
        calc_rdm(np.vstack([np.zeros(7), x]), method="cosine")
    with pytest.raises(ValueError, match="row 1 is constant"):
        calc_rdm(np.vstack([x[0], np.ones(7), x[1]]), method="correlation")
    a = calc_rdm(x)
    with pytest.raises(ValueError, match="unknown RDM comparison method 'pearson'"):
        compare_rdms(a, a, method="pearson")
    with pytest.raises(ValueError, match="same length"):
        compare_rdms(a, a[:-1])
    with pytest.raises(ValueError, match="condensed RDM"):
        to_square(a[:-1])
