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
import json
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

#: Columns of ``comparisons.csv`` (also when a run has one encoder and so no pair).
COMPARISON_COLUMNS = ["protocol", "split", "encoder_a", "encoder_b", "diff", "ci_low", "ci_high", "wilcoxon_p",
                      "permutation_p", "n_a_better", "n_b_better", "n_relations"]

#: Sub-folder of the run directory holding the replication tables.
REPLICATION_DIR = "replication"


def write_table(df: pd.DataFrame, stem: Path) -> dict[str, Path]:
    """``stem.parquet`` and ``stem.csv``, each written atomically."""
    out = {}
    for ext in ("parquet", "csv"):
        path = stem.parent / f"{stem.name}.{ext}"  # not with_suffix: encoder names may hold dots
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


def _embed_splits(encoder: Any, train: list[Any], zs_train: list[Any], zs_test: list[Any], layer: str,
                  cache_dir: Path | None, show_progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings of the random-split training captions and of the zero-shot train and test captions.

    A neural encoder embeds all of them in one pass (the zero-shot captions are VSR captions too, and each
    distinct text is embedded once: one cache entry); a lexical floor (``bow:``, ``order:``) learns its
    vocabulary from each table's training captions only: the random split's, then the zero-shot split's.
    """
    from spatial_probing.embed.lexical import fit_lexical

    if fit_lexical(encoder, train):
        X = _embed(encoder, train, layer, cache_dir, show_progress)
        fit_lexical(encoder, zs_train)
        Z = _embed(encoder, zs_train + zs_test, layer, cache_dir, show_progress)
        return X, Z[:len(zs_train)], Z[len(zs_train):]
    emb = _embed(encoder, train + zs_train + zs_test, layer, cache_dir, show_progress)
    X, Xz_tr, Xz_te = np.split(emb, [len(train), len(train) + len(zs_train)])
    return X, Xz_tr, Xz_te


#: Bump when the replication tables' computation changes, so finished per-encoder parts are recomputed.
REPLICATION_FORMAT_VERSION = 1


def part_digests(name: str, fingerprint: str, data_hash: str, config: Any) -> dict[str, str]:
    """What an encoder's two tables depend on: the founding table on weights, data and code; the corrected one
    also on the corrected protocol's settings (so changing ``Cs`` does not recompute the founding table)."""
    from spatial_probing.io import sha256_bytes

    base = {"encoder": name, "fingerprint": fingerprint, "data": data_hash, "format": REPLICATION_FORMAT_VERSION}
    corrected = {**base, "Cs": list(config.Cs), "inner_folds": config.inner_folds, "max_iter": config.max_iter,
                 "n_boot": config.n_boot, "seed": config.seeds[0]}
    return {k: sha256_bytes(json.dumps(v, sort_keys=True).encode())[:16]
            for k, v in (("founding", base), ("corrected", corrected))}


def _load_part(parts: Path, name: str, table: str, digest: str) -> pd.DataFrame | None:
    """A finished per-encoder table whose digest matches, else None."""
    from spatial_probing.probe.runner import safe_name

    meta = parts / f"{safe_name(name)}__{table}.json"
    try:
        if json.loads(meta.read_text())["digest"] == digest:
            return pd.read_parquet(parts / f"{safe_name(name)}__{table}.parquet")
    except (OSError, ValueError, KeyError):
        pass
    return None


def _save_part(parts: Path, name: str, table: str, digest: str, df: pd.DataFrame, seconds: float) -> None:
    """The table first, its digest last (the completion mark), both atomically."""
    from spatial_probing.probe.runner import safe_name

    write_table(df, parts / f"{safe_name(name)}__{table}")
    atomic_write_json(parts / f"{safe_name(name)}__{table}.json", {"digest": digest, "encoder": name,
                                                                   "seconds": round(seconds, 1)})


def _summary_rows(founding: pd.DataFrame, corrected: pd.DataFrame) -> list[dict[str, Any]]:
    rows = [("founding", "random", founding)] + [("corrected", s, t) for s, t in corrected.groupby("split", sort=False)]
    return [{"encoder": t.encoder.iloc[0], "layer": t.layer.iloc[0], "protocol": protocol, "split": split,
             **summarize_scores(t), "n_degenerate": int(t.degenerate.sum())} for protocol, split, t in rows]


def run_founding_study(config: Any, *, command: str = "", log=print, show_progress: bool = True) -> dict[str, Path]:
    """Every encoder of ``config`` (a :class:`~spatial_probing.pipeline.RunConfig`; its lexical floor included)
    under both protocols. Each encoder's tables are kept in ``replication/parts/`` with the hash of what they
    depend on, so a rerun (e.g. with one more encoder) recomputes only what changed."""
    from spatial_probing.data.vsr import load_vsr
    from spatial_probing.embed import load_encoder
    from spatial_probing.embed.lexical import fit_lexical
    from spatial_probing.io import package_versions, sha256_texts
    from spatial_probing.probe.runner import safe_name

    out = Path(config.out) / REPLICATION_DIR
    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    cache_dir = config.cache_dir if config.cache_dir is not None else Path(config.out) / "cache"
    train = load_vsr(config.data_dir, variant="random", split="train")
    zs = load_vsr(config.data_dir, variant="zeroshot")
    zs_train = [e for e in zs if e.split == "train"]
    zs_test = [e for e in zs if e.split == "test"]
    data_hash = sha256_texts(f"{e.id}\x1f{e.text}\x1f{e.relation}\x1f{e.truth}" for e in train + zs_train + zs_test)
    relations = [str(e.relation) for e in train]
    truth = [int(bool(e.truth)) for e in train]
    groups = [caption_key(e.text) for e in train]  # identical caption texts never straddle train and test
    kept = retained_relations(relations)
    log(f"founding study: {len(train)} VSR random-split training captions, {len(kept)} relations with ≥ 50")
    common = {"Cs": tuple(config.Cs), "inner_folds": config.inner_folds, "max_iter": config.max_iter,
              "n_boot": config.n_boot, "seed": config.seeds[0], "device": config.device,
              "show_progress": show_progress}
    names = config.task_encoder_names("vsr-relation")
    paths: dict[str, Path] = {}
    summary, corrected, per_encoder, timing = [], [], {}, {}
    for name in names:
        t0 = time.perf_counter()
        encoder = load_encoder(name, model_path=config.model_paths.get(name), device=config.device)
        layer = embedding_layer(encoder.layer_names)
        memo = Path(cache_dir) / "weights-sha256.json"
        fit_lexical(encoder, train)  # a lexical floor's identity is its vocabulary (refitted per table below)
        digests = part_digests(name, encoder.fingerprint(memo_file=memo), data_hash, config)
        founding = _load_part(parts, name, "founding", digests["founding"])
        enc_corrected = _load_part(parts, name, "corrected", digests["corrected"])
        if founding is not None and enc_corrected is not None:
            log(f"skip founding study × {name}: done (digests {digests['founding']}, {digests['corrected']})")
        else:
            log(f"founding study × {name} (layer {layer})")
            X, Xz_tr, Xz_te = _embed_splits(encoder, train, zs_train, zs_test, layer, cache_dir, show_progress)
        if founding is None:
            founding = founding_study_table(X, relations, truth, texts=[e.text for e in train],
                                            show_progress=show_progress)
            founding.insert(0, "encoder", name)
            founding.insert(1, "layer", layer)
            _save_part(parts, name, "founding", digests["founding"], founding, time.perf_counter() - t0)
        if enc_corrected is None:
            t1 = time.perf_counter()
            tables = [("random", corrected_table(X, relations, groups, kept=kept, truth=truth, **common)),
                      ("zeroshot", corrected_table(
                          Xz_tr, [str(e.relation) for e in zs_train], [caption_key(e.text) for e in zs_train],
                          kept=kept, truth=[int(bool(e.truth)) for e in zs_train], X_test=Xz_te,
                          relations_test=[str(e.relation) for e in zs_test], **common))]
            for split, table in tables:
                table.insert(0, "encoder", name)
                table.insert(1, "layer", layer)
                table.insert(2, "split", split)
            enc_corrected = pd.concat([t for _, t in tables], ignore_index=True)
            _save_part(parts, name, "corrected", digests["corrected"], enc_corrected, time.perf_counter() - t1)
        timing[name] = round(time.perf_counter() - t0, 1)
        paths[f"founding:{name}"] = write_table(founding, out / f"founding__{safe_name(name)}")["parquet"]
        summary += _summary_rows(founding, enc_corrected)
        corrected.append(enc_corrected)
        per_encoder[name] = {"founding": founding.set_index("relation").macro_f1,
                             **{f"corrected/{s}": t.set_index("relation").macro_f1
                                for s, t in enc_corrected.groupby("split", sort=False)}}
    comparisons = []
    for a, b in itertools.combinations(names, 2):
        for key in per_encoder[a]:
            sa, sb = per_encoder[a][key], per_encoder[b][key]
            common_rel = sa.index.intersection(sb.index)
            protocol, _, split = key.partition("/")
            comparisons.append({"protocol": protocol, "split": split or "random", "encoder_a": a, "encoder_b": b,
                                **compare_across_relations(sa.loc[common_rel], sb.loc[common_rel],
                                                           seed=config.seeds[0])})
    for stem_name, df in (("summary", pd.DataFrame(summary)), ("corrected", pd.concat(corrected, ignore_index=True)),
                          ("comparisons", pd.DataFrame(comparisons, columns=COMPARISON_COLUMNS))):
        paths[stem_name] = write_table(df, out / stem_name)["parquet"]
    atomic_write_json(out / "manifest.json", {"command": command, "config": config.model_dump(mode="json"),
                                              "relations": kept, "n_train": len(train),
                                              "n_zeroshot": [len(zs_train), len(zs_test)], "data_hash": data_hash,
                                              "seconds_per_encoder": timing, "versions": package_versions()})
    return paths
