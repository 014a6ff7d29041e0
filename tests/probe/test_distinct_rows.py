"""Repeated rows fitted once with their count as weight: the same problems on fewer rows."""

from __future__ import annotations

import numpy as np
import torch

from spatial_probing.probe import fit_softmax_batched, online_codelength
from spatial_probing.probe.batched import distinct_rows, standardize

KW = dict(n_classes=3, max_iter=2000, tol=1e-10, device="cpu", dtype=torch.float64)


def _repeated(seed: int = 0):
    """60 distinct rows, each repeated 1-4 times (shuffled), with labels that follow the features."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(60, 5))
    reps = rng.integers(1, 5, size=60)
    items = rng.permutation(np.repeat(np.arange(60), reps))
    X = standardize(base[items])[0][None]
    y = (base[items, :3] + 0.3 * rng.normal(size=(60, 3))[items]).argmax(1)
    return X, np.stack([y, rng.integers(0, 3, size=60)[items]]), items


def test_repeated_rows_are_found_and_rebuild_the_input():
    X, Y, items = _repeated()
    first, inverse = distinct_rows(X, Y)
    assert len(first) == 60
    np.testing.assert_array_equal(X[:, first][:, inverse], X)
    np.testing.assert_array_equal(Y[:, first][:, inverse], Y)
    assert (np.diff(first) > 0).all()  # in order of first occurrence


def test_identical_features_with_different_labels_stay_apart():
    X, Y, _ = _repeated(1)
    Y = Y.copy()
    Y[1, 0] = (Y[1, 0] + 1) % 3  # item 0's second label no longer matches its repeats'
    first, inverse = distinct_rows(X, Y)
    assert len(first) == 61
    np.testing.assert_array_equal(Y[:, first][:, inverse], Y)


def test_counts_as_weights_give_the_fit_on_every_copy():
    X, Y, _ = _repeated(2)
    first, inverse = distinct_rows(X, Y)
    counts = np.bincount(inverse).astype(np.float32)
    W, b = fit_softmax_batched(X, Y[None], C=0.5, **KW)
    Wd, bd = fit_softmax_batched(X[:, first], Y[:, first][None], C=0.5, weights=np.broadcast_to(counts, (1, 2, len(first))),
                                 **KW)
    np.testing.assert_allclose(Wd, W, atol=1e-6)
    np.testing.assert_allclose(bd, b, atol=1e-6)


def test_mdl_on_distinct_rows_is_the_same_code():
    """Portions from a tenth of the items on (every class is sent in the first): a class not yet sent has an
    unpenalised intercept whose cost depends on where the optimiser stops, in either form."""
    X, Y, items = _repeated(3)
    first, inverse = distinct_rows(X, Y)
    kw = dict(n_classes=3, C=0.5, seed=1, device="cpu", max_iter=500, groups=[f"g{i}" for i in items],
              portions=(0.1, 0.25, 0.5, 1.0))
    bits, _ = online_codelength(X, Y, **kw)
    bits_d, _ = online_codelength(X[:, first], Y, rows=inverse, **kw)
    np.testing.assert_allclose(bits_d, bits, rtol=1e-3)
