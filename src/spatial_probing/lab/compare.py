"""Compare the lab's objectives from a probe run's tables: intervals across seeds and paired tests.

Lab encoders are named ``<lab>-<objective>-s<seed>`` (or given as their folders
``.../<objective>-seed<k>``). For a seed ``k`` the objectives share initial weights and batch
order, so encoders are paired by seed:

* :func:`objective_summary` — per objective, the mean over lab seeds (each seed first averaged
  over probe seeds) with a t interval across lab seeds;
* :func:`objective_comparisons` — for each pair of objectives, the seed-paired difference with a
  paired t-test and an exact sign-flip test over seeds, and (given ``predictions.parquet``) a
  sign-flip permutation test over test items, each item's difference averaged over the paired
  seeds; Holm-corrected within each (task, layer, probe, subset kind) family.

With 3 seeds the exact sign-flip test over seeds cannot go below p = 0.25: seed-level
evidence needs more seeds, which is why the item-level test is reported alongside.
"""

from __future__ import annotations

import json
from pathlib import Path
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as sps

from spatial_probing.lab.config import arm_label, arm_order, parse_lab_arm
from spatial_probing.probe.stats import holm, paired_permutation

KEYS = ["lab", "dataset", "task", "layer", "probe", "subset_kind", "subset"]
_REQUIRED = {"dataset", "task", "encoder", "layer", "probe", "seed", "subset_kind", "subset", "metric", "value"}


def _with_lab_columns(table: pd.DataFrame, what: str, required: set[str]) -> pd.DataFrame:
    missing = sorted(required - set(table.columns))
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; expected the probe stage's {what} columns")
    names = table["encoder"].astype(str)
    parsed = names.map({n: parse_lab_arm(n) for n in names.unique()})  # parse each name once
    keep = parsed.notna()
    if not keep.any():
        raise ValueError(f"{what}: no lab encoders (names like lab-mlm-s0) among {sorted(table.encoder.unique())}")
    out = table.loc[keep].copy()
    out["lab"] = [p[0] for p in parsed[keep]]
    out["objective"] = [p[1] for p in parsed[keep]]  # the arm: objectives with hard negatives kept apart
    out["lab_seed"] = [p[4] for p in parsed[keep]]
    for column in ("layer", "subset"):  # predictions have no subset column
        if column in out:
            out[column] = out[column].astype(str)
    return out


