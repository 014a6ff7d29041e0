"""Shared test fixtures: where the real benchmark files are (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One thread per math library in the test process and everything it starts (subprocesses, notebook
# kernels): the tests' arrays are tiny, and on a loaded machine a multi-threaded kernel waits for
# descheduled threads at every small operation (measured: a 6-problem probe fit 75 s → 1.6 s at load 23).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path | None:
    """``$SPATIAL_PROBING_DATA`` or ``../shared/data`` beside the repository, if it exists."""
    for candidate in (os.environ.get("SPATIAL_PROBING_DATA"), ROOT.parent / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real data directory; tests using it are skipped (with the reason) when it is absent."""
    path = real_data_dir()
    if path is None:
        pytest.skip("real benchmark data not found: set SPATIAL_PROBING_DATA or place it at ../shared/data")
    return path
