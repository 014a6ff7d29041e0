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

import re
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as sps

from spatial_probing.lab.config import OBJECTIVES
from spatial_probing.probe.stats import holm, paired_permutation

_NAME = re.compile(r"^(?P<lab>[A-Za-z0-9_.]+)-(?P<objective>mlm|textcl|vision)-s(?P<seed>\d+)$")
_DIR = re.compile(r"(?:^|.*[/\\])(?P<objective>mlm|textcl|vision)-seed(?P<seed>\d+)[/\\]?$")
KEYS = ["lab", "dataset", "task", "layer", "probe", "subset_kind", "subset"]
_REQUIRED = {"dataset", "task", "encoder", "layer", "probe", "seed", "subset_kind", "subset", "metric", "value"}


def parse_lab_encoder(name: str) -> tuple[str, str, int] | None:
    """``(lab, objective, seed)`` for a lab encoder name or folder, None for any other encoder."""
    m = _NAME.match(name)
    if m:
        return m["lab"], m["objective"], int(m["seed"])
    m = _DIR.match(name)
    if m:
        return "lab", m["objective"], int(m["seed"])
    return None


def _with_lab_columns(table: pd.DataFrame, what: str, required: set[str]) -> pd.DataFrame:
    missing = sorted(required - set(table.columns))
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; expected the probe stage's {what} columns")
    names = table["encoder"].astype(str)
    parsed = names.map({n: parse_lab_encoder(n) for n in names.unique()})  # parse each name once
    keep = parsed.notna()
    if not keep.any():
        raise ValueError(f"{what}: no lab encoders (names like lab-mlm-s0) among {sorted(table.encoder.unique())}")
    out = table.loc[keep].copy()
    out["lab"] = [p[0] for p in parsed[keep]]
    out["objective"] = [p[1] for p in parsed[keep]]
    out["lab_seed"] = [p[2] for p in parsed[keep]]
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


def objective_summary(results: pd.DataFrame, *, metrics: tuple[str, ...] = ("accuracy", "selectivity"),
                      confidence: float = 0.95) -> pd.DataFrame:
    """Per objective and cell (task × layer × probe × subset): mean over lab seeds and its t interval.

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
            rows.append((*key, metric, len(vals), float(vals.mean()), sd, lo, hi))
        frames.append(pd.DataFrame(rows, columns=KEYS + ["objective", "metric", "n_seeds", "mean", "sd", "ci_low",
                                                         "ci_high"]))
    if not frames:
        raise ValueError(f"results: none of the metrics {list(metrics)} present")
    out = pd.concat(frames, ignore_index=True)
    for baseline in ("chance", "majority"):
        if baseline in set(results.metric):
            base = _per_seed(results, baseline).groupby(KEYS, as_index=False)["value"].mean()
            out = out.merge(base.rename(columns={"value": baseline}), on=KEYS, how="left")
    order = {o: i for i, o in enumerate(OBJECTIVES)}
    out["_o"] = out.objective.map(order)
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
        present = [o for o in OBJECTIVES if o in wide.columns]
        for a, b in combinations(present, 2):
            pair = wide[[a, b]].dropna()
            d = (pair[a] - pair[b]).to_numpy(dtype=np.float64)
            n = d.size
            sd, lo, hi = _t_interval(d, confidence)
            if n >= 2 and sd > 0:
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
