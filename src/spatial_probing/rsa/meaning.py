"""Meaning over words: does an embedding put a caption nearer its paraphrase than its argument swap?

For a triple (original "the X is left of the Y", converse paraphrase "the Y is right of the X" —
same meaning, other words —, argument swap "the Y is left of the X" — same words, other meaning),
a representation of meaning has cos(original, converse) > cos(original, swap); a representation of
words has the opposite (a bag of words: the swap has exactly the original's words). The **index**
is the share of triples where the converse is strictly nearer (ties count as not), per encoder,
layer and relation kind (synthetic category; VSR meta-category), with a percentile bootstrap
interval that resamples clusters (scenes; VSR images), since the captions of one scene or image are
not independent. No training is involved.

Triples come from synthetic scenes (their ``original``/``converse``/``swapped`` captions) and from
VSR captions that parse as "The X is REL the Y." with a relation that has a converse
(:mod:`spatial_probing.data.converse`). Everything left out — symmetric relations, relations with
no converse, captions that do not parse, repeated captions — is counted with its reason in the
``n_skipped``/``skip_reasons`` columns; a kind with no triple gets a row with NaN value and
``n_triples`` 0, never an error.

Run step: the ``meaning:`` section of a run config (on by default; ``meaning: null`` turns it off)
or ``spatial-probing meaning CONFIG``; it writes ``meaning.parquet``/``meaning.csv`` in the run dir.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from spatial_probing.data.converse import VSR_CONVERSE, no_converse_reason, vsr_triple
from spatial_probing.data.schema import Example
from spatial_probing.io import atomic_path, atomic_write_json
from spatial_probing.rsa.runner import StepUnit

MEANING_COLUMNS = ["dataset", "encoder", "layer", "kind", "value", "ci_low", "ci_high", "n_triples", "n_clusters",
                   "n_skipped", "skip_reasons"]
#: Datasets triples can be built for.
MEANING_DATASETS = ("synthetic", "vsr")
ALL = "all"


@dataclass
class TripleSet:
    """Triples as rows into :attr:`examples` (what gets embedded), with cluster and kind per triple."""

    examples: list[Example] = field(default_factory=list)
    original: list[int] = field(default_factory=list)
    converse: list[int] = field(default_factory=list)
    swapped: list[int] = field(default_factory=list)
    clusters: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    skipped: dict[str, Counter] = field(default_factory=dict)  # kind → reason → count

    def __len__(self) -> int:
        return len(self.original)

    def skip(self, kind: str, reason: str) -> None:
        self.skipped.setdefault(kind, Counter())[reason] += 1

    def add(self, original: Example, converse: Example, swapped: Example, *, cluster: str, kind: str) -> None:
        n = len(self.examples)
        self.examples += [original, converse, swapped]
        self.original.append(n)
        self.converse.append(n + 1)
        self.swapped.append(n + 2)
        self.clusters.append(cluster)
        self.kinds.append(kind)


def synthetic_triples(examples: Sequence[Example]) -> TripleSet:
    """One triple per scene from its ``original``, ``converse`` and ``swapped`` captions (same template and phrase);
    scenes of a symmetric relation (near, far: the converse *is* the swap) are skipped and counted."""
    out = TripleSet()
    scenes: dict[str, dict[str, Example]] = {}
    for e in examples:
        if e.pair_id and e.variant:
            scenes.setdefault(e.pair_id, {})[e.variant] = e
    for scene in sorted(scenes):
        fam = scenes[scene]
        first = fam.get("original") or next(iter(fam.values()))
        kind = str(first.category)
        missing = [v for v in ("original", "converse", "swapped") if v not in fam]
        if missing:
            out.skip(kind, f"scene lacks its {'/'.join(missing)} caption")
            continue
        why = no_converse_reason(str(fam["original"].relation), "synthetic")
        if why is not None:
            out.skip(kind, why)
            continue
        out.add(fam["original"], fam["converse"], fam["swapped"], cluster=str(first.group or scene), kind=kind)
    return out


def vsr_caption_triples(examples: Sequence[Example]) -> TripleSet:
    """Triples of VSR captions (converse and swap written by :func:`~spatial_probing.data.converse.vsr_triple`);
    each distinct caption once; skipped captions counted per meta-category with the reason."""
    out = TripleSet()
    seen: set[str] = set()
    for e in examples:
        kind = str(e.category)
        if e.relation is None:
            out.skip(kind, "no relation field")
            continue
        if e.text in seen:
            out.skip(kind, "repeated caption (counted once)")
            continue
        seen.add(e.text)
        t = vsr_triple(e.text, e.relation)
        if isinstance(t, str):
            out.skip(kind, t)
            continue
        swap = {"subject": e.object, "object": e.subject}
        made = {v: e.model_copy(update={"id": f"{e.id}/{v}", "text": text, "variant": v, "relation": rel, **swap})
                for v, text, rel in (("converse", t.converse, VSR_CONVERSE[e.relation]),
                                     ("swapped", t.swapped, e.relation))}
        out.add(e.model_copy(update={"variant": "original"}), made["converse"], made["swapped"],
                cluster=str(e.group or e.image or e.id), kind=kind)
    return out


def build_triples(examples: Sequence[Example], dataset: str) -> TripleSet:
    """The meaning-over-words triples of ``dataset``'s examples (``synthetic`` or ``vsr``)."""
    if dataset == "synthetic":
        return synthetic_triples(examples)
    if dataset == "vsr":
        return vsr_caption_triples(examples)
    raise ValueError(f"dataset={dataset!r}: meaning-over-words triples exist for {list(MEANING_DATASETS)}")


