"""End to end on tiny random models and small synthetic data: tables, resume, determinism, errors, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest_models import build_tiny_bert, build_tiny_sbert
from typer.testing import CliRunner

from spatial_probing.cli import app
from spatial_probing.data import load_dataset
from spatial_probing.pipeline import load_run_config, run
from spatial_probing.probe import get_task, outer_folds, overlap_report
from spatial_probing.probe.runner import COMPARISON_COLUMNS, RESULT_COLUMNS


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("probe-models")
    return {"sbert": build_tiny_sbert(root / "sbert"), "bert": build_tiny_bert(root / "bert")}


def write_config(tmp: Path, models: dict[str, Path], **extra) -> Path:
    cfg = {"out": "run", "cache_dir": "cache", "tasks": ["synthetic-argument-order", "synthetic-relation"],
           "encoders": ["sbert-minilm", "static:bert"], "seeds": [0, 1, 2, 3, 4], "Cs": [0.1, 1.0], "n_boot": 200,
           "mdl_seeds": 1, "device": "cpu", "lexical_floor": [], "meaning": None, "rsa": None, "report": False, "task_options": {"synthetic-argument-order": {"n_scenes": 120},
                                                             "synthetic-relation": {"n_scenes": 48}},
           "model_paths": {"sbert-minilm": str(models["sbert"]), "static:bert": str(models["bert"])}, **extra}
    path = tmp / "run.yaml"  # the lexical floor (on by default) has its own tests: tests/probe/test_lexical_floor.py
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_writes_contract_tables_and_resumes_identically(tmp_path: Path, models: dict[str, Path]) -> None:
    config = load_run_config(write_config(tmp_path, models))
    paths = run(config, log=lambda *_: None)
    results = pd.read_parquet(paths["results"])
    assert list(results.columns) == RESULT_COLUMNS
    metrics = set(results.metric)
    assert {"accuracy", "macro_f1", "control_accuracy", "selectivity", "majority", "chance", "mdl_codelength_bits",
            "mdl_compression"} <= metrics
    acc = results[(results.metric == "accuracy") & (results.subset == "all")]
    assert set(acc.seed) == {0, 1, 2, 3, 4}
    assert set(acc[acc.encoder == "sbert-minilm"].layer) == {"0", "1", "2", "final"}  # every layer → curves
    assert {"relation", "category"} <= set(results.subset_kind)
    ci = acc.dropna(subset=["ci_low"])
    assert ((ci.ci_low <= ci.value) & (ci.value <= ci.ci_high)).all()
    preds = pd.read_parquet(paths["predictions"])
    assert {"example_id", "y_true", "y_pred", "correct", "relation", "category"} <= set(preds.columns)
    comps = pd.read_parquet(paths["comparisons"])
    assert list(comps.columns) == COMPARISON_COLUMNS and not comps.empty
    assert comps.p_holm.between(0, 1).all() and (comps.p_holm >= comps.mcnemar_p - 1e-12).all()
    assert pd.read_csv(paths["results_csv"]).shape[0] == len(results)
    manifest = __import__("json").loads(paths["manifest"].read_text())
    assert manifest["seeds"] == [0, 1, 2, 3, 4] and len(manifest["units"]) == 4
    assert all(u["encoder"]["weights_hash"] for u in manifest["units"])

    first = paths["results"].read_bytes()
    parts = sorted((config.out / "parts").iterdir())
    mtimes = [p.stat().st_mtime_ns for p in parts]
    run(config, log=lambda *_: None)  # resume: every unit is skipped, the table is the same
    assert [p.stat().st_mtime_ns for p in parts] == mtimes
    assert paths["results"].read_bytes() == first
    for p in parts:  # a fresh recomputation gives the same table
        p.unlink()
    run(config, log=lambda *_: None)
    pd.testing.assert_frame_equal(pd.read_parquet(paths["results"]), results)


def test_unknown_task_is_a_clear_error_and_writes_nothing(tmp_path: Path, models: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="unknown task"):
        load_run_config(write_config(tmp_path, models, tasks=["vsr-colour"]))
    result = CliRunner().invoke(app, ["probe", "--task", "nope", "--encoder", "bert", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "unknown task 'nope'" in result.output
    assert not (tmp_path / "o").exists()


def test_task_encoders_override_the_encoder_list_per_task(tmp_path: Path, models: dict[str, Path]) -> None:
    config = load_run_config(write_config(tmp_path, models, task_encoders={"synthetic-relation": ["static:bert"]}))
    assert [(u.task, u.encoder) for u in config.units()] == [
        ("synthetic-argument-order", "sbert-minilm"), ("synthetic-argument-order", "static:bert"),
        ("synthetic-relation", "static:bert")]
    with pytest.raises(ValueError, match="task_encoders names unknown task"):
        load_run_config(write_config(tmp_path, models, task_encoders={"vsr-colour": ["bert"]}))


def test_probe_cli_on_one_task(tmp_path: Path, models: dict[str, Path]) -> None:
    result = CliRunner().invoke(app, ["probe", "--task", "synthetic-argument-order", "--encoder", "static:bert",
                                      "--model-path", str(models["bert"]), "--seeds", "2", "--out", str(tmp_path / "o"),
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    results = pd.read_parquet(tmp_path / "o" / "results.parquet")
    acc = results[(results.metric == "accuracy") & (results.subset == "all")]
    # a static (bag-of-words) encoder cannot tell "A rel B" from "B rel A": expect chance
    assert (acc.ci_low <= 0.5).all()


def test_concept_kfold_is_concept_disjoint_and_overlap_is_reported() -> None:
    ex = load_dataset("synthetic", n_scenes=120)
    items = get_task("synthetic-relation").items(ex)
    for fold in outer_folds("concept-kfold", items.splits, items.concepts, n_folds=3):
        train = {c for i in fold.train for c in items.concepts[i]}
        test = {c for i in fold.test for c in items.concepts[i]}
        assert not train & test
    train = [e for e in ex if e.split == "train"]
    test = [e for e in ex if e.split == "test"]
    report = overlap_report(train, test)
    assert report["test_groups_in_train"] == 0 and 0 < report["frac_test_vocab_in_train"] <= 1


def test_argument_order_items_are_minimal_pairs() -> None:
    ex = load_dataset("synthetic", n_scenes=24)
    items = get_task("synthetic-argument-order").items(ex)
    assert len(items.ids) == 24
    for a, b in zip(items.rows_a, items.rows_b):
        ea, eb = items.examples[a], items.examples[b]
        assert ea.pair_id == eb.pair_id and (ea.subject, ea.object) == (eb.object, eb.subject)
    assert set(items.labels) == {"subject-first", "object-first"}
    emb = np.random.default_rng(0).normal(size=(len(items.examples), 4))
    np.testing.assert_allclose(items.features(emb), emb[items.rows_a] - emb[items.rows_b])


def test_a_part_made_with_other_weights_is_not_reused(tmp_path: Path) -> None:
    from spatial_probing.probe.runner import PROBE_FORMAT_VERSION, part_is_current

    meta = tmp_path / "unit.json"
    meta.write_text(f'{{"config_hash": "abc", "encoder": {{"weights_hash": "w1"}}, "data_hash": "d1", '
                    f'"format_version": {PROBE_FORMAT_VERSION}}}')
    assert part_is_current(meta, "abc", "w1") and part_is_current(meta, "abc", None)
    assert not part_is_current(meta, "abc", "w2")  # same name, retrained or replaced model
    assert not part_is_current(meta, "xyz", "w1")
    assert part_is_current(meta, "abc", "w1", "d1") and part_is_current(meta, "abc", "w1", lambda: "d1")
    assert not part_is_current(meta, "abc", "w1", "d2")  # the data files changed
    meta.write_text('{"config_hash": "abc", "encoder": {"weights_hash": "w1"}, "data_hash": "d1"}')
    assert not part_is_current(meta, "abc", "w1")  # made before the probing-format version was recorded
    meta.write_text("{truncated")
    assert not part_is_current(meta, "abc", "w1")
