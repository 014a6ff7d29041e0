"""End to end: `spatial-probing lab train`, a run config that trains the lab and probes it by name, `lab compare`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from spatial_probing.cli import app
from spatial_probing.pipeline import load_run_config, prepare_encoders

runner = CliRunner()


def test_lab_train_cli_trains_then_reuses_and_prints_the_registry(tmp_path: Path, write_lab) -> None:
    config = write_lab(tmp_path, objectives=["mlm", "vision"])
    out = tmp_path / "elsewhere"
    first = runner.invoke(app, ["lab", "train", str(config), "--out", str(out), "--quiet", "--device", "cpu",
                                "--workers", "2"])
    assert first.exit_code == 0, first.output
    assert "2 to train, 2 at once" in first.output
    registry = out / "encoders.yaml"
    assert f"registry: {registry}" in first.output and "0 reused" in first.output
    assert [e["name"] for e in yaml.safe_load(registry.read_text())] == ["lab-mlm-s0", "lab-vision-s0"]
    second = runner.invoke(app, ["lab", "train", str(config), "--out", str(out), "--quiet"])
    assert second.exit_code == 0 and "2 reused" in second.output  # one worker, same hash: --workers is not hashed
    assert not (tmp_path / "lab").exists()  # --out replaced the config's out


def test_lab_train_cli_bad_config_exits_2_naming_the_field(tmp_path: Path, write_lab) -> None:
    config = write_lab(tmp_path, train={"steps": -1})
    result = runner.invoke(app, ["lab", "train", str(config)])
    assert result.exit_code == 2 and "train.steps" in result.output and str(config) in result.output


def test_run_config_trains_the_lab_probes_it_by_pattern_and_compares_objectives(tmp_path: Path, write_lab) -> None:
    write_lab(tmp_path / "labcfg")
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(yaml.safe_dump({
        "out": "run", "lab": "labcfg/lab.yaml", "tasks": ["synthetic-relation"], "encoders": ["lab-*"],
        "seeds": [0, 1], "Cs": [1.0], "n_boot": 100, "mdl_seeds": 0, "device": "cpu",
        "task_options": {"synthetic-relation": {"n_scenes": 48}},
        "rsa": {"n_permutations": 0, "n_boot": 0, "max_items": 60},
        "lexical_floor": [], "meaning": None}))  # the lab alone: the floor and meaning steps are tested elsewhere
    config = load_run_config(run_yaml)
    assert config.lab == tmp_path / "labcfg" / "lab.yaml"
    prepared = prepare_encoders(config, log=lambda *_: None)
    assert prepared.encoders == ["lab-mlm-s0", "lab-textcl-s0", "lab-vision-s0"]
    assert prepared.encoder_registries == [tmp_path / "labcfg" / "lab" / "encoders.yaml"] and prepared.lab is None

    result = runner.invoke(app, ["run", str(run_yaml)])
    assert result.exit_code == 0, result.output
    results = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert set(results.encoder) == {"lab-mlm-s0", "lab-textcl-s0", "lab-vision-s0"}
    assert set(pd.read_parquet(tmp_path / "run" / "rsa.parquet").encoder) == set(results.encoder)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["encoder_registries"] == [str(prepared.encoder_registries[0])]
    html = (tmp_path / "run" / "report.html").read_text()  # the lab's answer, found through the registry
    assert "The lab's answer per relation kind (default lab)" in html and "grounding vs text-only contrastive" in html
    assert "Vision-side sanity check" in html and "convergence" in html

    compared = runner.invoke(app, ["lab", "compare", str(tmp_path / "run"), "--n-permutations", "200"])
    assert compared.exit_code == 0, compared.output
    summary = pd.read_csv(tmp_path / "run" / "lab_objectives.csv")
    assert set(summary.objective) == {"mlm", "textcl", "vision"} and (summary.n_seeds == 1).all()
    answer = pd.read_csv(tmp_path / "run" / "lab_answer.csv")
    assert {"vision", "textcl", "mlm"} >= set(answer.arm_a) and answer.half_width.notna().all()
    comps = pd.read_csv(tmp_path / "run" / "lab_comparisons.csv")
    assert len(comps[comps.subset_kind == "all"].drop_duplicates(["objective_a", "objective_b", "layer"])) == 3 * 3


def test_registries_resolve_relative_to_the_yaml_and_bad_patterns_name_the_field(tmp_path: Path, tiny_lab) -> None:
    lab, _ = tiny_lab
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(yaml.safe_dump({
        "tasks": ["synthetic-relation"], "encoders": ["lab-vision-*", "static:lab-mlm-s*"],
        "encoder_registries": [str(lab.out / "encoders.yaml"), "reg/extra.yaml"],
        "task_encoders": {"synthetic-relation": ["lab-nothing-*"]}}))
    config = load_run_config(run_yaml)
    assert config.encoder_registries == [lab.out / "encoders.yaml", tmp_path / "reg" / "extra.yaml"]
    config = config.model_copy(update={"encoder_registries": config.encoder_registries[:1]})
    with pytest.raises(ValueError, match=r"task_encoders\.synthetic-relation: pattern 'lab-nothing-\*' matches no"):
        prepare_encoders(config, log=lambda *_: None)
    ok = prepare_encoders(config.model_copy(update={"task_encoders": {}}), log=lambda *_: None)
    assert ok.encoders == ["lab-vision-s0", "static:lab-mlm-s0"]
