"""On a CPU with several torch threads, ``probe_arrays`` fits shares of the layers in parallel threads: the same
results, in the same order, as one thread fitting them all."""

from __future__ import annotations

import numpy as np
import torch

from spatial_probing.probe import ProbeSettings, probe_arrays


def _run(threads: int, monkeypatch):
    from spatial_probing.probe import engine
    calls = []
    fit = engine._probe_linear
    monkeypatch.setattr(engine, "_probe_linear", lambda Xtr, *a: calls.append(sorted(Xtr)) or fit(Xtr, *a))
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 8))
    y = np.array(["a", "b", "c"], dtype=object)[(X[:, :3] + 0.5 * rng.normal(size=(300, 3))).argmax(1)]
    # three layers that differ (so a layer paired with another's features would show), one narrower
    Xs = {"0": X * 0.5 + rng.normal(size=X.shape), "1": X, "2": X[:, :5]}
    settings = ProbeSettings(seeds=(0, 1), Cs=(0.01, 1.0), inner_folds=3, max_iter=100, mdl_seeds=1, device="cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        res = probe_arrays({k: v[:200] for k, v in Xs.items()}, y[:200], {k: v[200:] for k, v in Xs.items()},
                           groups_train=[f"g{i}" for i in range(200)],
                           control_types_train=[f"t{i % 30}" for i in range(200)],
                           control_types_test=[f"t{i % 30}" for i in range(100)], settings=settings)
    finally:
        torch.set_num_threads(before)
    return res, y[200:], sorted(calls)


def test_layers_in_parallel_threads_give_the_single_thread_results(monkeypatch):
    (one, y_test, calls_one), (two, _, calls_two) = _run(1, monkeypatch), _run(2, monkeypatch)
    assert calls_one == [["0", "1", "2"]] and calls_two == [["0", "1"], ["2"]]  # two threads, a share each
    assert [(r.layer, r.seed) for r in two] == [(r.layer, r.seed) for r in one] == [
        (layer, s) for layer in ("0", "1", "2") for s in (0, 1)]
    for a, b in zip(one, two):
        assert (a.C, a.control_C) == (b.C, b.control_C)
        np.testing.assert_array_equal(a.y_pred, b.y_pred)
        np.testing.assert_array_equal(a.control_pred, b.control_pred)
        np.testing.assert_allclose([a.cv_accuracy, a.mdl_bits], [b.cv_accuracy, b.mdl_bits], rtol=1e-3)
    # the layers are told apart: the noisy layer 0 predicts worse than layer 1
    assert np.mean(two[0].y_pred == y_test) < np.mean(two[2].y_pred == y_test)
