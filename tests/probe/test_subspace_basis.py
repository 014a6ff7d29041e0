"""``subspace_basis``: a fit on fewer rows than features, in the basis of their span, is the same fit."""

from __future__ import annotations

import numpy as np
import torch

from spatial_probing.probe import fit_softmax_batched, online_codelength
from spatial_probing.probe.batched import covariance_basis, standardize, subspace_basis

KW = dict(n_classes=3, max_iter=3000, tol=1e-9, device="cpu", dtype=torch.float64)


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = np.stack([standardize(rng.normal(size=(120, 30)) @ rng.normal(size=(30, 30)))[0] for _ in range(2)])
    Y = rng.integers(0, 3, size=(2, 2, 120))
    return X.astype(np.float64), Y


def test_fit_in_the_span_of_few_rows_equals_the_full_basis_fit():
    X, Y = _data()
    rows = np.arange(0, 120, 7)  # 18 rows < 30 features
    mask = np.zeros((2, 2, 120))
    mask[..., rows] = 1
    Cs = np.array([[0.1, 10.0], [1.0, 100.0]])
    full = fit_softmax_batched(covariance_basis(X, device="cpu", dtype=torch.float64), Y, C=Cs, weights=mask, **KW)
    sub = subspace_basis(X, rows, device="cpu")
    assert sub.U.shape == (2, 30, 18) and sub.Xh.shape == (2, 120, 18)
    fit = fit_softmax_batched(sub, Y, C=Cs, weights=mask, **KW)
    np.testing.assert_allclose(fit[0], full[0], atol=1e-5)
    np.testing.assert_allclose(fit[1] - fit[1].mean(-1, keepdims=True), full[1] - full[1].mean(-1, keepdims=True),
                               atol=1e-5)
    # warm-started from a fit on a subset of the rows (in their span, as an MDL portion's predecessor)
    first = np.zeros_like(mask)
    first[..., rows[:9]] = 1
    start = fit_softmax_batched(subspace_basis(X, rows[:9], device="cpu"), Y, C=Cs, weights=first, **KW)
    warm = fit_softmax_batched(sub, Y, C=Cs, weights=mask, init=start, **KW)
    np.testing.assert_allclose(warm[0], full[0], atol=1e-5)


def test_online_code_is_the_same_with_the_small_portions_in_their_span():
    """Converged, the online code does not depend on the basis its portions are fitted in."""
    X, Y = _data(1)
    basis = covariance_basis(X, device="cpu", dtype=torch.float64)
    kw = dict(n_classes=3, C=0.5, seed=3, device="cpu", max_iter=3000, portions=(0.05, 0.1, 0.2, 0.5, 1.0))
    import spatial_probing.probe.mdl as mdl
    fit, sub = mdl.fit_softmax_batched, mdl.subspace_basis
    try:
        mdl.fit_softmax_batched = lambda *a, **k: fit(*a, **{**k, "tol": 1e-9, "dtype": torch.float64})
        bits, _ = online_codelength(X, Y[0], basis=basis, **kw)
        mdl.subspace_basis = lambda X, used, device: basis  # every portion in the full data's basis
        bits_full, _ = online_codelength(X, Y[0], basis=basis, **kw)
    finally:
        mdl.fit_softmax_batched, mdl.subspace_basis = fit, sub
    np.testing.assert_allclose(bits, bits_full, rtol=1e-5)
