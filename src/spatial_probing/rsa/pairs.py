"""Caption-choice benchmarks (SugarCrepe, ARO VG-Relation, What'sUp): text-side analyses and image–text matching.

Why here: like the rest of :mod:`spatial_probing.rsa` these are analyses of an encoder's embedding geometry
run as one step of a run (``pairs:`` section → ``pairs.parquet``/``.csv``), beside ``rsa.parquet``; the one
trained component, the blind choice probe, lives with the probes (:mod:`spatial_probing.probe.choice`).

Per dataset, encoder and layer (text side, every text encoder):

* ``cosine`` — how far the embedding moves under the change: cos(true caption, negative) (for K options the
  mean over the negatives), mean per change type / subset / relation, with a bootstrap interval that
  resamples whole images. An encoder that ignores word order gives exactly 1 on an argument swap.
* ``blind-choice`` — the text-only "which caption is the true one" probe (out-of-fold accuracy, folds grouped
  by image) beside its chance level 1/K and its shuffled-label control (``blind-choice-shuffled``). It is a
  **text-plausibility baseline, not grounding**. For What'sUp this is the 4-way text-only baseline.

Per dataset and CLIP text+image encoder, where the images exist (``itm``): image–text matching, the true
caption must score highest against the image (a tie among t options earns 1/t; ARO images are cropped to the
record's box, as upstream). Accuracy per relation and per subset (micro) and ``itm-macro``, the mean of the
per-relation accuracies; both with image-resampling intervals (ARO's macro and micro differ by ~9 points for
CLIP, so both are reported).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from spatial_probing.data import DataError, Example, load_dataset
from spatial_probing.data.paths import resolve_dataset_dir
from spatial_probing.io import atomic_path, atomic_write_json, sha256_bytes
from spatial_probing.probe.choice import ChoiceItems, argmax_credit, blind_choice_probe, choice_items
from spatial_probing.probe.runner import (
    PROBE_FORMAT_VERSION, cap_examples, examples_hash, part_is_current, pending_units, safe_name,
)
from spatial_probing.probe.stats import cluster_bootstrap
from spatial_probing.rsa.runner import assemble_parts

PairsDataset = Literal["sugarcrepe", "aro", "whatsup"]
PAIRS_COLUMNS = ["dataset", "encoder", "layer", "analysis", "subset_kind", "subset", "value", "ci_low", "ci_high",
                 "chance", "control", "n_items", "n_clusters", "note"]
#: Plain-words reading of each analysis, written into the ``note`` column.
NOTES = {
    "cosine": "cos(true caption, negative): 1 = the change does not move the embedding",
    "blind-choice": "text-only choice probe: a text-plausibility baseline, not grounding",
    "blind-choice-shuffled": "control: the blind probe with each item's true option drawn at random",
    "itm": "image-text matching: the true caption scores highest against the image (a t-way tie earns 1/t)",
    "itm-macro": "image-text matching, mean of per-relation accuracies",
}
#: The annotation field that names an item's image, for error messages.
IMAGE_FIELD = {"sugarcrepe": "filename", "aro": "image_path", "whatsup": "image_path / [0] image_id"}


# ------------------------------------------------------------------------------------------ analyses

def option_cosines(x: np.ndarray, items: ChoiceItems) -> np.ndarray:
    """``(n,)`` cosine of each item's true option with its other options (mean over them)."""
    x = np.asarray(x, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    opts = x[items.options]                                          # (n, K, d)
    true = opts[np.arange(len(items)), items.correct]                # (n, d)
    cos = np.einsum("nkd,nd->nk", opts, true)
    cos[np.arange(len(items)), items.correct] = np.nan
    return np.nanmean(cos, axis=1)


def _subsets(items: ChoiceItems) -> Iterator[tuple[str, str, np.ndarray]]:
    """(kind, name, mask): all items, then each change type / subset and each relation of the true option
    (a kind with a single value repeats the "all" row and is left out)."""
    yield "all", "all", np.ones(len(items), dtype=bool)
    for kind, labels in (("category", items.categories), ("relation", items.relations)):
        names = sorted(set(labels.tolist()) - {""})
        for name in names if len(names) > 1 else []:
            yield kind, name, labels == name


def _mean(values: np.ndarray):
    return lambda w: (w @ values) / w.sum(axis=1)


def _macro(hits: np.ndarray, labels: np.ndarray):
    masks = [labels == r for r in sorted(set(labels.tolist()) - {""})]

    def statistic(w: np.ndarray) -> np.ndarray:
        per = [np.divide(w[:, m] @ hits[m], w[:, m].sum(axis=1), out=np.full(w.shape[0], np.nan),
                         where=w[:, m].sum(axis=1) > 0) for m in masks]
        return np.nanmean(np.vstack(per), axis=0) if per else np.full(w.shape[0], np.nan)
    return statistic


def _row(values: np.ndarray, items: ChoiceItems, mask: np.ndarray, *, statistic=None, n_boot: int, seed: int,
         **fields: Any) -> dict[str, Any]:
    v = np.asarray(values, dtype=np.float64)[mask]
    value, lo, hi = cluster_bootstrap(statistic or _mean(v), items.clusters[mask], n_boot=n_boot, seed=seed)
    return {"value": value, "ci_low": lo, "ci_high": hi, "n_items": int(mask.sum()),
            "n_clusters": len(set(items.clusters[mask].tolist())), "note": NOTES[fields["analysis"]],
            "chance": np.nan, "control": np.nan, **fields}


def text_rows(x: np.ndarray, items: ChoiceItems, *, dataset: str, encoder: str, layer: str, n_folds: int = 5,
              C: float = 1.0, n_boot: int = 1000, seed: int = 0, probe: bool = True) -> list[dict[str, Any]]:
    """``cosine`` rows and (with ``probe``) ``blind-choice`` and ``blind-choice-shuffled`` rows for one layer."""
    key = {"dataset": dataset, "encoder": encoder, "layer": layer}
    cos = option_cosines(x, items)
    rows = [_row(cos, items, m, n_boot=n_boot, seed=seed, analysis="cosine", subset_kind=kind, subset=name, **key)
            for kind, name, m in _subsets(items)]
    n_images = len(set(items.clusters.tolist()))
    if probe and n_images < n_folds:  # reported, not dropped: the probe needs an image in every fold
        return rows + [{**key, "analysis": a, "subset_kind": "all", "subset": "all", "value": np.nan, "ci_low": np.nan,
                        "ci_high": np.nan, "chance": 1 / items.k, "control": np.nan, "n_items": len(items),
                        "n_clusters": n_images, "note": f"not run: {n_images} images < {n_folds} folds"}
                       for a in ("blind-choice", "blind-choice-shuffled")]
    if not probe:
        return rows
    hits = blind_choice_probe(x, items, n_folds=n_folds, C=C, seed=seed)
    control = blind_choice_probe(x, items, n_folds=n_folds, C=C, seed=seed, shuffle_labels=True)
    for kind, name, m in _subsets(items):
        ctrl = _row(control, items, m, n_boot=n_boot, seed=seed, analysis="blind-choice-shuffled",
                    subset_kind=kind, subset=name, **key)
        rows.append({**_row(hits, items, m, n_boot=n_boot, seed=seed, analysis="blind-choice", subset_kind=kind,
                            subset=name, **key), "chance": 1 / items.k, "control": ctrl["value"]})
        rows.append({**ctrl, "chance": 1 / items.k})
    return rows


def itm_rows(text: np.ndarray, image: np.ndarray, items: ChoiceItems, *, dataset: str, encoder: str,
             n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Image–text matching accuracy: micro per subset, and the macro average over relations (all, per subset)."""
    t = np.asarray(text, dtype=np.float64)
    v = np.asarray(image, dtype=np.float64)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    scores = np.einsum("nkd,nkd->nk", t[items.options], v[items.options])
    hits = argmax_credit(scores, items.correct)
    key = {"dataset": dataset, "encoder": encoder, "layer": "final", "chance": 1 / items.k}
    rows = [_row(hits, items, m, n_boot=n_boot, seed=seed, analysis="itm", subset_kind=kind, subset=name, **key)
            for kind, name, m in _subsets(items)]
    for kind, name, m in _subsets(items):
        if kind == "relation" or len(set(items.relations[m].tolist()) - {""}) < 2:
            continue
        rows.append(_row(hits, items, m, statistic=_macro(hits[m], items.relations[m]), n_boot=n_boot, seed=seed,
                         analysis="itm-macro", subset_kind=kind, subset=name, **key))
    return rows


# ------------------------------------------------------------------------------------------ the run step

class PairsSettings(BaseModel):
    """The ``pairs:`` section of a run config (absent or ``null``: no caption-choice step).

    ``datasets`` are analysed on the text side with ``encoders`` (default: the run's encoders) at ``layers``
    (default: the run's); ``dataset_options`` are ``load_dataset`` keywords per dataset (e.g.
    ``{sugarcrepe: {variant: [replace_rel, swap_obj, swap_att]}}``). ``itm_encoders`` (CLIP ``text+image``
    encoders, e.g. ``clip-text+image``) run image–text matching, which needs the images: ``image_dirs`` per
    dataset (SugarCrepe: the COCO val2017 folder; ARO and What'sUp default to their data folders).
    ``max_items`` caps the caption records per dataset (whole images, seeded); ``probe: false`` skips the
    blind probe.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    datasets: list[PairsDataset] = Field(default=["sugarcrepe"], min_length=1)
    dataset_options: dict[PairsDataset, dict[str, Any]] = Field(default_factory=dict)
    encoders: list[str] | None = None
    itm_encoders: list[str] = Field(default_factory=list)
    image_dirs: dict[PairsDataset, Path] = Field(default_factory=dict)
    layers: str | None = None
    probe: bool = True
    n_folds: int = Field(default=5, ge=2)
    C: float = Field(default=1.0, gt=0)
    n_boot: int = Field(default=1000, ge=0)
    max_items: int | None = Field(default=None, ge=4)
    seed: int = 0

    @field_validator("datasets")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"each dataset once, got {v}")
        return v

    @field_validator("itm_encoders")
    @classmethod
    def _joint(cls, v: list[str]) -> list[str]:
        return _check_modality(v, "text+image", "image-text matching needs CLIP text+image encoders")

    @field_validator("encoders")
    @classmethod
    def _text(cls, v: list[str] | None) -> list[str] | None:
        return v and _check_modality(v, "text", "the text-side analyses need text encoders (CLIP: clip-text)")


def _check_modality(names: list[str], modality: str, why: str) -> list[str]:
    """Refuse registered encoders of another modality up front (names registered later are checked when run)."""
    from spatial_probing.embed.config import get_encoder_config

    for name in names:
        try:
            got = get_encoder_config(name).modality
        except (KeyError, ValueError):
            continue
        if got != modality:
            raise ValueError(f"{name!r} is a {got} encoder; {why}")
    return names


class PairsUnit(BaseModel):
    """One (dataset, encoder, mode) unit of the pairs step; its hash names the part files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: PairsDataset
    encoder: str
    mode: Literal["text", "itm"]
    settings: PairsSettings = PairsSettings()
    layers: str = "all"
    device: str = "auto"

    def digest(self) -> str:
        return sha256_bytes(self.model_dump_json().encode())[:16]


def pairs_units(settings: PairsSettings | None, run_encoders: Sequence[str], *, lexical_floor: Sequence[str] = (),
                layers: str = "all", device: str = "auto") -> list[PairsUnit]:
    """Text units (every dataset × text encoder, then the run's lexical floor) then image–text matching units
    (dataset × ``itm_encoders``). One-layer encoders (``bow:``, ``order:``, ``static:…``) take their one layer."""
    from spatial_probing.embed.config import LEXICAL_ENCODERS

    if settings is None:
        return []
    names = list(settings.encoders or run_encoders)
    names += [f for f in lexical_floor if f not in names]
    one_layer = {e for e in names if e in LEXICAL_ENCODERS or e.startswith("static:")}
    text = [PairsUnit(dataset=d, encoder=e, mode="text", settings=settings, device=device,
                      layers="all" if e in one_layer else settings.layers or layers)
            for d in settings.datasets for e in names]
    return text + [PairsUnit(dataset=d, encoder=e, mode="itm", settings=settings, layers="final", device=device)
                   for d in settings.datasets for e in settings.itm_encoders]


def pairs_examples(unit: PairsUnit, data_dir: str | Path | None = None) -> list[Example]:
    """The unit's caption records (capped to ``max_items`` in whole images)."""
    examples = load_dataset(unit.dataset, data_dir=data_dir, **unit.settings.dataset_options.get(unit.dataset, {}))
    return cap_examples(examples, unit.settings.max_items, unit.settings.seed)


def image_dir_for(dataset: str, settings: PairsSettings, data_dir: str | Path | None) -> Path:
    """Where a dataset's images are: ``pairs.image_dirs[dataset]``, else ARO's / What'sUp's data folder."""
    if dataset in settings.image_dirs:
        return Path(settings.image_dirs[dataset])  # type: ignore[index]
    if dataset == "sugarcrepe":
        raise DataError("image-text matching on SugarCrepe needs the COCO val2017 images: set "
                        "pairs.image_dirs.sugarcrepe to their folder (http://images.cocodataset.org/zips/val2017.zip)",
                        key="pairs.image_dirs")
    return resolve_dataset_dir(data_dir, dataset, "")


def open_choice_images(examples: Sequence[Example], image_dir: str | Path) -> list[Any]:
    """One PIL image per example (each file opened once; ARO cropped to its box), or a DataError naming the
    annotation file, the record and the field of the first image that is missing."""
    from PIL import Image

    from spatial_probing.data.aro import BBOX_FIELDS

    opened: dict[tuple, Any] = {}
    out = []
    for e in examples:
        box = tuple(e.source[k] for k in BBOX_FIELDS) if all(k in e.source for k in BBOX_FIELDS) else None
        key = (e.image, box)
        if key not in opened:
            path = Path(image_dir) / str(e.image)
            if e.image is None or not path.is_file():
                raise DataError(f"image not found: {path} (item {e.pair_id}); image-text matching needs the "
                                f"images (see `spatial-probing data download {e.dataset} --list`)",
                                path=e.origin, key=IMAGE_FIELD[e.dataset])
            img = Image.open(path).convert("RGB")
            if box is not None:
                x, y, w, h = box
                img = img.crop((x, y, x + w, y + h))
            opened[key] = img
        out.append(opened[key])
    return out


def _label_all(rows: list[dict[str, Any]], items: ChoiceItems, several: bool) -> list[dict[str, Any]]:
    if several:  # items with different option counts: keep their "all" rows apart
        for r in rows:
            if r["subset_kind"] == "all":
                r["subset"] = f"all-{items.k}way"
    return rows


def run_pairs_unit(unit: PairsUnit, *, data_dir: str | Path | None = None, model_path: str | Path | None = None,
                   cache_dir: str | Path | None = None, show_progress: bool = False,
                   log=print) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Embed and analyse one unit; returns (rows, metadata)."""
    from tqdm.auto import tqdm

    from spatial_probing.embed import embed_examples, fit_lexical, is_lexical_floor, load_encoder

    examples = pairs_examples(unit, data_dir)
    groups = choice_items(examples)
    encoder = load_encoder(unit.encoder, model_path=model_path, device=unit.device)
    s = unit.settings
    rows: list[dict[str, Any]] = []
    if unit.mode == "itm":
        if encoder.config.modality != "text+image":
            raise ValueError(f"pairs.itm_encoders: {unit.encoder!r} is a {encoder.config.modality} encoder; image-text "
                             f"matching needs a CLIP text+image encoder (e.g. clip-text+image)")
        images = open_choice_images(examples, image_dir_for(unit.dataset, s, data_dir))
        emb = encoder.encode([e.text for e in examples], images, layers=["text", "image"], show_progress=show_progress)
        for items in groups:
            rows += _label_all(itm_rows(emb["text"], emb["image"], items, dataset=unit.dataset, encoder=unit.encoder,
                                        n_boot=s.n_boot, seed=s.seed), items, len(groups) > 1)
    else:
        if encoder.config.modality != "text":
            raise ValueError(f"pairs.encoders: {unit.encoder!r} is a {encoder.config.modality} encoder; the text-side "
                             f"analyses need a text encoder (use pairs.itm_encoders for image-text matching)")
        # a lexical-floor encoder (bow:, order:) is fitted on the captions it compares: there is no held-out side
        # here, and what it learns (a vocabulary, noun slots) uses no label
        try:
            fit_lexical(encoder, examples)
            emb = embed_examples(examples, encoder, layers=unit.layers, cache_dir=cache_dir,
                                 show_progress=show_progress)
        except ValueError as err:  # e.g. order: on captions without parsed noun slots: reported, not a crash
            if not is_lexical_floor(unit.encoder):
                raise
            log(f"  pairs {unit.dataset} × {unit.encoder}: not run: {err}")
            rows.append({**dict.fromkeys(PAIRS_COLUMNS, np.nan), "dataset": unit.dataset, "encoder": unit.encoder,
                         "layer": "", "analysis": "cosine", "subset_kind": "all", "subset": "all",
                         "n_items": sum(len(g) for g in groups), "n_clusters": 0, "note": f"not run: {err}"})
            emb = {}
        for layer, x in tqdm(emb.items(), desc=f"pairs {unit.dataset} × {unit.encoder}", unit="layer",
                             disable=not show_progress, leave=False):
            for items in groups:
                rows += _label_all(text_rows(np.asarray(x), items, dataset=unit.dataset, encoder=unit.encoder,
                                             layer=layer, n_folds=s.n_folds, C=s.C, n_boot=s.n_boot, seed=s.seed,
                                             probe=s.probe), items, len(groups) > 1)
    meta = {"unit": unit.model_dump(mode="json"), "config_hash": unit.digest(), "dataset": unit.dataset,
            "encoder": encoder.info.model_dump(mode="json"), "n_examples": len(examples),
            "n_items": {f"{g.k}-way": len(g) for g in groups},
            "data_hash": examples_hash(examples), "format_version": PROBE_FORMAT_VERSION}
    log(f"  pairs {unit.dataset} × {unit.encoder} ({unit.mode}): {sum(len(g) for g in groups)} items, {len(rows)} rows")
    return pd.DataFrame(rows, columns=PAIRS_COLUMNS), meta


def _part_paths(out_dir: Path, unit: PairsUnit) -> tuple[Path, Path]:
    stem = out_dir / "pairs_parts" / f"{unit.mode}__{safe_name(unit.dataset)}__{safe_name(unit.encoder)}"
    return stem.with_suffix(".parquet"), stem.with_suffix(".json")


def assemble_pairs(out_dir: str | Path, *, command: str = "", config: dict[str, Any] | None = None,
                   started: str | None = None) -> dict[str, Path]:
    """Concatenate ``pairs_parts/`` into ``pairs.parquet``/``pairs.csv`` and ``pairs_manifest.json`` (atomically)."""
    return assemble_parts(out_dir, "pairs", PAIRS_COLUMNS, PAIRS_COLUMNS[:6], what="caption-choice", command=command,
                          config=config, started=started)


def run_pairs(units: Sequence[PairsUnit], out_dir: str | Path, *, data_dir: str | Path | None = None,
              model_paths: dict[str, str | Path] | None = None, cache_dir: str | Path | None = None,
              command: str = "", run_config: dict[str, Any] | None = None, show_progress: bool = False,
              log=print) -> dict[str, Path]:
    """Compute every pairs unit not already done (same hash and weights), then assemble ``pairs.parquet``/``.csv``."""
    out_dir = Path(out_dir)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cache_dir = cache_dir if cache_dir is not None else out_dir / "cache"

    def done(unit: PairsUnit, weights: str) -> bool:
        table, meta = _part_paths(out_dir, unit)
        return table.is_file() and part_is_current(meta, unit.digest(), weights,
                                                   lambda: examples_hash(pairs_examples(unit, data_dir)))

    for unit, model_path in pending_units(units, done, stage="pairs", label=lambda u: f"{u.dataset} × {u.encoder} "
                                          f"({u.mode})", model_paths=model_paths, cache_dir=cache_dir, log=log):
        table, meta = run_pairs_unit(unit, data_dir=data_dir, model_path=model_path, cache_dir=cache_dir,
                                     show_progress=show_progress, log=log)
        table_path, meta_path = _part_paths(out_dir, unit)
        with atomic_path(table_path) as tmp:
            table.to_parquet(tmp, index=False)
        atomic_write_json(meta_path, meta)
    return assemble_pairs(out_dir, command=command, config=run_config, started=started)
