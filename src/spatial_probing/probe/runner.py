"""Tasks × encoders → the run directory's tables (results, predictions, comparisons, manifest).

Each (task, encoder, probe) *unit* is computed from the embedding cache and written atomically
to ``parts/`` with the hash of its configuration; a unit whose part exists with the same hash
is skipped, so an interrupted run resumes where it stopped. :func:`assemble` then concatenates
the parts, computes the paired encoder comparisons and writes the run's tables and manifest.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from spatial_probing.data.schema import Example
from spatial_probing.io import atomic_path, atomic_write_json, package_versions, sha256_bytes, sha256_texts
from spatial_probing.probe.controls import (
    MIN_CONTROL_OVERLAP,
    chance_level,
    majority_label,
    memorisation_predictions,
    seen_in_training,
)
from spatial_probing.probe.engine import LayerSeedResult, ProbeSettings, probe_arrays
from spatial_probing.probe.floor import format_floor_table
from spatial_probing.probe.splits import outer_folds, overlap_report
from spatial_probing.probe.stats import (SignFlips, bootstrap_macro_f1, bootstrap_metric, bootstrap_unit, cluster_codes,
                                        cluster_sums, holm, mcnemar_exact)
from spatial_probing.probe.tasks import ProbeItems, get_task

RESULT_COLUMNS = ["dataset", "task", "encoder", "layer", "probe", "seed", "split", "subset_kind", "subset", "metric",
                  "value", "ci_low", "ci_high", "n_test"]
KEY_COLUMNS = ["dataset", "task", "encoder", "layer", "probe", "seed"]

#: Version of how probe and RSA parts are computed from the same config, weights and data. Bump it with any
#: change that alters their numbers (an estimator, a metric, an interval, pooling of folds), so a resumed run
#: recomputes its finished parts instead of mixing old and new results.
PROBE_FORMAT_VERSION = 6  # 3: selectivity on seen control types; memorisation, overlap, below-chance rows;
#                           4: inner-CV folds shared by every seed, warm starts along the C path (C and fits move within tol)
#                           5: the reported refit converged to REFIT_TOL (test accuracy moves by up to ~1 point)
#                           6: control_cv="first-seed": later seeds' controls reuse the first seed's C (cold refit);
#                              small MDL portions fitted in their rows' span (codelengths move within tol)
COMPARISON_COLUMNS = ["dataset", "task", "layer_a", "layer_b", "probe", "encoder_a", "encoder_b", "selection",
                      "subset_kind", "subset", "acc_a", "acc_b", "diff", "mcnemar_p", "permutation_p", "p_holm", "n"]


class UnitConfig(BaseModel):
    """Everything that determines one (task, encoder) unit's tables; its hash names the part files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    encoder: str
    split: str | None = None
    layers: str = "all"
    settings: ProbeSettings = ProbeSettings()
    outer_folds: int = Field(default=5, ge=2)
    max_train: int | None = Field(default=None, ge=2)
    max_test: int | None = Field(default=None, ge=1)
    load_kwargs: dict[str, Any] = Field(default_factory=dict)
    precision: Literal["fp32", "bf16", "int8"] = "fp32"

    def digest(self) -> str:
        # fp32 units keep the digest they had before precision existed, so their part files still resume
        return sha256_bytes(self.model_dump_json(exclude={"precision"} if self.precision == "fp32" else None
                                                 ).encode())[:16]