def _per_seed(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One value per lab encoder and cell: the mean over probe seeds."""
    rows = _with_lab_columns(results, "results", _REQUIRED)
    rows = rows[rows.metric == metric]
    if rows.empty:
        raise ValueError(f"results: no rows with metric {metric!r} for the lab encoders")
    return rows.groupby(KEYS + ["objective", "lab_seed"], as_index=False, sort=True)["value"].mean()


def _t_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    n = values.size
    if n < 2:
        return float("nan"), float("nan"), float("nan")
    sd = float(values.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * sd / np.sqrt(n)
    mean = float(values.mean())
    return sd, mean - half, mean + half


#: The range each summarised metric can take: a t interval over a few lab seeds is clipped to it.
METRIC_RANGE = {"accuracy": (0.0, 1.0), "selectivity": (-1.0, 1.0)}


def objective_summary(results: pd.DataFrame, *, metrics: tuple[str, ...] = ("accuracy", "selectivity"),
                      confidence: float = 0.95) -> pd.DataFrame:
    """Per objective and cell (task × layer × probe × subset): mean over lab seeds and its t interval (clipped to
    the metric's range: with two seeds an accuracy interval otherwise runs past 0 and 1).

    Columns: ``lab, dataset, task, layer, probe, subset_kind, subset, metric, objective, n_seeds,
    mean, sd, ci_low, ci_high`` and, when the results hold them, ``chance`` and ``majority``.
    """
    frames = []
    for metric in metrics:
        if metric not in set(results.get("metric", pd.Series(dtype=str))):
            continue
        per_seed = _per_seed(results, metric)
        rows = []
        for key, grp in per_seed.groupby(KEYS + ["objective"], sort=True):
            vals = grp["value"].to_numpy(dtype=np.float64)
            sd, lo, hi = _t_interval(vals, confidence)
            floor, ceiling = METRIC_RANGE.get(metric, (-np.inf, np.inf))
            rows.append((*key, metric, len(vals), float(vals.mean()), sd, max(lo, floor), min(hi, ceiling)))
        frames.append(pd.DataFrame(rows, columns=KEYS + ["objective", "metric", "n_seeds", "mean", "sd", "ci_low",
                                                         "ci_high"]))
    if not frames:
        raise ValueError(f"results: none of the metrics {list(metrics)} present")
    out = pd.concat(frames, ignore_index=True)
    for baseline in ("chance", "majority"):
        if baseline in set(results.metric):
            base = _per_seed(results, baseline).groupby(KEYS, as_index=False)["value"].mean()
            out = out.merge(base.rename(columns={"value": baseline}), on=KEYS, how="left")
    out["_o"] = out.objective.map(arm_order)
    out = out.sort_values(KEYS + ["metric", "_o"]).drop(columns="_o").reset_index(drop=True)
    return out[["lab", "dataset", "task", "layer", "probe", "subset_kind", "subset", "metric", "objective",
                *[c for c in out.columns if c not in KEYS + ["metric", "objective"]]]]


def _item_scores(predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per item × objective × lab seed: correctness averaged over probe seeds, the lab rows of ``predictions``)."""
    preds = _with_lab_columns(predictions, "predictions",
                              {"dataset", "task", "encoder", "layer", "probe", "seed", "example_id", "correct"})
    preds["correct"] = preds["correct"].astype(np.float64)
    keys = ["lab", "dataset", "task", "layer", "probe", "objective", "lab_seed", "example_id"]
    return preds.groupby(keys, as_index=False, sort=True)["correct"].mean(), preds


def objective_comparisons(results: pd.DataFrame, predictions: pd.DataFrame | None = None, *,
                          metric: str = "accuracy", confidence: float = 0.95, n_permutations: int = 10000,
                          seed: int = 0) -> pd.DataFrame:
    """Paired comparisons of every two objectives per cell, pairing encoders by lab seed.

    Columns: ``lab, dataset, task, layer, probe, subset_kind, subset, metric, objective_a,
    objective_b, mean_a, mean_b, diff, diff_ci_low, diff_ci_high, n_seeds, t_stat, seed_t_p,
    seed_signflip_p, item_diff, item_signflip_p, n_items, p_holm``. ``diff`` is a − b over the
    seeds both objectives have; item columns are NaN without ``predictions`` or for metrics
    other than accuracy. ``p_holm`` corrects the item-level p (else the seed t-test p) within
    each (lab, dataset, task, layer, probe, subset_kind) family.
    """
    per_seed = _per_seed(results, metric)
    items = None
    if predictions is not None and metric == "accuracy":
        scores, preds = _item_scores(predictions)
        item_meta = preds.drop_duplicates(["lab", "dataset", "task", "example_id"]).set_index(
            ["lab", "dataset", "task", "example_id"])
        items = scores
    rows = []
    for key, grp in per_seed.groupby(KEYS, sort=True):
        wide = grp.pivot(index="lab_seed", columns="objective", values="value")
        present = sorted(wide.columns, key=arm_order)
        for a, b in combinations(present, 2):
            pair = wide[[a, b]].dropna()
            d = (pair[a] - pair[b]).to_numpy(dtype=np.float64)
            n = d.size
            sd, lo, hi = _t_interval(d, confidence)
            # differences equal up to rounding (e.g. every seed at ceiling) leave the t statistic undefined, not huge
            if n >= 2 and sd > 1e-12 * max(1.0, float(np.abs(d).max())):
                t_stat, t_p = (float(x) for x in sps.ttest_rel(pair[a], pair[b]))
            else:
                t_stat, t_p = float("nan"), float("nan")
            flip_p = paired_permutation(pair[a], pair[b], n_permutations=n_permutations, seed=seed) if n else np.nan
            item_diff, item_p, n_items = float("nan"), float("nan"), 0
            if items is not None:
                item_diff, item_p, n_items = _item_test(items, item_meta, key, a, b, list(pair.index),
                                                        n_permutations=n_permutations, seed=seed)
            rows.append((*key, metric, a, b, float(pair[a].mean()), float(pair[b].mean()),
                         float(d.mean()) if n else np.nan, lo, hi, n, t_stat, t_p, flip_p, item_diff, item_p,
                         n_items))
    out = pd.DataFrame(rows, columns=KEYS + ["metric", "objective_a", "objective_b", "mean_a", "mean_b", "diff",
                                             "diff_ci_low", "diff_ci_high", "n_seeds", "t_stat", "seed_t_p",
                                             "seed_signflip_p", "item_diff", "item_signflip_p", "n_items"])
    primary = out["item_signflip_p"].where(out["item_signflip_p"].notna(), out["seed_t_p"])
    out["p_holm"] = np.nan
    family = ["lab", "dataset", "task", "layer", "probe", "subset_kind"]
    for _, idx in out.groupby(family, sort=False).groups.items():
        out.loc[idx, "p_holm"] = holm(primary.loc[idx].to_numpy())
    return out


def _item_test(items: pd.DataFrame, meta: pd.DataFrame, key: tuple, a: str, b: str, seeds: list[int], *,
               n_permutations: int, seed: int) -> tuple[float, float, int]:
    """Sign-flip test over the cell's test items of mean-over-seeds correctness(a) − correctness(b)."""
    lab, dataset, task, layer, probe, subset_kind, subset = key
    cell = items[(items.lab == lab) & (items.dataset == dataset) & (items.task == task) & (items.layer == layer)
                 & (items.probe == probe) & items.lab_seed.isin(seeds) & items.objective.isin([a, b])]
    if subset_kind != "all":
        if subset_kind not in meta.columns:
            return float("nan"), float("nan"), 0
        values = meta.loc[(lab, dataset, task), subset_kind].astype(str)
        cell = cell[cell.example_id.map(values) == subset]
    wide = cell.pivot_table(index="example_id", columns=["objective", "lab_seed"], values="correct")
    if a not in wide.columns.get_level_values(0) or b not in wide.columns.get_level_values(0):
        return float("nan"), float("nan"), 0
    wa, wb = wide[a].reindex(columns=seeds), wide[b].reindex(columns=seeds)
    ok = wa.notna().all(axis=1) & wb.notna().all(axis=1)
    if not ok.any():
        return float("nan"), float("nan"), 0
    sa, sb = wa[ok].mean(axis=1).to_numpy(), wb[ok].mean(axis=1).to_numpy()
    p = paired_permutation(sa, sb, n_permutations=n_permutations, seed=seed)
    return float((sa - sb).mean()), float(p), int(ok.sum())


#: Relation kinds of the synthetic scenes (``Example.category``), in the order the answer lists them.
RELATION_KINDS = ("horizontal", "vertical", "diagonal", "proximity", "topological")
#: Interval half-width (proportion) under which a non-significant difference counts as "no difference".
NULL_MARGIN = 0.03
ANSWER_COLUMNS = ["lab", "dataset", "task", "layer", "probe", "relation_kind", "arm_a", "arm_b", "question", "mean_a",
                  "mean_b", "diff", "ci_low", "ci_high", "half_width", "se", "p_boot", "p_holm", "verdict", "n_seeds",
                  "n_clusters", "n_items", "convergence", "floor", "floor_acc"]


def answer_pairs(arms: list[str]) -> list[tuple[str, str, str]]:
    """The comparisons the lab answers, as (arm a, arm b, question), among the arms present.

    At every hard-negative fraction (MLM has none and serves every fraction): visual vs text-only
    contrastive, visual vs masked LM, text-only contrastive vs masked LM; and for each fraction
    above 0, the hard negatives' own effect within each contrastive objective.
    """
    have = set(arms)
    fractions = sorted({parse_lab_arm(f"x-{a}-s0")[3] for a in arms if not a.startswith("mlm")})
    out = []
    for f in fractions:
        vision, textcl = arm_label("vision", f), arm_label("textcl", f)
        for a, b, what in ((vision, textcl, "grounding vs text-only contrastive"),
                           (vision, "mlm", "grounding vs masked LM"),
                           (textcl, "mlm", "text-only contrastive vs masked LM")):
            if a in have and b in have:
                out.append((a, b, f"{what}{f' (hard negatives {f:g})' if f else ''}"))
    for f in fractions:
        for objective in ("vision", "textcl"):
            a = arm_label(objective, f)
            if f and a in have and objective in have:
                out.append((a, objective, f"hard negatives {f:g} vs none ({objective})"))
    return out


def _clusters(preds: pd.DataFrame) -> pd.Series:
    """Each test item's cluster: the ``cluster`` column where the probe stage wrote one, else the scene of a
    synthetic id (``synthetic/<seed>/<scene>/<variant>``), else the item itself."""
    if "cluster" in preds.columns:
        return preds["cluster"].astype(str)
    ids = preds["example_id"].astype(str)
    parts = ids.str.split("/")
    return pd.Series(np.where(parts.str.len() >= 4, parts.str[2], ids), index=preds.index)


def hierarchical_diff(a: np.ndarray, b: np.ndarray, clusters: np.ndarray, *, n_boot: int = 2000,
                      confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean of ``a − b`` with a two-level bootstrap: lab seeds (rows, paired) × clusters of items (columns).

    ``a``/``b`` are (seeds × items) correctness with the same seeds and items; each replicate draws
    seeds with replacement and, independently, clusters (e.g. scenes) with replacement, and takes
    the mean difference over the drawn seeds and the drawn clusters' items. Returns ``diff``,
    ``ci_low``, ``ci_high`` (percentile), ``se`` (the replicates' SD) and ``p_boot``, the two-sided
    p of no difference from ``diff / se`` (normal approximation: unlike counting replicates, it
    has no 2/(n_boot+1) floor, which Holm over a task's dozens of comparisons would make binding).
    """
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    codes, cluster_ids = np.unique(clusters, return_inverse=True)
    n_seeds, n_clusters = d.shape[0], len(codes)
    per_cluster = np.zeros((n_seeds, n_clusters))
    np.add.at(per_cluster.T, cluster_ids, d.T)  # (seeds × clusters) sums of differences
    size = np.bincount(cluster_ids, minlength=n_clusters).astype(np.float64)
    rng = np.random.default_rng(seed)
    w_seed = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_boot).astype(np.float64)
    w_cluster = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=n_boot).astype(np.float64)
    boot = np.einsum("bs,sc,bc->b", w_seed, per_cluster, w_cluster) / (n_seeds * (w_cluster @ size))
    diff = float(d.mean())
    alpha = 1 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    se = float(boot.std(ddof=1))
    if se > 0:
        p = float(2 * sps.norm.sf(abs(diff) / se))
    else:
        p = 1.0 if diff == 0 else 0.0
    return {"diff": diff, "ci_low": float(low), "ci_high": float(high), "se": se, "p_boot": p}


def _verdict(row: dict, alpha: float, margin: float) -> str:
    a, b = row["arm_a"], row["arm_b"]
    if row["p_holm"] < alpha:
        return f"{a} better" if row["diff"] > 0 else f"{b} better"
    if -margin <= row["ci_low"] and row["ci_high"] <= margin:
        return f"no difference (within ±{100 * margin:.0f} points)"
    return "inconclusive (interval too wide)"


def lab_answer(predictions: pd.DataFrame, *, training: pd.DataFrame | None = None, n_boot: int = 2000,
               confidence: float = 0.95, alpha: float = 0.05, margin: float = NULL_MARGIN, seed: int = 0,
               floor_predictions: pd.DataFrame | None = None) -> pd.DataFrame:
    """The lab's answer per relation kind: each pair of :func:`answer_pairs` with a hierarchical interval.

    ``predictions``: the probe stage's per-item table (lab encoders' rows are used; one layer per
    encoder expected, e.g. the final layer), with a ``category`` column. Each item's correctness
    is averaged over probe seeds; an arm pair uses the lab seeds and items both arms have.
    ``diff`` = accuracy(a) − accuracy(b) with a seeds × scene-clusters bootstrap interval
    (:func:`hierarchical_diff`), Holm-corrected over every row of a (lab, task, layer, probe):
    the family of questions one task answers. ``verdict``: the better arm when Holm p < ``alpha``,
    "no difference" when not and the interval lies within ±``margin``, else "inconclusive".
    ``convergence`` names arms with seeds whose training did not converge or learn, from the
    lab's ``lab_training.csv`` (``training``), so such a comparison is flagged, not silently made.
    ``floor`` / ``floor_acc``: the lexical floor (``floor_predictions``: e.g. ``bow:``, ``order:``) with the highest
    accuracy on the row's very items, so that an arm "better" than another but not above what the words alone
    give is seen as such (the verdict family tests each arm against it).
    Columns: :data:`ANSWER_COLUMNS`; empty when no lab predictions carry a relation kind.
    """
    preds = _with_lab_columns(predictions, "predictions",
                              {"dataset", "task", "encoder", "layer", "probe", "seed", "example_id", "correct"})
    if "category" not in preds.columns:
        return pd.DataFrame(columns=ANSWER_COLUMNS)
    preds = preds[preds["category"].isin(RELATION_KINDS)].copy()
    preds["cluster"] = _clusters(preds)
    preds["correct"] = preds["correct"].astype(np.float64)
    flags = _convergence_flags(training)
    floors = _floor_items(floor_predictions)
    rows = []
    for (lab, dataset, task, layer, probe), grp in preds.groupby(["lab", "dataset", "task", "layer", "probe"],
                                                                 sort=True):
        item = grp.groupby(["objective", "lab_seed", "example_id", "category", "cluster"], as_index=False,
                           sort=True)["correct"].mean()
        arms = sorted(item.objective.unique(), key=arm_order)
        family = []
        for kind in [k for k in RELATION_KINDS if k in set(item.category)] + ["all"]:
            cell = item if kind == "all" else item[item.category == kind]
            wide = cell.pivot_table(index=["example_id", "cluster"], columns=["objective", "lab_seed"],
                                    values="correct")
            for a, b, question in answer_pairs(arms):
                if a not in wide.columns.get_level_values(0) or b not in wide.columns.get_level_values(0):
                    continue
                seeds = sorted(set(wide[a].columns) & set(wide[b].columns))
                wa, wb = wide[a].reindex(columns=seeds), wide[b].reindex(columns=seeds)
                ok = (wa.notna().all(axis=1) & wb.notna().all(axis=1)).to_numpy()
                if not seeds or not ok.any():
                    continue
                stats = hierarchical_diff(wa.to_numpy()[ok].T, wb.to_numpy()[ok].T,
                                          wa.index.get_level_values("cluster").to_numpy()[ok], n_boot=n_boot,
                                          confidence=confidence, seed=seed)
                family.append({
                    "lab": lab, "dataset": dataset, "task": task, "layer": layer, "probe": probe,
                    "relation_kind": kind, "arm_a": a, "arm_b": b, "question": question,
                    "mean_a": float(np.nanmean(wa.to_numpy()[ok])), "mean_b": float(np.nanmean(wb.to_numpy()[ok])),
                    **stats, "half_width": (stats["ci_high"] - stats["ci_low"]) / 2, "n_seeds": len(seeds),
                    "n_clusters": int(len(set(wa.index.get_level_values("cluster")[ok]))), "n_items": int(ok.sum()),
                    "convergence": "; ".join(flags[x] for x in (a, b) if x in flags) or "ok",
                    **_strictest_floor(floors.get(task, {}), layer, wa.index.get_level_values("example_id")[ok])})
        corrected = holm(np.array([r["p_boot"] for r in family])) if family else []
        for r, p in zip(family, corrected):
            r["p_holm"] = float(p)
            r["verdict"] = _verdict(r, alpha, margin)
        rows += family
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS)


def _floor_items(predictions: pd.DataFrame | None) -> dict[str, dict[str, dict[str, pd.Series]]]:
    """task → floor encoder → layer → its per-item correctness (mean over probe seeds)."""
    if predictions is None or predictions.empty:
        return {}
    from spatial_probing.embed.config import is_lexical_floor

    rows = predictions[predictions.encoder.map(lambda e: is_lexical_floor(str(e)))]
    return {str(task): {str(enc): {str(layer): c.groupby("example_id").correct.mean().astype(np.float64)
                                   for layer, c in g.groupby("layer")}
                        for enc, g in grp.groupby("encoder")} for task, grp in rows.groupby("task")}


def _strictest_floor(floors: dict[str, dict[str, pd.Series]], layer: str, items: pd.Index) -> dict[str, object]:
    """:func:`~spatial_probing.embed.config.strictest_floor` on ``items`` (those each floor predicted), each floor
    at the lab rows' ``layer`` (a floor encoder with layers, e.g. ``random-init:``) or at its one layer (``bow:``)."""
    from spatial_probing.embed.config import strictest_floor

    accuracy = {}
    for name, by_layer in floors.items():
        correct = by_layer.get(layer, next(iter(by_layer.values())) if len(by_layer) == 1 else None)
        if correct is not None:
            accuracy[name] = float(correct.reindex(items).mean())
    floor, acc = strictest_floor(accuracy)
    return {"floor": floor, "floor_acc": acc}


def _convergence_flags(training: pd.DataFrame | None) -> dict[str, str]:
    """Arm → "vision-hn1: 2/5 seeds not converged" for arms with any seed whose status is not ``ok``."""
    if training is None or training.empty or "status" not in training.columns:
        return {}
    flags = {}
    for arm, grp in training.groupby("arm"):
        bad = grp[grp.status.astype(str) != "ok"]
        if len(bad):
            what = ", ".join(f"{n} {s}" for s, n in bad.status.value_counts().sort_index().items())
            flags[str(arm)] = f"{arm}: {what} of {len(grp)} seeds"
    return flags


def lab_outputs(registries: list[str | Path]) -> dict:
    """The lab folder behind a run's ``encoder_registries`` (the one with ``lab_manifest.json``) and its tables:
    ``{"dir", "label", "training", "vision_check"}`` (missing keys where absent); empty without a lab."""
    from spatial_probing.lab.train import MANIFEST_FILE, TRAINING_TABLE
    from spatial_probing.lab.vision_check import VISION_CHECK_TABLE

    for registry in registries:
        folder = Path(registry).parent
        manifest_path = folder / MANIFEST_FILE
        if not manifest_path.is_file():
            continue
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        out: dict = {"dir": folder, "label": manifest.get("config", {}).get("label", "lab")}
        for key, name in (("training", TRAINING_TABLE), ("vision_check", VISION_CHECK_TABLE)):
            if (folder / name).is_file():
                out[key] = pd.read_csv(folder / name)
        return out
    return {}
