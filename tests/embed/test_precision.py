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


def test_int8_records_its_cosine_to_fp32_on_load(tiny):
    enc = load_encoder(str(tiny["sbert"]), device="cpu", precision="int8")
    enc.encode(SAMPLE_TEXTS[:2], layers="final")
    assert "min cosine to fp32 on 6 check sentences" in enc.info.kernel


def test_an_unfaithful_precision_warns_with_its_cosine():
    from spatial_probing.embed.precision import faithfulness_note

    a = {"0": np.eye(3), "1": np.eye(3)}
    assert faithfulness_note(a, {"0": np.eye(3), "1": 2 * np.eye(3)}, "int8").endswith("1.0000")  # scale: cosine 1
    bent = np.eye(3)
    bent[2] = [0.0, 0.6, 0.8]  # cosine 0.8 to its fp32 row
    with pytest.warns(UserWarning, match=r"precision='int8': min cosine to fp32 0\.800 \(layer 1\)"):
        faithfulness_note(a, {"0": np.eye(3), "1": bent}, "int8")
