"""Opt-in reduced-precision encoding (``fp32`` | ``bf16`` | ``int8``) and the kernel each one runs on.

* ``bf16`` — weights and activations in bfloat16; fast where the CPU has AVX-512 BF16 (or AMX) or on a GPU,
  emulated (slower than fp32) elsewhere.
* ``int8`` — dynamic int8 quantisation of every ``Linear`` layer (``torch.ao.quantization.quantize_dynamic``:
  int8 weights, activations quantised per batch); fast with AVX-512 VNNI; CPU only. **Not faithful on
  transformer sentence encoders**: one scale per activation tensor is set by its largest entry, and the
  feed-forward layers see outlier features (all-mpnet-base-v2: inputs to ``output.dense`` up to 26 against a
  median of 0.03; to ``intermediate.dense`` up to 42 after LayerNorm), so most activations round to a few levels
  and the error compounds over the 12 layers (min cosine to fp32 0.37). Measured per family: quantising only the
  ``output.dense`` layers gives min cosine 0.50 at the last layer, ``intermediate.dense`` 0.93, attention ``v``
  0.98, attention ``q``/``k``/``o`` (even with per-channel weights) 0.998, which clears no 0.999 bar and saves
  under 20 % of the time. So int8 stays opt-in and is checked on load: the encoder embeds
  :data:`CHECK_TEXTS` in fp32 and in int8, records the smallest cosine in its kernel line, and warns below
  :data:`MIN_COSINE`. Use ``bf16`` for fast faithful embeddings.

Pooling always runs in float32, and the result is float32. Embeddings differ slightly from fp32, so the
precision is part of the cache key (fp32 keys are unchanged); ``benchmarks/bench_embed.py`` measures the
speed and the cosine to fp32 of each, and which kernel ran is recorded in the encoder info and manifests.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")

__all__ = ["CHECK_TEXTS", "MIN_COSINE", "PRECISIONS", "apply_precision", "check_precision", "cpu_flags",
           "faithfulness_note"]

#: Sentences an int8 text encoder embeds in fp32 and in int8 when its weights load (:func:`faithfulness_note`).
CHECK_TEXTS: tuple[str, ...] = ("The cat is on the table.", "A dog sits to the left of the red car.",
                                "The umbrella is above the bench.", "Two people stand behind the truck.",
                                "The pizza is inside the oven.", "The horse is far away from the bicycle.")
#: Cosine to fp32 below which a reduced precision is called unfaithful (issue 17's bar).
MIN_COSINE = 0.999


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ValueError naming the argument."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags relevant to these kernels (from ``/proc/cpuinfo``; empty where unreadable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(f for f in line.split(":", 1)[1].split()
                                     if f.startswith(("avx512", "amx", "avx2")))
    except OSError:
        pass
    return frozenset()


def faithfulness_note(reference: dict[str, Any], reduced: dict[str, Any], precision: str) -> str:
    """The smallest cosine between matching rows of two ``{layer: (n, d)}`` encodings, as a kernel-line note;
    warns when it is below :data:`MIN_COSINE` (the reduced precision then changes the embeddings materially)."""
    import numpy as np

    worst, where = 1.0, None
    for layer, a in reference.items():
        a, b = np.asarray(a, np.float64), np.asarray(reduced[layer], np.float64)
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
        if cos.min() < worst:
            worst, where = float(cos.min()), layer
    n = len(next(iter(reference.values())))
    if worst < MIN_COSINE:
        warnings.warn(f"precision={precision!r}: min cosine to fp32 {worst:.3f} (layer {where}) on {n} check "
                      f"sentences, below {MIN_COSINE}: these embeddings differ materially from fp32 (outlier "
                      f"activations defeat per-tensor int8 scales; see spatial_probing.embed.precision); "
                      f"use precision='bf16' for fast faithful embeddings", UserWarning, stacklevel=3)
    return f"; min cosine to fp32 on {n} check sentences {worst:.4f}"


def apply_precision(model: Any, precision: str, device: Any) -> str:
    """Convert a loaded ``torch.nn.Module`` in place to ``precision`` and say which kernel will run."""
    import torch

    check_precision(precision)
    flags = cpu_flags()
    if device.type != "cpu":
        if precision == "int8":
            raise ValueError(f"precision='int8' runs on the CPU only (dynamic quantisation); got device={device}")
        if precision == "bf16":
            model.to(torch.bfloat16)
        return f"{precision} on {device.type}"
    capability = torch.backends.cpu.get_cpu_capability()
    if precision == "bf16":
        model.to(torch.bfloat16)
        native = sorted(flags & {"avx512_bf16", "amx_bf16"})
        how = "native " + "+".join(native) if native else "emulated (no avx512_bf16/amx_bf16: expect no speed-up)"
        return f"bf16 matmuls via oneDNN, {how}; torch CPU capability {capability}"
    if precision == "int8":
        with warnings.catch_warnings():  # torch 2.13 marks torch.ao quantisation deprecated; it still works
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*deprecated.*", category=UserWarning)
            torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
        vnni = "avx512_vnni" if "avx512_vnni" in flags else "no avx512_vnni"
        return f"int8 dynamic quantisation of Linear layers, engine {torch.backends.quantized.engine} ({vnni})"
    return f"fp32; torch CPU capability {capability}"
