"""The RSA step of a run: item-level RDMs of every layer against every applicable reference.

One *unit* is a (task, encoder) pair. Its examples are exactly those the probe step embedded for
the same task (same loading, split policy and caps), so the embeddings come from the shared
cache. Then, for the RSA only: repeated texts are dropped (identical captions would give trivial
zero distances), at most ``max_items`` items are kept (whole groups, seeded), and for each layer
× RDM method × reference × comparison the observed similarity, its permutation p-value and a
bootstrap interval become one row of ``rsa.parquet``. Condition-level RDMs (relation centroids
per layer, and each reference's condition RDM) go to ``rdms/*.npz`` for heatmaps and 2-D maps.

Each unit's part is written atomically to ``rsa_parts/`` with the hash of its configuration (the
metadata last); a unit whose part exists with the same hash is skipped, so a run resumes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from spatial_probing.data.schema import Example
from spatial_probing.io import atomic_path, atomic_write_json, package_versions, sha256_bytes
from spatial_probing.probe.runner import (PROBE_FORMAT_VERSION, examples_hash, part_is_current, safe_name,
                                          task_examples)
from spatial_probing.probe.tasks import TASKS, get_task
from spatial_probing.rsa.compare import COMPARISON_METHODS
from spatial_probing.probe.stats import holm
from spatial_probing.rsa.inference import bootstrap_samples, paired_bootstrap, partial_spearman, permutation_test
from spatial_probing.rsa.rdm import RDM_METHODS, calc_rdm, condition_centroids, to_square
from spatial_probing.rsa.references import REFERENCES, Reference, applicable_references, bag_of_words_rdm

RSA_COLUMNS = ["dataset", "encoder", "layer", "reference", "rdm_method", "comparison", "value", "p_value", "ci_low",
               "ci_high", "n_items", "n_permutations", "partial_value", "partial_p", "p_holm"]
#: Paired encoder comparisons of fit to a reference (``rsa_pairs.parquet``): same resamples, Holm over all pairs.
PAIR_COLUMNS = ["dataset", "reference", "rdm_method", "comparison", "encoder_a", "layer_a", "encoder_b", "layer_b",
                "value_a", "value_b", "diff", "ci_low", "ci_high", "p_value", "p_holm", "n_boot"]


def _known(values: list[str] | None, allowed: Sequence[str], what: str) -> list[str] | None:
    bad = [v for v in values or [] if v not in allowed]
    if bad:
        raise ValueError(f"unknown {what} {bad}; expected some of {list(allowed)}")
    return values


class RSASettings(BaseModel):
    """How RSA is computed (the ``rsa:`` section of a run config; ``rsa: null`` turns the step off).

    ``tasks`` picks whose examples are analysed (default: the run's tasks, the first per dataset
    that embeds single captions); ``layers`` defaults to the run's; ``references`` to every one that
    applies to a dataset. ``n_permutations``/``n_boot`` of 0 skip the test/interval.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: list[str] | None = None
    layers: str | None = None
    rdm_methods: list[str] = Field(default=["cosine"], min_length=1)
    comparisons: list[str] = Field(default=["rho_a"], min_length=1)
    references: list[str] | None = None
    n_permutations: int = Field(default=1000, ge=0)
    n_boot: int = Field(default=1000, ge=0)
    max_items: int | None = Field(default=1000, ge=3)
    seed: int = 0

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: list[str] | None) -> list[str] | None:
        _known(v, sorted(TASKS), "task(s)")
        datasets = [TASKS[t].spec.dataset for t in v or []]
        if len(set(datasets)) != len(datasets):
            raise ValueError(f"at most one task per dataset (rsa.parquet is keyed by dataset), got {v}")
        return v

    @field_validator("rdm_methods")
    @classmethod
    def _rdm(cls, v: list[str]) -> list[str]:
        return _known(v, RDM_METHODS, "RDM method(s)")  # type: ignore[return-value]

    @field_validator("comparisons")
    @classmethod
    def _cmp(cls, v: list[str]) -> list[str]:
        return _known(v, COMPARISON_METHODS, "comparison(s)")  # type: ignore[return-value]

    @field_validator("references")
    @classmethod
    def _refs(cls, v: list[str] | None) -> list[str] | None:
        return _known(v, REFERENCES, "reference(s)")

    def pick_tasks(self, run_tasks: Sequence[str]) -> list[str]:
        """The configured tasks, or per dataset the first run task with single-caption input."""
        if self.tasks is not None:
            return list(self.tasks)
        chosen: dict[str, str] = {}
        for t in sorted(run_tasks, key=lambda t: TASKS[t].spec.input == "pair-difference"):
            chosen.setdefault(TASKS[t].spec.dataset, t)
        return [t for t in run_tasks if t in chosen.values()]