def cap_triples(triples: TripleSet, max_triples: int | None, seed: int) -> TripleSet:
    """At most ``max_triples`` triples, taking whole clusters in a seeded random order (the rest counted)."""
    if max_triples is None or len(triples) <= max_triples:
        return triples
    by_cluster: dict[str, list[int]] = {}
    for i, c in enumerate(triples.clusters):
        by_cluster.setdefault(c, []).append(i)
    keys = sorted(by_cluster)
    keep: list[int] = []
    for k in np.random.default_rng(seed).permutation(len(keys)):
        if len(keep) + len(by_cluster[keys[k]]) <= max_triples:
            keep += by_cluster[keys[k]]
    keep_set = set(keep)
    out = TripleSet(skipped={k: Counter(v) for k, v in triples.skipped.items()})
    for i in range(len(triples)):
        if i not in keep_set:
            out.skip(triples.kinds[i], f"over max_triples={max_triples} (whole clusters kept, seeded)")
            continue
        ex = triples.examples
        out.add(ex[triples.original[i]], ex[triples.converse[i]], ex[triples.swapped[i]],
                cluster=triples.clusters[i], kind=triples.kinds[i])
    return out


def _cosine_rows(x: np.ndarray, a: Sequence[int], b: Sequence[int]) -> np.ndarray:
    u, v = x[np.asarray(a)], x[np.asarray(b)]
    norm = np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1)
    return np.einsum("ij,ij->i", u, v) / np.where(norm > 0, norm, 1.0)


def cluster_bootstrap_share(wins: np.ndarray, clusters: Sequence[str], *, n_boot: int = 1000, seed: int = 0,
                            confidence: float = 0.95) -> tuple[float, float, float]:
    """``(share, ci_low, ci_high)`` of boolean ``wins``; the interval resamples whole clusters with replacement
    (:func:`~spatial_probing.probe.stats.cluster_bootstrap`). NaN for no items."""
    from spatial_probing.probe.stats import cluster_bootstrap

    wins = np.asarray(wins, dtype=np.float64)
    if wins.size == 0:
        return float("nan"), float("nan"), float("nan")
    return cluster_bootstrap(lambda w: (w @ wins) / w.sum(axis=1), clusters, n_boot=n_boot, seed=seed,
                             confidence=confidence)


def _reasons(counter: Counter) -> str:
    return json.dumps(dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))))


