"""The engine's speed levers change no answer: a shared basis, warm starts, row-restricted problems, the task
probe fitted once across seeds."""

from __future__ import annotations

import numpy as np
import torch

from spatial_probing.probe import ProbeSettings, fit_softmax_batched, online_codelength, probe_arrays
from spatial_probing.probe.batched import covariance_basis, standardize

KW = dict(n_classes=3, max_iter=2000, tol=1e-10, device="cpu", dtype=torch.float64)


def _problems(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = np.stack([standardize(rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)))[0] for _ in range(2)])
    Y = rng.integers(0, 3, size=(2, 3, 200))
    Y[:, 0] = X[:, :, :3].argmax(-1)
    masks = rng.random((2, 3, 200)) < 0.6
    return X, Y, masks


def test_shared_basis_and_warm_start_reach_the_cold_optimum():
    X, Y, masks = _problems()
    Cs = np.array([[0.1, 1.0, 10.0], [1.0, 0.3, 3.0]])
    cold = fit_softmax_batched(X, Y, C=Cs, weights=masks, **KW)
    basis = covariance_basis(X, device="cpu", dtype=torch.float64)
    shared = fit_softmax_batched(basis, Y, C=Cs, weights=masks, **KW)
    rng = np.random.default_rng(9)
    elsewhere = (rng.normal(size=cold[0].shape), rng.normal(size=cold[1].shape))  # a poor start must still converge
    warm = fit_softmax_batched(basis, Y, C=Cs, weights=masks, init=elsewhere, **KW)
    for W, b in (shared, warm):
        np.testing.assert_allclose(W, cold[0], atol=1e-5)
        # the intercepts are unpenalised, so only their differences are identified (softmax ignores a shift)
        np.testing.assert_allclose(b - b.mean(-1, keepdims=True), cold[1] - cold[1].mean(-1, keepdims=True),
                                   atol=1e-5)


def test_a_row_mask_equals_fitting_on_those_rows_alone():
    X, Y, masks = _problems(1)
    W, b = fit_softmax_batched(X, Y, C=0.5, weights=masks, **KW)
    for g in range(2):
        for q in range(3):
            m = masks[g, q]
            Wa, ba = fit_softmax_batched(X[g:g + 1, m], Y[g:g + 1, q:q + 1, m], C=0.5, **KW)
            np.testing.assert_allclose(W[g, q], Wa[0, 0], atol=1e-6)
            np.testing.assert_allclose(b[g, q], ba[0, 0], atol=1e-6)


def test_warm_start_takes_fewer_iterations():
    """Started at its own optimum, a problem stops at once: capped at one iteration it still matches."""
    X, Y, masks = _problems(2)
    W, b = fit_softmax_batched(X, Y, C=1.0, weights=masks, **KW)
    again = fit_softmax_batched(X, Y, C=1.0, weights=masks, init=(W, b), **{**KW, "max_iter": 1})
    np.testing.assert_allclose(again[0], W, atol=1e-6)
    cold_one = fit_softmax_batched(X, Y, C=1.0, weights=masks, **{**KW, "max_iter": 1})
    assert not np.allclose(cold_one[0], W, atol=1e-3)  # one cold iteration is far from the optimum


def test_mdl_with_a_shared_basis_is_the_same_code():
    X, Y, _ = _problems(3)
    kw = dict(n_classes=3, C=0.5, seed=4, device="cpu", max_iter=500)
    bits, comp = online_codelength(X, Y[0], **kw)
    bits_b, comp_b = online_codelength(X, Y[0], basis=covariance_basis(X, device="cpu"), **kw)
    np.testing.assert_allclose(bits_b, bits, rtol=1e-3)
    assert bits.shape == (2, 3) and (comp > 0).all()


def test_the_task_probe_is_the_same_for_every_seed_and_controls_differ():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 10))
    y = np.array(["a", "b", "c"], dtype=object)[(X[:, :3] + 0.5 * rng.normal(size=(400, 3))).argmax(1)]
    settings = ProbeSettings(seeds=(0, 1, 2), Cs=(0.01, 0.1, 1.0), inner_folds=3, max_iter=100, mdl_seeds=0,
                             device="cpu")
    res = probe_arrays({"x": X[:300]}, y[:300], {"x": X[300:]}, groups_train=[f"g{i // 2}" for i in range(300)],
                       control_types_train=[f"t{i % 50}" for i in range(300)],
                       control_types_test=[f"t{i % 50}" for i in range(100)], settings=settings)
    assert len({(r.C, r.cv_accuracy, tuple(r.y_pred)) for r in res}) == 1
    assert len({tuple(r.control_true) for r in res}) == 3
    assert np.mean(res[0].y_pred == y[300:]) > 0.7
