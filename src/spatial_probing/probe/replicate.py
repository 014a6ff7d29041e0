"""``protocol: founding-study``: the founding study's table and the corrected table, per encoder, in ``replication/``.

Reuses the embed stage (``load_encoder``, ``embed_examples`` and its cache): each encoder embeds VSR's
random-split training captions once (and the zero-shot split's train and test captions for the
concept-disjoint table) at its sentence-embedding layer (``final``; a control without one, such as
``static:``, at its only layer). Writes, atomically, under ``OUT/replication/``:

* ``founding__<encoder>.parquet``/``.csv`` — the founding study's per-relation table (one per encoder);
* ``summary.parquet``/``.csv`` — mean, std, median, min, max and n relations of macro-F1 per
  encoder × protocol × split (``founding``/random, ``corrected``/random, ``corrected``/zeroshot);
* ``corrected.parquet``/``.csv`` — the corrected per-relation rows of every encoder and split;
* ``comparisons.parquet``/``.csv`` — paired tests across relations between every two encoders.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spatial_probing.io import atomic_path, atomic_write_json
from spatial_probing.probe.founding import (
    caption_key,
    compare_across_relations,
    corrected_table,
    founding_study_table,
    retained_relations,
    summarize_scores,
)

__all__ = ["REPLICATION_DIR", "embedding_layer", "run_founding_study", "write_table"]

#: Sub-folder of the run directory holding the replication tables.
REPLICATION_DIR = "replication"


def write_table(df: pd.DataFrame, stem: Path) -> dict[str, Path]:
    """``stem.parquet`` and ``stem.csv``, each written atomically."""
    out = {}
    for ext in ("parquet", "csv"):
        path = stem.with_suffix(f".{ext}")
        with atomic_path(path) as tmp:
            df.to_parquet(tmp, index=False) if ext == "parquet" else df.to_csv(tmp, index=False)
        out[ext] = path
    return out


def embedding_layer(layer_names: list[str]) -> str:
    """The encoder's sentence embedding: ``final`` when it has one, else its deepest numbered layer."""
    if "final" in layer_names:
        return "final"
    numbered = [n for n in layer_names if n.isdigit()]
    return max(numbered, key=int) if numbered else layer_names[-1]


def _embed(encoder: Any, examples: list[Any], layer: str, cache_dir: Path | None, show_progress: bool) -> np.ndarray:
    from spatial_probing.embed import embed_examples

    return np.asarray(embed_examples(examples, encoder, layers=[layer], cache_dir=cache_dir,
                                     show_progress=show_progress)[layer], dtype=np.float32)


def run_founding_study(config: Any, *, command: str = "", log=print, show_progress: bool = True) -> dict[str, Path]:
    """Every encoder of ``config`` (a :class:`~spatial_probing.pipeline.RunConfig`) under both protocols."""
    from spatial_probing.data.vsr import load_vsr
    from spatial_probing.embed import load_encoder
    from spatial_probing.io import package_versions
    from spatial_probing.probe.runner import safe_name

    out = Path(config.out) / REPLICATION_DIR
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = config.cache_dir if config.cache_dir is not None else Path(config.out) / "cache"
    train = load_vsr(config.data_dir, variant="random", split="train")
    zs = load_vsr(config.data_dir, variant="zeroshot")
    zs_train = [e for e in zs if e.split == "train"]
    zs_test = [e for e in zs if e.split == "test"]
    relations = [str(e.relation) for e in train]
    truth = [int(bool(e.truth)) for e in train]
    groups = [caption_key(e.text) for e in train]  # identical caption texts never straddle train and test
    kept = retained_relations(relations)
    log(f"founding study: {len(train)} VSR random-split training captions, {len(kept)} relations with ≥ 50")
    common = {"Cs": tuple(config.Cs), "inner_folds": config.inner_folds, "max_iter": config.max_iter,
              "n_boot": config.n_boot, "seed": config.seeds[0], "device": config.device,
              "show_progress": show_progress}
    paths: dict[str, Path] = {}
    summary, corrected, per_encoder, timing = [], [], {}, {}
    for name in config.encoders:
        t0 = time.perf_counter()
        encoder = load_encoder(name, model_path=config.model_paths.get(name), device=config.device)
        layer = embedding_layer(encoder.layer_names)
        log(f"founding study × {name} (layer {layer})")
        # one pass over every caption the tables use (the zero-shot captions are VSR captions too: the encoder
        # embeds each distinct text once), one cache entry
        emb = _embed(encoder, train + zs_train + zs_test, layer, cache_dir, show_progress)
        X, Xz_tr, Xz_te = np.split(emb, [len(train), len(train) + len(zs_train)])
        founding = founding_study_table(X, relations, truth, texts=[e.text for e in train],
                                        show_progress=show_progress)
        founding.insert(0, "encoder", name)
        founding.insert(1, "layer", layer)
        paths[f"founding:{name}"] = write_table(founding, out / f"founding__{safe_name(name)}")["parquet"]
        summary.append({"encoder": name, "layer": layer, "protocol": "founding", "split": "random",
                        **summarize_scores(founding), "n_degenerate": int(founding.degenerate.sum())})
        rows = [("random", corrected_table(X, relations, groups, kept=kept, truth=truth, **common))]
        rows.append(("zeroshot", corrected_table(
            Xz_tr, [str(e.relation) for e in zs_train], [caption_key(e.text) for e in zs_train], kept=kept,
            truth=[int(bool(e.truth)) for e in zs_train], X_test=Xz_te,
            relations_test=[str(e.relation) for e in zs_test], **common)))
        for split, table in rows:
            table.insert(0, "encoder", name)
            table.insert(1, "layer", layer)
            table.insert(2, "split", split)
            corrected.append(table)
            summary.append({"encoder": name, "layer": layer, "protocol": "corrected", "split": split,
                            **summarize_scores(table), "n_degenerate": int(table.degenerate.sum())})
        per_encoder[name] = {"founding": founding.set_index("relation").macro_f1,
                             **{f"corrected/{s}": t.set_index("relation").macro_f1 for s, t in rows}}
        timing[name] = round(time.perf_counter() - t0, 1)
    summary_df = pd.DataFrame(summary)
    corrected_df = pd.concat(corrected, ignore_index=True)
    comparisons = []
    for a, b in itertools.combinations(config.encoders, 2):
        for key in per_encoder[a]:
            sa, sb = per_encoder[a][key], per_encoder[b][key]
            common_rel = sa.index.intersection(sb.index)
            protocol, _, split = key.partition("/")
            comparisons.append({"protocol": protocol, "split": split or "random", "encoder_a": a, "encoder_b": b,
                                **compare_across_relations(sa.loc[common_rel], sb.loc[common_rel],
                                                           seed=config.seeds[0])})
    comparisons_df = pd.DataFrame(comparisons)
    for stem, df in (("summary", summary_df), ("corrected", corrected_df), ("comparisons", comparisons_df)):
        paths[stem] = write_table(df, out / stem)["parquet"]
    atomic_write_json(out / "manifest.json", {"command": command, "config": config.model_dump(mode="json"),
                                              "relations": kept, "n_train": len(train),
                                              "n_zeroshot": [len(zs_train), len(zs_test)],
                                              "seconds_per_encoder": timing, "versions": package_versions()})
    return paths