def meaning_rows(embeddings: dict[str, np.ndarray], triples: TripleSet, *, dataset: str, encoder: str,
                 n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per layer × kind (and ``all``): the index, its cluster-bootstrap CI, counts and skip reasons.

    ``embeddings`` maps a layer to the ``(len(triples.examples), d)`` embeddings of :attr:`TripleSet.examples`.
    """
    kinds = sorted(set(triples.kinds) | set(triples.skipped))
    kind_arr = np.asarray(triples.kinds, dtype=object)
    clusters = np.asarray(triples.clusters, dtype=object)
    all_skipped = sum(triples.skipped.values(), Counter())
    rows = []
    for layer, x in embeddings.items():
        x = np.asarray(x, dtype=np.float64)
        if len(triples):
            wins = _cosine_rows(x, triples.original, triples.converse) > _cosine_rows(x, triples.original,
                                                                                         triples.swapped)
        else:
            wins = np.zeros(0, dtype=bool)
        for kind in [ALL, *kinds]:
            mask = np.ones(len(triples), bool) if kind == ALL else kind_arr == kind
            skipped = all_skipped if kind == ALL else triples.skipped.get(kind, Counter())
            value, lo, hi = cluster_bootstrap_share(wins[mask], clusters[mask], n_boot=n_boot, seed=seed)
            rows.append({"dataset": dataset, "encoder": encoder, "layer": layer, "kind": kind, "value": value,
                         "ci_low": lo, "ci_high": hi, "n_triples": int(mask.sum()),
                         "n_clusters": len(set(clusters[mask].tolist())), "n_skipped": int(sum(skipped.values())),
                         "skip_reasons": _reasons(skipped)})
    return pd.DataFrame(rows, columns=MEANING_COLUMNS)


class MeaningSettings(BaseModel):
    """The ``meaning:`` section of a run config (``meaning: null`` turns the step off).

    ``datasets`` defaults to those of the run's tasks that have triples (synthetic, VSR); each is read
    through the run's first task on it (same loading options and caps, so the probes' data).
    ``max_triples`` caps the triples per dataset (whole clusters, seeded; the rest are counted as skipped).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    datasets: list[str] | None = None
    layers: str | None = None
    n_boot: int = Field(default=1000, ge=0)
    max_triples: int | None = Field(default=1000, ge=1)
    seed: int = 0

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, v: list[str] | None) -> list[str] | None:
        bad = [d for d in v or [] if d not in MEANING_DATASETS]
        if bad:
            raise ValueError(f"dataset(s) {bad} have no meaning-over-words triples; expected some of "
                             f"{list(MEANING_DATASETS)}")
        return v

    def pick_tasks(self, run_tasks: Sequence[str]) -> dict[str, str]:
        """Dataset → the run task whose examples it is built from (the first run task on that dataset)."""
        from spatial_probing.probe.tasks import TASKS

        chosen: dict[str, str] = {}
        for t in run_tasks:
            d = TASKS[t].spec.dataset
            if d in MEANING_DATASETS and (self.datasets is None or d in self.datasets):
                chosen.setdefault(d, t)
        return chosen


class MeaningUnit(StepUnit):
    """One (dataset, encoder) unit, read through the run's first ``task`` on that dataset."""

    dataset: str
    settings: MeaningSettings = MeaningSettings()


def unit_triples(unit: MeaningUnit, data_dir: str | Path | None = None) -> TripleSet:
    """The unit's triples: its task's examples (as the probe step loads them), capped."""
    from spatial_probing.probe.runner import task_examples

    examples = task_examples(unit.task, data_dir=data_dir, split=unit.split, load_kwargs=unit.load_kwargs,
                             max_train=unit.max_train, max_test=unit.max_test, seed=unit.probe_seed)
    return cap_triples(build_triples(examples, unit.dataset), unit.settings.max_triples, unit.settings.seed)


