"""Permutation test and bootstrap: equal to rsatoolbox on the same permutations/resamples, calibrated, seeded."""

from __future__ import annotations

import numpy as np
import pytest
from rsatoolbox.rdm import RDMs, compare as rsa_compare

from spatial_probing.data.synthetic import RELATION_DIRECTIONS
from spatial_probing.rsa import (
    bootstrap_ci, bootstrap_samples, calc_rdm, compare_rdms, item_permutations, permutation_test,
)

RSATOOLBOX_NAMES = {"rho_a": "rho-a", "spearman": "spearman", "kendall_tau_a": "tau-a"}


def _labels_rdm(labels: np.ndarray) -> np.ndarray:
    return (labels[:, None] != labels[None, :]).astype(float)[np.triu_indices(labels.size, k=1)]


def _direction_data(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings = the 2-D direction of each item's relation (padded to 8-D) + Gaussian noise; and the reference."""
    rng = np.random.default_rng(seed)
    dirs = np.array([d for d in RELATION_DIRECTIONS.values() if d is not None], dtype=float)
    rel = rng.integers(0, len(dirs), size=n)
    x = np.hstack([dirs[rel], np.zeros((n, 6))]) + noise * rng.normal(size=(n, 8))
    return x, calc_rdm(dirs[rel], method="euclidean")


@pytest.mark.parametrize("method", ["rho_a", "spearman", "kendall_tau_a"])
def test_null_equals_rsatoolbox_on_permuted_data(method: str) -> None:
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(24, 5)), rng.integers(0, 3, 24)
    b = _labels_rdm(labels)
    perms = item_permutations(24, n_permutations=30 if method != "kendall_tau_a" else 8, seed=4)
    res = permutation_test(calc_rdm(x), b, method=method, permutations=perms)
    # the user's rsatoolbox loop: shuffle the stimuli's rows, recompute the RDM, compare
    expected = [rsa_compare(RDMs(calc_rdm(x[p])[None]), RDMs(b[None]), method=RSATOOLBOX_NAMES[method])[0, 0]
                for p in perms]
    np.testing.assert_allclose(res.null, expected, rtol=0, atol=1e-10)
    assert res.p_value == (1 + np.sum(res.null >= res.value - 1e-12)) / (1 + len(perms))


def test_null_with_nan_reference_pairs_equals_rsatoolbox() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 4))
    b = rng.integers(0, 2, 190).astype(float)
    b[::3] = np.nan
    perms = item_permutations(20, n_permutations=25, seed=2)
    res = permutation_test(calc_rdm(x), b, method="rho_a", permutations=perms)
    expected = [rsa_compare(RDMs(np.where(np.isnan(b), np.nan, calc_rdm(x[p]))[None]), RDMs(b[None]),
                            method="rho-a")[0, 0] for p in perms]
    np.testing.assert_allclose(res.null, expected, rtol=0, atol=1e-10)


def test_permutation_p_is_calibrated_for_random_data() -> None:
    ps = []
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        x, labels = rng.normal(size=(20, 6)), rng.integers(0, 4, 20)
        ps.append(permutation_test(calc_rdm(x), _labels_rdm(labels), n_permutations=199, seed=seed).p_value)
    ps = np.array(ps)
    assert 0.3 < ps.mean() < 0.7  # uniform on (0, 1]: mean 0.5
    assert np.mean(ps < 0.05) <= 0.15  # nominal 5 %; 6 of 40 would be far out
    assert np.mean(ps > 0.5) >= 0.3


def test_planted_direction_structure_is_found() -> None:
    x, ref = _direction_data(120, noise=0.3, seed=0)
    res = permutation_test(calc_rdm(x, method="euclidean"), ref, method="rho_a", n_permutations=500, seed=0)
    assert res.value > 0.5
    assert res.p_value == pytest.approx(1 / 501)  # no shuffle comes close
    assert res.null.max() < 0.2 and abs(res.null.mean()) < 0.05
    _, noise_ref = _direction_data(120, noise=0.3, seed=1)  # the reference of other, unrelated items
    assert permutation_test(calc_rdm(x), noise_ref, n_permutations=200, seed=0).p_value > 0.05


def test_permutations_are_seeded_and_respect_groups() -> None:
    a = item_permutations(30, n_permutations=20, seed=3)
    assert (a == item_permutations(30, n_permutations=20, seed=3)).all()
    assert not (a == item_permutations(30, n_permutations=20, seed=4)).all()
    assert all(sorted(p) == list(range(30)) for p in a)
    groups = np.repeat(np.arange(10), 3)
    g = item_permutations(30, n_permutations=50, seed=0, groups=[f"s{v}" for v in groups])
    assert all((groups[p] == groups).all() and sorted(p) == list(range(30)) for p in g)
    assert not (g == np.arange(30)).all()  # they do move items


@pytest.mark.parametrize("method", ["rho_a", "spearman", "kendall_tau_a"])
def test_bootstrap_equals_rsatoolbox_subsample_pattern(method: str) -> None:
    rng = np.random.default_rng(5)
    a, b = calc_rdm(rng.normal(size=(16, 3))), _labels_rdm(rng.integers(0, 3, 16))
    got = bootstrap_samples(a, b, method=method, n_boot=6, seed=7)
    draws = np.random.default_rng(7)  # the documented draw: rng.integers(0, n, n) per resample
    expected = []
    for _ in range(6):
        idx = draws.integers(0, 16, 16)
        ra = RDMs(a[None], pattern_descriptors={"index": np.arange(16)}).subsample_pattern("index", idx)
        rb = RDMs(b[None], pattern_descriptors={"index": np.arange(16)}).subsample_pattern("index", idx)
        expected.append(rsa_compare(ra, rb, method=RSATOOLBOX_NAMES[method])[0, 0])  # copy pairs are NaN there
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


def test_bootstrap_interval_covers_the_value_and_is_seeded() -> None:
    x, ref = _direction_data(80, noise=0.8, seed=2)
    a = calc_rdm(x)
    value = compare_rdms(a, ref)
    lo, hi = bootstrap_ci(a, ref, n_boot=300, seed=0)
    assert lo < value < hi and hi - lo < 0.5
    assert (lo, hi) == bootstrap_ci(a, ref, n_boot=300, seed=0)
    assert (lo, hi) != bootstrap_ci(a, ref, n_boot=300, seed=1)
    groups = np.repeat(np.arange(40), 2)
    glo, ghi = bootstrap_ci(a, ref, n_boot=300, seed=0, groups=groups)
    assert glo < value < ghi
    assert np.isnan(bootstrap_ci(a, ref, n_boot=0)).all()


def test_inference_bad_input() -> None:
    a = calc_rdm(np.random.default_rng(0).normal(size=(6, 2)))
    with pytest.raises(ValueError, match="unknown RDM comparison method"):
        permutation_test(a, a, method="tau")
    nan_a = a.copy()
    nan_a[0] = np.nan
    with pytest.raises(ValueError, match="data RDM contains NaN"):
        permutation_test(nan_a, a)
    with pytest.raises(ValueError, match=r"shape \(P, 6\)"):
        permutation_test(a, a, permutations=np.zeros((3, 5), dtype=int))
    with pytest.raises(ValueError, match="one group per item"):
        item_permutations(6, n_permutations=2, groups=["a", "b"])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(a, a, confidence=1.5)
    assert np.isnan(permutation_test(a, a, n_permutations=0).p_value)
