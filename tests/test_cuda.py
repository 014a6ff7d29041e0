"""The GPU path (``--device cuda`` / ``auto``) gives what the CPU path gives; skipped where there is no CUDA.

CI has no GPU, so these run only on a machine with one (``python -m pytest tests/test_cuda.py``):
encoders on tiny models, the batched probe fit, the probing engine and the MDL code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest_models import SAMPLE_TEXTS, build_tiny_models

from spatial_probing.embed import EncoderConfig, load_encoder
from spatial_probing.probe import ProbeSettings, fit_softmax_batched, online_codelength, probe_arrays
from spatial_probing.probe.batched import standardize

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.mark.parametrize("model", ["bert", "mpnet", "sbert", "clip"])
def test_encoders_on_cuda_match_cpu(tiny, model) -> None:
    def encode(device: str) -> dict:
        if model == "clip":
            cfg = EncoderConfig(name="clip-text", kind="clip", model_id=str(tiny["clip"]), modality="text",
                                pooling="eos")
            return load_encoder(cfg, device=device).encode(SAMPLE_TEXTS)
        return load_encoder(str(tiny[model]), device=device, batch_size=2).encode(SAMPLE_TEXTS)

    cpu, gpu = encode("cpu"), encode("cuda")
    assert list(cpu) == list(gpu)
    for layer in cpu:
        np.testing.assert_allclose(gpu[layer], cpu[layer], atol=1e-4, rtol=1e-3)


def test_batched_fit_on_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(0)
    X = np.stack([standardize(rng.normal(size=(300, 10)) @ rng.normal(size=(10, 10)))[0] for _ in range(3)])
    Y = rng.integers(0, 4, size=(3, 5, 300))
    Y[:, 0] = X[:, :, :4].argmax(-1)
    masks = rng.random((3, 5, 300)) < 0.8
    kw = dict(n_classes=4, C=np.geomspace(0.01, 10, 5)[None].repeat(3, 0), weights=masks, max_iter=500, tol=1e-9,
              dtype=torch.float64)
    W_cpu, b_cpu = fit_softmax_batched(X, Y, device="cpu", **kw)
    W_gpu, b_gpu = fit_softmax_batched(X, Y, device="cuda", **kw)
    np.testing.assert_allclose(W_gpu, W_cpu, atol=1e-6)
    np.testing.assert_allclose(b_gpu, b_cpu, atol=1e-6)


def test_engine_and_mdl_on_cuda_match_cpu() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(700, 24))
    y = np.array(["a", "b", "c", "d"], dtype=object)[(X @ rng.normal(size=(24, 4))).argmax(1)]
    layers_tr, layers_te = {"0": X[:500], "1": X[:500, :12]}, {"0": X[500:], "1": X[500:, :12]}

    def run(device: str):
        settings = ProbeSettings(seeds=(0, 1), Cs=(0.1, 1.0), max_iter=200, n_boot=200, device=device)
        return probe_arrays(layers_tr, y[:500], layers_te, groups_train=[f"g{i // 2}" for i in range(500)],
                            control_types_train=[f"t{i % 50}" for i in range(500)],
                            control_types_test=[f"t{i % 50}" for i in range(200)], settings=settings)

    for a, b in zip(run("cpu"), run("cuda")):
        assert (a.layer, a.seed, a.C) == (b.layer, b.seed, b.C)
        assert np.mean(a.y_pred == b.y_pred) >= 0.99
        assert a.mdl_bits == pytest.approx(b.mdl_bits, rel=1e-2, nan_ok=True)  # fits stop at tol, not the exact optimum
    Xs = standardize(X)[0][None]
    yi = np.unique(y, return_inverse=True)[1][None]
    cpu = online_codelength(Xs, yi, n_classes=4, device="cpu")
    gpu = online_codelength(Xs, yi, n_classes=4, device="cuda")
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-2)