def run_meaning_unit(unit: MeaningUnit, *, data_dir: str | Path | None = None, model_path: str | Path | None = None,
                     cache_dir: str | Path | None = None, show_progress: bool = False
                     ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Embed one unit's triples (through the cache) and compute its rows; returns (rows, metadata)."""
    from spatial_probing.embed import embed_examples, fit_lexical, load_encoder
    from spatial_probing.probe.runner import PROBE_FORMAT_VERSION, examples_hash

    triples = unit_triples(unit, data_dir)
    encoder = load_encoder(unit.encoder, model_path=model_path, device=unit.device)
    # a lexical-floor encoder (bow:, order:) has one layer and, with no held-out side here, is fitted on the
    # captions it compares (bow: then gives the swapped caption the original's vector: index 0 by construction)
    lexical = len(triples) > 0 and fit_lexical(encoder, triples.examples)
    layers = "all" if lexical else unit.settings.layers or unit.layers
    if encoder.config.modality != "text":
        why = f"encoder modality {encoder.config.modality!r}: the index compares captions, text encoders only"
        emb: dict[str, np.ndarray] = {}
        note = why
    elif len(triples) == 0:
        emb = {"final": np.zeros((0, 1))}
        note = "no triples"
    else:
        emb = embed_examples(triples.examples, encoder, layers=layers, cache_dir=cache_dir,
                             show_progress=show_progress)
        note = ""
    table = meaning_rows(emb, triples, dataset=unit.dataset, encoder=unit.encoder, n_boot=unit.settings.n_boot,
                         seed=unit.settings.seed) if emb else pd.DataFrame(columns=MEANING_COLUMNS)
    meta = {"unit": unit.model_dump(mode="json"), "config_hash": unit.digest(),
            "encoder": encoder.info.model_dump(mode="json"), "n_triples": len(triples),
            "skipped": {k: dict(v) for k, v in triples.skipped.items()}, "note": note,
            "data_hash": examples_hash(triples.examples), "format_version": PROBE_FORMAT_VERSION}
    return table, meta


def _part_paths(out_dir: Path, unit: MeaningUnit) -> tuple[Path, Path]:
    from spatial_probing.probe.runner import safe_name

    stem = out_dir / "meaning_parts" / f"{safe_name(unit.dataset)}__{safe_name(unit.encoder)}"
    return stem.with_suffix(".parquet"), stem.with_suffix(".json")


def assemble_meaning(out_dir: str | Path, *, command: str = "", config: dict[str, Any] | None = None,
                     started: str | None = None) -> dict[str, Path]:
    """Concatenate ``meaning_parts/`` into ``meaning.parquet``/``.csv`` and ``meaning_manifest.json`` (atomically)."""
    from spatial_probing.rsa.runner import assemble_parts

    return assemble_parts(out_dir, "meaning", MEANING_COLUMNS, MEANING_COLUMNS[:4], what="meaning-over-words",
                          command=command, config=config, started=started)


def run_meaning(units: Sequence[MeaningUnit], out_dir: str | Path, *, data_dir: str | Path | None = None,
                model_paths: dict[str, str | Path] | None = None, cache_dir: str | Path | None = None,
                command: str = "", run_config: dict[str, Any] | None = None, show_progress: bool = False,
                log=print) -> dict[str, Path]:
    """Compute every unit not already done (same hash and weights), then assemble ``meaning.parquet``/``.csv``."""
    from spatial_probing.probe.runner import examples_hash, part_is_current, pending_units

    out_dir = Path(out_dir)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cache_dir = cache_dir if cache_dir is not None else out_dir / "cache"

    def done(u: MeaningUnit, weights: str) -> bool:
        table, meta = _part_paths(out_dir, u)
        return table.is_file() and part_is_current(meta, u.digest(), weights,
                                                   lambda: examples_hash(unit_triples(u, data_dir).examples))

    for unit, model_path in pending_units(units, done, stage="meaning", label=lambda u: f"{u.dataset} × {u.encoder}",
                                          model_paths=model_paths, cache_dir=cache_dir, log=log):
        table, meta = run_meaning_unit(unit, data_dir=data_dir, model_path=model_path, cache_dir=cache_dir,
                                       show_progress=show_progress)
        if meta["note"]:
            log(f"  meaning {unit.dataset} × {unit.encoder}: {meta['note']}")
        table_path, meta_path = _part_paths(out_dir, unit)
        with atomic_path(table_path) as tmp:
            table.to_parquet(tmp, index=False)
        atomic_write_json(meta_path, meta)
    return assemble_meaning(out_dir, command=command, config=run_config, started=started)
