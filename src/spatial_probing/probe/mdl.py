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

from spatial_probing.probe.batched import fit_softmax_batched, predict_log_proba_batched

#: Voita and Titov's block boundaries, as fractions of the training set.
PORTIONS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)


def online_codelength(X: np.ndarray, Y: np.ndarray, *, n_classes: int, C: float | np.ndarray = 1.0, seed: int = 0,
                      portions: tuple[float, ...] = PORTIONS, device: str = "auto",
                      max_iter: int = 300, groups: Sequence | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Online codelength in bits and compression for ``G`` feature sets × ``Q`` label sets.

    Args:
        X: standardised training features ``(G, n, d)`` (e.g. one group per layer).
        Y: integer labels ``(Q, n)`` (e.g. task and control labels), shared by all groups.
        C: inverse L2 strength, scalar or ``(G, Q)`` (sklearn's convention, so it scales with each portion).
        groups: cluster of each item; the transmission order is a seeded order of whole clusters
            (None: of items).
    Returns:
        ``(codelength_bits, compression)``, each of shape ``(G, Q)``.
    """
    G, n, _ = X.shape
    order = cluster_order(groups, n, seed)
    X, Y = X[:, order], Y[:, order]
    bounds = sorted({max(1, int(round(p * n))) for p in portions} | {n})
    bits = np.full((G, Y.shape[0]), bounds[0] * np.log2(n_classes))
    for start, end in zip(bounds[:-1], bounds[1:]):
        W, b = fit_softmax_batched(X[:, :start], np.broadcast_to(Y[None, :, :start], (G, *Y[:, :start].shape)),
                                   n_classes=n_classes, C=C, device=device, max_iter=max_iter)
        logp = predict_log_proba_batched(X[:, start:end], W, b, device=device)  # (G, Q, m, K)
        block = np.take_along_axis(logp, np.broadcast_to(Y[None, :, start:end, None], (*logp.shape[:3], 1)), -1)
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