def safe_name(name: str) -> str:
    """``name`` usable in a file name (runs of other characters become ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name)


def cap_examples(examples: list[Example], max_items: int | None, seed: int) -> list[Example]:
    """At most ``max_items`` examples per dataset split, taking whole groups in a seeded random order."""
    if max_items is None:
        return examples
    out: list[Example] = []
    for split in sorted({e.split for e in examples}):
        part = [e for e in examples if e.split == split]
        by_group: dict[str, list[Example]] = {}
        for e in part:
            by_group.setdefault(str(e.group or e.id), []).append(e)
        keys = sorted(by_group)
        order = np.random.default_rng(seed).permutation(len(keys))
        taken: list[Example] = []
        for i in order:
            if len(taken) >= max_items:
                break
            taken.extend(by_group[keys[i]])
        out.extend(sorted(taken, key=lambda e: e.id))
    return out


def _distinct_fits(results: list[LayerSeedResult]) -> dict[str, int]:
    """Per layer: how many probe seeds gave distinct test predictions (identical fits are not replicates)."""
    out: dict[str, set[bytes]] = {}
    for r in results:
        out.setdefault(r.layer, set()).add(np.asarray(r.y_pred).astype(str).tobytes())
    return {layer: len(v) for layer, v in out.items()}


def _baseline_rows(y_true: np.ndarray, memorised: np.ndarray | None, n_boot: int, clusters: np.ndarray | None = None
                   ) -> list[tuple[str, tuple[float, float, float]]]:
    """Encoder-free baselines of one test subset: its own majority rate and caption memorisation (with clustered CIs)."""
    out = [("test_majority_rate", bootstrap_metric("accuracy", y_true, np.full(len(y_true), majority_label(
        y_true.tolist()), dtype=object), n_boot=n_boot, seed=0, clusters=clusters))] if len(y_true) else []
    if memorised is not None and len(y_true):
        out.append(("memorisation_baseline", bootstrap_metric("accuracy", y_true, memorised, n_boot=n_boot, seed=0,
                                                              clusters=clusters)))
    return out


def summarize_unit(items: ProbeItems, test_idx: np.ndarray, results: list[LayerSeedResult], *, dataset: str,
                   task: str, encoder: str, probe: str, split: str, train_labels: Sequence[str],
                   report_by: Sequence[str], n_boot: int, chance: float | None, control_seen: np.ndarray | None = None,
                   memorised: np.ndarray | None = None, boot_seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tidy result rows (with CIs) and per-item predictions of one unit's pooled test predictions.

    Intervals resample the test items' clusters (``ProbeItems.groups``: scene, image, story, pair), with
    one matrix of cluster draws shared by every layer, seed, subset and metric (:func:`bootstrap_unit`).
    Accuracy, control accuracy, selectivity (their difference, on the same resamples) and the majority
    baseline get intervals on every subset; macro-F1 gets one on ``all`` (its value elsewhere, where a
    subset of one relation has one true class and macro-F1 is no summary worth an interval).
    ``n_distinct_fits`` counts the seeds whose predictions differ, per layer.
    ``control_seen`` (per test item: its control type occurs in training; default all) restricts the control's
    scoring; ``memorised`` (per test item: the caption-memorisation baseline's label) adds its accuracy row.
    """
    y_true = items.labels[test_idx]
    clusters = np.asarray(items.groups, dtype=object)[test_idx]
    majority = majority_label(list(train_labels))
    n_classes = len(set(train_labels))
    chance = chance if chance is not None else chance_level(n_classes)
    seen = np.ones(len(test_idx), bool) if control_seen is None else np.asarray(control_seen, bool)
    n = len(test_idx)
    subsets = [("all", "all", np.ones(n, bool))]
    for kind in report_by:
        vals = np.asarray(items.subsets[kind], dtype=object)[test_idx]
        subsets += [(kind, v, vals == v) for v in sorted({v for v in vals if pd.notna(v)})]
    fixed = {(kind, value): _baseline_rows(y_true[mask], None if memorised is None else memorised[mask], n_boot,
                                           clusters[mask])
             for kind, value, mask in subsets}
    masks = np.stack([m for _, _, m in subsets])
    R = len(results)
    task_ok = [y_true == r.y_pred for r in results]
    ctrl_ok = [r.control_true == r.control_pred for r in results]
    value, lo, hi = bootstrap_unit(np.stack(task_ok + ctrl_ok + [y_true == majority], axis=1), masks,
                                   clusters=clusters, n_boot=n_boot, seed=boot_seed)
    # the control is scored where the probe could have memorised the type: test items of a type seen in training
    seen_masks = masks & seen[None, :]
    cs = bootstrap_unit(np.stack(ctrl_ok, axis=1), seen_masks, clusters=clusters, n_boot=n_boot, seed=boot_seed)
    sel = _signed_bootstrap(np.stack([t.astype(np.float64) - c for t, c in zip(task_ok, ctrl_ok)], axis=1),
                            seen_masks, clusters, n_boot, boot_seed)
    f1 = list(zip(*bootstrap_macro_f1(y_true, [r.y_pred for r in results], clusters=clusters, n_boot=n_boot,
                                      seed=boot_seed)))
    f1_sub = [bootstrap_macro_f1(y_true[m], [r.y_pred[m] for r in results], n_boot=0)[0] if m.any() else
              np.full(R, np.nan) for m in masks]  # per-subset values, every layer and seed in one count
    distinct = _distinct_fits(results)
    nan3 = (np.nan,) * 3
    rows, preds = [], []
    for j, r in enumerate(results):
        base = {"dataset": dataset, "task": task, "encoder": encoder, "layer": r.layer, "probe": probe,
                "seed": r.seed, "split": split}
        for s, (kind, sub, mask) in enumerate(subsets):
            row = {**base, "subset_kind": kind, "subset": sub, "n_test": int(mask.sum())}
            k = int(seen_masks[s].sum())
            overlap = k / mask.sum() if mask.sum() else np.nan
            interpretable = overlap >= MIN_CONTROL_OVERLAP
            f1_row = f1[j] if kind == "all" else (f1_sub[s][j], np.nan, np.nan)
            for metric, (v, a, b), n_test in (
                    ("accuracy", (value[s, j], lo[s, j], hi[s, j]), None),
                    ("below_chance", (float(hi[s, j] < chance), np.nan, np.nan), None),  # 1: interval below chance
                    ("macro_f1", f1_row, None),
                    ("control_accuracy", (value[s, R + j], lo[s, R + j], hi[s, R + j]), None),
                    ("control_type_overlap", (overlap, np.nan, np.nan), None),
                    ("control_accuracy_seen", (cs[0][s, j], cs[1][s, j], cs[2][s, j]) if k else nan3, k),
                    ("selectivity", (sel[0][s, j], sel[1][s, j], sel[2][s, j]) if interpretable and k else nan3, k),
                    ("selectivity_interpretable", (float(interpretable), np.nan, np.nan), None),
                    ("majority", (value[s, -1], lo[s, -1], hi[s, -1]), None),
                    *((m, fv, None) for m, fv in fixed[(kind, sub)])):
                rows.append({**row, "metric": metric, "value": float(v), "ci_low": float(a), "ci_high": float(b),
                             **({"n_test": n_test} if n_test is not None else {})})
        scalar = {"chance": chance, "cv_accuracy": r.cv_accuracy,
                  "control_cv_accuracy": r.control_cv_accuracy, "C": r.C, "control_C": r.control_C,
                  "n_distinct_fits": distinct[r.layer],
                  "mdl_codelength_bits": r.mdl_bits, "mdl_compression": r.mdl_compression,
                  "control_mdl_codelength_bits": r.control_mdl_bits,
                  "control_mdl_compression": r.control_mdl_compression}
        for metric, v in scalar.items():
            if "mdl" in metric and np.isnan(v):
                continue
            rows.append({**base, "subset_kind": "all", "subset": "all", "metric": metric, "value": float(v),
                         "ci_low": np.nan, "ci_high": np.nan, "n_test": n})
        pred = pd.DataFrame({**base, "example_id": [items.ids[i] for i in test_idx], "y_true": y_true.astype(str),
                             "y_pred": r.y_pred.astype(str), "correct": y_true == r.y_pred,
                             "control_true": r.control_true.astype(str), "control_pred": r.control_pred.astype(str),
                             "control_seen": seen, "cluster": clusters.astype(str)})
        for kind in ("relation", "category", "k", "question_type"):
            if kind in items.subsets:
                pred[kind] = [None if v is None else str(v) for v in np.asarray(items.subsets[kind], object)[test_idx]]
        preds.append(pred)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS), pd.concat(preds, ignore_index=True)


