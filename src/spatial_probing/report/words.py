"""The report's "meaning over words" section: the two run steps whose answer the words alone cannot give.

* ``meaning.parquet`` (:mod:`spatial_probing.rsa.meaning`): per encoder and layer, the share of (caption,
  converse paraphrase, argument swap) triples where the caption is closer to its paraphrase (same meaning,
  other words) than to its swap (same words, opposite meaning). A bag of words scores 0 by construction.
* ``pairs.parquet`` (:mod:`spatial_probing.rsa.pairs`): SugarCrepe / ARO / What'sUp caption pairs, text side
  (how far a hard negative moves the embedding; a blind "which caption is true" probe, a text-plausibility
  baseline and not grounding) and image–text matching where images exist.

Each table shows one layer per encoder, its deepest (``final`` where it has one), so no layer is picked on
the very numbers shown.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from spatial_probing.report.summary import layer_sort_key


def deepest_layers(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of each (dataset, encoder)'s deepest layer: ``final`` where present, else the highest layer."""
    if df is None or df.empty:
        return pd.DataFrame()
    deepest = df.groupby(["dataset", "encoder"]).layer.agg(lambda s: max(s.astype(str), key=layer_sort_key))
    keep = df.apply(lambda r: str(r.layer) == deepest[(r.dataset, r.encoder)], axis=1)
    return df[keep]


def meaning_sentences(meaning: pd.DataFrame) -> list[str]:
    """One plain sentence per (dataset, encoder) on all triples at its deepest layer, with the interval."""
    rows = deepest_layers(meaning)
    if rows.empty:
        return []
    out = []
    for r in rows[rows.kind == "all"].itertuples():
        if pd.isna(r.value):
            out.append(f"{r.dataset}, {r.encoder}: no triples to score ({r.n_triples} triples).")
            continue
        if r.ci_low > 0.5:
            reading = "meaning usually wins over shared words"
        elif r.ci_high < 0.5:
            reading = "shared words usually win over meaning (as for a bag of words, which scores 0)"
        else:
            reading = "neither reliably wins"
        out.append(f"{r.dataset}, {r.encoder} (layer {r.layer}): the caption is closer to its converse paraphrase "
                   f"than to its argument swap in {100 * r.value:.1f}% [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}] "
                   f"of {r.n_triples} triples ({r.n_clusters} scenes/images resampled): {reading}.")
    return out


def skipped_words(n_skipped: Any, reasons: Any) -> str:
    """``n (reason: count, …)``: the captions that gave no triple and why (largest reasons first)."""
    if n_skipped is None or pd.isna(n_skipped) or int(n_skipped) == 0:
        return "0"
    counts = json.loads(reasons) if isinstance(reasons, str) and reasons else dict(reasons or {})
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    more = "" if len(counts) <= 3 else f", {len(counts) - 3} more reasons"
    return f"{int(n_skipped)} (" + "; ".join(f"{why}: {n}" for why, n in top) + more + ")"


def meaning_rows(meaning: pd.DataFrame) -> list[list[Any]]:
    """Table rows (dataset, encoder, layer, kind, value, low, high, triples, clusters, skipped) at each deepest
    layer; skipped says how many captions gave no triple and why (no parse, no converse, symmetric, repeated)."""
    rows = deepest_layers(meaning)
    return [] if rows.empty else [
        [r.dataset, r.encoder, str(r.layer), r.kind, r.value, r.ci_low, r.ci_high, int(r.n_triples), int(r.n_clusters),
         skipped_words(getattr(r, "n_skipped", 0), getattr(r, "skip_reasons", None))]
        for r in rows.sort_values(["dataset", "encoder", "kind"], kind="mergesort").itertuples()]


def pairs_rows(pairs: pd.DataFrame) -> list[list[Any]]:
    """Table rows of the caption-pair step at each deepest layer, whole sets and change types (not per relation)."""
    rows = deepest_layers(pairs)
    if rows.empty:
        return []
    rows = rows[rows.subset_kind != "relation"]
    return [[r.dataset, r.encoder, str(r.layer), r.analysis, r.subset, r.value, r.ci_low, r.ci_high, r.chance,
             int(r.n_items), str(r.note)]
            for r in rows.sort_values(["dataset", "analysis", "subset", "encoder"], kind="mergesort").itertuples()]
