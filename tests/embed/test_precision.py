"""Reduced-precision encoding: opt-in, close to fp32, a cache key of its own, the kernel recorded."""

from __future__ import annotations

import numpy as np
import pytest
from conftest_models import SAMPLE_TEXTS

from spatial_probing.embed import load_encoder


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_is_close_to_fp32_and_keyed_apart(tiny, precision):
    ref = load_encoder(str(tiny["sbert"]), device="cpu")
    enc = load_encoder(str(tiny["sbert"]), device="cpu", precision=precision)
    assert enc.info.kernel is None  # nothing ran yet
    a = ref.encode(SAMPLE_TEXTS, layers="all")
    b = enc.encode(SAMPLE_TEXTS, layers="all")
    assert precision in enc.info.kernel and enc.info.precision == precision and ref.info.precision == "fp32"
    assert enc.fingerprint() != ref.fingerprint()  # never served from fp32 cache entries (or the reverse)
    for layer in a:
        assert b[layer].dtype == np.float32
        cos = _cosines(a[layer], b[layer])
        assert cos.min() > 0.95, (layer, cos.min())  # a tiny random model: close, not identical
        assert not np.array_equal(a[layer], b[layer]) or layer == "0"  # it did change the computation


def test_unknown_precision_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match="precision='fp8'.*fp32, bf16, int8"):
        load_encoder(str(tiny["sbert"]), device="cpu", precision="fp8")