class StepUnit(BaseModel):
    """What a post-probe step's unit (RSA, meaning over words) shares with the probe unit of its task.

    ``split``, ``load_kwargs``, ``max_train``, ``max_test`` and ``probe_seed`` mirror the probe
    unit, so that the same examples (and cached embeddings) are used; the hash names the part files.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    encoder: str
    layers: str = "all"
    split: str | None = None
    load_kwargs: dict[str, Any] = Field(default_factory=dict)
    max_train: int | None = None
    max_test: int | None = None
    probe_seed: int = 0
    device: str = "auto"

    def digest(self) -> str:
        return sha256_bytes(self.model_dump_json().encode())[:16]


class RSAUnit(StepUnit):
    """Everything that determines one (task, encoder) RSA unit."""

    settings: RSASettings = RSASettings()


def probe_examples(unit: RSAUnit, data_dir: str | Path | None = None) -> list[Example]:
    """The examples the probe step embeds for ``unit.task`` (same loading, split policy and caps)."""
    examples = task_examples(unit.task, data_dir=data_dir, split=unit.split, load_kwargs=unit.load_kwargs,
                             max_train=unit.max_train, max_test=unit.max_test, seed=unit.probe_seed)
    return get_task(unit.task).items(examples).examples


def select_items(examples: Sequence[Example], *, max_items: int | None, seed: int) -> tuple[np.ndarray, dict[str, int]]:
    """Rows to analyse: first occurrence of each text, then at most ``max_items`` in whole groups (seeded)."""
    seen: set[str] = set()
    rows = [i for i, e in enumerate(examples) if not (e.text in seen or seen.add(e.text))]  # type: ignore[func-returns-value]
    counts = {"examples": len(examples), "repeated_texts_dropped": len(examples) - len(rows)}
    if max_items is not None and len(rows) > max_items:
        by_group: dict[str, list[int]] = {}
        for i in rows:
            by_group.setdefault(str(examples[i].group or examples[i].id), []).append(i)
        keys = sorted(by_group)
        taken: list[int] = []
        for g in np.random.default_rng(seed).permutation(len(keys)):
            if len(taken) + len(by_group[keys[g]]) <= max_items:
                taken.extend(by_group[keys[g]])
        counts["capped_dropped"] = len(rows) - len(taken)
        rows = sorted(taken)
    counts["items"] = len(rows)
    return np.asarray(rows, dtype=np.int64), counts


def _subset(square: np.ndarray, keep: np.ndarray) -> np.ndarray:
    sub = square[np.ix_(keep, keep)]
    return sub[np.triu_indices(sub.shape[0], k=1)]


def rsa_rows(embeddings: dict[str, np.ndarray], references: dict[str, Reference], settings: RSASettings, *,
             dataset: str, encoder: str, texts: Sequence[str] | None = None,
             clusters: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per layer × RDM method × reference × comparison (value, permutation p, clustered bootstrap CI).

    With ``texts``, ``partial_value``/``partial_p`` are the partial Spearman fit controlling for the texts'
    bag-of-words RDM (references without NaN pairs). Bootstrap intervals resample ``clusters`` (the items'
    scenes, images, stories) unless the reference has its own blocks; the samples are kept in ``boot``
    so that two encoders can be compared on the same resamples (:func:`rsa_pairs`).
    """
    bow = to_square(bag_of_words_rdm(texts)) if texts is not None else None
    cl = np.asarray(clusters, dtype=object) if clusters is not None else None
    rows = []
    for layer, x in embeddings.items():
        for rdm_method in settings.rdm_methods:
            square = to_square(calc_rdm(x, method=rdm_method))
            for ref_name, ref in references.items():
                a = _subset(square, ref.keep)
                groups = ref.groups if ref.groups is not None else (cl[ref.keep] if cl is not None else None)
                for method in settings.comparisons:
                    test = permutation_test(a, ref.rdm, method=method, n_permutations=settings.n_permutations,
                                            seed=settings.seed, groups=ref.groups)
                    boot = bootstrap_samples(a, ref.rdm, method=method, n_boot=settings.n_boot, seed=settings.seed,
                                             groups=groups) if settings.n_boot else np.empty(0)
                    ok = boot[np.isfinite(boot)]
                    lo, hi = np.quantile(ok, [0.025, 0.975]) if ok.size >= 2 else (np.nan, np.nan)
                    pv, pp = np.nan, np.nan
                    if bow is not None and method in ("rho_a", "spearman") and not np.isnan(ref.rdm).any():
                        pv, pp = partial_spearman(a, ref.rdm, _subset(bow, ref.keep),
                                                  n_permutations=settings.n_permutations, seed=settings.seed,
                                                  groups=ref.groups)
                    rows.append({"dataset": dataset, "encoder": encoder, "layer": layer, "reference": ref_name,
                                 "rdm_method": rdm_method, "comparison": method, "value": test.value,
                                 "p_value": test.p_value, "ci_low": float(lo), "ci_high": float(hi),
                                 "n_items": int(ref.keep.sum()), "n_permutations": int(len(test.null)),
                                 "partial_value": pv, "partial_p": pp, "p_holm": np.nan, "boot": boot.tolist()})
    return pd.DataFrame(rows, columns=RSA_COLUMNS + ["boot"])


