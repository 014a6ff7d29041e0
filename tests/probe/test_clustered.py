"""Clustered uncertainty: known-answer checks, a coverage simulation and the vectorised unit bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from spatial_probing.probe.mdl import cluster_order
from spatial_probing.probe.stats import (SignFlips, bootstrap_macro_f1, bootstrap_mean, bootstrap_metric, bootstrap_unit,
                                        cluster_signflip, cluster_t_test, hierarchical_bootstrap_mean,
                                        paired_permutation, tost)


def _clustered(rng: np.random.Generator, n_clusters: int, size: int, effect: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-item differences = effect + a cluster effect (sd 1) + item noise (sd 1): intra-cluster correlation 0.5."""
    clusters = np.repeat(np.arange(n_clusters), size)
    d = effect + rng.normal(size=n_clusters)[clusters] + rng.normal(size=clusters.size)
    return d, clusters


def test_clustered_interval_covers_at_nominal_rate_and_naive_does_not() -> None:
    rng = np.random.default_rng(12)
    effect, reps = 0.3, 240
    hit_clustered = hit_naive = 0
    for r in range(reps):
        d, clusters = _clustered(rng, 40, 10, effect)
        _, lo, hi = bootstrap_mean(d, n_boot=400, seed=r, clusters=clusters)
        hit_clustered += lo <= effect <= hi
        _, lo, hi = bootstrap_mean(d, n_boot=400, seed=r)
        hit_naive += lo <= effect <= hi
    assert 0.90 <= hit_clustered / reps <= 0.98
    assert hit_naive / reps < 0.80  # design effect 1 + 9 × 0.5 = 5.5: the item interval is ~2.3× too narrow


def test_cluster_t_test_matches_a_t_test_on_cluster_means_for_equal_sizes() -> None:
    rng = np.random.default_rng(3)
    d, clusters = _clustered(rng, 25, 4, 0.4)
    mean, se, p = cluster_t_test(d, clusters)
    ref = sps.ttest_1samp(d.reshape(25, 4).mean(1), 0.0)
    assert mean == pytest.approx(d.mean()) and p == pytest.approx(ref.pvalue, rel=1e-9)
    assert cluster_t_test(d)[2] < p  # items treated as independent: a smaller, wrong p


def test_signflip_flips_clusters_and_equals_item_test_without_clusters() -> None:
    rng = np.random.default_rng(4)
    d, clusters = _clustered(rng, 12, 5, 0.5)
    by_cluster = d.reshape(12, 5).sum(1)
    assert cluster_signflip(d, clusters, n_permutations=2**12) == pytest.approx(
        paired_permutation(by_cluster, np.zeros(12), n_permutations=2**12))
    assert cluster_signflip(d, None, n_permutations=3000, seed=1) == paired_permutation(d, np.zeros_like(d),
                                                                                        n_permutations=3000, seed=1)



def test_shared_sign_flips_give_each_test_its_own_sign_flip_p() -> None:
    """SignFlips: exact where paired_permutation enumerates; otherwise within Monte Carlo error of it, and
    a cluster absent from a test (sum 0) leaves its p unchanged."""
    rng = np.random.default_rng(6)
    G, B = 300, 20000
    flips = SignFlips(G, n_permutations=B, seed=2)
    null, shifted = rng.normal(0, 1, G), rng.normal(0.25, 1, G)
    small = np.zeros(G)
    small[[3, 50, 99, 120, 200, 250]] = [0.5, -1.0, 2.0, 1.5, 0.25, 1.0]  # 6 clusters: enumerated exactly
    part = np.where(np.arange(G) < 150, shifted, 0.0)  # the same test on half the clusters
    p = flips.pvalues(np.stack([null, shifted, small, part, np.zeros(G)], axis=1))
    reference = [paired_permutation(x[x != 0], np.zeros((x != 0).sum()), n_permutations=B, seed=9)
                 for x in (null, shifted, part)]
    assert p[2] == paired_permutation(small, np.zeros(G), n_permutations=B)  # exact, same enumeration
    for got, want in zip(p[[0, 1, 3]], reference):
        assert abs(got - want) <= 4 * np.sqrt(max(want * (1 - want), 1 / B) / B) + 2 / B
    assert p[1] < 0.01 < p[0] and p[4] == 1.0  # a shift is found, noise is not; no difference at all: p = 1
    assert flips.pvalues(null[:, None])[0] == p[0]  # one draw of signs, reused

