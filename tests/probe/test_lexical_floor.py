"""The lexical floor in runs: bow:/order: added to every task, fitted per outer fold, logged beside each encoder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest_models import build_tiny_sbert

from spatial_probing.pipeline import RunConfig, load_run_config, run
from spatial_probing.probe.engine import ProbeSettings
from spatial_probing.probe.floor import floor_table
from spatial_probing.probe.runner import UnitConfig, run_unit

FAST = ProbeSettings(seeds=(0,), Cs=(1.0,), n_boot=100, mdl_seeds=0, device="cpu")


def test_every_task_gets_the_lexical_floor_unless_it_opts_out() -> None:
    cfg = RunConfig(tasks=["synthetic-relation", "synthetic-argument-order"], encoders=["sbert-minilm",
                    "static:sbert-minilm"], layers="final", task_encoders={"synthetic-argument-order": ["sbert-mpnet",
                                                                                                       "order:"]})
    assert [(u.task, u.encoder, u.layers) for u in cfg.units()] == [  # one-layer encoders: their one layer
        ("synthetic-relation", "sbert-minilm", "final"), ("synthetic-relation", "static:sbert-minilm", "all"),
        ("synthetic-relation", "bow:", "all"),
        ("synthetic-relation", "order:", "all"), ("synthetic-argument-order", "sbert-mpnet", "final"),
        ("synthetic-argument-order", "order:", "all"), ("synthetic-argument-order", "bow:", "all")]
    assert [u.encoder for u in cfg.rsa_units()] == ["sbert-minilm", "static:sbert-minilm", "bow:", "order:"]
    off = RunConfig(tasks=["synthetic-relation"], encoders=["sbert-minilm"], lexical_floor=[])
    assert [u.encoder for u in off.units()] == ["sbert-minilm"]
    with pytest.raises(ValueError, match="not lexical-floor encoders"):
        RunConfig(tasks=["synthetic-relation"], encoders=["sbert-minilm"], lexical_floor=["sbert-mpnet"])


def test_bag_of_words_decodes_synthetic_relations_and_word_order_does_not() -> None:
    """Known answer: the relation phrase is in the words (bow: ≈ 1); the noun slots carry none of it."""
    acc = {}
    for name in ("bow:", "order:"):
        results, _, meta = run_unit(UnitConfig(task="synthetic-relation", encoder=name, settings=FAST,
                                               load_kwargs={"n_scenes": 240}), show_progress=False)
        row = results[(results.metric == "accuracy") & (results.subset == "all")]
        acc[name] = float(row.value.iloc[0])
        assert meta["encoder"]["control"] == name[:-1] and meta["encoder"]["fits"][0]["n_examples"] > 0
    chance = 1 / 12
    assert acc["bow:"] >= 0.95 and acc["order:"] < chance + 0.15, acc


def test_the_vocabulary_is_refitted_on_each_outer_folds_training_items() -> None:
    config = UnitConfig(task="synthetic-relation", encoder="bow:", split="concept-kfold", outer_folds=3,
                        settings=FAST, load_kwargs={"n_scenes": 96})
    _, _, meta = run_unit(config, show_progress=False)
    fits = meta["encoder"]["fits"]
    assert len(fits) == meta["n_folds"] >= 2
    assert [f["n_examples"] for f in fits] == [s["n_train"] for s in meta["splits"]]
    assert len({f["vocabulary_hash"] for f in fits}) == len(fits)


def test_run_logs_each_task_beside_its_best_lexical_floor(tmp_path: Path) -> None:
    sbert = build_tiny_sbert(tmp_path / "sbert")
    cfg = {"out": "run", "cache_dir": "cache", "tasks": ["synthetic-relation"], "encoders": ["sbert-minilm"],
           "seeds": [0], "Cs": [1.0], "n_boot": 100, "mdl_seeds": 0, "device": "cpu", "rsa": None, "report": False,
           "task_options": {"synthetic-relation": {"n_scenes": 48}}, "model_paths": {"sbert-minilm": str(sbert)}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    lines: list[str] = []
    paths = run(load_run_config(tmp_path / "run.yaml"), log=lines.append)
    results = pd.read_parquet(paths["results"])
    assert set(results.encoder) == {"sbert-minilm", "bow:", "order:"}
    table = floor_table(results)
    assert list(table.encoder) == ["sbert-minilm"]
    row = table.iloc[0]
    floors = results[(results.metric == "accuracy") & (results.subset == "all") & results.encoder.str.endswith(":")]
    assert row.floor_accuracy == floors.value.max() and row.floor_encoder == floors.loc[floors.value.idxmax()].encoder
    assert row.minus_floor == pytest.approx(row.accuracy - row.floor_accuracy)
    text = "\n".join(lines)
    assert "lexical floor — synthetic-relation (linear): best of bow:, order: is" in text
    assert f"{row.floor_accuracy:.3f}" in text and f"{row.minus_floor:+.3f}" in text


def test_rsa_runs_the_lexical_floor_fitted_on_the_items_it_analyses(tmp_path: Path) -> None:
    from spatial_probing.rsa.runner import RSASettings, RSAUnit, run_rsa_unit

    settings = RSASettings(references=["relation"], n_permutations=20, n_boot=0, max_items=60, layers="final")
    for name in ("bow:", "order:"):
        table, meta = run_rsa_unit(RSAUnit(task="synthetic-relation", encoder=name, settings=settings,
                                           load_kwargs={"n_scenes": 24}), tmp_path, log=lambda *_: None)
        assert list(table.layer) == ["0"] and table.value.notna().all()
        assert meta["encoder"]["fits"][0]["n_examples"] == meta["items"]["examples"]
