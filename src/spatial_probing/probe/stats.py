"""Uncertainty and paired tests for probe results.

* :func:`bootstrap_metric` — percentile bootstrap over test items, vectorised over resamples
  (accuracy and macro-F1 from per-resample confusion counts, so thousands of resamples are cheap).
* :func:`mcnemar_exact` — exact (binomial) McNemar test on two classifiers' paired correctness.
* :func:`paired_permutation` — sign-flip permutation test on paired per-item scores (exact
  enumeration when it is small enough, Monte Carlo otherwise).
* :func:`bootstrap_mean` — the same bootstrap for the mean of per-item scores (e.g. selectivity's
  per-item task-minus-control differences).
* :func:`cluster_bootstrap` — percentile bootstrap that resamples whole clusters (images, stories) of items,
  for any statistic of item weights (a mean, a macro average over relations).
* :func:`holm` — Holm step-down correction (vectorised; equal to statsmodels' ``multipletests``, which
  is ~0.3 s a call here because it runs the garbage collector).

Clustered inference. Captions are not independent: four describe one synthetic scene, several one
VSR image, many questions one StepGame story. Every function that resamples takes ``clusters``
(one label per item, ``Example.group``) and then resamples or sign-flips whole clusters, so that
intervals and p-values have the width the independent unit gives them:

* :func:`cluster_draws` — the ``(n_boot, n_clusters)`` draw counts; one matrix serves every subset,
  metric, layer and seed of a unit (:func:`bootstrap_unit`), so resamples are counts, not copies.
* :func:`cluster_t_test`, :func:`cluster_signflip`, :func:`tost` — a paired t-test with a cluster-robust
  standard error, a sign-flip test of whole clusters and the two one-sided equivalence test, all on the
  same quantity (the mean per-item difference).
* :func:`hierarchical_bootstrap_mean` — encoder training seeds resampled first, then clusters, so
  seed-to-seed variance is inside the interval.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from itertools import product

import numpy as np
from scipy import stats as sps

METRICS = ("accuracy", "macro_f1")


def _check_pair(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"{what}: expected two 1-D arrays of the same length, got shapes {a.shape} and {b.shape}")


def _weighted_metric(metric: str, y_true: np.ndarray, y_pred: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``metric`` for each row of item weights ``w`` (B, n): resample counts or a single row of ones."""
    if metric == "accuracy":
        return (w @ (y_true == y_pred).astype(np.float64)) / w.sum(axis=1)
    if metric != "macro_f1":
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    classes = np.union1d(y_true, y_pred)
    f1 = np.zeros((w.shape[0], classes.size))
    present = np.zeros_like(f1, dtype=bool)
    for j, c in enumerate(classes):
        t, p = y_true == c, y_pred == c
        tp, n_true, n_pred = w @ (t & p), w @ t, w @ p
        denom = n_true + n_pred
        present[:, j] = denom > 0  # sklearn averages over labels present in y_true ∪ y_pred
        f1[:, j] = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def metric_value(metric: str, y_true: Sequence, y_pred: Sequence) -> float:
    """Accuracy or macro-F1 (sklearn's definition) of one prediction vector."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    _check_pair(yt, yp, metric)
    return float(_weighted_metric(metric, yt, yp, np.ones((1, yt.size)))[0])


def bootstrap_metric(metric: str, y_true: Sequence, y_pred: Sequence, *, n_boot: int = 1000, seed: int = 0,
                     confidence: float = 0.95, clusters: Sequence | None = None) -> tuple[float, float, float]:
    """``(value, ci_low, ci_high)``: percentile bootstrap interval over test items (or their ``clusters``).

    Items (with ``clusters``: whole clusters) are resampled with replacement ``n_boot`` times; the
    interval holds the central ``confidence`` mass of the resampled metric. NaN bounds when there
    are fewer than 2 items.
    """
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    _check_pair(yt, yp, "bootstrap")
    if yt.size == 0:
        return float("nan"), float("nan"), float("nan")
    value = float(_weighted_metric(metric, yt, yp, np.ones((1, yt.size)))[0])
    if yt.size < 2:
        return value, float("nan"), float("nan")
    w = _resample_weights(yt.size, n_boot, seed, clusters)
    return (value, *_percentiles(_weighted_metric(metric, yt, yp, w), confidence))


def bootstrap_mean(scores: Sequence[float], *, n_boot: int = 1000, seed: int = 0,
                   confidence: float = 0.95, clusters: Sequence | None = None) -> tuple[float, float, float]:
    """``(mean, ci_low, ci_high)`` of per-item scores, percentile bootstrap over items or ``clusters``
    (as :func:`bootstrap_metric`)."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"bootstrap_mean: expected a 1-D array of per-item scores, got shape {x.shape}")
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    if x.size < 2:
        return float(x[0]), float("nan"), float("nan")
    w = _resample_weights(x.size, n_boot, seed, clusters)
    return (float(x.mean()), *_percentiles((w @ x) / w.sum(axis=1), confidence))


