"""The verdict rules: one declared family of contrasts, clustered tests, Holm, equivalence — in one place.

Every verdict the report prints comes from :func:`verdict_family`, and nothing else decides one.

1. **The independent unit is the cluster** (the predictions' ``cluster`` column: scene, image, story,
   pair; each item its own cluster when the column is absent). Intervals resample clusters, tests
   flip or weigh clusters; lab objectives resample encoder training seeds first, then clusters.
2. **One family, declared before looking**: per task × subset (``all`` and every relation category) ×
   contrast — (a) *grounded − distributional* (:func:`~spatial_probing.embed.is_grounded`), (b)
   *encoder − best lexical floor* (the floor encoder, :func:`~spatial_probing.embed.is_lexical_floor`,
   with the highest accuracy on the compared test items: the strictest floor, never one a training-side
   shortcut makes look strong; a lab arm, over its seeds, is set beside it too), (c) *lab objective −
   objective* (same lab, paired by lab seed). Cells where both sides' intervals reach the ceiling,
   or both cover chance, are *uninformative* and leave the family. Holm runs over the whole family.
3. **Gain / loss** only when three things computed on the same quantity (the mean per-item
   difference a − b) agree in sign and significance: the Holm-corrected clustered paired t-test,
   the Holm-corrected cluster sign-flip permutation test (with at least ``10 m / α`` permutations
   for a family of ``m``, so that its resolution never decides), and the clustered 95% bootstrap
   interval (excludes 0).
4. **Equivalent** (for grounding: *resistant*) only when the Holm-corrected TOST says the difference
   is within ±``margin``; otherwise **inconclusive**.
5. **Lexical**: a task (or category) on which the best lexical floor reaches the encoder's accuracy
   within the encoder's interval (floor accuracy ≥ the interval's lower bound).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from spatial_probing.embed.config import is_grounded, is_lexical_floor, strictest_floor
from spatial_probing.lab.compare import answer_pairs
from spatial_probing.lab.config import arm_order, parse_lab_arm
from spatial_probing.probe.stats import (SignFlips, cluster_codes, cluster_draws, cluster_sums,
                                        cluster_t_test, hierarchical_bootstrap_mean, holm, nan_percentiles, tost)

CONTRASTS = {"grounding": "grounded − distributional", "lexical": "encoder − best lexical floor",
             "lab": "lab objective − objective"}
VERDICT_COLUMNS = ["row_id", "task", "probe", "subset_kind", "subset", "contrast", "encoder_a", "encoder_b", "layer_a",
                   "layer_b", "acc_a", "a_low", "a_high", "acc_b", "b_low", "b_high", "chance", "diff", "diff_low",
                   "diff_high", "p_t", "p_perm", "p_tost", "n_items", "n_clusters", "n_seeds", "uninformative",
                   "in_family", "p_t_holm", "p_perm_holm", "p_tost_holm", "verdict", "reason", "lexical"]
TREND_COLUMNS = ["row_id", "task", "encoder", "probe", "layer", "slope", "slope_low", "slope_high", "k_min", "k_max",
                 "n_items", "n_clusters"]


class VerdictRules(BaseModel):
    """The thresholds of the verdict rules (``verdicts:`` in a run config; stored in the manifest).

    Attributes:
        alpha: family-wise error rate (Holm over the whole family).
        margin: equivalence margin (proportion; 0.03 = ±3 points) of the TOST behind "resistant".
        ceiling: the best possible accuracy; both sides' intervals reaching it makes a cell uninformative.
        confidence: interval coverage (bootstrap percentile).
        n_boot, n_permutations: clustered bootstrap resamples and sign-flip permutations (≥ 1,000: a
            p-value from fewer is too coarse to be Holm-corrected over a family).
        seed: seed of every resample.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(default=0.05, gt=0, lt=1)
    margin: float = Field(default=0.03, gt=0, lt=1)
    ceiling: float = Field(default=1.0, gt=0, le=1)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    n_boot: int = Field(default=2000, ge=100)
    n_permutations: int = Field(default=2000, ge=1000)
    seed: int = 0


