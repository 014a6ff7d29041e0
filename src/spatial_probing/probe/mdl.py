"""Minimum description length probing with the online code (Voita and Titov, 2020).

The training items, in a seeded random order of their clusters (``groups``: a scene's, image's or
story's items are sent together, so that no block is predicted from its own scene's siblings), are sent in blocks at the fractions
``PORTIONS`` of the training set. The first block costs ``t1 · log2 K`` bits (uniform code);
each later block is encoded with a probe trained on everything sent before it, costing
``Σ −log2 p(y | x)``. Compression is the uniform codelength ``n · log2 K`` over the online one:
a representation from which the labels are easier to learn compresses them more.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from spatial_probing.probe.batched import (CovarianceBasis, covariance_basis, fit_softmax_batched, predict_log_proba_batched,
                                          subspace_basis)

#: Voita and Titov's block boundaries, as fractions of the training set.
PORTIONS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)


def online_codelength(X: np.ndarray, Y: np.ndarray, *, n_classes: int, C: float | np.ndarray = 1.0, seed: int = 0,
                      portions: tuple[float, ...] = PORTIONS, device: str = "auto",
                      max_iter: int = 300, groups: Sequence | None = None,
                      basis: CovarianceBasis | None = None, rows: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Online codelength in bits and compression for ``G`` feature sets × ``Q`` label sets.

    Args:
        X: standardised training features ``(G, n, d)`` (e.g. one group per layer).
        Y: integer labels ``(Q, n)`` (e.g. task and control labels), shared by all groups.
        C: inverse L2 strength, scalar or ``(G, Q)`` (sklearn's convention, so it scales with each portion).
        groups: cluster of each item; the transmission order is a seeded order of whole clusters
            (None: of items).
        basis: :func:`~spatial_probing.probe.batched.covariance_basis` of ``X`` if the caller has it.
        rows: when ``X`` holds only the distinct rows (:func:`~spatial_probing.probe.batched.distinct_rows`), the
            row of ``X`` of each of the ``n`` items; ``Y``, ``groups`` and the transmission order stay per item,
            and a portion's fit weights each distinct row by how many of its items have been sent.
    Returns:
        ``(codelength_bits, compression)``, each of shape ``(G, Q)``.
    """
    n = Y.shape[1]
    rows = np.arange(n) if rows is None else np.asarray(rows)
    G, n_rows = X.shape[0], X.shape[1]
    Yr = np.zeros((Y.shape[0], n_rows), dtype=Y.dtype)
    Yr[:, rows] = Y  # the labels of each distinct row (its items share them)
    order = cluster_order(groups, n, seed)
    basis = basis if basis is not None else covariance_basis(X, device=device)  # one basis for every portion
    bounds = sorted({max(1, int(round(p * n))) for p in portions} | {n})
    bits = np.full((G, Y.shape[0]), bounds[0] * np.log2(n_classes))
    sent = np.zeros(n_rows, dtype=np.float32)  # how many items of each row are sent: a portion trains on these
    init = None
    for start, end in zip(bounds[:-1], bounds[1:]):
        sent[:] = np.bincount(rows[order[:start]], minlength=n_rows)
        used = np.flatnonzero(sent)
        # fewer sent rows than features: the same fit in the basis of their span (few coordinates, well conditioned;
        # the previous portion's solution lies in it)
        pre = subspace_basis(X, used, device=device) if len(used) < X.shape[2] else basis
        # a small portion's penalty dominates and is ill-conditioned in the full data's basis, where float32
        # rounding stalls L-BFGS above tol: those portions (a quarter of the rows in all) run in float64
        W, b = fit_softmax_batched(pre, np.broadcast_to(Yr[None], (G, *Yr.shape)), n_classes=n_classes, C=C,
                                   weights=np.broadcast_to(sent, (G, *Yr.shape)), device=device, max_iter=max_iter,
                                   init=init, dtype=torch.float64 if 4 * start < n else torch.float32)
        init = (W, b)  # the next portion starts from this one's solution
        block_rows = order[start:end]
        logp = predict_log_proba_batched(X[:, rows[block_rows]], W, b, device=device)  # (G, Q, m, K)
        block = np.take_along_axis(logp, np.broadcast_to(Y[None, :, block_rows, None], (*logp.shape[:3], 1)), -1)
        bits += -block[..., 0].sum(-1) / np.log(2)
    uniform = n * np.log2(n_classes)
    return bits, uniform / bits


def cluster_order(groups: Sequence | None, n: int, seed: int) -> np.ndarray:
    """A seeded transmission order: clusters in random order, each cluster's items together (in input order)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.permutation(n)
    codes = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)[1].reshape(n)
    rank = rng.permutation(int(codes.max()) + 1)
    return np.lexsort((np.arange(n), rank[codes]))
