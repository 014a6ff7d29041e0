"""Lab config: defaults, path resolution, hashes, and validation errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spatial_probing.lab import LabConfig, load_lab_config

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, raw) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return path


@pytest.mark.parametrize(("raw", "field", "expected"), [
    ({"objectives": ["mlm", "clip"]}, "objectives.1", "'mlm', 'textcl' or 'vision'"),
    ({"seeds": [0, 0]}, "seeds", "duplicates"),
    ({"model": {"hidden_size": 30, "num_heads": 4}}, "model", "divisible by num_heads"),
    ({"model": {"image_size": 36}}, "model", "multiple of 8"),
    ({"data": {"seed": 0, "probe_seed": 0}}, "data", "must differ from probe_seed"),
    ({"data": {"heldout_relations": ["behind"]}}, "data.heldout_relations", "unknown relation"),
    ({"train": {"steps": 0}}, "train.steps", "greater than or equal to 1"),
    ({"train": {"batch": 8}}, "train.batch", "Extra inputs"),
    ({"name_prefix": "my-lab"}, "name_prefix", "pattern"),
])
def test_invalid_config_names_file_and_field(tmp_path: Path, raw: dict, field: str, expected: str) -> None:
    path = _write(tmp_path, raw)
    with pytest.raises(ValueError, match="invalid lab config") as err:
        load_lab_config(path)
    message = str(err.value)
    assert str(path) in message and f"{field}:" in message and expected in message


def test_unreadable_or_non_mapping_yaml(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected a YAML mapping"):
        load_lab_config(_write(tmp_path, "- mlm\n- vision\n"))
    with pytest.raises(ValueError, match="cannot read the lab config"):
        load_lab_config(tmp_path / "missing.yaml")


def test_out_resolved_against_the_yaml_and_hash_ignores_out_and_device(tmp_path: Path) -> None:
    config = load_lab_config(_write(tmp_path, {"out": "runs/x", "train": {"device": "cpu"}}))
    assert config.out == tmp_path / "runs/x"
    other = LabConfig(out=Path("/elsewhere"))
    assert config.hash() == other.hash()
    assert config.run_hash("mlm", 0) == other.run_hash("mlm", 0)
    assert len({config.run_hash(o, s) for o in ("mlm", "vision") for s in (0, 1)}) == 4
    assert LabConfig(train={"steps": 7}).hash() != other.hash()


def test_shipped_configs_are_valid() -> None:
    default = load_lab_config(ROOT / "configs" / "lab.yaml")
    assert default.objectives == ("mlm", "textcl", "vision") and len(default.seeds) >= 5  # ≥ 5 seeds per arm
    assert default.hard_negatives == (0.0, 1.0) and len(default.arms()) == 5
    assert default.model == LabConfig().model and default.train == LabConfig().train  # the code's defaults
    assert default.data == LabConfig().data and default.label == "default lab"
    demo = load_lab_config(ROOT / "src" / "spatial_probing" / "configs" / "lab-demo.yaml")  # what `demo` runs
    # the demo keeps the default lab's model and objectives, with hard negatives only (one arm per objective)
    assert set(demo.arms()) <= set(default.arms()) and {o for o, _ in demo.arms()} == set(default.objectives)
    assert demo.model == default.model and demo.label == "demo lab"
    assert demo.hash() == demo.model_copy(update={"label": "x"}).hash()  # the label names, it does not train


@pytest.mark.parametrize("name", ["configs/study.yaml", "configs/study-offline.yaml",
                                  "src/spatial_probing/configs/demo.yaml"])
def test_shipped_run_configs_validate(name: str) -> None:
    from spatial_probing.pipeline import load_run_config

    config = load_run_config(ROOT / name)
    assert config.units() and config.rsa is not None and config.report


def test_lab_study_probes_enough_unseen_test_items_on_scenes_the_lab_kept_out() -> None:
    from spatial_probing.lab import check_probe_data
    from spatial_probing.pipeline import load_run_config
    from spatial_probing.probe.tasks import get_task

    study = load_run_config(ROOT / "configs" / "lab-study.yaml")
    lab = load_lab_config(study.lab)
    assert lab == load_lab_config(ROOT / "configs" / "lab.yaml") and lab.data.heldout == "compositional"
    check_probe_data(lab.data, {t: study.task_options.get(t, {}) for t in study.tasks})  # raises if not kept out
    assert study.encoders == ["lab-*"] and study.meaning is not None
    # the words, their slots, and the lab's own architecture untrained / its word embeddings alone
    assert study.lexical_floor == ["bow:", "order:", "random-init:lab-mlm-s0", "static:lab-mlm-s0"]
    assert {"synthetic-converse-transfer", "synthetic-argument-order-v2", "synthetic-geometry-dx",
            "synthetic-geometry-dy", "synthetic-geometry-distance"} <= set(study.tasks)
    for task in study.tasks:
        options = study.task_options[task]
        t = get_task(task)
        if t.spec.split == "own":  # a generic split: test on the held-out colour–shape pairs
            assert options["split_scheme"] == "compositional"
        examples = t.load(None, split=t.spec.split, **options)
        test = [e for e in examples if e.split not in t.spec.train_splits]
        n_test = len(t.items(test).ids)
        assert n_test >= 1000, (task, n_test)