def _signed_bootstrap(x: np.ndarray, masks: np.ndarray, clusters: np.ndarray, n_boot: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`bootstrap_unit` for scores in [−1, 1] (selectivity: task minus control correctness), on the same draws."""
    v, lo, hi = bootstrap_unit((x + 1) / 2, masks, clusters=clusters, n_boot=n_boot, seed=seed)
    return 2 * v - 1, 2 * lo - 1, 2 * hi - 1


def task_examples(task: str, *, data_dir: str | Path | None = None, split: str | None = None,
                  load_kwargs: dict[str, Any] | None = None, max_train: int | None = None,
                  max_test: int | None = None, seed: int = 0) -> list[Example]:
    """The examples a unit of ``task`` uses: loaded under the split policy, train and test capped (whole groups).

    Under ``own`` and ``zeroshot`` only the task's training and test splits are kept, so nothing else is embedded.
    """
    t = get_task(task)
    examples = t.load(data_dir, split=split or t.spec.split, **(load_kwargs or {}))
    if (split or t.spec.split) in ("own", "zeroshot"):  # other splits (dev, valid) would be embedded for nothing
        examples = [e for e in examples if e.split in t.spec.train_splits or e.split in t.spec.test_splits]
    train = [e for e in examples if e.split in t.spec.train_splits]
    return cap_examples(train, max_train, seed) + \
        cap_examples([e for e in examples if e.split not in t.spec.train_splits], max_test, seed)


def run_unit(config: UnitConfig, *, data_dir: str | Path | None = None, model_path: str | Path | None = None,
             cache_dir: str | Path | None = None, image_dir: str | Path | None = None,
             show_progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Load, embed and probe one (task, encoder) unit; returns (results, predictions, metadata)."""
    from spatial_probing.embed import embed_examples, fit_lexical, load_encoder

    task = get_task(config.task)
    spec = task.spec
    policy = config.split or spec.split
    base_seed = config.settings.seeds[0]
    examples = task_examples(config.task, data_dir=data_dir, split=config.split, load_kwargs=config.load_kwargs,
                             max_train=config.max_train, max_test=config.max_test, seed=base_seed)
    items = task.items(examples)
    folds = outer_folds(policy, items.splits, items.concepts, n_folds=config.outer_folds, seed=base_seed,
                        train_splits=spec.train_splits, test_splits=spec.test_splits)
    encoder = load_encoder(config.encoder, model_path=model_path, device=config.settings.device,
                           precision=config.precision)
    feats: dict[str, np.ndarray] | None = None
    per_fold, overlap, seen, memorised = [], [], [], []
    for fold in folds:
        tr, te = fold.train, fold.test
        rows = np.concatenate([items.rows_a[tr]] + ([items.rows_b[tr]] if items.rows_b is not None else []))
        # a lexical floor (bow:, order:) learns its vocabulary from this fold's training items only
        if fit_lexical(encoder, [items.examples[i] for i in np.unique(rows)]) or feats is None:
            emb = embed_examples(items.examples, encoder, layers=config.layers, cache_dir=cache_dir,
                                 image_dir=image_dir, show_progress=show_progress)
            feats = {layer: items.features(np.asarray(x, dtype=np.float32)) for layer, x in emb.items()}
        res = probe_arrays({k: v[tr] for k, v in feats.items()}, items.labels[tr], {k: v[te] for k, v in feats.items()},
                           groups_train=[items.groups[i] for i in tr],
                           control_types_train=[items.control_types[i] for i in tr],
                           control_types_test=[items.control_types[i] for i in te], settings=config.settings,
                           concepts_train=[items.concepts[i] for i in tr] if spec.inner_cv == "concept" else None,
                           show_progress=show_progress)
        per_fold.append(res)
        ex = items.examples
        overlap.append(overlap_report([ex[items.rows_a[i]] for i in tr], [ex[items.rows_a[i]] for i in te]))
        seen.append(seen_in_training([items.control_types[i] for i in tr], [items.control_types[i] for i in te]))
        if items.rows_b is None:  # single-caption items: what an identical training caption was labelled
            memorised.append(memorisation_predictions([ex[items.rows_a[i]].text for i in tr], items.labels[tr].tolist(),
                                                      [ex[items.rows_a[i]].text for i in te]))
    test_idx = np.concatenate([f.test for f in folds])
    pooled = []
    for j, r in enumerate(per_fold[0]):  # pool the folds' test predictions (each item is tested once)
        parts = [fold_res[j] for fold_res in per_fold]
        pooled.append(LayerSeedResult(
            r.layer, r.seed, np.concatenate([p.y_pred for p in parts]), np.concatenate([p.control_true for p in parts]),
            np.concatenate([p.control_pred for p in parts]), float(np.mean([p.C for p in parts])),
            float(np.mean([p.control_C for p in parts])), float(np.mean([p.cv_accuracy for p in parts])),
            float(np.mean([p.control_cv_accuracy for p in parts])), float(np.sum([p.mdl_bits for p in parts])),
            float(np.mean([p.mdl_compression for p in parts])), float(np.sum([p.control_mdl_bits for p in parts])),
            float(np.mean([p.control_mdl_compression for p in parts]))))
    train_labels = items.labels[np.concatenate([f.train for f in folds[:1]])].tolist()
    results, predictions = summarize_unit(
        items, test_idx, pooled, dataset=spec.dataset, task=spec.name, encoder=config.encoder,
        probe=config.settings.probe, split=policy, train_labels=train_labels, report_by=spec.report_by,
        n_boot=config.settings.n_boot, chance=spec.chance, control_seen=np.concatenate(seen),
        memorised=np.concatenate(memorised) if memorised else None, boot_seed=base_seed)
    meta = {"unit": config.model_dump(mode="json"), "config_hash": config.digest(), "task": spec.model_dump(mode="json"),
            "encoder": encoder.info.model_dump(mode="json"),
            "data_hash": examples_hash(items.examples), "format_version": PROBE_FORMAT_VERSION,
            "n_examples": len(items.examples), "n_items": len(items.ids), "n_folds": len(folds),
            "skipped_examples": task.skip_reasons(examples),
            "splits": overlap}
    return results, predictions, meta


def unit_paths(out_dir: Path, config: UnitConfig) -> dict[str, Path]:
    stem = out_dir / "parts" / f"{safe_name(config.task)}__{safe_name(config.encoder)}__{config.settings.probe}"
    return {"results": stem.with_suffix(".results.parquet"), "predictions": stem.with_suffix(".predictions.parquet"),
            "meta": stem.with_suffix(".json")}


def encoder_weights_hash(name: str, *, model_path: str | Path | None = None,
                         cache_dir: str | Path | None = None) -> str:
    """The weights hash of the encoder a unit would load (memoised beside the cache; the model is not loaded)."""
    from spatial_probing.embed import load_encoder

    memo = Path(cache_dir) / "weights-sha256.json" if cache_dir is not None else None
    return load_encoder(name, model_path=model_path, device="cpu").weights_hash(memo_file=memo)


def examples_hash(examples: Sequence[Example]) -> str:
    """Identity of the data a unit used: every field of every example (ids, texts, labels, splits), in order."""
    return sha256_texts(e.model_dump_json() for e in examples)


def unit_data_hash(config: UnitConfig, data_dir: str | Path | None = None) -> str:
    """:func:`examples_hash` of the examples ``config``'s unit embeds (loaded, capped and filtered as it does)."""
    examples = task_examples(config.task, data_dir=data_dir, split=config.split, load_kwargs=config.load_kwargs,
                             max_train=config.max_train, max_test=config.max_test, seed=config.settings.seeds[0])
    return examples_hash(get_task(config.task).items(examples).examples)


def part_is_current(meta_path: Path, config_hash: str, weights_hash: str | None,
                    data_hash: str | Callable[[], str] | None = None) -> bool:
    """Whether a finished part can be reused: same configuration, probing-format version
    (:data:`PROBE_FORMAT_VERSION`), encoder weights and data (each of the last two when given).

    A retrained model under the same name, edited data files or changed probing code are never answered
    from old results. ``data_hash`` may be a function, called only when everything else matches (it loads data).
    """
    try:
        meta = json.loads(meta_path.read_text())
        if meta["config_hash"] != config_hash or meta.get("format_version") != PROBE_FORMAT_VERSION:
            return False
        if weights_hash is not None and meta["encoder"]["weights_hash"] != weights_hash:
            return False
        stored = meta.get("data_hash")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if data_hash is None:
        return True
    return stored == (data_hash() if callable(data_hash) else data_hash)


def pending_units(units: Sequence[Any], done: Callable[[Any, str], bool], *, stage: str, label: Callable[[Any], str],
                  model_paths: dict[str, str | Path] | None, cache_dir: str | Path, log=print,
                  show_progress: bool = False) -> Iterator[tuple[Any, str | Path | None]]:
    """The units (probe or RSA) still to compute, each with its model path; finished ones are logged and skipped.

    ``done(unit, weights_hash)`` says whether the unit's part is current for these encoder weights, so a
    resumed run recomputes exactly the units whose configuration or model changed. A progress bar over the
    units (with ETA) names the unit being computed; the log gets one line per finished unit with its time.
    """
    from tqdm.auto import tqdm

    with tqdm(total=len(units), desc=stage, unit="unit", disable=not show_progress) as bar:
        for unit in units:
            model_path = (model_paths or {}).get(unit.encoder)
            weights = encoder_weights_hash(unit.encoder, model_path=model_path, cache_dir=cache_dir)
            if done(unit, weights):
                log(f"skip {stage} {label(unit)}: done (config {unit.digest()}, same weights, data and format)")
                bar.update()
                continue
            log(f"{stage} {label(unit)}")
            bar.set_postfix_str(label(unit), refresh=True)
            start = time.perf_counter()
            yield unit, model_path
            log(f"{stage} {label(unit)}: finished in {time.perf_counter() - start:.1f} s")
            bar.update()


def unit_done(out_dir: Path, config: UnitConfig, weights_hash: str | None = None, *,
              data_dir: str | Path | None = None) -> bool:
    """Whether this unit's part exists with the same configuration hash, format version, encoder weights and
    data (then it is skipped)."""
    return part_is_current(unit_paths(out_dir, config)["meta"], config.digest(), weights_hash,
                           lambda: unit_data_hash(config, data_dir))


def write_unit(out_dir: Path, config: UnitConfig, results: pd.DataFrame, predictions: pd.DataFrame,
               meta: dict[str, Any]) -> None:
    """Write a unit's part files atomically; the metadata (with the hash) last, as the completion mark."""
    paths = unit_paths(out_dir, config)
    for key, df in (("results", results), ("predictions", predictions)):
        with atomic_path(paths[key]) as tmp:
            df.to_parquet(tmp, index=False)
    atomic_write_json(paths["meta"], meta)


def _sort(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.sort_values(keys, kind="mergesort").reset_index(drop=True)


def best_layers(results: pd.DataFrame) -> dict[tuple, str]:
    """Each (task, encoder, probe)'s layer with the best mean inner-CV accuracy (chosen on train only)."""
    cv = results[(results.metric == "cv_accuracy") & results.value.notna()]
    if cv.empty:
        return {}
    mean = cv.groupby(["task", "encoder", "probe", "layer"], sort=True).value.mean().reset_index()
    idx = mean.groupby(["task", "encoder", "probe"], sort=True).value.idxmax()
    return {(r.task, r.encoder, r.probe): r.layer for r in mean.loc[idx].itertuples()}


def compare_encoders(predictions: pd.DataFrame, results: pd.DataFrame, *, n_permutations: int = 10000,
                     seed: int = 0, show_progress: bool = False) -> pd.DataFrame:
    """Paired comparisons of every two encoders of a task on the same test items.

    Layers compared: ``final`` against ``final`` when both have it, and each encoder's best layer by
    inner-CV accuracy (``best-cv``; no test data used to pick it). Per item, seeds are pooled: the
    permutation test uses the fraction of seeds that got it right (flipping whole clusters when the
    predictions carry a ``cluster`` column), McNemar the majority over seeds.
    Holm corrects McNemar p-values within each family of subsets (e.g. across relation categories).
    The sign-flip tests of a task share one matrix of random signs (:class:`~spatial_probing.probe.stats.SignFlips`):
    the number of tests grows with the square of the encoders.
    """
    from tqdm.auto import tqdm

    rows: list[dict[str, Any]] = []
    if predictions.empty:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    best = best_layers(results)
    groups = list(predictions.groupby(["dataset", "task", "probe"], sort=True))
    n_pairs = sum(len(e) * (len(e) - 1) // 2 for e in (g.encoder.unique() for _, g in groups))
    bar = tqdm(total=n_pairs, desc="compare encoders", unit="pair", disable=not show_progress or not n_pairs)
    for (dataset, task, probe), grp in groups:
        encoders = sorted(grp.encoder.unique())
        per_item = grp.groupby(["encoder", "layer", "example_id"], sort=True).correct.mean()
        meta = grp.drop_duplicates("example_id").set_index("example_id")
        # whole clusters (scene, image, story) are flipped when known, else items
        codes = cluster_codes(meta["cluster"].to_numpy(dtype=object) if "cluster" in meta.columns else None, len(meta))
        flips = SignFlips(int(codes.max()) + 1, n_permutations=n_permutations, seed=seed)
        layers_of = {e: set(layers) for e, layers in grp.groupby("encoder").layer.unique().items()}
        for i, a in enumerate(encoders):
            bar.set_postfix_str(f"{task}: {a}", refresh=False)
            for b in encoders[i + 1:]:
                choices = []
                if "final" in layers_of[a] and "final" in layers_of[b]:
                    choices.append(("final", "final", "final"))
                if (task, a, probe) in best and (task, b, probe) in best:
                    choices.append(("best-cv", best[(task, a, probe)], best[(task, b, probe)]))
                for selection, la, lb in choices:
                    sa, sb = per_item.loc[(a, la)], per_item.loc[(b, lb)]
                    common = sa.index.intersection(sb.index)
                    sa, sb = sa.loc[common], sb.loc[common]
                    subsets = [("all", "all", np.ones(len(common), bool))]
                    for kind in ("category", "relation", "k", "question_type"):
                        if kind in meta.columns:
                            vals = meta.loc[common, kind].to_numpy(dtype=object)
                            subsets += [(kind, v, vals == v) for v in sorted({v for v in vals if pd.notna(v)})]
                    fam: list[dict[str, Any]] = []
                    common_codes = codes[meta.index.get_indexer(common)]
                    diff = sa.to_numpy() - sb.to_numpy()
                    sums = np.stack([cluster_sums(diff[mask], common_codes[mask], flips.n_clusters)[0]
                                     for _, _, mask in subsets], axis=1)  # per cluster and subset
                    for (kind, value, mask), perm_p in zip(subsets, flips.pvalues(sums)):
                        xa, xb = sa.to_numpy()[mask], sb.to_numpy()[mask]
                        fam.append({"dataset": dataset, "task": task, "layer_a": la, "layer_b": lb, "probe": probe,
                                    "encoder_a": a, "encoder_b": b, "selection": selection, "subset_kind": kind,
                                    "subset": value, "acc_a": float(xa.mean()), "acc_b": float(xb.mean()),
                                    "diff": float(xa.mean() - xb.mean()),
                                    "mcnemar_p": mcnemar_exact(xa >= 0.5, xb >= 0.5),
                                    "permutation_p": float(perm_p), "n": int(mask.sum())})
                    for kind in {r["subset_kind"] for r in fam}:
                        members = [r for r in fam if r["subset_kind"] == kind]
                        for r, p in zip(members, holm([r["mcnemar_p"] for r in members])):
                            r["p_holm"] = float(p)
                    rows += fam
                bar.update()
    bar.close()
    df = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    return _sort(df, ["dataset", "task", "probe", "encoder_a", "encoder_b", "selection", "subset_kind", "subset"])


def assemble(out_dir: str | Path, *, command: str = "", config: dict[str, Any] | None = None,
             started: str | None = None, show_progress: bool = False) -> dict[str, Path]:
    """Concatenate every part under ``out_dir/parts`` into the run's tables and manifest (atomically)."""
    out_dir = Path(out_dir)
    metas = sorted((out_dir / "parts").glob("*.json"))
    if not metas:
        raise ValueError(f"{out_dir}: no completed probe units under parts/ to assemble")
    res, pred, units = [], [], []
    for m in metas:
        meta = json.loads(m.read_text())
        stem = m.with_suffix("")
        res.append(pd.read_parquet(stem.with_suffix(".results.parquet")))
        pred.append(pd.read_parquet(stem.with_suffix(".predictions.parquet")))
        units.append(meta)
    results = _sort(pd.concat(res, ignore_index=True), KEY_COLUMNS + ["subset_kind", "subset", "metric"])
    predictions = _sort(pd.concat(pred, ignore_index=True), KEY_COLUMNS + ["example_id"])
    comparisons = compare_encoders(predictions, results, show_progress=show_progress)
    paths = {"results": out_dir / "results.parquet", "results_csv": out_dir / "results.csv",
             "predictions": out_dir / "predictions.parquet", "comparisons": out_dir / "comparisons.parquet",
             "comparisons_csv": out_dir / "comparisons.csv", "manifest": out_dir / "manifest.json"}
    for key, df in (("results", results), ("predictions", predictions), ("comparisons", comparisons)):
        with atomic_path(paths[key]) as tmp:
            df.to_parquet(tmp, index=False)
        if f"{key}_csv" in paths:
            with atomic_path(paths[f"{key}_csv"]) as tmp:
                df.to_csv(tmp, index=False)
    seeds = sorted({s for u in units for s in u["unit"]["settings"]["seeds"]})
    atomic_write_json(paths["manifest"], {
        "command": command, "config": config or {}, "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": package_versions(),
        "seeds": seeds, "units": units,
        "tables_sha256": {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in paths.items() if k != "manifest"}})
    return paths


def compute_unit(config: UnitConfig, model_path: str | Path | None, *, out_dir: Path,
                 data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 image_dir: str | Path | None = None, show_progress: bool = True) -> None:
    """Compute one unit and write its part: the work of one executor call (here, or a Ray task)."""
    results, predictions, meta = run_unit(config, data_dir=data_dir, model_path=model_path,
                                          cache_dir=cache_dir, image_dir=image_dir, show_progress=show_progress)
    write_unit(out_dir, config, results, predictions, meta)


def run_units(configs: Sequence[UnitConfig], out_dir: str | Path, *, data_dir: str | Path | None = None,
              model_paths: dict[str, str | Path] | None = None, cache_dir: str | Path | None = None,
              image_dir: str | Path | None = None, command: str = "", run_config: dict[str, Any] | None = None,
              show_progress: bool = True, log=print, executor: Any = None) -> dict[str, Path]:
    """Compute every unit not already done (same hash), task by task (logging each task's encoders beside its
    lexical floor when it finishes), then assemble the run's tables. ``executor``: where the units run
    (None: here; see :mod:`spatial_probing.executor`)."""
    from spatial_probing.executor import map_units

    out_dir = Path(out_dir)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cache_dir = cache_dir if cache_dir is not None else out_dir / "cache"

    def floor(task: str) -> None:
        of_task = [c for c in configs if c.task == task]
        log(format_floor_table(pd.concat([pd.read_parquet(unit_paths(out_dir, c)["results"]) for c in of_task]), task))

    map_units(partial(compute_unit, out_dir=out_dir, data_dir=data_dir, cache_dir=cache_dir, image_dir=image_dir,
                      show_progress=show_progress and executor is None), configs, executor=executor, stage="probe",
              label=lambda c: f"{c.task} × {c.encoder} ({c.settings.probe})",
              done=lambda c, w: unit_done(out_dir, c, w, data_dir=data_dir), model_paths=model_paths,
              cache_dir=cache_dir, log=log, show_progress=show_progress, group=lambda c: c.task, on_group_done=floor)
    return assemble(out_dir, command=command, config=run_config, started=started, show_progress=show_progress)