def with_holm(table: pd.DataFrame) -> pd.DataFrame:
    """``p_holm``: permutation p-values Holm-corrected over layers × references, per dataset × encoder × method."""
    out = table.reset_index(drop=True)
    out["p_holm"] = np.nan
    for _, idx in out.groupby(["dataset", "encoder", "rdm_method", "comparison"], sort=False).groups.items():
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p_value"].to_numpy(dtype=np.float64))
    return out


def rsa_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """Every two encoders' fit to the same reference at each one's last layer, compared on the same bootstrap
    resamples (paired percentile interval and bootstrap p of the difference), Holm over all pairs."""
    from spatial_probing.report.summary import layer_sort_key  # the report reads RSA at the same layer

    if table.empty or "boot" not in table.columns:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    keys = ["dataset", "reference", "rdm_method", "comparison"]
    rows = []
    for key, grp in table.groupby(keys, sort=True):
        last = {e: max(g.layer, key=layer_sort_key) for e, g in grp.groupby("encoder")}
        cells = {e: grp[(grp.encoder == e) & (grp.layer == lay)].iloc[0] for e, lay in last.items()}
        names = sorted(cells)
        for i, ea in enumerate(names):
            for eb in names[i + 1:]:
                a, b = cells[ea], cells[eb]
                if len(a.boot) == 0 or len(a.boot) != len(b.boot) or a.n_items != b.n_items:
                    continue
                lo, hi, p = paired_bootstrap(np.asarray(a.boot), np.asarray(b.boot))
                rows.append(dict(zip(keys, key), encoder_a=ea, layer_a=a.layer, encoder_b=eb, layer_b=b.layer,
                                 value_a=a.value, value_b=b.value, diff=a.value - b.value, ci_low=lo, ci_high=hi,
                                 p_value=p, n_boot=len(a.boot)))
    out = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    if not out.empty:
        out["p_holm"] = holm(out.p_value.to_numpy(dtype=np.float64))
    return out


def _write_npz(path: Path, **arrays: Any) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def write_condition_rdms(out_dir: Path, embeddings: dict[str, np.ndarray], examples: Sequence[Example],
                         references: dict[str, Reference], *, dataset: str, encoder: str,
                         rdm_method: str) -> list[str]:
    """``rdms/<dataset>__<encoder>__<layer>.npz`` (relation centroids and their RDM) and the references' files."""
    written = []
    for name, ref in references.items():
        path = out_dir / "rdms" / f"{safe_name(dataset)}__reference__{safe_name(name)}.npz"
        _write_npz(path, labels=ref.labels.astype(str), rdm=ref.condition_rdm.astype(np.float64))
        written.append(path.name)
    has = np.array([e.relation is not None for e in examples])
    if len({e.relation for e in examples if e.relation is not None}) < 3:
        return written
    labels = [str(e.relation) for e, h in zip(examples, has) if h]
    for layer, x in embeddings.items():
        names, centroids = condition_centroids(np.asarray(x)[has], labels)
        path = out_dir / "rdms" / f"{safe_name(dataset)}__{safe_name(encoder)}__{safe_name(layer)}.npz"
        _write_npz(path, labels=names.astype(str), rdm=to_square(calc_rdm(centroids, method=rdm_method)),
                   centroids=centroids, method=np.array(rdm_method))
        written.append(path.name)
    return written


