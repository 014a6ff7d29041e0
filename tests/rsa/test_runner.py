"""The RSA step end to end on synthetic scenes with a tiny random SBERT: tables, rdms/, cache, resume, errors, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest_models import build_tiny_sbert
from typer.testing import CliRunner

from spatial_probing.cli import app
from spatial_probing.data.schema import Example
from spatial_probing.pipeline import load_run_config, run, run_rsa_step
from spatial_probing.probe.runner import task_examples
from spatial_probing.rsa import RSA_COLUMNS
from spatial_probing.rsa.runner import RSASettings, select_items


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def sbert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sbert(tmp_path_factory.mktemp("rsa-models") / "sbert")


def write_config(tmp: Path, sbert: Path, rsa: dict | None = None, **extra) -> Path:
    cfg = {"out": "run", "cache_dir": "cache", "tasks": ["synthetic-argument-order", "synthetic-relation"],
           "encoders": ["sbert-minilm"], "seeds": [0], "Cs": [1.0], "n_boot": 100, "mdl_seeds": 0, "device": "cpu", "lexical_floor": [], "meaning": None,
           "task_options": {"synthetic-argument-order": {"n_scenes": 24}, "synthetic-relation": {"n_scenes": 24}},
           "model_paths": {"sbert-minilm": str(sbert)},
           "rsa": {"n_permutations": 99, "n_boot": 99, "comparisons": ["rho_a", "spearman"], **(rsa or {})}, **extra}
    path = tmp / "run.yaml"  # the lexical floor (on by default) has its own tests: tests/probe/test_lexical_floor.py
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cache_files(root: Path) -> set[Path]:
    return set(root.rglob("*.npy"))


def test_rsa_step_writes_contract_tables_and_rdms(tmp_path: Path, sbert: Path) -> None:
    config = load_run_config(write_config(tmp_path, sbert))
    assert [u.task for u in config.rsa_units()] == ["synthetic-relation"]  # single captions, one unit per dataset
    logs: list[str] = []
    paths = run_rsa_step(config, log=logs.append)
    table = pd.read_parquet(paths["rsa"])
    assert list(table.columns) == RSA_COLUMNS
    assert pd.read_csv(paths["rsa_csv"]).shape == table.shape
    assert set(table.reference) == {"relation", "category", "direction", "converse", "geometry"}
    assert set(table.layer) == {"0", "1", "2", "final"} and set(table.comparison) == {"rho_a", "spearman"}
    assert len(table) == 5 * 4 * 2 and (table.dataset == "synthetic").all() and (table.rdm_method == "cosine").all()
    assert ((table.p_value > 0) & (table.p_value <= 1)).all() and (table.n_permutations == 99).all()
    assert (table.ci_low <= table.ci_high).all()
    n = table.groupby("reference").n_items.first()
    # the probe's items: train and test scenes (the unused dev split is not embedded), 4 distinct captions a scene
    relation_of = {e.group: e.relation for e in task_examples("synthetic-relation", load_kwargs={"n_scenes": 24})
                   if e.variant == "original"}
    n_scenes = len(relation_of)
    near_far = sum(r in ("near", "far") for r in relation_of.values())
    no_direction = sum(r in ("near", "far", "inside", "contains") for r in relation_of.values())
    assert n["relation"] == n["converse"] == n_scenes * 4 - near_far  # near/far: converse = swap
    assert n["direction"] == n_scenes * 4 - no_direction * 4  # near/far/inside/contains scenes have no direction
    assert any(f"excluded {n['relation'] - n['direction']} of {n['relation']} items" in line
               for line in logs)  # said, never silent

    rdm = np.load(tmp_path / "run" / "rdms" / "synthetic__sbert-minilm__final.npz")
    labels, square = rdm["labels"], rdm["rdm"]
    assert len(labels) == 12 and square.shape == (12, 12) and rdm["centroids"].shape[0] == 12
    assert np.allclose(square, square.T) and not np.diag(square).any() and str(rdm["method"]) == "cosine"
    ref = np.load(tmp_path / "run" / "rdms" / "synthetic__reference__direction.npz")
    assert len(ref["labels"]) == 8 and ref["rdm"].shape == (8, 8)

    logs.clear()
    again = run_rsa_step(config, log=logs.append)  # resumes: nothing recomputed, identical table
    assert any(line.startswith("skip rsa") for line in logs)
    pd.testing.assert_frame_equal(pd.read_parquet(again["rsa"]), table)


def test_pipeline_runs_rsa_after_probes_from_the_cache(tmp_path: Path, sbert: Path) -> None:
    config = load_run_config(write_config(tmp_path, sbert, tasks=["synthetic-relation"],
                                          rsa={"references": ["relation"], "layers": "final"}))
    probe_only = config.model_copy(update={"rsa": None})
    paths = run(probe_only, log=lambda *_: None)
    assert "rsa" not in paths and not (tmp_path / "run" / "rsa.parquet").exists()
    cached = _cache_files(tmp_path / "cache")
    paths = run(config, log=lambda *_: None)
    assert _cache_files(tmp_path / "cache") == cached  # every embedding was a cache hit
    table = pd.read_parquet(paths["rsa"])
    assert set(table.reference) == {"relation"} and set(table.layer) == {"final"}
    assert (tmp_path / "run" / "results.parquet").exists()


def test_changed_settings_recompute_the_unit(tmp_path: Path, sbert: Path) -> None:
    cfg = write_config(tmp_path, sbert, tasks=["synthetic-relation"], rsa={"references": ["category"], "layers": "0",
                                                                           "n_boot": 0})
    first = pd.read_parquet(run_rsa_step(load_run_config(cfg), log=lambda *_: None)["rsa"])
    assert first.ci_low.isna().all()
    cfg = write_config(tmp_path, sbert, tasks=["synthetic-relation"], rsa={"references": ["category"], "layers": "0",
                                                                           "n_boot": 0, "n_permutations": 49})
    second = pd.read_parquet(run_rsa_step(load_run_config(cfg), log=lambda *_: None)["rsa"])
    assert (second.n_permutations == 49).all()
    np.testing.assert_allclose(second.value, first.value)  # same data, same statistic


def test_select_items_drops_repeats_and_caps_whole_groups() -> None:
    examples = [Example(id=f"e{i}", dataset="vsr", split="test", text=f"t{i % 9}", group=f"g{i // 3}")
                for i in range(30)]  # texts repeat after 9; groups of 3
    rows, counts = select_items(examples, max_items=None, seed=0)
    assert list(rows) == list(range(9)) and counts["repeated_texts_dropped"] == 21
    rows, counts = select_items(examples, max_items=5, seed=0)
    assert len(rows) <= 5 and counts["items"] == len(rows)
    groups = {examples[i].group for i in rows}
    assert sum(examples[i].group in groups for i in range(9)) == len(rows)  # whole groups only
    assert list(select_items(examples, max_items=5, seed=0)[0]) == list(rows)


def test_bad_rsa_config_names_the_field(tmp_path: Path, sbert: Path) -> None:
    for rsa, message in (({"references": ["shape"]}, "rsa.references"), ({"rdm_methods": ["l1"]}, "rsa.rdm_methods"),
                         ({"comparisons": ["tau"]}, "rsa.comparisons"), ({"n_permutations": -1}, "rsa.n_permutations"),
                         ({"tasks": ["vsr-relation", "vsr-category"]}, "one task per dataset")):
        with pytest.raises(ValueError, match=message):
            load_run_config(write_config(tmp_path, sbert, rsa=rsa))
    path = tmp_path / "off.yaml"
    path.write_text(yaml.safe_dump({"tasks": ["synthetic-relation"], "encoders": ["bert"], "rsa": None}))
    off = load_run_config(path)
    assert off.rsa is None and off.rsa_units() == []
    with pytest.raises(ValueError, match="rsa: null"):
        run_rsa_step(off)
    assert RSASettings().pick_tasks(["synthetic-argument-order"]) == ["synthetic-argument-order"]


def test_cli_rsa_command(tmp_path: Path, sbert: Path) -> None:
    cfg = write_config(tmp_path, sbert, tasks=["synthetic-relation"], rsa={"references": ["relation"], "layers": "final"})
    result = CliRunner().invoke(app, ["rsa", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "rsa.parquet" in result.output and (tmp_path / "run" / "rsa.csv").exists()
    bad = write_config(tmp_path, sbert, rsa={"comparisons": ["nope"]})
    result = CliRunner().invoke(app, ["rsa", str(bad)])
    assert result.exit_code == 2 and "rsa.comparisons" in result.output
