"""Opt-in reduced-precision encoding (``fp32`` | ``bf16`` | ``int8``) and the kernel each one runs on.

* ``bf16`` — weights and activations in bfloat16; fast where the CPU has AVX-512 BF16 (or AMX) or on a GPU,
  emulated (slower than fp32) elsewhere.
* ``int8`` — dynamic int8 quantisation of every ``Linear`` layer (``torch.ao.quantization.quantize_dynamic``:
  int8 weights, activations quantised per batch); fast with AVX-512 VNNI; CPU only.

Pooling always runs in float32, and the result is float32. Embeddings differ slightly from fp32, so the
precision is part of the cache key (fp32 keys are unchanged); ``benchmarks/bench_embed.py`` measures the
speed and the cosine to fp32 of each, and which kernel ran is recorded in the encoder info and manifests.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")

__all__ = ["PRECISIONS", "apply_precision", "check_precision", "cpu_flags"]


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