def cluster_codes(clusters: Sequence | None, n: int) -> np.ndarray:
    """Integer cluster code per item (``0..G-1`` in sorted label order); ``None``: every item its own cluster."""
    if clusters is None:
        return np.arange(n)
    labels = np.asarray(clusters, dtype=object)
    if labels.shape != (n,):
        raise ValueError(f"clusters: expected one cluster label per item ({n}), got shape {labels.shape}")
    return np.unique(labels.astype(str), return_inverse=True)[1].reshape(n)


def cluster_draws(n_clusters: int, *, n_boot: int, seed: int = 0, dtype: type = np.float64) -> np.ndarray:
    """``(n_boot, n_clusters)`` counts of how often each cluster is drawn in each resample with replacement.

    Read-only and memoised: a report asks for the same draws (same clusters, resamples and seed) for every
    cell and pair of one test set, and drawing them dominated building a report with many encoders.
    """
    return _cluster_draws(int(n_clusters), int(n_boot), seed, np.dtype(dtype).str)


@lru_cache(maxsize=4)
def _cluster_draws(n_clusters: int, n_boot: int, seed: int, dtype: str) -> np.ndarray:
    idx = np.random.default_rng(seed).integers(0, n_clusters, size=(n_boot, n_clusters))
    flat = (idx + (np.arange(n_boot) * n_clusters)[:, None]).ravel()
    draws = np.bincount(flat, minlength=n_boot * n_clusters).reshape(n_boot, n_clusters).astype(dtype)
    draws.flags.writeable = False
    return draws


def _resample_weights(n: int, n_boot: int, seed: int, clusters: Sequence | None = None) -> np.ndarray:
    """``(n_boot, n)`` item weights: how often each item's cluster is drawn (items: their own clusters)."""
    codes = cluster_codes(clusters, n)
    return cluster_draws(int(codes.max()) + 1, n_boot=n_boot, seed=seed)[:, codes]


