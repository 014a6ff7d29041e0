"""The report's lab answer: found through the run's registries, labelled with the lab's name, nulls with half-widths."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from spatial_probing.lab.compare import lab_outputs
from spatial_probing.report.html import _lab_answer


def _lab_dir(tmp_path: Path, label: str) -> Path:
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "lab_manifest.json").write_text(json.dumps({"config": {"label": label}}))
    pd.DataFrame({"arm": ["vision-hn1", "vision-hn1", "mlm", "mlm"], "status": ["ok", "not converged", "ok", "ok"],
                  "converged": [True, False, True, True], "n_encoder_parameters": [100] * 4,
                  "heldout_random_acc": [0.9, 0.8, 0.1, 0.1], "heldout_hard_acc": [0.7, 0.6, 0.5, 0.5],
                  "heldout_hard_acc_image": [0.8, 0.7, None, None]}).to_csv(lab / "lab_training.csv", index=False)
    pd.DataFrame({"features": ["trained CNN", "trained CNN"], "target": ["dx sign", "dy sign"],
                  "accuracy": [0.9, 0.8], "majority": [0.4, 0.4]}).to_csv(lab / "vision_check.csv", index=False)
    return lab / "encoders.yaml"


def _analysis(predictions: pd.DataFrame, registries: list[str]) -> SimpleNamespace:
    missing: list[str] = []
    tables = SimpleNamespace(predictions=predictions, manifest={"config": {"encoder_registries": registries}},
                             missing=missing, note_missing=missing.append)
    return SimpleNamespace(tables=tables, n_boot=300, seed=0)


def test_lab_outputs_found_beside_the_registry(tmp_path: Path) -> None:
    registry = _lab_dir(tmp_path, "demo lab")
    out = lab_outputs([str(tmp_path / "other" / "encoders.yaml"), str(registry)])
    assert out["label"] == "demo lab" and out["dir"] == registry.parent and len(out["training"]) == 4
    assert lab_outputs([str(tmp_path / "nowhere.yaml")]) == {}


def test_report_lab_answer_is_labelled_and_states_half_widths(tmp_path: Path, answer_predictions) -> None:
    analysis = _analysis(answer_predictions(), [str(_lab_dir(tmp_path, "demo lab"))])
    section = _lab_answer(analysis, "final")
    assert section["label"] == "demo lab" and "From the demo lab" in section["answer"].caption
    assert section["answer"].rows and any("vision-hn1 better" in line for line in section["answer_lines"])
    nulls = [line for line in section["answer_lines"] if "no difference" in line]
    assert nulls and all("half-width 0.0 points" in line for line in nulls)
    flagged = [line for line in section["answer_lines"] if "vision-hn1" in line and "not converged" in line]
    assert flagged  # an arm that did not converge is flagged where it is compared
    assert section["training"].highlight == [True, False]  # vision-hn1 (a seed not converged), mlm
    assert [r[:2] for r in section["vision_check"].rows] == [["trained CNN", "dx sign"], ["trained CNN", "dy sign"]]
    assert not analysis.tables.missing


def test_report_lab_answer_without_lab_predictions_notes_it(tmp_path: Path, answer_predictions) -> None:
    analysis = _analysis(answer_predictions().assign(encoder="sbert"), [])
    section = _lab_answer(analysis, "final")
    assert section["answer"].rows == [] and section["training"] is None and section["label"] == "lab"
    assert any("lab answer per relation kind" in m for m in analysis.tables.missing)
