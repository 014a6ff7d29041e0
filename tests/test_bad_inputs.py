"""Bad input, as a demanding new user would try it: one row per case, each must exit 2 with a message naming the
field, before any embedding or probing starts, and leave the output folder untouched.

Add a row here for every bad input found later (the rows of issue 16 and the earlier per-stage cases are here).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest_models import build_tiny_bert, build_tiny_sbert
from pydantic import ValidationError
from typer.testing import CliRunner

from spatial_probing.cli import app
from spatial_probing.probe import ProbeSettings, probe_arrays


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-input-models")
    return {"sbert": build_tiny_sbert(root / "sbert"), "bert": build_tiny_bert(root / "bert")}


@pytest.fixture(autouse=True)
def _offline_empty_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    from spatial_probing.embed import resolve

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("empty-hf-cache")))
    monkeypatch.setattr(resolve, "_probe_result", {})


def _config(tmp: Path, models: dict[str, Path], **change: Any) -> Path:
    """A valid small run config with ``change`` applied (a value of None deletes the key)."""
    cfg: dict[str, Any] = {
        "out": "run", "cache_dir": "cache", "tasks": ["synthetic-relation"], "encoders": ["sbert-minilm", "static:bert"],
        "seeds": [0, 1], "Cs": [1.0], "n_boot": 100, "mdl_seeds": 0, "device": "cpu", "rsa": None, "report": False,
        "task_options": {"synthetic-relation": {"n_scenes": 24}},
        "model_paths": {"sbert-minilm": str(models["sbert"]), "static:bert": str(models["bert"])}}
    for key, value in change.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_cfg(**change: Any) -> Callable[[Path, dict[str, Path]], list[str]]:
    return lambda tmp, models: ["run", str(_config(tmp, models, **change))]


def rsa_cfg(**change: Any) -> Callable[[Path, dict[str, Path]], list[str]]:
    return lambda tmp, models: ["rsa", str(_config(tmp, models, **change))]


def _paths(tmp: Path, models: dict[str, Path], **extra: str) -> dict[str, str]:
    return {"sbert-minilm": str(models["sbert"]), "static:bert": str(models["bert"]), **extra}


def _lab_probing_its_training_scenes(tmp: Path, models: dict[str, Path]) -> list[str]:
    lab = tmp / "lab.yaml"
    lab.write_text(yaml.safe_dump({"out": "lab", "seeds": [0], "data": {"n_scenes": 96, "probe_n_scenes": 24},
                                   "train": {"steps": 1}}))
    return ["run", str(_config(tmp, models, lab=str(lab), encoders=["lab-*"],
                               task_options={"synthetic-relation": {"n_scenes": 48}}))]


def _unreadable_run(tmp: Path, models: dict[str, Path]) -> list[str]:
    run = tmp / "done-run"
    run.mkdir()
    (run / "results.parquet").write_bytes(b"PAR1 truncated")
    (run / "manifest.json").write_text('{"command": "spatial-probing run', encoding="utf-8")
    return ["report", str(run)]


def _embed(*args: str) -> Callable[[Path, dict[str, Path]], list[str]]:
    return lambda tmp, models: ["embed", "--dataset", "synthetic", "--split", "test", "--out", str(tmp / "emb"),
                                *[a.replace("{sbert}", str(models["sbert"])) for a in args]]


def _probe(*args: str) -> Callable[[Path, dict[str, Path]], list[str]]:
    return lambda tmp, models: ["probe", "--task", "synthetic-relation", "--out", str(tmp / "probe-out"),
                                "--device", "cpu", *[a.replace("{bert}", str(models["bert"])) for a in args]]


#: (case, command builder, strings the message must contain: the field and what was expected)
ROWS: list[tuple[str, Callable[[Path, dict[str, Path]], list[str]], list[str]]] = [
    # issue 16's table
    ("encoder typo", run_cfg(encoders=["sbert-minlm", "static:bert"]),
     ["encoders: unknown encoder 'sbert-minlm'", "did you mean 'sbert-minilm'"]),
    ("task option typo", run_cfg(task_options={"synthetic-relation": {"n_scene": 120}}),
     ["task_options.synthetic-relation.n_scene", "did you mean 'n_scenes'"]),
    ("C of zero", run_cfg(Cs=[0.0]), ["Cs: 0.0", "> 0"]),
    ("negative C", run_cfg(Cs=[-1.0, 1.0]), ["Cs: -1.0", "> 0"]),
    ("repeated seed", run_cfg(seeds=[0, 0, 1]), ["seeds: 0 appears 2 times", "distinct"]),
    ("model_paths key naming no encoder", lambda tmp, m: run_cfg(model_paths=_paths(tmp, m, **{
        "sbert-mpnt": str(m["sbert"])}))(tmp, m), ["model_paths.sbert-mpnt: names no encoder of this run"]),
    ("negative seed", run_cfg(seeds=[-1, 0]), ["seeds: -1", ">= 0"]),
    # a one-layer control (static:, bow:, order:) gives its one layer under any run-wide selector (see
    # test_one_layer_controls_take_their_layer_under_any_selector); a layer a neural encoder lacks is the error
    ("layer an encoder lacks", run_cfg(layers="0,3,final"), ["layers: encoder 'sbert-minilm'", "unknown layer"]),
    ("report on unreadable tables", _unreadable_run, ["results.parquet: unreadable", "manifest.json: unreadable",
                                                      "--partial"]),
    ("probe with an encoder typo", _probe("--encoder", "sbert-minlm"),
     ["unknown encoder 'sbert-minlm'", "did you mean 'sbert-minilm'"]),
    ("model missing offline, run", run_cfg(encoders=["bert"], model_paths={}),
     ["encoders: 'bert'", "model_paths: {bert: DIR}"]),
    ("every problem at once", lambda tmp, m: run_cfg(
        Cs=[0.0], seeds=[0, 0], encoders=["sbert-minlm", "sbert-mpnet"], layers="0,9",
        model_paths={"sbert-minilm": str(m["sbert"]), "sbert-mpnet": str(m["sbert"])})(tmp, m),
     ["5 problems", "Cs: 0.0", "seeds: 0", "encoders: unknown encoder 'sbert-minlm'",
      "model_paths.sbert-minilm: names no encoder", "layers: encoder 'sbert-mpnet'"]),
    # found later, or by reading
    ("model_paths entry not a folder", lambda tmp, m: run_cfg(model_paths=_paths(tmp, m, **{
        "static:bert": str(tmp / "nowhere")}))(tmp, m), ["model_paths.static:bert", "is not a directory"]),
    ("task_options for an unknown task", run_cfg(task_options={"synthetic-relaton": {"n_scenes": 24}}),
     ["task_options.synthetic-relaton: unknown task", "did you mean 'synthetic-relation'"]),
    ("task option of a task this run leaves out", run_cfg(task_options={"stepgame-answer": {"hops": [1]}}),
     ["task_options.stepgame-answer.hops", "not a parameter"]),
    ("unknown split policy", run_cfg(split="random"), ["split: 'random'", "own, zeroshot"]),
    ("missing data_dir", run_cfg(data_dir="no-such-data"), ["data_dir:", "does not exist"]),
    ("rsa step with a repeated seed", rsa_cfg(seeds=[1, 1], rsa={"references": ["relation"]}), ["seeds: 1"]),
    ("meaning step with a layer an encoder lacks", lambda tmp, m: ["meaning", str(_config(
        tmp, m, meaning={"layers": "7"}))], ["meaning.layers: encoder 'sbert-minilm'", "unknown layer(s) 7"]),
    ("lab would train on the probed scenes", _lab_probing_its_training_scenes,
     ["lab: task_options.synthetic-relation.n_scenes is 48", "probe_n_scenes is 24"]),
    ("probe with a model missing offline", _probe("--encoder", "bert"), ["'bert'", "--model-path bert=DIR"]),
    ("probe with a layer an encoder lacks", _probe("--encoder", "bert", "--model-path", "{bert}", "--layers", "9"),
     ["layers: encoder 'bert'", "unknown layer"]),
    # the earlier per-stage cases
    ("unknown task in a run config", run_cfg(tasks=["vsr-colour"]), ["tasks", "unknown task 'vsr-colour'"]),
    ("unknown run-config field", run_cfg(seed=3), ["seed", "Extra inputs are not permitted"]),
    ("task_encoders naming an unknown task", run_cfg(task_encoders={"vsr-colour": ["bert"]}),
     ["task_encoders", "unknown task(s) ['vsr-colour']"]),
    ("bad rsa comparison", rsa_cfg(rsa={"comparisons": ["nope"]}), ["rsa.comparisons"]),
    ("probe with an unknown task", lambda tmp, m: ["probe", "--task", "nope", "--encoder", "bert", "--out",
                                                   str(tmp / "o")], ["unknown task 'nope'"]),
    ("embed with an unknown encoder", _embed("--encoder", "no-such-encoder"), ["unknown encoder 'no-such-encoder'"]),
    ("embed with a model missing offline", _embed("--encoder", "bert"), ["'bert-base-uncased'", "--model-path DIR"]),
    ("embed with an unknown layer", _embed("--encoder", "sbert-mpnet", "--model-path", "{sbert}", "--layers", "99"),
     ["unknown layer(s) 99"]),
    ("report on a folder that is no run", lambda tmp, m: ["report", str(tmp)], ["not a run directory"]),
    ("unknown probe kind", run_cfg(probes=["linaer"]), ["probes", "unknown probe 'linaer'", "did you mean 'linear'"]),
    ("data summary of an unknown dataset", lambda tmp, m: ["data", "summary", "--dataset", "stepgam"],
     ["unknown dataset 'stepgam'", "did you mean 'stepgame'"]),
    ("data summary of a missing folder", lambda tmp, m: ["data", "summary", "--dataset", "vsr", "--data-dir",
                                                         str(tmp / "missing")], ["does not exist"]),
]


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.mark.parametrize(("case", "command", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_exits_2_naming_the_field_and_writes_nothing(case, command, expected, tmp_path, models):
    argv = command(tmp_path, models)
    before = _files(tmp_path)
    result = CliRunner().invoke(app, argv)
    message = " ".join(result.output.split())
    assert result.exit_code == 2, f"{case}: exit {result.exit_code}\n{result.output}"
    assert "Traceback" not in result.output
    for needle in expected:
        assert needle in message, f"{case}: {needle!r} not in {message!r}"
    assert _files(tmp_path) == before, f"{case}: files were written"


def test_report_on_unreadable_tables_with_partial_lists_them(tmp_path, models):
    argv = _unreadable_run(tmp_path, models)
    result = CliRunner().invoke(app, [*argv, "--partial"])
    assert result.exit_code == 0, result.output
    html = (Path(argv[1]) / "report.html").read_text(encoding="utf-8")
    missing = html.split('id="missing"', 1)[1]
    assert "results.parquet: unreadable" in missing and "manifest.json: unreadable" in missing
    assert "No probe accuracies in this run" in html and "No probe's interval covers chance" not in html


def _arrays(n_train: int = 40, n_test: int = 10) -> tuple[dict, np.ndarray, dict]:
    rng = np.random.default_rng(0)
    return ({"0": rng.normal(size=(n_train, 4))}, np.array(["a", "b"] * (n_train // 2), dtype=object),
            {"0": rng.normal(size=(n_test, 4))})


API_ROWS = [
    ("control_types_test shorter than X_test", dict(control_types_test=["t"] * 9),
     r"control_types_test has 9 entries but X_test \(test rows\) has 10"),
    ("control_types_train longer than y_train", dict(control_types_train=["t"] * 41),
     r"control_types_train has 41 entries but y_train \(training labels\) has 40"),
    ("groups_train shorter than y_train", dict(groups_train=["g"] * 39),
     r"groups_train has 39 entries but y_train \(training labels\) has 40"),
    ("y_train shorter than X_train", dict(y_train=np.array(["a", "b"] * 19, dtype=object)),
     r"X_train\['0'\] has 40 rows but y_train has 38 labels"),
    ("test layers of different lengths", dict(X_test={"0": np.zeros((10, 4)), "1": np.zeros((9, 4))},
                                              X_train={"0": np.zeros((40, 4)), "1": np.zeros((40, 4))}),
     r"X_test\['1'\] has 9 rows but X_test\['0'\] has 10"),
]


@pytest.mark.parametrize(("case", "change", "match"), API_ROWS, ids=[r[0] for r in API_ROWS])
def test_probe_arrays_names_the_argument_and_both_lengths(case, change, match):
    X_train, y_train, X_test = _arrays()
    kwargs = dict(X_train=X_train, y_train=y_train, X_test=X_test, groups_train=[str(i) for i in range(40)],
                  control_types_train=["t"] * 40, control_types_test=["t"] * 10,
                  settings=ProbeSettings(seeds=(0,), Cs=(1.0,), mdl_seeds=0, device="cpu"))
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        probe_arrays(kwargs.pop("X_train"), kwargs.pop("y_train"), kwargs.pop("X_test"), **kwargs)


@pytest.mark.parametrize(("field", "value"), [("Cs", (0.0,)), ("Cs", (-1.0, 1.0)), ("seeds", (0, 0)),
                                              ("seeds", (-1,))])
def test_probe_settings_refuse_what_a_run_config_refuses(field, value):
    with pytest.raises(ValidationError, match=field):
        ProbeSettings(**{field: value})


def test_validate_run_config_api_lists_problems_and_run_refuses_before_writing(tmp_path, models):
    from spatial_probing.pipeline import RunConfigError, load_run_config, run, validate_run_config

    good = load_run_config(_config(tmp_path, models))
    assert validate_run_config(good) == []  # the valid base of every row above has no problem
    bad = good.model_copy(update={"Cs": [0.0, 1.0], "seeds": [2, 2]})
    problems = validate_run_config(bad)
    assert [p.split(":")[0] for p in problems] == ["seeds", "Cs"]
    with pytest.raises(RunConfigError) as err:
        run(bad, log=lambda *_: None)
    assert err.value.problems == problems and not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()



def test_a_control_of_a_lab_encoder_in_the_floor_waits_for_the_lab(tmp_path: Path, models: dict[str, Path]) -> None:
    """``random-init:lab-mlm-s0`` names an encoder the lab has yet to train: not an error before training, while
    a control of an unknown non-lab encoder still is."""
    from spatial_probing.pipeline import load_run_config, validate_run_config

    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"out": "lab", "seeds": [0], "data": {"n_scenes": 96, "probe_n_scenes": 96},
                                   "train": {"steps": 1}}))
    config = load_run_config(_config(tmp_path, models, lab=str(lab), encoders=["lab-*"],
                                     lexical_floor=["bow:", "random-init:lab-mlm-s0"], model_paths={},
                                     task_options={"synthetic-relation": {"n_scenes": 48}}))
    assert validate_run_config(config) == []
    wrong = config.model_copy(update={"lexical_floor": ["bow:", "random-init:no-such-encoder"]})
    assert [p.split(":")[0] for p in validate_run_config(wrong)] == ["lexical_floor"]

def test_one_layer_controls_take_their_layer_under_any_selector(tmp_path: Path, models: dict[str, Path]) -> None:
    """``layers: "0,3,final"`` beside ``static:``/``bow:``/``order:`` is not an error: the selector is for the neural
    encoders; each one-layer control is probed on its one layer (and validation says nothing about it)."""
    from spatial_probing.pipeline import load_run_config, validate_run_config

    config = load_run_config(_config(tmp_path, models, layers="0,1,final"))
    assert validate_run_config(config) == []
    layers = {u.encoder: u.layers for u in config.units()}
    assert layers == {"sbert-minilm": "0,1,final", "static:bert": "all", "bow:": "all", "order:": "all"}