def cluster_sums(values: np.ndarray, codes: np.ndarray, n_clusters: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums of ``values`` (items on axis 0) and cluster sizes, over ``n_clusters`` clusters (default: the
    highest code + 1; more gives zero rows for clusters these items do not touch)."""
    G = int(codes.max()) + 1 if n_clusters is None else int(n_clusters)
    sizes = np.bincount(codes, minlength=G).astype(np.float64)
    v = np.asarray(values)
    if v.ndim == 1:
        return np.bincount(codes, weights=v.astype(np.float64), minlength=G), sizes
    from scipy import sparse

    onehot = sparse.csr_matrix((np.ones(codes.size, v.dtype), (codes, np.arange(codes.size))), shape=(G, codes.size))
    return np.asarray(onehot @ v.reshape(v.shape[0], -1)).reshape(G, *v.shape[1:]), sizes


def bootstrap_unit(correct: np.ndarray, masks: np.ndarray, *, clusters: Sequence | None = None, n_boot: int = 1000,
                   seed: int = 0, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means of many 0/1 score columns over many item subsets, each with a clustered percentile interval.

    ``correct`` is ``(n, R)`` (e.g. one column per layer × seed × metric), ``masks`` ``(S, n)`` item subsets.
    One matrix of cluster draws serves every column and subset: per-cluster sums ``(G, S·R)`` are
    multiplied by the ``(n_boot, G)`` draw counts, so the cost is one matrix product, not a loop over
    resamples. Returns ``(value, low, high)``, each ``(S, R)``; NaN bounds for subsets with < 2 items.
    """
    x = np.asarray(correct, dtype=np.float32)
    m = np.asarray(masks, dtype=np.float32)
    n, R = x.shape
    S = m.shape[0]
    codes = cluster_codes(clusters, n)
    num, _ = cluster_sums((m.T[:, :, None] * x[:, None, :]).reshape(n, S * R), codes)  # (G, S·R)
    den, _ = cluster_sums(m.T, codes)  # (G, S)
    total = den.sum(0).astype(np.float64)
    value = num.sum(0).reshape(S, R).astype(np.float64) / np.where(total > 0, total, 1.0)[:, None]
    value[total == 0] = np.nan  # an empty subset has no mean
    K = cluster_draws(num.shape[0], n_boot=n_boot, seed=seed, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (K @ num.astype(np.float32)).reshape(n_boot, S, R) / (K @ den.astype(np.float32))[:, :, None]
    lo, hi = nan_percentiles(boot, confidence)
    small = m.sum(1) < 2
    lo[small], hi[small] = np.nan, np.nan
    return value, lo, hi


def bootstrap_macro_f1(y_true: Sequence, y_preds: Sequence[Sequence], *, clusters: Sequence | None = None,
                       n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Macro-F1 (sklearn's definition) of several prediction vectors with clustered percentile intervals.

    Per-cluster counts of true positives, true and predicted labels per class, one product with the
    shared ``(n_boot, n_clusters)`` draws for all prediction vectors: the same numbers as
    :func:`bootstrap_metric` with ``metric="macro_f1"`` for each vector (same seed), at a fraction
    of the cost. Returns ``(value, low, high)``, each of length ``len(y_preds)``.
    """
    yt = np.asarray(y_true).astype(str)
    yp = np.asarray([np.asarray(p).astype(str) for p in y_preds])
    R, n = yp.shape
    classes, inv = np.unique(np.concatenate([yt, yp.ravel()]), return_inverse=True)
    C = classes.size
    t, p = inv[:n], inv[n:].reshape(R, n)
    codes = cluster_codes(clusters, n)
    G = int(codes.max()) + 1
    hit = (p == t[None, :])
    cols = [np.bincount(codes * C + t, minlength=G * C).reshape(G, C)]  # true counts: shared
    cols += [np.bincount(codes * C + p[r], minlength=G * C).reshape(G, C) for r in range(R)]
    cols += [np.bincount(codes * C + t, weights=hit[r], minlength=G * C).reshape(G, C) for r in range(R)]
    counts = np.concatenate(cols, axis=1).astype(np.float32)  # (G, C·(1 + 2R))
    ones = np.ones((1, G), np.float32)
    K = cluster_draws(G, n_boot=n_boot, seed=seed, dtype=np.float32)

    def f1(w: np.ndarray) -> np.ndarray:
        c = (w @ counts).reshape(w.shape[0], 1 + 2 * R, C)
        n_true, n_pred, tp = c[:, :1], c[:, 1:R + 1], c[:, R + 1:]
        denom = n_true + n_pred
        present = denom > 0  # sklearn averages over labels present in y_true ∪ y_pred
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(present, 2 * tp / np.where(present, denom, 1), 0.0)
        return score.sum(-1) / np.maximum(present.sum(-1), 1)  # (B, R)

    value = f1(ones)[0].astype(np.float64)
    if n < 2 or n_boot == 0:
        return value, np.full(R, np.nan), np.full(R, np.nan)
    lo, hi = nan_percentiles(f1(K), confidence)
    return value, lo, hi


def nan_percentiles(boot: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bounds along axis 0 ignoring NaN (resamples that drew no item of a subset); one sort,
    linear interpolation as :func:`numpy.quantile` — ``numpy.nanquantile`` is ~50× slower on wide arrays."""
    srt = np.sort(boot, axis=0)  # NaN sorts last
    k = np.sum(~np.isnan(srt), axis=0)
    out = []
    for q in ((1 - confidence) / 2, (1 + confidence) / 2):
        pos = q * np.maximum(k - 1, 0)
        below = np.floor(pos).astype(np.int64)
        above = np.minimum(below + 1, np.maximum(k - 1, 0))
        a = np.take_along_axis(srt, below[None], 0)[0].astype(np.float64)
        b = np.take_along_axis(srt, above[None], 0)[0].astype(np.float64)
        v = a + (pos - below) * (b - a)
        v[k == 0] = np.nan
        out.append(v)
    return out[0], out[1]


def cluster_bootstrap(statistic, clusters: Sequence, *, n_boot: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> tuple[float, float, float]:
    """``(value, ci_low, ci_high)`` of ``statistic(w)`` with clusters resampled with replacement.

    ``statistic`` maps item weights ``w`` of shape ``(B, n)`` to ``B`` values (``w`` of ones gives the observed
    value); each resample draws as many clusters as there are, and an item's weight is how often its cluster
    was drawn, so items of one cluster (the captions of one image) enter or leave together. NaN bounds with
    fewer than 2 clusters or ``n_boot`` = 0.
    """
    codes = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)[1].ravel()
    value = float(np.asarray(statistic(np.ones((1, codes.size))))[0])
    n_clusters = int(codes.max()) + 1 if codes.size else 0
    if n_clusters < 2 or n_boot == 0:
        return value, float("nan"), float("nan")
    boot = np.asarray(statistic(_resample_weights(n_clusters, n_boot, seed)[:, codes]), dtype=np.float64)
    boot = boot[np.isfinite(boot)]
    return (value, *_percentiles(boot, confidence)) if boot.size else (value, float("nan"), float("nan"))


def _percentiles(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return float(lo), float(hi)


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> float:
    """Exact McNemar p-value: two-sided binomial test on the discordant pairs (1.0 if none)."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    _check_pair(a, b, "McNemar")
    n01, n10 = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = n01 + n10
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * sps.binom.cdf(min(n01, n10), n, 0.5)))


def paired_permutation(scores_a: Sequence[float], scores_b: Sequence[float], *, n_permutations: int = 10000,
                       seed: int = 0) -> float:
    """Two-sided paired permutation test of mean(a − b) = 0 by random sign flips of the differences.

    Exact (all 2^m sign patterns of the m non-zero differences) when 2^m ≤ ``n_permutations``;
    otherwise Monte Carlo with the add-one estimate ``(1 + #{|T*| ≥ |T|}) / (1 + B)`` (:class:`SignFlips`).
    """
    a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    _check_pair(a, b, "permutation test")
    d = a - b
    if not d.any():
        return 1.0
    return float(SignFlips(d.size, n_permutations=n_permutations, seed=seed).pvalues(d[:, None])[0])


def _exact_signflip(d: np.ndarray) -> float:
    """Exact two-sided sign-flip p of sum(d) over all 2^m sign patterns of d's m non-zero entries."""
    d = d[d != 0]  # zero differences do not change under sign flips
    observed = abs(d.sum())
    signs = np.array(list(product((1.0, -1.0), repeat=d.size)))
    return float(np.mean(np.abs(signs @ d) >= observed - 1e-12 * max(1.0, observed)))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values; NaN entries stay NaN and are not counted as tests."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q = p[ok]
        order = np.argsort(q, kind="mergesort")
        m = q.size
        stepped = np.maximum.accumulate((m - np.arange(m)) * q[order])  # (m - i) p_(i), kept monotone
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(stepped, 1.0)
        out[ok] = adjusted
    return out


def _cluster_se(d: np.ndarray, codes: np.ndarray) -> tuple[float, float, int]:
    """Mean of ``d``, its cluster-robust (CR1) standard error and the number of clusters."""
    sums, sizes = cluster_sums(d, codes)
    G, N = sums.size, d.size
    mean = float(d.mean())
    if G < 2:
        return mean, float("nan"), G
    resid = sums - sizes * mean
    return mean, float(np.sqrt(G / (G - 1) * np.sum(resid ** 2)) / N), G


def cluster_t_test(diff: Sequence[float], clusters: Sequence | None = None) -> tuple[float, float, float]:
    """Two-sided paired t-test of mean(diff) = 0 with a cluster-robust standard error (``G − 1`` df).

    Returns ``(mean, se, p)``. With a zero standard error p is 1 for a zero mean and 0 otherwise;
    with fewer than 2 clusters it is NaN.
    """
    d = np.asarray(diff, dtype=np.float64)
    mean, se, G = _cluster_se(d, cluster_codes(clusters, d.size))
    if not np.isfinite(se):
        return mean, se, float("nan")
    if se == 0:
        return mean, se, 1.0 if mean == 0 else 0.0
    return mean, se, float(2 * sps.t.sf(abs(mean) / se, G - 1))


def tost(diff: Sequence[float], margin: float, clusters: Sequence | None = None) -> float:
    """Two one-sided tests (cluster-robust t) that ``−margin < mean(diff) < margin``: the larger p.

    A small p says the difference is *within* the margin (equivalence), which a non-significant
    difference test never says. NaN with fewer than 2 clusters.
    """
    if margin <= 0:
        raise ValueError(f"tost: margin must be > 0, got {margin}")
    d = np.asarray(diff, dtype=np.float64)
    mean, se, G = _cluster_se(d, cluster_codes(clusters, d.size))
    if not np.isfinite(se):
        return float("nan")
    if se == 0:
        return 0.0 if abs(mean) < margin else 1.0
    lower = sps.t.sf((mean + margin) / se, G - 1)  # H0: mean <= -margin
    upper = sps.t.cdf((mean - margin) / se, G - 1)  # H0: mean >= +margin
    return float(max(lower, upper))


def cluster_signflip(diff: Sequence[float], clusters: Sequence | None = None, *, n_permutations: int = 10000,
                     seed: int = 0) -> float:
    """Two-sided sign-flip permutation test of mean(diff) = 0 flipping whole clusters (their summed differences)."""
    d = np.asarray(diff, dtype=np.float64)
    if d.size == 0:
        return 1.0
    sums, _ = cluster_sums(d, cluster_codes(clusters, d.size))
    return float(SignFlips(sums.size, n_permutations=n_permutations, seed=seed).pvalues(sums[:, None])[0])


class SignFlips:
    """Sign-flip tests on ``n_clusters`` clusters' summed differences, many at once with one set of random signs.

    Each column of :meth:`pvalues` is the two-sided test of :func:`paired_permutation`: exact enumeration when its
    ``m`` non-zero clusters allow (2^m ≤ ``n_permutations``), otherwise the add-one Monte Carlo estimate. The Monte
    Carlo signs are drawn once (in seeded chunks, kept when they fit in 64 MiB, else redrawn identically per call):
    a run's pairwise table holds thousands of tests on one test set (every encoder pair × layer choice × subset),
    and drawing fresh signs for each cost most of its assembly (27 lab encoders: hours). Every p-value is valid on
    its own; tests sharing draws are not independent of each other, which Holm's correction does not require.
    """

    CHUNK = 1000
    KEEP_BYTES = 2**26

    def __init__(self, n_clusters: int, *, n_permutations: int = 10000, seed: int = 0) -> None:
        self.n_clusters, self.n_permutations, self.seed = int(n_clusters), int(n_permutations), seed
        self._kept: list[np.ndarray] | None = None

    def _sign_chunks(self) -> Iterator[np.ndarray]:
        if self._kept is not None:
            yield from self._kept
            return
        keep = self.n_permutations * self.n_clusters <= self.KEEP_BYTES
        chunks = []
        for k, start in enumerate(range(0, self.n_permutations, self.CHUNK)):
            rng = np.random.default_rng([self.seed, k])
            chunk = rng.integers(0, 2, size=(min(self.CHUNK, self.n_permutations - start), self.n_clusters),
                                 dtype=np.int8) * 2 - 1
            if keep:
                chunks.append(chunk)
            yield chunk
        if keep:
            self._kept = chunks

    def pvalues(self, sums: np.ndarray) -> np.ndarray:
        """p-value of each column of ``sums (n_clusters, T)``: a test's per-cluster summed differences, 0 for a
        cluster it does not contain (a zero is unchanged by its sign, so it does not change the test)."""
        S = np.asarray(sums, dtype=np.float64).reshape(self.n_clusters, -1)
        out = np.ones(S.shape[1])
        nonzero = (S != 0).sum(0)
        observed = np.abs(S.sum(0))
        exact = (nonzero > 0) & (2.0 ** np.minimum(nonzero, 64) <= self.n_permutations)
        for t in np.flatnonzero(exact):
            out[t] = _exact_signflip(S[:, t])
        mc = np.flatnonzero((nonzero > 0) & ~exact)
        if mc.size:
            threshold = observed[mc] - 1e-12 * np.maximum(1.0, observed[mc])
            hits = np.zeros(mc.size, dtype=np.int64)
            for chunk in self._sign_chunks():  # float copies of a chunk at a time
                hits += (np.abs(chunk.astype(np.float64) @ S[:, mc]) >= threshold).sum(0)
            out[mc] = (1 + hits) / (1 + self.n_permutations)
        return out


def hierarchical_bootstrap_mean(scores: np.ndarray, clusters: Sequence | None = None, *, n_boot: int = 1000,
                                seed: int = 0, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean over replicates (rows: encoder training seeds) of per-item means, resampling seeds then clusters.

    ``scores`` is ``(n_seeds, n_items)``. Each resample draws the seeds with replacement and, once
    per resample, the clusters with replacement; so the interval holds both seed-to-seed and
    item-to-item variance. With one seed it is the clustered bootstrap of :func:`bootstrap_mean`.
    """
    x = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    S, n = x.shape
    codes = cluster_codes(clusters, n)
    sums, sizes = cluster_sums(x.T, codes)  # (G, S), (G,)
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    seed_w = cluster_draws(S, n_boot=n_boot, seed=int(rng.integers(2**31))) / S  # (B, S)
    K = cluster_draws(sums.shape[0], n_boot=n_boot, seed=int(rng.integers(2**31)))  # (B, G)
    per_seed = (K @ sums) / (K @ sizes)[:, None]  # (B, S)
    return (mean, *_percentiles((per_seed * seed_w).sum(1), confidence))
