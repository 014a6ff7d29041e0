"""The five notebooks run top to bottom on the embedded default (nbclient, a fresh kernel each).

They run at a tiny size (``SPATIAL_PROBING_NB_SCENES``) so each takes seconds, with a generous per-cell
timeout so a loaded machine slows them down without failing them; nothing here checks wall-clock time.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

#: Synthetic scenes per dataset in the notebooks under test (their default is 120).
TINY_SCENES = "24"
#: Per-cell timeout (s): a ceiling for a hung kernel, not a speed criterion.
CELL_TIMEOUT = 1800
from nbclient import NotebookClient

NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


def test_the_five_notebooks_of_the_plan_exist() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPATIAL_PROBING_NB_OUT", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SPATIAL_PROBING_NB_SCENES", TINY_SCENES)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert os.listdir(tmp_path), "the notebook wrote nothing under SPATIAL_PROBING_NB_OUT"
