"""Read a run directory's tables for the report, tolerating missing or unreadable pieces.

A report on a partial run is still useful, so every table is optional: what cannot be read is
recorded in :attr:`RunTables.missing` (shown in the report's "Not in this run" list) instead of
failing. Only a directory that holds neither ``results.parquet`` nor ``manifest.json`` is an
error: then it is not a run directory at all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Columns each table must have (the run-directory contract); a table without them is "missing".
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "results": ("dataset", "task", "encoder", "layer", "probe", "seed", "subset_kind", "subset", "metric", "value",
                "ci_low", "ci_high", "n_test"),
    "predictions": ("dataset", "task", "encoder", "layer", "probe", "seed", "example_id", "correct"),
    "comparisons": ("dataset", "task", "layer_a", "layer_b", "probe", "encoder_a", "encoder_b", "selection",
                    "subset_kind", "subset", "acc_a", "acc_b", "diff", "mcnemar_p", "permutation_p", "p_holm", "n"),
    "rsa": ("dataset", "encoder", "layer", "reference", "rdm_method", "comparison", "value", "p_value", "ci_low",
            "ci_high", "n_items", "n_permutations"),
    "rsa_pairs": ("dataset", "reference", "rdm_method", "comparison", "encoder_a", "encoder_b", "diff", "ci_low",
                  "ci_high", "p_value", "p_holm"),
    "meaning": ("dataset", "encoder", "layer", "kind", "value", "ci_low", "ci_high", "n_triples", "n_clusters"),
    "pairs": ("dataset", "encoder", "layer", "analysis", "subset_kind", "subset", "value", "ci_low", "ci_high",
              "chance", "n_items", "note"),
}
_TEXT_COLUMNS = ("layer", "subset", "layer_a", "layer_b", "cluster", "k", "category", "relation", "question_type")
_RDM_NAME = re.compile(r"^(?P<dataset>.+?)__(?P<encoder>.+)__(?P<layer>.+)$")


class NotARunDirectory(ValueError):
    """The path holds neither ``results.parquet`` nor ``manifest.json``."""


class UnreadableRunError(ValueError):
    """Some of a run directory's files exist but cannot be read; ``unreadable`` lists them with the reason."""

    def __init__(self, run_dir: Path, unreadable: list[str]) -> None:
        self.run_dir, self.unreadable = run_dir, list(unreadable)
        super().__init__(f"{run_dir}: {len(unreadable)} file(s) could not be read, so a report would leave out "
                         f"their results:\n" + "\n".join(f"  - {u}" for u in unreadable) +
                         "\nRe-run the step that writes them, or pass --partial (Python: partial=True) for a report "
                         "of what could be read.")


@dataclass(frozen=True)
class RDMFile:
    """One ``rdms/*.npz`` file: condition labels, the condition×condition RDM and (encoders only) centroids."""

    path: Path
    dataset: str
    encoder: str | None
    layer: str | None
    reference: str | None
    labels: list[str]
    rdm: np.ndarray
    centroids: np.ndarray | None
    method: str | None


@dataclass
class RunTables:
    """Everything the report reads from a run directory; absent tables are None and listed in ``missing``."""

    run_dir: Path
    results: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    comparisons: pd.DataFrame | None = None
    rsa: pd.DataFrame | None = None
    rsa_pairs: pd.DataFrame | None = None
    meaning: pd.DataFrame | None = None
    pairs: pd.DataFrame | None = None
    manifest: dict[str, Any] | None = None
    rdms: list[RDMFile] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def note_missing(self, what: str) -> None:
        """Record a missing piece once (shown in the report's "Not in this run" list)."""
        if what not in self.missing:
            self.missing.append(what)

    def note_unreadable(self, what: str) -> None:
        """Record a file that exists but cannot be read (missing from the report, and a reason to refuse one)."""
        self.note_missing(what)
        if what not in self.unreadable:
            self.unreadable.append(what)


