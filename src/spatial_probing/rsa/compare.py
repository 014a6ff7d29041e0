"""RDM comparison by name, with rsatoolbox's definitions (``rsatoolbox.rdm.compare``).

* ``rho_a``         — Spearman's rho without tie correction: ``12 Σ (r_a - r̄)(r_b - r̄) / (m³ - m)``
  on average ranks (rsatoolbox ``"rho-a"``); appropriate when a reference predicts ties;
* ``spearman``      — Pearson correlation of the average ranks (tie-corrected; rsatoolbox ``"spearman"``);
* ``kendall_tau_a`` — Kendall's tau-a, ``(concordant - discordant) / (m (m - 1) / 2)`` (rsatoolbox
  ``"tau-a"``); computed from scipy's tau-b and the tie counts. Exact but the slowest.

Pairs that are NaN in either RDM are left out (rsatoolbox marks pairs that must not count,
e.g. an item with its own bootstrap copy, as NaN).
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

COMPARISON_METHODS = ("rho_a", "spearman", "kendall_tau_a")
#: Methods computed from average ranks: item permutations permute the ranks (no re-ranking needed).
RANK_METHODS = ("rho_a", "spearman")


def check_method(method: str) -> str:
    if method not in COMPARISON_METHODS:
        raise ValueError(f"unknown RDM comparison method {method!r}; expected one of {list(COMPARISON_METHODS)}")
    return method


def valid_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two condensed RDMs as float64 without the pairs that are NaN in either (clear errors otherwise)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"expected two condensed RDMs of the same length, got shapes {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    if keep.sum() < 2:
        raise ValueError(f"RDM comparison needs at least 2 pairs that are not NaN in either RDM, got {keep.sum()}")
    if np.isinf(a[keep]).any() or np.isinf(b[keep]).any():
        raise ValueError("RDM comparison: an RDM contains inf")
    return a[keep], b[keep]


def rank_statistic(method: str, dot: np.ndarray | float, ss_a: np.ndarray | float, ss_b: float, m: float
                   ) -> np.ndarray:
    """``rho_a`` or ``spearman`` from ``Σ w r_a r_b`` of centred ranks, their sums of squares and the pair count.

    Every term is a (weighted) sum over pairs, so the same formula serves plain, permuted and
    bootstrap-weighted ranks; ``dot`` and ``ss_a`` may hold one entry per permutation/resample.
    """
    dot = np.asarray(dot, dtype=np.float64)
    if method == "rho_a":
        return dot * 12.0 / (float(m) ** 3 - m)
    norm = np.sqrt(np.asarray(ss_a, dtype=np.float64) * ss_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, dot / np.where(norm > 0, norm, 1.0), np.nan)


def centred_ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks minus their mean (along the last axis)."""
    r = sps.rankdata(v, axis=-1)
    return r - (v.shape[-1] + 1) / 2.0


def _tie_pairs(v: np.ndarray) -> int:
    _, counts = np.unique(v, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def kendall_tau_a(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a of two vectors without NaN: tau-b × sqrt((n0 - ties_a)(n0 - ties_b)) / n0."""
    n0 = a.size * (a.size - 1) // 2
    free_a, free_b = n0 - _tie_pairs(a), n0 - _tie_pairs(b)
    if free_a == 0 or free_b == 0:
        return 0.0  # one ranking is all ties: no concordant or discordant pair
    tau_b = sps.kendalltau(a, b, variant="b").statistic
    return float(np.clip(tau_b * np.sqrt(float(free_a) * float(free_b)) / n0, -1.0, 1.0))


def compare_rdms(a: np.ndarray, b: np.ndarray, *, method: str = "rho_a") -> float:
    """Similarity of two condensed RDMs by ``method`` (see module doc); NaN pairs in either are dropped."""
    check_method(method)
    a, b = valid_pairs(a, b)
    if method == "kendall_tau_a":
        return kendall_tau_a(a, b)
    ra, rb = centred_ranks(a), centred_ranks(b)
    return float(rank_statistic(method, ra @ rb, ra @ ra, rb @ rb, a.size))
