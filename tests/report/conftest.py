"""A realistic run directory written directly in the contract format, with planted effects.

Planted (synthetic-relation, 60 test items per category):

* clip-text beats sbert-mpnet on *diagonal* relations (0.92 vs 0.45 item-level accuracy) — a
  significant gain the report must state;
* on *proximity* relations both are at 0.70 — no gain may be claimed;
* ``random-init:bert`` is at chance (1/12) with selectivity ≈ 0;
* lab-vision beats lab-mlm on *diagonal* relations in every lab seed.

RSA: clip-text matches the ``direction`` reference (0.6, p = 0.001); others do not.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spatial_probing.data.synthetic import RELATION_DIRECTIONS
from spatial_probing.probe.runner import compare_encoders

CATEGORIES = {"horizontal": ["left", "right"], "vertical": ["above", "below"],
              "diagonal": ["upper-left", "upper-right", "lower-left", "lower-right"], "proximity": ["near", "far"],
              "topological": ["inside", "contains"]}
LAYERS = ["0", "1", "2", "final"]
SEEDS = [0, 1]
LAB = [f"lab-{o}-s{s}" for o in ("mlm", "textcl", "vision") for s in range(3)]
ENCODERS = ["sbert-mpnet", "bert", "clip-text", "random-init:bert", *LAB]
#: Final-layer item-level accuracy per (encoder, category); other layers are scaled down.
BASE = {"sbert-mpnet": {"horizontal": 0.85, "vertical": 0.85, "diagonal": 0.45, "proximity": 0.70,
                        "topological": 0.80},
        "bert": {"horizontal": 0.75, "vertical": 0.75, "diagonal": 0.40, "proximity": 0.70, "topological": 0.75},
        "clip-text": {"horizontal": 0.90, "vertical": 0.90, "diagonal": 0.92, "proximity": 0.70, "topological": 0.80},
        "random-init:bert": dict.fromkeys(CATEGORIES, 1 / 12)}
for _o, _diag in (("mlm", 0.35), ("textcl", 0.45), ("vision", 0.90)):
    for _s in range(3):
        BASE[f"lab-{_o}-s{_s}"] = {"horizontal": 0.7, "vertical": 0.7, "diagonal": _diag, "proximity": 0.6,
                                   "topological": 0.6}
N_PER_CATEGORY = 60
STEPGAME_ENCODERS = ["sbert-mpnet", "clip-text"]


def _scale(layer: str) -> float:
    return {"0": 0.55, "1": 0.8, "2": 0.95, "final": 1.0}[layer]


def _predictions(rng: np.random.Generator) -> pd.DataFrame:
    relations = [r for rels in CATEGORIES.values() for r in rels]
    cat_of = {r: c for c, rels in CATEGORIES.items() for r in rels}
    items = []
    for cat, rels in CATEGORIES.items():
        for i in range(N_PER_CATEGORY):
            rel = rels[i % len(rels)]
            items.append((f"synthetic/0/scene{cat[:3]}{i:03d}/original", rel, cat))
    latent = rng.random(len(items))  # shared item difficulty: encoders err on related items
    frames = []
    for enc in ENCODERS:
        for layer in LAYERS:
            for seed in SEEDS:
                noise = np.random.default_rng([seed, len(enc), LAYERS.index(layer)]).random(len(items)) * 0.1
                p = np.array([BASE[enc][c] * (_scale(layer) if enc != "random-init:bert" else 1.0)
                              for _, _, c in items])
                correct = (latent + noise - 0.05) < p
                y_true = np.array([r for _, r, _ in items], dtype=object)
                wrong = np.array([relations[(relations.index(r) + 1) % 12] for r in y_true], dtype=object)
                y_pred = np.where(correct, y_true, wrong)
                control_true = y_true[::-1].copy()
                c_ok = rng.random(len(items)) < (0.5 if enc != "random-init:bert" else 1 / 12)
                control_pred = np.where(c_ok, control_true, np.roll(control_true, 1))
                frames.append(pd.DataFrame({
                    "dataset": "synthetic", "task": "synthetic-relation", "encoder": enc, "layer": layer,
                    "probe": "linear", "seed": seed, "split": "own", "example_id": [i for i, _, _ in items],
                    "y_true": y_true.astype(str), "y_pred": y_pred.astype(str), "correct": correct,
                    "control_true": control_true.astype(str), "control_pred": control_pred.astype(str),
                    "relation": [r for _, r, _ in items], "category": [cat_of[r] for _, r, _ in items]}))
    # StepGame: accuracy falls with k
    directions = ["left", "right", "above", "below", "upper-left", "upper-right", "lower-left", "lower-right",
                  "overlap"]
    for enc in STEPGAME_ENCODERS:
        for layer in LAYERS:
            for seed in SEEDS:
                rows = []
                for k in range(1, 6):
                    for i in range(40):
                        rel = directions[i % 9]
                        acc = (0.9 if enc == "clip-text" else 0.8) / k * _scale(layer)
                        ok = np.random.default_rng([k, i, seed, len(enc)]).random() < acc
                        rows.append((f"stepgame/test/{k}/{i}", rel, rel if ok else directions[(i + 1) % 9], ok,
                                     str(k)))
                df = pd.DataFrame(rows, columns=["example_id", "y_true", "y_pred", "correct", "k"])
                frames.append(df.assign(dataset="stepgame", task="stepgame-answer", encoder=enc, layer=layer,
                                        probe="linear", seed=seed, split="own", control_true=df.y_true,
                                        control_pred=df.y_pred.where(df.index % 2 == 0, df.y_true), relation=df.y_true))
    return pd.concat(frames, ignore_index=True)


def _results(preds: pd.DataFrame) -> pd.DataFrame:
    """Contract rows from the predictions (normal-approximation intervals: a fixture, not the probe stage)."""
    keys = ["dataset", "task", "encoder", "layer", "probe", "seed", "split"]
    p = preds.assign(control_ok=preds.control_true == preds.control_pred, all="all")
    p["majority_ok"] = p.y_true == p.groupby(keys).y_true.transform(lambda s: s.mode().iloc[0])
    frames = []
    for kind in ("all", "category", "relation", "k"):
        if kind not in p:
            continue
        g = p.dropna(subset=[kind]).groupby(keys + [kind])
        stats = g.agg(accuracy=("correct", "mean"), control_accuracy=("control_ok", "mean"),
                      majority=("majority_ok", "mean"), n_test=("correct", "size")).reset_index()
        stats["selectivity"] = stats.accuracy - stats.control_accuracy
        long = stats.melt(id_vars=keys + [kind, "n_test"], var_name="metric", value_name="value")
        half = 1.96 * np.sqrt(long.value.clip(0, 1) * (1 - long.value.clip(0, 1)) / long.n_test)
        frames.append(long.assign(subset_kind=kind, subset=long[kind].astype(str), ci_low=long.value - half,
                                  ci_high=long.value + half).drop(columns=kind))
    overall = frames[0][frames[0].metric == "accuracy"]
    chance = overall.task.map({"synthetic-relation": 1 / 12, "stepgame-answer": 1 / 9})
    for metric, value in (("chance", chance), ("cv_accuracy", overall.value + 0.02 * (overall.layer == "final")),
                          ("control_cv_accuracy", 0.4), ("C", 1.0), ("control_C", 1.0),
                          ("mdl_codelength_bits", 2000 * (1.2 - overall.value)),
                          ("mdl_compression", 1 + 2 * overall.value)):
        frames.append(overall.assign(metric=metric, value=value, ci_low=np.nan, ci_high=np.nan))
    out = pd.concat(frames, ignore_index=True)
    return out[["dataset", "task", "encoder", "layer", "probe", "seed", "split", "subset_kind", "subset", "metric",
                "value", "ci_low", "ci_high", "n_test"]]


def _rsa_and_rdms(run: Path, rng: np.random.Generator) -> None:
    rows = []
    for enc in ["sbert-mpnet", "bert", "clip-text"]:
        for layer in LAYERS:
            for ref in ("direction", "category"):
                value = (0.6 if enc == "clip-text" and ref == "direction" else 0.05) * _scale(layer)
                p = 0.001 if value > 0.3 else 0.4
                rows.append({"dataset": "synthetic", "encoder": enc, "layer": layer, "reference": ref,
                             "rdm_method": "cosine", "comparison": "spearman", "value": value, "p_value": p,
                             "ci_low": value - 0.08, "ci_high": value + 0.08, "n_items": 240,
                             "n_permutations": 1000})
    rsa = pd.DataFrame(rows)
    rsa.to_parquet(run / "rsa.parquet", index=False)
    rsa.to_csv(run / "rsa.csv", index=False)
    labels = np.array(sorted(RELATION_DIRECTIONS), dtype=str)
    (run / "rdms").mkdir()
    for enc in ["sbert-mpnet", "clip-text"]:
        for layer in ("2", "final"):
            cent = rng.normal(size=(len(labels), 8)).astype(np.float32)
            if enc == "clip-text":
                cent[:, :2] += 3 * np.array([RELATION_DIRECTIONS[str(r)] or (0, 0) for r in labels], dtype=np.float32)
            unit = cent / np.linalg.norm(cent, axis=1, keepdims=True)
            np.savez(run / "rdms" / f"synthetic__{enc}__{layer}.npz", labels=labels, rdm=1 - unit @ unit.T,
                     centroids=cent, method=np.array("cosine"))
    directional = np.array([r for r in labels if RELATION_DIRECTIONS[str(r)]], dtype=str)
    d = np.array([RELATION_DIRECTIONS[str(r)] for r in directional], dtype=np.float64)
    np.savez(run / "rdms" / "synthetic__reference__direction.npz", labels=directional,
             rdm=np.linalg.norm(d[:, None] - d[None], axis=-1))


def _manifest(encoders: list[str]) -> dict:
    units = []
    for task in ("synthetic-relation", "stepgame-answer"):
        for enc in (encoders if task == "synthetic-relation" else STEPGAME_ENCODERS):
            units.append({"unit": {"task": task, "encoder": enc, "settings": {"probe": "linear", "seeds": SEEDS}},
                          "config_hash": "0123456789abcdef", "data_hash": "ab" * 32,
                          "task": {"name": task, "dataset": task.split("-")[0], "description": f"{task} (fixture)",
                                   "control_type": "(subject, object) pair", "label": "relation"},
                          "encoder": {"name": enc, "kind": "clip" if "clip" in enc else "hf", "source": f"hub/{enc}",
                                      "revision": "abc123", "weights_hash": "f" * 64, "modality": "text",
                                      "control": "random-init" if enc.startswith("random-init") else None},
                          "n_items": 300})
    return {"command": "spatial-probing run fixture.yaml", "config": {"tasks": ["synthetic-relation"]},
            "started": "2025-01-01T00:00:00+00:00", "finished": "2025-01-01T00:10:00+00:00",
            "versions": {"python": "3.11"}, "seeds": SEEDS, "units": units, "tables_sha256": {}}


def write_fake_run(run: Path) -> Path:
    """Write results/predictions/comparisons/manifest/rsa/rdms for the planted effects above."""
    run.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    preds = _predictions(rng)
    results = _results(preds)
    # per task, each with only its own subset columns (as a single-task run writes them); lab encoders are
    # compared by objective in the report's lab section, so they are left out here to keep the fixture fast
    keep = preds[~preds.encoder.str.startswith("lab-")]
    gc.freeze()  # statsmodels' Holm calls gc.collect() each time (~0.3 s with torch loaded); freezing makes it cheap
    try:
        comps = pd.concat([compare_encoders(p.dropna(axis=1, how="all"), results, n_permutations=200)
                           for _, p in keep.groupby("task")], ignore_index=True)
    finally:
        gc.unfreeze()
    for name, df in (("results", results), ("predictions", preds), ("comparisons", comps)):
        df.to_parquet(run / f"{name}.parquet", index=False)
    (run / "manifest.json").write_text(json.dumps(_manifest(ENCODERS)))
    _rsa_and_rdms(run, rng)
    return run


@pytest.fixture(scope="session")
def fake_run_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_run(tmp_path_factory.mktemp("report") / "template")


@pytest.fixture
def fake_run(fake_run_template: Path, tmp_path: Path) -> Path:
    """A fresh copy per test (tests delete or corrupt pieces of it)."""
    import shutil

    return Path(shutil.copytree(fake_run_template, tmp_path / "run"))