def _read_table(path: Path, name: str, tables: RunTables) -> pd.DataFrame | None:
    if not path.is_file():
        tables.note_missing(f"{path.name}: not found")
        return None
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        tables.note_unreadable(f"{path.name}: unreadable ({type(err).__name__}: {err})")
        return None
    absent = [c for c in REQUIRED_COLUMNS[name] if c not in df.columns]
    if absent:
        tables.note_unreadable(f"{path.name}: lacks column(s) {absent}; expected the run-directory contract's columns")
        return None
    for col in _TEXT_COLUMNS:
        if col in df.columns:
            df[col] = df[col].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return df


def _read_rdm(path: Path, tables: RunTables) -> RDMFile | None:
    m = _RDM_NAME.match(path.stem)
    if m is None:
        tables.note_missing(f"rdms/{path.name}: name is not <dataset>__<encoder|reference>__<layer|name>.npz")
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as err:
        tables.note_unreadable(f"rdms/{path.name}: unreadable ({type(err).__name__}: {err})")
        return None
    if "labels" not in arrays or "rdm" not in arrays:
        tables.note_missing(f"rdms/{path.name}: lacks array(s) 'labels' and/or 'rdm'")
        return None
    labels = [str(x) for x in np.asarray(arrays["labels"]).ravel()]
    rdm = np.asarray(arrays["rdm"], dtype=np.float64)
    if rdm.shape != (len(labels), len(labels)):
        tables.note_missing(f"rdms/{path.name}: rdm shape {rdm.shape} does not match {len(labels)} labels")
        return None
    is_reference = m["encoder"] == "reference"
    centroids = arrays.get("centroids")
    if centroids is not None and (centroids.ndim != 2 or centroids.shape[0] != len(labels)):
        tables.note_missing(f"rdms/{path.name}: centroids shape {centroids.shape} does not match {len(labels)} labels")
        centroids = None
    method = str(arrays["method"]) if "method" in arrays else None
    return RDMFile(path=path, dataset=m["dataset"], encoder=None if is_reference else m["encoder"],
                   layer=None if is_reference else m["layer"], reference=m["layer"] if is_reference else None,
                   labels=labels, rdm=rdm, centroids=None if centroids is None else np.asarray(centroids, np.float64),
                   method=method)


def load_run(run_dir: str | Path) -> RunTables:
    """Read a run directory's tables, manifest and RDM files; what is absent or unreadable goes to ``missing``.

    Raises :class:`NotARunDirectory` when ``run_dir`` has neither ``results.parquet`` nor ``manifest.json``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not ((run_dir / "results.parquet").exists() or (run_dir / "manifest.json").exists()):
        raise NotARunDirectory(f"{run_dir}: not a run directory; expected results.parquet and/or manifest.json "
                               f"(written by `spatial-probing run CONFIG.yaml`)")
    tables = RunTables(run_dir=run_dir)
    tables.results = _read_table(run_dir / "results.parquet", "results", tables)
    tables.predictions = _read_table(run_dir / "predictions.parquet", "predictions", tables)
    tables.comparisons = _read_table(run_dir / "comparisons.parquet", "comparisons", tables)
    tables.rsa = _read_table(run_dir / "rsa.parquet", "rsa", tables)
    tables.rsa_pairs = _read_table(run_dir / "rsa_pairs.parquet", "rsa_pairs", tables)
    tables.meaning = _read_table(run_dir / "meaning.parquet", "meaning", tables)
    if (run_dir / "pairs.parquet").exists():  # the caption-choice step is off unless a config asks for it
        tables.pairs = _read_table(run_dir / "pairs.parquet", "pairs", tables)
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        tables.note_missing("manifest.json: not found")
    else:
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError(f"expected a JSON object, got {type(manifest).__name__}")
            tables.manifest = manifest
        except (OSError, ValueError) as err:
            tables.note_unreadable(f"manifest.json: unreadable ({err})")
    rdm_dir = run_dir / "rdms"
    if rdm_dir.is_dir():
        tables.rdms = [r for p in sorted(rdm_dir.glob("*.npz")) if (r := _read_rdm(p, tables)) is not None]
    if not tables.rdms:
        tables.note_missing("rdms/*.npz: no readable RDM files")
    return tables