def test_tost_says_equivalent_only_with_enough_data() -> None:
    rng = np.random.default_rng(5)
    big = rng.normal(0.0, 0.2, 4000)
    assert tost(big, 0.03) < 0.001
    assert tost(big[:20], 0.03) > 0.05  # same distribution, too few items: not shown equivalent
    assert tost(big + 0.1, 0.03) > 0.5  # a real 10-point difference is not equivalent
    with pytest.raises(ValueError, match="margin"):
        tost(big, 0.0)


def test_hierarchical_interval_holds_seed_variance() -> None:
    rng = np.random.default_rng(6)
    clusters = np.repeat(np.arange(200), 2)
    seed_shift = np.array([-0.15, 0.0, 0.15])[:, None]  # encoder training seeds that disagree
    scores = 0.6 + seed_shift + rng.normal(0, 0.05, (3, clusters.size))
    _, lo, hi = hierarchical_bootstrap_mean(scores, clusters, n_boot=1000, seed=0)
    _, plo, phi = bootstrap_mean(scores.mean(0), n_boot=1000, seed=0, clusters=clusters)
    assert (hi - lo) > 5 * (phi - plo)  # pooling seeds first hides their spread


def test_bootstrap_unit_equals_per_column_bootstrap_with_the_same_draws() -> None:
    rng = np.random.default_rng(7)
    n = 300
    correct = rng.random((n, 4)) < 0.7
    clusters = rng.integers(0, 90, n)
    masks = np.stack([np.ones(n, bool), np.arange(n) % 3 == 0])
    value, lo, hi = bootstrap_unit(correct, masks, clusters=clusters, n_boot=500, seed=2)
    for j in range(4):
        ref = bootstrap_metric("accuracy", correct[:, j], np.ones(n, bool), n_boot=500, seed=2, clusters=clusters)
        assert (value[0, j], lo[0, j], hi[0, j]) == pytest.approx(ref, abs=1e-6)
    sub = masks[1]
    assert value[1, 0] == pytest.approx(correct[sub, 0].mean())
    assert lo[1, 0] < value[1, 0] < hi[1, 0]


def test_mdl_order_keeps_clusters_together() -> None:
    groups = np.array(["a", "b", "c", "a", "b", "c", "a"])
    order = cluster_order(groups, 7, seed=0)
    seq = groups[order]
    assert sorted(order) == list(range(7))
    assert all(len(set(seq[i:i + k])) == 1 for i, k in ((0, (seq == seq[0]).sum()),))
    changes = np.count_nonzero(seq[1:] != seq[:-1])
    assert changes == 2  # three clusters, each sent in one run


def test_vectorised_macro_f1_equals_the_per_vector_bootstrap() -> None:
    rng = np.random.default_rng(8)
    y = rng.integers(0, 5, 200).astype(str)
    preds = [np.where(rng.random(200) < 0.6, y, rng.integers(0, 6, 200).astype(str)) for _ in range(3)]
    clusters = rng.integers(0, 70, 200)
    value, lo, hi = bootstrap_macro_f1(y, preds, clusters=clusters, n_boot=300, seed=4)
    for j, p in enumerate(preds):
        ref = bootstrap_metric("macro_f1", y, p, n_boot=300, seed=4, clusters=clusters)
        assert (value[j], lo[j], hi[j]) == pytest.approx(ref, abs=1e-5)
