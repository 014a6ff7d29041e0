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
"""

from __future__ import annotations

from collections.abc import Sequence
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
                     confidence: float = 0.95) -> tuple[float, float, float]:
    """``(value, ci_low, ci_high)``: percentile bootstrap interval over test items.

    Items are resampled with replacement ``n_boot`` times; the interval holds the central
    ``confidence`` mass of the resampled metric. NaN bounds when there are fewer than 2 items.
    """
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    _check_pair(yt, yp, "bootstrap")
    if yt.size == 0:
        return float("nan"), float("nan"), float("nan")
    value = float(_weighted_metric(metric, yt, yp, np.ones((1, yt.size)))[0])
    if yt.size < 2:
        return value, float("nan"), float("nan")
    return (value, *_percentiles(_weighted_metric(metric, yt, yp, _resample_weights(yt.size, n_boot, seed)),
                                 confidence))


def bootstrap_mean(scores: Sequence[float], *, n_boot: int = 1000, seed: int = 0,
                   confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, ci_low, ci_high)`` of per-item scores, percentile bootstrap over items (as :func:`bootstrap_metric`)."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"bootstrap_mean: expected a 1-D array of per-item scores, got shape {x.shape}")
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    if x.size < 2:
        return float(x[0]), float("nan"), float("nan")
    w = _resample_weights(x.size, n_boot, seed)
    return (float(x.mean()), *_percentiles((w @ x) / x.size, confidence))


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


def _resample_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` counts of how often each item is drawn in each resample with replacement."""
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    w = np.zeros((n_boot, n))
    np.add.at(w, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0)
    return w


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
    otherwise Monte Carlo with the add-one estimate ``(1 + #{|T*| ≥ |T|}) / (1 + B)``.
    """
    a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    _check_pair(a, b, "permutation test")
    d = a - b
    d = d[d != 0]  # zero differences do not change under sign flips
    if d.size == 0:
        return 1.0
    observed = abs(d.sum())
    tol = 1e-12 * max(1.0, observed)
    if 2 ** d.size <= n_permutations:
        signs = np.array(list(product((1.0, -1.0), repeat=d.size)))
        return float(np.mean(np.abs(signs @ d) >= observed - tol))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_permutations, 1000):  # chunked to bound memory on long test sets
        signs = rng.choice((-1.0, 1.0), size=(min(1000, n_permutations - start), d.size))
        hits += int(np.sum(np.abs(signs @ d) >= observed - tol))
    return (1 + hits) / (1 + n_permutations)


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
