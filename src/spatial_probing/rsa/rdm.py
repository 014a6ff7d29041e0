"""Representational dissimilarity matrices (RDMs), computed vectorised in float64.

An RDM over ``n`` items is kept *condensed*: the upper triangle read row by row (the order of
``scipy.spatial.distance.pdist``/``squareform`` and of rsatoolbox's ``get_vectors``), a vector of
``n (n - 1) / 2`` dissimilarities. Methods, picked by name:

* ``cosine``      — ``1 - cos(x_i, x_j)``;
* ``correlation`` — ``1 - Pearson r`` between the two patterns (cosine after removing each row's
  mean; = rsatoolbox's ``calc_rdm(method="correlation")``);
* ``euclidean``   — the plain Euclidean distance (= ``pdist(metric="euclidean")``);
* ``sqeuclidean`` — the squared Euclidean distance divided by the number of features: this is what
  rsatoolbox calls ``"euclidean"`` (``calc_rdm_euclidean``). It orders pairs exactly as
  ``euclidean`` does, so rank-based comparisons (``rho_a``, ``spearman``, ``kendall_tau_a``) give
  the same values for both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.distance import squareform

RDM_METHODS = ("cosine", "correlation", "euclidean", "sqeuclidean")


def check_patterns(x: np.ndarray, *, what: str = "embeddings") -> np.ndarray:
    """``x`` as a finite float64 ``(n_items, n_features)`` array with ``n_items >= 3``, or a clear error."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"{what}: expected a 2-D (n_items, n_features) array, got shape {arr.shape}")
    if arr.shape[0] < 3:
        raise ValueError(f"{what}: an RDM needs at least 3 items to compare, got {arr.shape[0]}")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(f"{what}: {rows.size} row(s) contain NaN or inf (first: row {rows[0]}); "
                         "expected finite embeddings")
    return arr


def n_items(rdm: np.ndarray) -> int:
    """Number of items of a condensed RDM (a clear error if its length is not ``n (n - 1) / 2``)."""
    m = np.asarray(rdm).shape[-1]
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    if n * (n - 1) // 2 != m or np.asarray(rdm).ndim != 1:
        raise ValueError(f"expected a condensed RDM (1-D, length n(n-1)/2), got shape {np.asarray(rdm).shape}")
    return n


def calc_rdm(x: np.ndarray, *, method: str = "cosine") -> np.ndarray:
    """Condensed float64 RDM of the rows of ``x`` (items × features) by ``method`` (see module doc)."""
    if method not in RDM_METHODS:
        raise ValueError(f"unknown RDM method {method!r}; expected one of {list(RDM_METHODS)}")
    x = check_patterns(x)
    n, d = x.shape
    iu = np.triu_indices(n, k=1)
    if method in ("cosine", "correlation"):
        if method == "correlation":
            x = x - x.mean(axis=1, keepdims=True)
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        if (norms == 0).any():
            row = int(np.flatnonzero(norms == 0)[0])
            kind = "constant" if method == "correlation" else "all-zero"
            raise ValueError(f"embeddings: row {row} is {kind}, so its {method} distance is undefined")
        xn = x / norms[:, None]
        return 1.0 - (xn @ xn.T)[iu]
    sq = np.einsum("ij,ij->i", x, x)
    dist = np.maximum((sq[:, None] + sq[None, :] - 2.0 * (x @ x.T))[iu], 0.0)
    return np.sqrt(dist) if method == "euclidean" else dist / d


def to_square(rdm: np.ndarray) -> np.ndarray:
    """Square symmetric form (zero diagonal) of a condensed RDM."""
    n_items(rdm)
    return squareform(np.asarray(rdm, dtype=np.float64), checks=False)


def condition_centroids(x: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(conditions, centroids)``: the sorted distinct labels and each one's mean row of ``x`` (float32)."""
    x = np.asarray(x)
    labels = np.asarray(labels, dtype=object)
    if labels.shape != (x.shape[0],):
        raise ValueError(f"condition_centroids: {labels.shape[0]} labels for {x.shape[0]} rows")
    names, codes = np.unique(labels.astype(str), return_inverse=True)
    sums = np.zeros((names.size, x.shape[1]), dtype=np.float64)
    np.add.at(sums, codes, x)
    return names, (sums / np.bincount(codes)[:, None]).astype(np.float32)
