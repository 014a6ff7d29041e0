"""Meaning over words: known answers (bag of words 0, a planted meaning encoder 1), skips counted, run step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest_models import build_tiny_sbert
from typer.testing import CliRunner

from spatial_probing.cli import app
from spatial_probing.data import load_dataset
from spatial_probing.data.converse import transfer_fact
from spatial_probing.data.schema import Example
from spatial_probing.data.synthetic import generate
from spatial_probing.embed import embed_examples, fit_lexical, load_encoder
from spatial_probing.pipeline import load_run_config, run
from spatial_probing.rsa.meaning import (
    MEANING_COLUMNS, TripleSet, build_triples, cap_triples, cluster_bootstrap_share, meaning_rows,
)


def lexical_embed(triples: TripleSet, name: str = "bow:") -> dict[str, np.ndarray]:
    """The toolkit's lexical-floor encoder, fitted on the triples (as the meaning step does)."""
    encoder = load_encoder(name)
    fit_lexical(encoder, triples.examples)
    return embed_examples(triples.examples, encoder, cache_dir=None, show_progress=False)


def meaning_embed(triples: TripleSet, dataset: str) -> dict[str, np.ndarray]:
    """A planted encoder of meaning: one-hot of (fact, fact subject, fact object), converses normalised."""
    keys = []
    for e in triples.examples:
        subj, obj = (e.subject, e.object)
        if dataset == "vsr":
            words = e.text.rstrip(".").split(" ")
            subj, obj = words[1], words[-1]
        fact = transfer_fact(str(e.relation), dataset) or (str(e.relation), False)
        keys.append((fact[0], *((obj, subj) if fact[1] else (subj, obj))))
    vocab = {k: i for i, k in enumerate(sorted({p for k in keys for p in [("r", k[0]), ("s", k[1]), ("o", k[2])]}))}
    x = np.zeros((len(keys), len(vocab)))
    for i, k in enumerate(keys):
        for p in [("r", k[0]), ("s", k[1]), ("o", k[2])]:
            x[i, vocab[p]] = 1
    return {"final": x}


@pytest.fixture(scope="module")
def synthetic() -> TripleSet:
    return build_triples(load_dataset("synthetic", n_scenes=120, seed=0), "synthetic")


@pytest.mark.parametrize("name", ["bow:", "order:"])
def test_lexical_floor_scores_exactly_zero(synthetic: TripleSet, name: str) -> None:
    rows = meaning_rows(lexical_embed(synthetic, name), synthetic, dataset="synthetic", encoder=name, n_boot=200)
    assert list(rows.columns) == MEANING_COLUMNS
    scored = rows[rows.n_triples > 0]
    assert set(scored.kind) == {"all", "horizontal", "vertical", "diagonal", "topological"}
    assert (scored.value == 0).all() and (scored.ci_high == 0).all()


def test_planted_meaning_encoder_scores_one(synthetic: TripleSet) -> None:
    rows = meaning_rows(meaning_embed(synthetic, "synthetic"), synthetic, dataset="synthetic", encoder="m", n_boot=200)
    assert (rows[rows.n_triples > 0].value == 1).all()


def test_symmetric_relations_are_skipped_and_counted(synthetic: TripleSet) -> None:
    rows = meaning_rows(lexical_embed(synthetic), synthetic, dataset="synthetic", encoder="bow", n_boot=0)
    prox = rows[rows.kind == "proximity"].iloc[0]
    assert prox.n_triples == 0 and np.isnan(prox.value) and prox.n_skipped == 20  # 10 near + 10 far scenes
    assert "symmetric" in json.loads(prox.skip_reasons).popitem()[0]
    everything = rows[rows.kind == "all"].iloc[0]
    assert everything.n_triples + everything.n_skipped == 120 and everything.n_clusters == 100


def test_vsr_triples_count_every_skip_and_score_known_answers() -> None:
    def ex(i: int, text: str, relation: str, category: str = "Projective", image: str = "a") -> Example:
        return Example(id=f"vsr/x/{i}", dataset="vsr", split="train", text=text, relation=relation,
                       category=category, group=f"image:{image}")

    examples = [ex(0, "The cat is left of the dog.", "left of"), ex(1, "The cup is inside the box.", "inside",
                                                                   "Topological", "b"),
                ex(2, "The cat is near the dog.", "near", "Proximity"), ex(3, "cat left dog", "left of"),
                ex(4, "The cat is toward the dog.", "toward", "Directional"),
                ex(5, "The cat is left of the dog.", "left of", image="c")]
    triples = build_triples(examples, "vsr")
    assert len(triples) == 2 and triples.examples[4].text == "The box contains the cup."
    skipped = {k: sum(c.values()) for k, c in triples.skipped.items()}
    assert skipped == {"Proximity": 1, "Projective": 2, "Directional": 1}
    assert meaning_rows(lexical_embed(triples), triples, dataset="vsr", encoder="b", n_boot=0).query(
        "n_triples > 0").value.eq(0).all()
    assert meaning_rows(meaning_embed(triples, "vsr"), triples, dataset="vsr", encoder="m", n_boot=0).query(
        "n_triples > 0").value.eq(1).all()


