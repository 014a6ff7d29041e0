"""Devices and CPU threads for every stage, without importing any stage.

Probing and the lab need :func:`resolve_device` too; keeping it here (not in the embed stage)
means a probe run does not import the encoders, and nothing imports torch until a device is
actually resolved.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["configure_threads", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → cuda, else mps, else cpu; an explicit device that is absent is an error, not a silent fallback."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available here (torch {torch.__version__}); use cpu or auto")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: Apple MPS is not available here; use cpu or auto")
    if dev.type not in {"cpu", "cuda", "mps"}:
        raise ValueError(f"--device {device}: expected auto, cpu, cuda[:N] or mps")
    return dev


def configure_threads(num_threads: int | None = None) -> int:
    """Use every core this process may run on, unless told otherwise or ``OMP_NUM_THREADS`` is set."""
    import torch

    if num_threads is None and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    n = num_threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
