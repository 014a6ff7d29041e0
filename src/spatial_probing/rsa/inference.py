"""Inference for an RDM comparison over stimuli: a permutation test and a bootstrap interval.

* :func:`permutation_test` — permutes the items of the *data* RDM consistently on rows and
  columns (``A'[i, j] = A[π(i), π(j)]``, the same as re-computing the RDM from shuffled rows)
  against the fixed reference; ``p = (1 + #{null ≥ observed}) / (1 + n_permutations)``.
  For ``rho_a``/``spearman`` without NaN pairs the ranks are computed once: the ranks of a
  permuted condensed vector are the permuted ranks, and the centred ranks sum to zero, so
  ``Σ r_a' r_b = Σ_{p: r_b(p) ≠ v0} r_a'(p) (r_b(p) - v0)`` with ``v0`` the reference's most
  common rank. Each permutation is then one gather over the pairs where the reference differs
  from its commonest value (e.g. the within-relation pairs of a same/different reference).
  Otherwise (a reference with NaN pairs, or ``kendall_tau_a``) each permutation is re-ranked.
* :func:`bootstrap_ci` — resamples items (or whole groups) with replacement. As in rsatoolbox
  (``RDMs.subsample_pattern``), the pairs of an item with its own copy are dropped, so an item
  drawn ``c_i`` times and one drawn ``c_j`` times contribute their pair ``c_i c_j`` times. Rank
  methods use weighted average ranks (identical to ranking the materialised resampled vector)
  in O(pairs) per resample; ``kendall_tau_a`` materialises the vector.

Everything is seeded (``numpy.random.default_rng(seed)``) and deterministic. The loops run with
single-threaded BLAS: their products are small and memory-bound, and BLAS threads fighting over
shared cores made them ~25× slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from spatial_probing.rsa.compare import (
    RANK_METHODS, centred_ranks, check_method, compare_rdms, kendall_tau_a, rank_statistic, valid_pairs,
)
from spatial_probing.rsa.rdm import n_items, to_square

_CHUNK = 1 << 22  # elements per vectorised block (≈ 32 MiB of float64)


@dataclass(frozen=True)
class PermutationResult:
    """Observed similarity, its permutation p-value and the null distribution (one value per permutation)."""

    value: float
    p_value: float
    null: np.ndarray


def _group_codes(groups: Sequence[object] | None, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    codes = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)[1]
    if codes.shape != (n,):
        raise ValueError(f"groups: expected one group per item ({n}), got {codes.shape[0]}")
    return codes


def item_permutations(n: int, *, n_permutations: int, seed: int = 0,
                      groups: Sequence[object] | None = None) -> np.ndarray:
    """``(n_permutations, n)`` seeded item permutations; with ``groups``, items move only within their group."""
    if n_permutations < 0:
        raise ValueError(f"n_permutations must be ≥ 0, got {n_permutations}")
    rng = np.random.default_rng(seed)
    codes = _group_codes(groups, n)
    if codes is None:
        return rng.permuted(np.tile(np.arange(n), (n_permutations, 1)), axis=1)
    keys = rng.random((n_permutations, n))
    order = np.lexsort((keys, np.broadcast_to(codes, keys.shape)), axis=-1)
    perms = np.empty_like(order)
    perms[:, np.argsort(codes, kind="stable")] = order  # slot t of group g receives a random member of g
    return perms


def _pairs(n: int, select: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(n, k=1)
    return (i, j) if select is None else (i[select], j[select])


def _null_fast(method: str, a: np.ndarray, b: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Null of a rank method with no NaN pairs: ranks once, one gather per permutation."""
    n, m = perms.shape[1], a.size
    ra, rb = centred_ranks(a), centred_ranks(b)
    ra_flat = to_square(ra).ravel()
    values, counts = np.unique(rb, return_counts=True)
    v0 = values[counts.argmax()]
    select = np.flatnonzero(rb != v0)
    dtype = np.int32 if n * n < 2**31 else np.int64  # narrower indices: less memory traffic per gather
    i, j = (v.astype(dtype) for v in _pairs(n, select))
    w = rb[select] - v0
    dots = np.empty(len(perms))
    step = max(1, _CHUNK // max(select.size, 1))
    for s in range(0, len(perms), step):
        p = perms[s:s + step].astype(dtype)
        flat = p[:, i]
        flat *= n
        flat += p[:, j]
        dots[s:s + step] = np.take(ra_flat, flat) @ w
    return rank_statistic(method, dots, ra @ ra, rb @ rb, m)


def _null_rerank(method: str, a: np.ndarray, b: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Null re-ranking every permutation over the reference's non-NaN pairs (or Kendall's tau-a)."""
    n = perms.shape[1]
    keep = ~np.isnan(b)
    i, j = _pairs(n, np.flatnonzero(keep))
    bv = b[keep]
    a_flat = to_square(a).ravel()
    null = np.empty(len(perms))
    step = max(1, _CHUNK // max(bv.size, 1))
    rb = centred_ranks(bv)
    for s in range(0, len(perms), step):
        p = perms[s:s + step]
        vals = a_flat[p[:, i] * n + p[:, j]]
        if method == "kendall_tau_a":
            null[s:s + step] = [kendall_tau_a(v, bv) for v in vals]
        else:
            ra = centred_ranks(vals)
            null[s:s + step] = rank_statistic(method, ra @ rb, np.einsum("ij,ij->i", ra, ra), rb @ rb, bv.size)
    return null


def permutation_test(a: np.ndarray, b: np.ndarray, *, method: str = "rho_a", n_permutations: int = 1000,
                     seed: int = 0, groups: Sequence[object] | None = None,
                     permutations: np.ndarray | None = None) -> PermutationResult:
    """Test whether data RDM ``a`` resembles reference ``b`` more than under shuffled items.

    Args:
        a: condensed data RDM (no NaN).
        b: condensed reference RDM (NaN marks pairs that do not count).
        method: comparison (see :mod:`spatial_probing.rsa.compare`).
        n_permutations, seed: how many seeded permutations (0: no test, p is NaN).
        groups: optional item groups; items are then permuted only within their group.
        permutations: explicit ``(P, n)`` permutations instead of drawing them.
    """
    check_method(method)
    n = n_items(a)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.isnan(a).any():
        raise ValueError("permutation_test: the data RDM contains NaN; expected finite dissimilarities")
    value = compare_rdms(a, b, method=method)
    perms = (item_permutations(n, n_permutations=n_permutations, seed=seed, groups=groups)
             if permutations is None else np.asarray(permutations))
    if perms.ndim != 2 or perms.shape[1] != n:
        raise ValueError(f"permutations: expected shape (P, {n}), got {perms.shape}")
    if len(perms) == 0:
        return PermutationResult(value, float("nan"), np.empty(0))
    fast = method in RANK_METHODS and not np.isnan(b).any()
    with threadpool_limits(limits=1, user_api="blas"):
        null = (_null_fast if fast else _null_rerank)(method, a, b, perms)
    tol = 1e-12 * max(1.0, abs(value))  # the identity permutation must count as "≥ observed"
    p = (1 + np.count_nonzero(null >= value - tol)) / (1 + len(null))
    return PermutationResult(value, float(p), null)


def _tie_groups(v: np.ndarray) -> np.ndarray:
    return np.unique(v, return_inverse=True)[1]


def bootstrap_samples(a: np.ndarray, b: np.ndarray, *, method: str = "rho_a", n_boot: int = 1000, seed: int = 0,
                      groups: Sequence[object] | None = None) -> np.ndarray:
    """The comparison on ``n_boot`` seeded resamples of the items (or of whole ``groups``) with replacement.

    Draw ``k`` is ``rng.integers(0, n_units, n_units)`` for ``rng = default_rng(seed)`` (units: items,
    or sorted distinct groups); pairs of an item with its own copy are left out (see module doc).
    NaN where a resample leaves fewer than 2 pairs or a constant RDM.
    """
    check_method(method)
    n = n_items(a)
    codes = _group_codes(groups, n)
    units = n if codes is None else int(codes.max()) + 1
    rng = np.random.default_rng(seed)
    keep = ~(np.isnan(np.asarray(a, dtype=np.float64)) | np.isnan(np.asarray(b, dtype=np.float64)))
    av, bv = valid_pairs(a, b)
    i, j = _pairs(n, np.flatnonzero(keep))
    ga, gb = _tie_groups(av), _tie_groups(bv)
    out = np.full(n_boot, np.nan)
    with threadpool_limits(limits=1, user_api="blas"):
        for k in range(n_boot):
            out[k] = _resample_statistic(method, np.bincount(rng.integers(0, units, units), minlength=units), codes,
                                         i, j, av, bv, ga, gb)
    return out


def _resample_statistic(method: str, drawn: np.ndarray, codes: np.ndarray | None, i: np.ndarray, j: np.ndarray,
                        av: np.ndarray, bv: np.ndarray, ga: np.ndarray, gb: np.ndarray) -> float:
    """The comparison on one resample: unit draw counts → pair weights ``c_i c_j`` → weighted ranks."""
    count = (drawn if codes is None else drawn[codes]).astype(np.float64)
    w = count[i] * count[j]
    total = w.sum()
    if total < 2:
        return float("nan")
    if method == "kendall_tau_a":
        reps = w.astype(np.int64)
        return kendall_tau_a(np.repeat(av, reps), np.repeat(bv, reps))
    centred = []
    for g in (ga, gb):  # weighted average ranks per tie group, centred
        wg = np.bincount(g, weights=w)
        centred.append((wg, np.cumsum(wg) - (wg - 1) / 2 - (total + 1) / 2))
    (wa, ca), (wb, cb) = centred
    return float(rank_statistic(method, np.dot(w * ca[ga], cb[gb]), wa @ ca ** 2, wb @ cb ** 2, total))


def bootstrap_ci(a: np.ndarray, b: np.ndarray, *, method: str = "rho_a", n_boot: int = 1000, seed: int = 0,
                 groups: Sequence[object] | None = None, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the comparison over items (see :func:`bootstrap_samples`)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot == 0:
        return float("nan"), float("nan")
    samples = bootstrap_samples(a, b, method=method, n_boot=n_boot, seed=seed, groups=groups)
    samples = samples[np.isfinite(samples)]
    if samples.size < 2:
        return float("nan"), float("nan")
    lo, hi = np.quantile(samples, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def _pearson_from_parts(dot: np.ndarray, ss_a: float, ss_b: float) -> np.ndarray:
    return dot / np.sqrt(ss_a * ss_b) if ss_a > 0 and ss_b > 0 else np.full(np.shape(dot), np.nan)


def partial_spearman(a: np.ndarray, b: np.ndarray, c: np.ndarray, *, n_permutations: int = 1000, seed: int = 0,
                     groups: Sequence[object] | None = None) -> tuple[float, float]:
    """Partial Spearman correlation of data RDM ``a`` with reference ``b`` controlling for ``c`` (e.g. a
    bag-of-words RDM), and its item-permutation p-value (one-sided, ``≥``).

    ``r_ab·c = (r_ab − r_ac r_bc) / sqrt((1 − r_ac²)(1 − r_bc²))`` on average ranks. Permuting the items
    of ``a`` permutes its ranks, so each permutation is two gathers (as :func:`permutation_test`).
    ``b`` and ``c`` must have no NaN pairs; NaN when ``c`` explains ``b`` or ``a`` entirely.
    """
    a, b, c = (np.asarray(v, dtype=np.float64) for v in (a, b, c))
    if np.isnan(a).any() or np.isnan(b).any() or np.isnan(c).any():
        raise ValueError("partial_spearman: RDMs with NaN pairs are not supported; expected complete RDMs")
    n = n_items(a)
    ra, rb, rc = centred_ranks(a), centred_ranks(b), centred_ranks(c)
    ssa, ssb, ssc = ra @ ra, rb @ rb, rc @ rc
    r_bc = float(_pearson_from_parts(np.asarray(rb @ rc), ssb, ssc))

    def partial(dab: np.ndarray, dac: np.ndarray) -> np.ndarray:
        r_ab, r_ac = _pearson_from_parts(dab, ssa, ssb), _pearson_from_parts(dac, ssa, ssc)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (r_ab - r_ac * r_bc) / np.sqrt((1 - r_ac ** 2) * (1 - r_bc ** 2))

    value = float(partial(np.asarray(ra @ rb), np.asarray(ra @ rc)))
    if n_permutations == 0 or not np.isfinite(value):
        return value, float("nan")
    perms = item_permutations(n, n_permutations=n_permutations, seed=seed, groups=groups)
    i, j = _pairs(n)
    ra_flat = to_square(ra).ravel()
    null = np.empty(len(perms))
    step = max(1, _CHUNK // max(i.size, 1))
    with threadpool_limits(limits=1, user_api="blas"):
        for s in range(0, len(perms), step):
            p = perms[s:s + step]
            g = np.take(ra_flat, p[:, i] * n + p[:, j])
            null[s:s + step] = partial(g @ rb, g @ rc)
    tol = 1e-12 * max(1.0, abs(value))
    return value, float((1 + np.count_nonzero(null >= value - tol)) / (1 + len(null)))


def paired_bootstrap(samples_a: np.ndarray, samples_b: np.ndarray, *, confidence: float = 0.95
                     ) -> tuple[float, float, float]:
    """``(ci_low, ci_high, p)`` of the difference of two encoders' fits from bootstrap samples drawn on the *same*
    resamples (same items, groups and seed): percentile interval and two-sided bootstrap p of ``a − b = 0``."""
    d = np.asarray(samples_a, dtype=np.float64) - np.asarray(samples_b, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return float("nan"), float("nan"), float("nan")
    lo, hi = np.quantile(d, [(1 - confidence) / 2, (1 + confidence) / 2])
    p = min(1.0, 2 * min((1 + np.sum(d <= 0)) / (1 + d.size), (1 + np.sum(d >= 0)) / (1 + d.size)))
    return float(lo), float(hi), float(p)
