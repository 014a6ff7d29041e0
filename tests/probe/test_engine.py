"""Known-answer tests of the probing engine on arrays: planted signal, random features, controls, MDL, errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from spatial_probing.probe import (LinearProbe, MLPProbe, ProbeSettings, bootstrap_metric, control_labels,
                                   fit_softmax_batched, online_codelength, probe_arrays)
from spatial_probing.probe.batched import standardize

FAST = ProbeSettings(seeds=(0, 1, 2, 3, 4), Cs=(0.1, 1.0), inner_folds=3, max_iter=100, mdl_seeds=1, n_boot=500,
                     device="cpu")


def planted(n: int, d: int = 16, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    labels = np.array([f"c{i}" for i in range(k)], dtype=object)
    return X, labels[(X @ np.random.default_rng(99).normal(size=(d, k))).argmax(1)]


def run(Xtr, ytr, Xte, settings=FAST, types_tr=None, types_te=None):
    n, m = len(ytr), len(next(iter(Xte.values())))
    return probe_arrays(Xtr, ytr, Xte, groups_train=[f"g{i // 2}" for i in range(n)],
                        control_types_train=types_tr or [f"t{i % 300}" for i in range(n)],
                        control_types_test=types_te or [f"t{i % 300}" for i in range(m)], settings=settings)


def test_planted_linear_signal_is_recovered() -> None:
    X, y = planted(900)
    res = run({"x": X[:600]}, y[:600], {"x": X[600:]})
    assert len(res) == 5
    for r in res:
        assert np.mean(r.y_pred == y[600:]) > 0.95
        assert r.mdl_compression != r.mdl_compression or r.mdl_compression > 1.5  # NaN for seeds without MDL
    assert res[0].mdl_compression > 1.5
    assert LinearProbe(Cs=(0.1, 1.0)).fit(X[:600], y[:600]).score(X[600:], y[600:]) > 0.95
    assert MLPProbe(hidden_size=32, max_iter=300).fit(X[:600], y[:600]).score(X[600:], y[600:]) > 0.75  # nonlinear, early-stopped: well above chance (0.25)


def test_random_features_are_at_chance_and_selectivity_near_zero() -> None:
    rng = np.random.default_rng(1)
    y = rng.choice(np.array(["a", "b", "c", "d"], dtype=object), 1000)
    X = rng.normal(size=(1000, 16))
    res = run({"x": X[:600]}, y[:600], {"x": X[600:]})
    for r in res:
        acc, lo, hi = bootstrap_metric("accuracy", y[600:], r.y_pred, n_boot=1000, seed=r.seed)
        assert lo <= 0.25 <= hi, (acc, lo, hi)
        correct, ctrl = (r.y_pred == y[600:]).astype(float), (r.control_pred == r.control_true).astype(float)
        assert abs(correct.mean() - ctrl.mean()) < 0.1
    assert res[0].mdl_compression < 1.05  # nothing to compress


def test_layers_of_different_width_and_seeds_vary_the_control() -> None:
    X, y = planted(400, d=12)
    res = run({"a": X[:300], "b": X[:300, :5]}, y[:300], {"a": X[300:], "b": X[300:, :5]})
    assert {r.layer for r in res} == {"a", "b"}
    controls = {r.seed: tuple(r.control_true) for r in res if r.layer == "a"}
    assert len(set(controls.values())) > 1


def test_batched_matches_sklearn_logistic_regression() -> None:
    X, y = planted(300, d=8, k=3)
    Xs, = standardize(X)
    yi = np.unique(y, return_inverse=True)[1]
    W, b = fit_softmax_batched(Xs[None], yi[None, None], n_classes=3, C=0.3, max_iter=1000, tol=1e-9, device="cpu",
                               dtype=__import__("torch").float64)
    ref = LogisticRegression(C=0.3, max_iter=5000, tol=1e-10).fit(Xs, yi)
    np.testing.assert_allclose(W[0, 0], ref.coef_.T, atol=2e-3)
    np.testing.assert_allclose(b[0, 0], ref.intercept_, atol=2e-3)


def test_batched_problems_match_sklearn_each_with_its_own_rows_and_C() -> None:
    """Two layers × four problems (labels, row masks and C differ): each equals its own sklearn fit."""
    import torch

    rng = np.random.default_rng(3)
    X = np.stack([standardize(rng.normal(size=(240, 6)) @ rng.normal(size=(6, 6)))[0] for _ in range(2)])  # correlated
    Y = rng.integers(0, 3, size=(2, 4, 240))
    Y[:, 0] = (X[:, :, :3].argmax(-1))  # one learnable problem per layer
    masks = rng.random((2, 4, 240)) < 0.7
    Cs = np.array([[0.01, 0.1, 1.0, 10.0], [1.0, 0.3, 0.03, 3.0]])
    W, b = fit_softmax_batched(X, Y, n_classes=3, C=Cs, weights=masks, max_iter=2000, tol=1e-10, device="cpu",
                               dtype=torch.float64)

    def objective(Xm, y, C, W, b):  # sklearn's, per sample
        z = Xm @ W + b
        logp = z - z.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        return -logp[np.arange(len(y)), y].mean() + (W ** 2).sum() / (2 * C * len(y))

    for g in range(2):
        for q in range(4):
            m = masks[g, q]
            Xm, y = X[g, m].astype(np.float64), Y[g, q, m]
            ref = LogisticRegression(C=Cs[g, q], max_iter=10000, tol=1e-12).fit(Xm, y)
            # sklearn stops on its relative-decrease test near 1e-5 gradients, so ours is at least as optimal
            assert objective(Xm, y, Cs[g, q], W[g, q], b[g, q]) <= objective(Xm, y, Cs[g, q], ref.coef_.T,
                                                                             ref.intercept_) + 1e-12
            np.testing.assert_allclose(W[g, q], ref.coef_.T, atol=5e-3)
            np.testing.assert_allclose(b[g, q], ref.intercept_, atol=5e-3)


def test_a_batched_problem_does_not_depend_on_its_batch_mates() -> None:
    """Per-problem L-BFGS: fitting a probe alone or beside others (some identical, fitted once) gives the same probe."""
    import torch

    X, y = planted(300, d=8, k=3)
    Xs = standardize(X)[0][None]
    yi = np.unique(y, return_inverse=True)[1]
    other = np.random.default_rng(1).integers(0, 3, size=300)
    kw = dict(n_classes=3, max_iter=300, device="cpu", dtype=torch.float64)
    alone, b_alone = fit_softmax_batched(Xs, yi[None, None], C=0.5, **kw)
    both, b_both = fit_softmax_batched(Xs, np.stack([other, yi, yi])[None], C=np.array([[5.0, 0.5, 0.5]]), **kw)
    np.testing.assert_allclose(both[0, 1], alone[0, 0], atol=1e-10)
    np.testing.assert_allclose(b_both[0, 1], b_alone[0, 0], atol=1e-10)
    assert np.array_equal(both[0, 1], both[0, 2])  # the duplicate is the same fit
    assert not np.allclose(both[0, 0], both[0, 1])


def test_control_labels_are_a_fixed_function_of_type() -> None:
    train = ["a"] * 70 + ["b"] * 30
    types = [f"t{i % 25}" for i in range(100)]
    c0 = control_labels(types, train, seed=0)
    assert all(c0[i] == c0[i + 25] for i in range(75))
    assert list(control_labels(types[::-1], train, seed=0)) == list(c0[::-1])  # order-independent
    assert set(c0) <= {"a", "b"}


def test_mdl_codelength_is_in_bits_of_the_uniform_code() -> None:
    X, y = planted(400)
    yi = np.unique(y, return_inverse=True)[1]
    bits, comp = online_codelength(standardize(X)[0][None], yi[None], n_classes=4, device="cpu", max_iter=50)
    assert bits.shape == (1, 1) and comp[0, 0] == pytest.approx(400 * 2 / bits[0, 0])


@pytest.mark.parametrize("case,match", [
    ("few", "too few examples"), ("single", "single class"), ("nan", "NaN"), ("shape", "must match"),
    ("test-shape", "test features"),
])
def test_bad_inputs_raise_clear_errors(case: str, match: str) -> None:
    X, y = planted(60)
    Xte = X[:10]
    if case == "few":
        X, y = X[:2], y[:2]
    elif case == "single":
        y = np.array(["a"] * 60, dtype=object)
    elif case == "nan":
        X = X.copy()
        X[5, 3] = np.nan
    elif case == "shape":
        y = y[:-1]
    elif case == "test-shape":
        Xte = X[:10, :3]
    with pytest.raises(ValueError, match=match):
        probe_arrays({"x": X}, y, {"x": Xte}, groups_train=[str(i) for i in range(len(y))],
                     control_types_train=["t"] * len(y), control_types_test=["t"] * len(Xte), settings=FAST)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_device_is_a_clear_error() -> None:
    X, y = planted(200)
    with pytest.raises(ValueError, match="CUDA is not available"):
        run({"x": X[:150]}, y[:150], {"x": X[150:]}, settings=FAST.model_copy(update={"device": "cuda"}))