def run_rsa_unit(unit: RSAUnit, out_dir: str | Path, *, data_dir: str | Path | None = None,
                 model_path: str | Path | None = None, cache_dir: str | Path | None = None,
                 image_dir: str | Path | None = None, show_progress: bool = False,
                 log=print) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Embed (from the cache) and analyse one unit; writes its ``rdms/*.npz``; returns (rows, metadata)."""
    from spatial_probing.embed import embed_examples, fit_lexical, load_encoder

    out_dir = Path(out_dir)
    dataset = get_task(unit.task).spec.dataset
    examples = probe_examples(unit, data_dir)
    encoder = load_encoder(unit.encoder, model_path=model_path, device=unit.device)
    # bow:, order: — RSA has no held-out side: the vocabulary is that of every analysed example, so the RDM
    # reflects the words and not where the split fell
    fit_lexical(encoder, examples)
    # a one-layer encoder (bow:, order:, static:…) gives its one layer whatever the selector
    layers = "all" if len(encoder.layer_names) == 1 else unit.settings.layers or unit.layers
    emb = embed_examples(examples, encoder, layers=layers, cache_dir=cache_dir,
                         image_dir=image_dir, show_progress=show_progress)
    rows, counts = select_items(examples, max_items=unit.settings.max_items, seed=unit.settings.seed)
    chosen = [examples[i] for i in rows]
    refs, skipped = applicable_references(chosen, unit.settings.references)
    for name, why in skipped.items():
        log(f"  rsa {dataset}: reference {name!r} skipped: {why}")
    for name, ref in refs.items():
        if ref.note:
            log(f"  rsa {dataset}: reference {name!r}: {ref.note}")
    x = {layer: np.asarray(v, dtype=np.float64)[rows] for layer, v in emb.items()}
    table = rsa_rows(x, refs, unit.settings, dataset=dataset, encoder=unit.encoder, texts=[e.text for e in chosen],
                     clusters=[str(e.group or e.id) for e in chosen]) if refs else \
        pd.DataFrame(columns=RSA_COLUMNS + ["boot"])
    files = write_condition_rdms(out_dir, x, chosen, refs, dataset=dataset, encoder=unit.encoder,
                                 rdm_method=unit.settings.rdm_methods[0])
    meta = {"unit": unit.model_dump(mode="json"), "config_hash": unit.digest(), "dataset": dataset,
            "encoder": encoder.info.model_dump(mode="json"), "items": counts,
            "data_hash": examples_hash(chosen), "format_version": PROBE_FORMAT_VERSION,
            "references": {n: {"n_items": int(r.keep.sum()), "note": r.note} for n, r in refs.items()},
            "skipped_references": skipped, "rdm_files": files}
    return table, meta


def _part_paths(out_dir: Path, unit: RSAUnit) -> tuple[Path, Path]:
    stem = out_dir / "rsa_parts" / f"{safe_name(unit.task)}__{safe_name(unit.encoder)}"
    return stem.with_suffix(".parquet"), stem.with_suffix(".json")


def _chosen_hash(unit: RSAUnit, data_dir: str | Path | None) -> str:
    """The data hash of the items ``unit`` analyses (as stored in its part's metadata)."""
    examples = probe_examples(unit, data_dir)
    rows, _ = select_items(examples, max_items=unit.settings.max_items, seed=unit.settings.seed)
    return examples_hash([examples[i] for i in rows])


def _done(out_dir: Path, unit: RSAUnit, weights_hash: str | None = None, data_dir: str | Path | None = None) -> bool:
    table, meta = _part_paths(out_dir, unit)
    return table.is_file() and part_is_current(meta, unit.digest(), weights_hash, lambda: _chosen_hash(unit, data_dir))


def assemble_parts(out_dir: str | Path, name: str, columns: list[str], sort_by: list[str], *, what: str,
                   command: str = "", config: dict[str, Any] | None = None, started: str | None = None,
                   derive: Callable[[pd.DataFrame], tuple[pd.DataFrame, dict[str, pd.DataFrame]]] | None = None
                   ) -> dict[str, Path]:
    """Concatenate ``{name}_parts/`` into ``{name}.parquet``/``.csv`` and ``{name}_manifest.json`` (atomically).

    Shared by the RSA and the meaning-over-words steps (each part: a parquet table and its JSON metadata).
    ``derive(table)`` may rewrite the table and add tables (each written as ``<key>.parquet``/``.csv``).
    """
    out_dir = Path(out_dir)
    metas = sorted((out_dir / f"{name}_parts").glob("*.json"))
    if not metas:
        raise ValueError(f"{out_dir}: no completed {what} units under {name}_parts/ to assemble")
    tables = [pd.read_parquet(m.with_suffix(".parquet")) for m in metas]
    table = pd.concat([t for t in tables if not t.empty] or [pd.DataFrame(columns=columns)], ignore_index=True)
    table = table.sort_values(sort_by, kind="mergesort").reset_index(drop=True)
    table, extra = derive(table) if derive is not None else (table, {})
    paths = {name: out_dir / f"{name}.parquet", f"{name}_csv": out_dir / f"{name}.csv",
             f"{name}_manifest": out_dir / f"{name}_manifest.json"}
    for key, df in {name: table, **extra}.items():
        paths[key], paths[f"{key}_csv"] = out_dir / f"{key}.parquet", out_dir / f"{key}.csv"
        with atomic_path(paths[key]) as tmp:
            df.to_parquet(tmp, index=False)
        with atomic_path(paths[f"{key}_csv"]) as tmp:
            df.to_csv(tmp, index=False)
    atomic_write_json(paths[f"{name}_manifest"], {
        "command": command, "config": config or {}, "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": package_versions(),
        "units": [json.loads(m.read_text()) for m in metas],
        "tables_sha256": {k: hashlib.sha256(paths[k].read_bytes()).hexdigest() for k in (name, f"{name}_csv")}})
    return paths


def assemble_rsa(out_dir: str | Path, *, command: str = "", config: dict[str, Any] | None = None,
                 started: str | None = None) -> dict[str, Path]:
    """Concatenate ``rsa_parts/`` into ``rsa.parquet``/``rsa.csv`` and ``rsa_manifest.json`` (atomically)."""
    return assemble_parts(out_dir, "rsa", RSA_COLUMNS, RSA_COLUMNS[:6], what="RSA", command=command, config=config,
                          started=started, derive=_holm_and_pairs)


def _holm_and_pairs(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Holm over layers × references, and the paired encoder comparisons (``rsa_pairs``) from the kept resamples."""
    table = with_holm(table)
    pairs = rsa_pairs(table)
    return table.reindex(columns=RSA_COLUMNS), {"rsa_pairs": pairs}


def compute_rsa_unit(unit: RSAUnit, model_path: str | Path | None, *, out_dir: Path,
                     data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                     image_dir: str | Path | None = None, show_progress: bool = False, log=print) -> None:
    """Compute one RSA unit and write its part: the work of one executor call (here, or a Ray task)."""
    table, meta = run_rsa_unit(unit, out_dir, data_dir=data_dir, model_path=model_path, cache_dir=cache_dir,
                               image_dir=image_dir, show_progress=show_progress, log=log)
    table_path, meta_path = _part_paths(out_dir, unit)
    with atomic_path(table_path) as tmp:
        table.to_parquet(tmp, index=False)
    atomic_write_json(meta_path, meta)


def run_rsa(units: Sequence[RSAUnit], out_dir: str | Path, *, data_dir: str | Path | None = None,
            model_paths: dict[str, str | Path] | None = None, cache_dir: str | Path | None = None,
            image_dir: str | Path | None = None, command: str = "", run_config: dict[str, Any] | None = None,
            show_progress: bool = False, log=print, executor: Any = None) -> dict[str, Path]:
    """Compute every RSA unit not already done (same hash), then assemble ``rsa.parquet``/``.csv``.
    ``executor``: where the units run (None: here; see :mod:`spatial_probing.executor`)."""
    from spatial_probing.executor import map_units

    out_dir = Path(out_dir)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cache_dir = cache_dir if cache_dir is not None else out_dir / "cache"
    map_units(partial(compute_rsa_unit, out_dir=out_dir, data_dir=data_dir, cache_dir=cache_dir, image_dir=image_dir,
                      show_progress=show_progress and executor is None, log=log), units, executor=executor,
              stage="rsa", label=lambda u: f"{u.task} × {u.encoder}", done=lambda u, w: _done(out_dir, u, w, data_dir),
              model_paths=model_paths, cache_dir=cache_dir, log=log, show_progress=show_progress)
    return assemble_rsa(out_dir, command=command, config=run_config, started=started)