def test_empty_triple_set_gives_nan_rows_not_an_error() -> None:
    triples = build_triples([Example(id="v/0", dataset="vsr", split="train", text="A cat.", relation="near",
                                     category="Proximity")], "vsr")
    rows = meaning_rows({"final": np.zeros((0, 3))}, triples, dataset="vsr", encoder="e")
    assert set(rows.kind) == {"all", "Proximity"} and rows.value.isna().all() and (rows.n_skipped == 1).all()
    with pytest.raises(ValueError, match="triples exist for"):
        build_triples([], "stepgame")


def test_cluster_bootstrap_resamples_clusters() -> None:
    wins = np.r_[np.ones(100), np.zeros(100)]
    value, lo, hi = cluster_bootstrap_share(wins, ["a"] * 100 + ["b"] * 100, n_boot=500)
    assert value == 0.5 and lo == 0.0 and hi == 1.0  # two clusters: an item bootstrap would give ~[0.43, 0.57]
    value, lo, hi = cluster_bootstrap_share(wins, [str(i) for i in range(200)], n_boot=500)
    assert 0.4 < lo < 0.5 < hi < 0.6
    assert np.isnan(cluster_bootstrap_share(np.zeros(0), [])[0])


def test_cap_keeps_whole_clusters_and_counts_the_rest(synthetic: TripleSet) -> None:
    capped = cap_triples(synthetic, 30, seed=0)
    assert len(capped) <= 30
    total = sum(sum(c.values()) for c in capped.skipped.values())
    assert len(capped) + total == 120


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_run_step_writes_meaning_tables_resumes_and_cli(tmp_path: Path) -> None:
    sbert = build_tiny_sbert(tmp_path / "sbert")
    cfg = {"out": "run", "cache_dir": "cache", "tasks": ["synthetic-relation"], "encoders": ["sbert-minilm"],
           "seeds": [0], "Cs": [1.0], "n_boot": 100, "mdl_seeds": 0, "device": "cpu", "rsa": None, "report": False,
           "task_options": {"synthetic-relation": {"n_scenes": 24}}, "model_paths": {"sbert-minilm": str(sbert)},
           "meaning": {"n_boot": 100}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    config = load_run_config(path)
    paths = run(config, log=lambda *_: None)
    table = pd.read_parquet(paths["meaning"])
    assert list(table.columns) == MEANING_COLUMNS and pd.read_csv(paths["meaning_csv"]).shape == table.shape
    assert set(table.layer) == {"0", "1", "2", "final"} and (table.dataset == "synthetic").all()
    # the probe step's examples: the task's train and test scenes (dev is not loaded); near/far are symmetric
    used = [e for e in generate(24, 0) if e.variant == "original" and e.split in ("train", "test")]
    symmetric = sum(e.relation in ("near", "far") for e in used)
    assert table[table.kind == "all"].n_triples.eq(len(used) - symmetric).all()
    assert table[table.kind == "all"].n_skipped.eq(symmetric).all()
    assert table.value.dropna().between(0, 1).all()
    assert set(table.encoder) == {"sbert-minilm", "bow:", "order:"}  # the lexical floor is in by default
    assert table[table.encoder.isin(["bow:", "order:"])].value.dropna().eq(0).all()
    part = next((config.out / "meaning_parts").glob("*.parquet"))
    mtime = part.stat().st_mtime_ns
    logs: list[str] = []
    run(config, log=logs.append)
    assert part.stat().st_mtime_ns == mtime and any("skip meaning" in m for m in logs)
    result = CliRunner().invoke(app, ["meaning", str(path)])
    assert result.exit_code == 0 and "meaning.parquet" in result.output
    cfg["tasks"], cfg["task_options"] = ["stepgame-answer"], {}
    path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["meaning", str(path)])
    assert result.exit_code != 0 and "no run task reads a dataset with meaning-over-words triples" in result.output