def slug(*parts: Any) -> str:
    """An HTML id from ``parts`` (letters, digits, ``-``)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", "-".join(str(p) for p in parts)).strip("-").lower()


class TaskItems:
    """One task's test items: seed-averaged correctness per (encoder, layer), clusters, subsets, one draw matrix."""

    def __init__(self, preds: pd.DataFrame, rules: VerdictRules) -> None:
        self.ids = np.array(sorted(set(preds.example_id)), dtype=object)
        first = preds.drop_duplicates("example_id").set_index("example_id").loc[self.ids]
        self.clusters = (first["cluster"].astype(str).to_numpy() if "cluster" in first.columns
                         else self.ids.astype(str))
        self.clustered = "cluster" in first.columns
        self.meta = first
        self.codes = cluster_codes(self.clusters, len(self.ids))
        self.n_clusters = int(self.codes.max()) + 1
        self.rules = rules
        self.K = cluster_draws(self.n_clusters, n_boot=rules.n_boot, seed=rules.seed)
        pos = pd.Series(np.arange(len(self.ids)), index=self.ids)
        self.scores: dict[tuple[str, str], np.ndarray] = {}
        for (enc, layer), g in preds.groupby(["encoder", "layer"], sort=True):
            mean = g.groupby("example_id").correct.mean()
            x = np.full(len(self.ids), np.nan)
            x[pos.loc[mean.index].to_numpy()] = mean.to_numpy(dtype=np.float64)
            self.scores[(str(enc), str(layer))] = x

    def mask(self, subset_kind: str, subset: str) -> np.ndarray:
        if subset_kind == "all":
            return np.ones(len(self.ids), bool)
        return (self.meta[subset_kind].astype(str) == str(subset)).to_numpy()

    def mean_ci(self, x: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
        """Mean of ``x`` over ``mask`` and its clustered percentile interval (shared draws)."""
        m = mask & np.isfinite(x)
        if m.sum() == 0:
            return (np.nan,) * 3
        num, _ = cluster_sums(np.where(m, x, 0.0), self.codes)
        den, _ = cluster_sums(m.astype(np.float64), self.codes)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = (self.K @ num) / (self.K @ den)
        lo, hi = nan_percentiles(boot[:, None], self.rules.confidence)
        return float(num.sum() / den.sum()), float(lo[0]), float(hi[0])


def _covers(lo: float, hi: float, x: float) -> bool:
    return bool(np.isfinite(lo) and np.isfinite(hi) and lo - 1e-12 <= x <= hi + 1e-12)


def _uninformative(row: dict[str, Any], rules: VerdictRules) -> str:
    if row["a_high"] >= rules.ceiling - 1e-12 and row["b_high"] >= rules.ceiling - 1e-12:
        return "ceiling"
    if _covers(row["a_low"], row["a_high"], row["chance"]) and _covers(row["b_low"], row["b_high"], row["chance"]):
        return "chance"
    return ""


def _tests(items: TaskItems, d: np.ndarray, m: np.ndarray, rules: VerdictRules) -> dict[str, Any]:
    """The paired t and TOST p-values of the differences ``d`` on items ``m``; the sign-flip test runs once the
    family's size is known, on ``_quantity``: the per-cluster sums of ``d`` over all of the task's clusters (0 where
    the row has none), so that one set of random signs serves every row with as many clusters."""
    cl = items.clusters[m]
    return {"p_t": cluster_t_test(d, cl)[2], "p_tost": tost(d, rules.margin, cl),
            "_quantity": cluster_sums(d, items.codes[m], items.n_clusters)[0]}


def permutations_for(family_size: int, rules: VerdictRules) -> int:
    """Sign-flip permutations for a family of ``family_size``: at least ``rules.n_permutations`` and enough that
    the smallest Monte Carlo p (``1 / (B + 1)``) survives Holm with a tenfold margin (``B ≥ 10 m / α``)."""
    return max(rules.n_permutations, int(np.ceil(10 * family_size / rules.alpha)))


def _pair_row(items: TaskItems, base: dict[str, Any], a: tuple[str, str], b: tuple[str, str], mask: np.ndarray,
              rules: VerdictRules) -> dict[str, Any] | None:
    xa, xb = items.scores.get(a), items.scores.get(b)
    if xa is None or xb is None:
        return None
    m = mask & np.isfinite(xa) & np.isfinite(xb)
    if m.sum() < 2:
        return None
    acc_a, acc_b, d = items.mean_ci(xa, m), items.mean_ci(xb, m), items.mean_ci(xa - xb, m)
    row = {**base, "encoder_a": a[0], "layer_a": a[1], "encoder_b": b[0], "layer_b": b[1],
           "acc_a": acc_a[0], "a_low": acc_a[1], "a_high": acc_a[2], "acc_b": acc_b[0], "b_low": acc_b[1],
           "b_high": acc_b[2], "diff": d[0], "diff_low": d[1], "diff_high": d[2], "n_items": int(m.sum()),
           "n_clusters": int(np.unique(items.codes[m]).size), "n_seeds": 1}
    return {**row, **_tests(items, (xa - xb)[m], m, rules)}


def _lab_row(items: TaskItems, base: dict[str, Any], lab: str, oa: str, ob: str, seeds: list[int], layer_of: dict,
             mask: np.ndarray, rules: VerdictRules) -> dict[str, Any] | None:
    """Lab arm ``oa`` − arm ``ob`` over their shared seeds; ``ob`` may be a lexical floor (one encoder, no seeds),
    which then stands beside every seed of ``oa``: the arm − floor row of the ``lexical`` contrast."""
    ea = [f"{lab}-{oa}-s{s}" for s in seeds]
    eb = [ob] * len(seeds) if is_lexical_floor(ob) else [f"{lab}-{ob}-s{s}" for s in seeds]
    xa = [items.scores.get((e, layer_of.get(e, ""))) for e in ea]
    xb = [items.scores.get((e, layer_of.get(e, ""))) for e in eb]
    if any(x is None for x in xa + xb):
        return None
    A, B = np.stack(xa), np.stack(xb)
    m = mask & np.isfinite(A).all(0) & np.isfinite(B).all(0)
    if m.sum() < 2:
        return None
    cl = items.clusters[m]
    hb = {k: hierarchical_bootstrap_mean(v[:, m], cl, n_boot=rules.n_boot, seed=rules.seed,
                                         confidence=rules.confidence) for k, v in (("a", A), ("b", B), ("d", A - B))}
    d = (A - B)[:, m].mean(0)  # the tests' quantity: per item, the seed-paired difference averaged over seeds
    row = {**base, "encoder_a": f"{lab}-{oa}", "encoder_b": eb[0] if is_lexical_floor(ob) else f"{lab}-{ob}",
           "layer_a": layer_of.get(ea[0], ""),
           "layer_b": layer_of.get(eb[0], ""), "acc_a": hb["a"][0], "a_low": hb["a"][1], "a_high": hb["a"][2],
           "acc_b": hb["b"][0], "b_low": hb["b"][1], "b_high": hb["b"][2], "diff": hb["d"][0],
           "diff_low": hb["d"][1], "diff_high": hb["d"][2], "n_items": int(m.sum()),
           "n_clusters": int(np.unique(items.codes[m]).size), "n_seeds": len(seeds)}
    return {**row, **_tests(items, d, m, rules)}


def _signflip_pvalues(sums: pd.Series, tested: pd.Series, n_permutations: int, seed: int) -> np.ndarray:
    """Each tested row's cluster sign-flip p (NaN for the others), drawing the random signs once per cluster count
    (:class:`~spatial_probing.probe.stats.SignFlips`; one draw per row took most of a 27-encoder family's time)."""
    out = np.full(len(sums), np.nan)
    rows = np.flatnonzero(tested.to_numpy())
    by_size: dict[int, list[int]] = {}
    for i in rows:
        by_size.setdefault(len(sums.iloc[i]), []).append(i)
    for n_clusters, idx in by_size.items():
        flips = SignFlips(n_clusters, n_permutations=n_permutations, seed=seed)
        out[idx] = flips.pvalues(np.stack([sums.iloc[i] for i in idx], 1))
    return out


def _nanmean(x: np.ndarray) -> float:
    """Mean of the finite entries (NaN, without a warning, when there are none: a floor that predicted none)."""
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def apply_rules(family: pd.DataFrame, rules: VerdictRules) -> pd.DataFrame:
    """Holm over the in-family rows, then each row's verdict and reason (the rules of the module docstring)."""
    f = family.copy()
    f["in_family"] = f.uninformative.eq("") & f[["p_t", "p_perm", "p_tost"]].notna().all(axis=1)
    for col in ("p_t", "p_perm", "p_tost"):
        f[f"{col}_holm"] = np.nan
        if f.in_family.any():
            f.loc[f.in_family, f"{col}_holm"] = holm(f.loc[f.in_family, col].to_numpy())
    verdicts, reasons = [], []
    a = rules.alpha
    for r in f.itertuples():
        if r.uninformative:
            verdicts.append("uninformative")
            reasons.append(f"both intervals reach the {'ceiling' if r.uninformative == 'ceiling' else 'chance level'}")
            continue
        if not r.in_family:
            verdicts.append("inconclusive")
            reasons.append("too few clusters for a test")
            continue
        sign = np.sign(r.diff)
        t_sig, p_sig = r.p_t_holm < a, r.p_perm_holm < a
        ci_sig = r.diff_low > 0 or r.diff_high < 0
        ci_sign = 1 if r.diff_low > 0 else -1 if r.diff_high < 0 else 0
        if t_sig and p_sig and ci_sig and ci_sign == sign != 0:
            verdicts.append("gain" if sign > 0 else "loss")
            reasons.append("paired t, sign-flip and interval agree")
        elif r.p_tost_holm < a:
            verdicts.append("equivalent")
            reasons.append(f"TOST: within ±{100 * rules.margin:g} points")
        else:
            verdicts.append("inconclusive")
            reasons.append("tests disagree" if (t_sig or p_sig or ci_sig) else
                           f"not significant, and not shown within ±{100 * rules.margin:g} points")
    f["verdict"], f["reason"] = verdicts, reasons
    lex = f.contrast.eq("lexical")
    f["lexical"] = np.where(lex, f.acc_b >= f.a_low - 1e-12, False)
    return f


def verdict_family(predictions: pd.DataFrame | None, results: pd.DataFrame | None,
                   layers: dict[tuple[str, str, str], str], rules: VerdictRules = VerdictRules(),
                   grounded: Callable[[str], bool] = is_grounded) -> pd.DataFrame:
    """Every pre-specified contrast of a run with its numbers, Holm-corrected p-values and verdict."""
    if predictions is None or predictions.empty or results is None:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    chance = results[results.metric == "chance"].groupby("task").value.mean().to_dict()
    rows: list[dict[str, Any]] = []
    for (task, probe), grp in predictions.groupby(["task", "probe"], sort=True):
        grp = grp[[layers.get((task, e, probe)) == lay for e, lay in zip(grp.encoder, grp.layer)]]
        if grp.empty:
            continue
        items = TaskItems(grp, rules)
        layer_of = {e: layers[(task, e, probe)] for e in set(grp.encoder)}
        encoders = sorted(layer_of)
        floors = [e for e in encoders if is_lexical_floor(e)]
        labs = {e: parse_lab_arm(e) for e in encoders}  # (lab, arm, objective, hard negatives, seed)
        real = [e for e in encoders if e not in floors and labs[e] is None]
        subsets = [("all", "all")]
        if "category" in items.meta.columns:
            subsets += [("category", c) for c in sorted({str(c) for c in items.meta.category.dropna()})]
        lab_groups: dict[str, dict[str, set[int]]] = {}
        for e, parsed in labs.items():
            if parsed:
                lab_groups.setdefault(parsed[0], {}).setdefault(parsed[1], set()).add(parsed[4])
        for kind, sub in subsets:
            mask = items.mask(kind, sub)
            # the strictest floor on this subset's items (a category's best floor need not be the task's)
            floor = strictest_floor({f: _nanmean(items.scores[(f, layer_of[f])][mask]) for f in floors})[0]
            base = {"task": task, "probe": probe, "subset_kind": kind, "subset": sub, "chance": chance.get(task, np.nan)}
            pairs = [("grounding", g, d) for g in real if grounded(g) for d in real if not grounded(d)]
            pairs += [("lexical", e, floor) for e in real if floor is not None]
            for contrast, ea, eb in pairs:
                row = _pair_row(items, {**base, "contrast": contrast}, (ea, layer_of[ea]), (eb, layer_of[eb]), mask,
                                rules)
                if row:
                    rows.append(row)
            for lab, arms in sorted(lab_groups.items()):
                # the lab's questions (grounded first: vision − other; hard negatives − none), arms with hard
                # negatives included
                for oa, ob, _ in answer_pairs(sorted(arms, key=arm_order)):
                    seeds = sorted(arms[oa] & arms[ob])
                    row = _lab_row(items, {**base, "contrast": "lab"}, lab, oa, ob, seeds, layer_of, mask, rules)
                    if row:
                        rows.append(row)
                if floor is not None:  # every arm beside the strictest floor: could the words alone do as well?
                    for oa in sorted(arms, key=arm_order):
                        row = _lab_row(items, {**base, "contrast": "lexical"}, lab, oa, floor, sorted(arms[oa]),
                                       layer_of, mask, rules)
                        if row:
                            rows.append(row)
    if not rows:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    family = pd.DataFrame(rows)
    family["uninformative"] = [_uninformative(r, rules) for r in family.to_dict("records")]
    n_perm = permutations_for(int((family.uninformative == "").sum()), rules)
    family["p_perm"] = _signflip_pvalues(family.pop("_quantity"), family.uninformative.eq(""), n_perm, rules.seed)
    family["row_id"] = [slug("v", r.task, r.probe, r.subset, r.contrast, r.encoder_a, r.encoder_b)
                        for r in family.itertuples()]
    return apply_rules(family, rules)[VERDICT_COLUMNS]


def lexical_tasks(family: pd.DataFrame) -> pd.DataFrame:
    """Per task (subset ``all``): lexical when the best floor reaches every real encoder within its interval."""
    rows = family[(family.contrast == "lexical") & (family.subset_kind == "all")]
    return rows.groupby(["task", "probe"], sort=True).agg(lexical=("lexical", "all"), floor=("encoder_b", "first"),
                                                          row_id=("row_id", "first")).reset_index()


def grounding_summary(family: pd.DataFrame) -> pd.DataFrame:
    """Per task × subset: the grounding rows (grounded − distributional; lab vision − other) in one word."""
    g = family[(family.contrast == "grounding") | ((family.contrast == "lab") & family.encoder_a.str.endswith("vision"))]
    out = []
    for (task, probe, kind, sub), grp in g.groupby(["task", "probe", "subset_kind", "subset"], sort=True):
        v = set(grp.verdict)
        word = ("mixed" if {"gain", "loss"} <= v else "gains" if "gain" in v else "loses" if "loss" in v
                else "uninformative (ceiling/floor)" if v == {"uninformative"}
                else "resistant" if v <= {"equivalent", "uninformative"} else "inconclusive")
        out.append({"task": task, "probe": probe, "subset_kind": kind, "subset": sub, "summary": word,
                    "rows": list(grp.row_id)})
    return pd.DataFrame(out, columns=["task", "probe", "subset_kind", "subset", "summary", "rows"])


def k_trends(predictions: pd.DataFrame | None, layers: dict[tuple[str, str, str], str],
             rules: VerdictRules = VerdictRules()) -> pd.DataFrame:
    """Per task with hop counts ``k`` and encoder: the OLS slope of seed-averaged correctness on k, clustered CI."""
    if predictions is None or "k" not in predictions.columns:
        return pd.DataFrame(columns=TREND_COLUMNS)
    rows = []
    for (task, probe), grp in predictions.dropna(subset=["k"]).groupby(["task", "probe"], sort=True):
        grp = grp[[layers.get((task, e, probe)) == lay for e, lay in zip(grp.encoder, grp.layer)]]
        if grp.empty:
            continue
        items = TaskItems(grp, rules)
        k = pd.to_numeric(items.meta.k, errors="coerce").to_numpy(dtype=np.float64)
        for (enc, layer), y in sorted(items.scores.items()):
            m = np.isfinite(y) & np.isfinite(k)
            if len(np.unique(k[m])) < 2:
                continue
            parts = [np.where(m, v, 0.0) for v in (np.ones_like(k), k, k * k, y, k * y)]
            sums = [cluster_sums(p, items.codes)[0] for p in parts]
            n, sk, skk, sy, sky = (np.concatenate([[s.sum()], items.K @ s]) for s in sums)
            with np.errstate(invalid="ignore", divide="ignore"):
                slope = (n * sky - sk * sy) / (n * skk - sk ** 2)
            lo, hi = nan_percentiles(slope[1:, None], rules.confidence)
            rows.append({"row_id": slug("k", task, probe, enc), "task": task, "encoder": enc, "probe": probe,
                         "layer": layer, "slope": float(slope[0]), "slope_low": float(lo[0]),
                         "slope_high": float(hi[0]), "k_min": int(k[m].min()), "k_max": int(k[m].max()),
                         "n_items": int(m.sum()), "n_clusters": int(np.unique(items.codes[m]).size)})
    return pd.DataFrame(rows, columns=TREND_COLUMNS)
