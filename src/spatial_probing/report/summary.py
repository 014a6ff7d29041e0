"""The numbers behind the report: chosen layers, item-bootstrap intervals, comparisons and findings.

Intervals. The results table holds one bootstrap interval per probe seed; averaging those bounds
is not an interval for the seed mean. Where ``predictions.parquet`` is present, each test item's
correctness is first averaged over probe seeds and the interval is a percentile bootstrap over
items of that mean (``scipy.stats.bootstrap``) — the same per-item scores the paired tests in
``comparisons.parquet`` use, so intervals and p-values describe the same quantity. Without
predictions the report falls back to the seed means of the per-seed bounds and says so.

Layer. Every per-encoder number is read at one layer per (task, encoder, probe): the layer with
the best inner-CV accuracy (``best-cv``; chosen on training data only) when the run recorded
``cv_accuracy``, else ``final``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from spatial_probing.embed.config import is_lexical_floor
from spatial_probing.lab.compare import objective_comparisons, objective_summary, parse_lab_encoder
from spatial_probing.probe.runner import best_layers
from spatial_probing.report.tables import RunTables

ALPHA = 0.05
Selection = Literal["best-cv", "final"]


def layer_sort_key(layer: str) -> tuple[int, float, str]:
    """Numeric layers in order, then ``final``, then anything else alphabetically."""
    text = str(layer)
    if re.fullmatch(r"-?\d+", text):
        return (0, float(text), "")
    return (1, 0.0, "") if text == "final" else (2, 0.0, text)


def is_control(encoder: str) -> bool:
    """Control encoders (the lexical floor: ``bow:``, ``order:``, ``random-init:…``, ``static:…``): baselines, not
    competitors."""
    return is_lexical_floor(encoder)


def is_grounded(encoder: str) -> bool:
    """Visually grounded: a CLIP encoder or a lab encoder trained with the vision objective (not a control)."""
    if is_control(encoder):
        return False
    lab = parse_lab_encoder(encoder)
    return lab[1] == "vision" if lab else "clip" in encoder.lower()


def is_reported_pair(a: str, b: str) -> bool:
    """Pairs that answer a question, shown in the report (every pair stays in ``comparisons.parquet``).

    Two real encoders (neither a control nor a lab model); an encoder against its own control
    (``random-init:X`` / ``static:X`` vs ``X``); two lab objectives of the same lab and seed. Not
    shown: seeds of one lab objective against each other, controls against other encoders, lab
    models against external ones — comparisons no research question asks for.
    """
    controls = [e for e in (a, b) if is_control(e)]
    if controls:
        return len(controls) == 1 and controls[0].split(":", 1)[1] == (b if controls[0] == a else a)
    la, lb = parse_lab_encoder(a), parse_lab_encoder(b)
    if la or lb:
        return bool(la and lb and la[0] == lb[0] and la[2] == lb[2] and la[1] != lb[1])
    return True


def format_p(p: float) -> str:
    """``p = 0.003`` / ``p < 0.001`` / ``p = n/a``."""
    if p is None or not np.isfinite(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def points(diff: float) -> str:
    """A proportion difference as signed percentage points: ``+12.3 points``."""
    return f"{100 * diff:+.1f} points"


def bootstrap_mean(values: np.ndarray, *, n_boot: int = 2000, seed: int = 0,
                   confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, ci_low, ci_high)``: percentile bootstrap over items (NaN bounds for < 2 items)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    if np.all(x == x[0]):  # every resample has the same mean; scipy warns and returns NaN here
        return mean, mean, mean
    res = sps.bootstrap((x,), np.mean, n_resamples=n_boot, confidence_level=confidence, method="percentile",
                        random_state=np.random.default_rng(seed), vectorized=True)
    return mean, float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass(frozen=True)
class Interval:
    """A value with its interval, the number of test items and where the interval came from."""

    value: float
    low: float
    high: float
    n: int
    source: Literal["items", "seed-mean", "none"]

    def covers(self, x: float) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high) and self.low <= x <= self.high)


@dataclass(frozen=True)
class Finding:
    """One plain-words statement and the data behind it."""

    text: str
    kind: str
    task: str = ""
    subset: str = ""


class RunAnalysis:
    """Lazy, cached summaries of one run's tables (layers, intervals, comparisons, findings)."""

    def __init__(self, tables: RunTables, *, n_boot: int = 2000, seed: int = 0) -> None:
        self.tables = tables
        self.n_boot = n_boot
        self.seed = seed
        self._items: dict[tuple, pd.DataFrame | None] = {}
        self._accuracy: dict[str, pd.DataFrame] = {}

    # ------------------------------------------------------------------------------------ layers
    @cached_property
    def selection(self) -> Selection:
        """``best-cv`` when the results carry inner-CV accuracy, else ``final``."""
        r = self.tables.results
        has_cv = r is not None and ((r.metric == "cv_accuracy") & r.value.notna()).any()
        return "best-cv" if has_cv else "final"

    @cached_property
    def layers(self) -> dict[tuple[str, str, str], str]:
        """(task, encoder, probe) → the layer every per-encoder number is read at."""
        r = self.tables.results
        if r is None or r.empty:
            return {}
        best = best_layers(r) if self.selection == "best-cv" else {}
        out = {}
        for (task, encoder, probe), grp in r.groupby(["task", "encoder", "probe"], sort=True):
            layers = sorted(set(grp.layer), key=layer_sort_key)
            out[(task, encoder, probe)] = best.get((task, encoder, probe),
                                                   "final" if "final" in layers else layers[-1])
        return out

    # ----------------------------------------------------------------------------- item scores
    def items(self, task: str, encoder: str, probe: str, layer: str) -> pd.DataFrame | None:
        """Per test item: correctness (and control correctness) averaged over probe seeds, with subset columns."""
        key = (task, encoder, probe, layer)
        if key not in self._items:
            p = self.tables.predictions
            out = None
            if p is not None:
                cell = p[(p.task == task) & (p.encoder == encoder) & (p.probe == probe) & (p.layer == layer)]
                if not cell.empty:
                    cell = cell.assign(correct=cell["correct"].astype(np.float64))
                    if {"control_true", "control_pred"} <= set(cell.columns):
                        cell = cell.assign(control_correct=(cell.control_true == cell.control_pred).astype(float))
                    scores = [c for c in ("correct", "control_correct") if c in cell.columns]
                    meta = [c for c in ("category", "relation", "k", "question_type") if c in cell.columns]
                    out = cell.groupby("example_id", sort=True)[scores].mean()
                    if meta:
                        out = out.join(cell.drop_duplicates("example_id").set_index("example_id")[meta])
            self._items[key] = out
        return self._items[key]

    def _seed_mean(self, task: str, encoder: str, probe: str, layer: str, subset_kind: str, subset: str,
                   metric: str) -> Interval:
        r = self.tables.results
        if r is None:
            return Interval(np.nan, np.nan, np.nan, 0, "none")
        rows = r[(r.task == task) & (r.encoder == encoder) & (r.probe == probe) & (r.layer == layer)
                 & (r.subset_kind == subset_kind) & (r.subset == subset) & (r.metric == metric)]
        if rows.empty:
            return Interval(np.nan, np.nan, np.nan, 0, "none")
        return Interval(float(rows.value.mean()), float(rows.ci_low.mean()), float(rows.ci_high.mean()),
                        int(rows.n_test.max()), "seed-mean")

    def interval(self, task: str, encoder: str, probe: str, layer: str, subset_kind: str = "all",
                 subset: str = "all", metric: Literal["accuracy", "selectivity"] = "accuracy") -> Interval:
        """Accuracy or selectivity of one cell with its 95% interval (item bootstrap when predictions exist)."""
        items = self.items(task, encoder, probe, layer)
        usable = items is not None and (subset_kind == "all" or subset_kind in items.columns) and (
            metric == "accuracy" or "control_correct" in items.columns)
        if not usable:
            return self._seed_mean(task, encoder, probe, layer, subset_kind, subset, metric)
        rows = items if subset_kind == "all" else items[items[subset_kind] == subset]
        if rows.empty:
            return self._seed_mean(task, encoder, probe, layer, subset_kind, subset, metric)
        x = rows.correct.to_numpy() if metric == "accuracy" else (rows.correct - rows.control_correct).to_numpy()
        return Interval(*bootstrap_mean(x, n_boot=self.n_boot, seed=self.seed), len(x), "items")

    def paired_diff(self, task: str, probe: str, a: tuple[str, str], b: tuple[str, str], subset_kind: str,
                    subset: str) -> tuple[float, float]:
        """95% bootstrap interval of mean(a − b) over the items both (encoder, layer) cells tested."""
        ia, ib = self.items(task, a[0], probe, a[1]), self.items(task, b[0], probe, b[1])
        if ia is None or ib is None or (subset_kind != "all" and subset_kind not in ia.columns):
            return float("nan"), float("nan")
        if subset_kind != "all":
            ia = ia[ia[subset_kind] == subset]
        common = ia.index.intersection(ib.index)
        d = ia.loc[common, "correct"].to_numpy() - ib.loc[common, "correct"].to_numpy()
        return bootstrap_mean(d, n_boot=self.n_boot, seed=self.seed)[1:]

    # ------------------------------------------------------------------------------- baselines
    def baseline(self, task: str, metric: Literal["chance", "majority"], subset_kind: str = "all",
                 subset: str = "all") -> float:
        """Chance (per task) or the majority-class baseline (per subset), averaged over encoders and seeds."""
        r = self.tables.results
        if r is None:
            return float("nan")
        if metric == "chance":
            rows = r[(r.task == task) & (r.metric == "chance")]
        else:
            rows = r[(r.task == task) & (r.metric == "majority") & (r.subset_kind == subset_kind)
                     & (r.subset == subset)]
        return float(rows.value.mean()) if not rows.empty else float("nan")

    # -------------------------------------------------------------------------- tables
    def accuracy_table(self, subset_kind: str = "category") -> pd.DataFrame:
        """Accuracy (and, for ``all``, selectivity) per task × encoder × subset at the chosen layer, with CIs."""
        if subset_kind not in self._accuracy:
            self._accuracy[subset_kind] = self._accuracy_table(subset_kind)
        return self._accuracy[subset_kind]

    def _accuracy_table(self, subset_kind: str) -> pd.DataFrame:
        r = self.tables.results
        cols = ["dataset", "task", "encoder", "probe", "layer", "subset_kind", "subset", "accuracy", "ci_low",
                "ci_high", "n", "source", "chance", "majority", "selectivity", "sel_low", "sel_high"]
        if r is None:
            return pd.DataFrame(columns=cols)
        rows = []
        for (task, encoder, probe), layer in self.layers.items():
            cell = r[(r.task == task) & (r.encoder == encoder) & (r.probe == probe) & (r.layer == layer)
                     & (r.subset_kind == subset_kind) & (r.metric == "accuracy")]
            dataset = str(r[r.task == task].dataset.iloc[0])
            for subset in sorted(set(cell.subset), key=layer_sort_key):
                acc = self.interval(task, encoder, probe, layer, subset_kind, subset)
                sel = self.interval(task, encoder, probe, layer, subset_kind, subset, metric="selectivity")
                rows.append([dataset, task, encoder, probe, layer, subset_kind, subset, acc.value, acc.low, acc.high,
                             acc.n, acc.source, self.baseline(task, "chance"),
                             self.baseline(task, "majority", subset_kind, subset), sel.value, sel.low, sel.high])
        return pd.DataFrame(rows, columns=cols)

    def comparison_table(self, subset_kinds: tuple[str, ...] = ("all",)) -> pd.DataFrame:
        """``comparisons.parquet`` rows of the chosen layer selection, with item-bootstrap intervals added."""
        c = self.tables.comparisons
        if c is None or c.empty:
            return pd.DataFrame()
        selection = self.selection if (c.selection == self.selection).any() else str(c.selection.iloc[0])
        rows = c[(c.selection == selection) & c.subset_kind.isin(subset_kinds)].copy()
        extra = []
        for row in rows.itertuples():
            ia = self.interval(row.task, row.encoder_a, row.probe, row.layer_a, row.subset_kind, row.subset)
            ib = self.interval(row.task, row.encoder_b, row.probe, row.layer_b, row.subset_kind, row.subset)
            dlo, dhi = self.paired_diff(row.task, row.probe, (row.encoder_a, row.layer_a), (row.encoder_b, row.layer_b),
                                        row.subset_kind, row.subset)
            extra.append((ia.low, ia.high, ib.low, ib.high, dlo, dhi))
        rows[["a_low", "a_high", "b_low", "b_high", "diff_low", "diff_high"]] = pd.DataFrame(
            extra, index=rows.index, columns=range(6)) if extra else np.nan
        return rows.reset_index(drop=True)

    # ------------------------------------------------------------------------------- findings
    def grounding_pairs(self, table: pd.DataFrame) -> pd.DataFrame:
        """Rows comparing a grounded encoder with a distributional one (no controls, no lab), oriented grounded − other."""
        if table.empty:
            return table
        keep = []
        for row in table.to_dict("records"):
            a, b = row["encoder_a"], row["encoder_b"]
            if any(is_control(e) or parse_lab_encoder(e) for e in (a, b)) or is_grounded(a) == is_grounded(b):
                continue
            if is_grounded(b):  # orient: grounded first
                row = {**row, "encoder_a": b, "encoder_b": a, "layer_a": row["layer_b"], "layer_b": row["layer_a"],
                       "acc_a": row["acc_b"], "acc_b": row["acc_a"], "diff": -row["diff"],
                       "a_low": row.get("b_low"), "a_high": row.get("b_high"), "b_low": row.get("a_low"),
                       "b_high": row.get("a_high"), "diff_low": -row.get("diff_high", np.nan),
                       "diff_high": -row.get("diff_low", np.nan)}
            keep.append(row)
        return pd.DataFrame(keep, columns=table.columns)

    def category_findings(self) -> list[Finding]:
        """Per task and relation category: the grounded-vs-distributional differences, in words."""
        pairs = self.grounding_pairs(self.comparison_table(("category",)))
        out = []
        for row in pairs.itertuples():
            what = f"on {row.subset} relations ({row.task}, n = {row.n})"
            ci = f"95% CI {points(row.diff_low)} to {points(row.diff_high)}; " if np.isfinite(row.diff_low) else ""
            p = f"Holm {format_p(row.p_holm)}"
            if row.p_holm < ALPHA and row.diff != 0:
                verb = "beats" if row.diff > 0 else "trails"
                out.append(Finding(f"{row.encoder_a} {verb} {row.encoder_b} {what} by {points(row.diff)} "
                                   f"({ci}{p}).", "gain" if row.diff > 0 else "loss", row.task, row.subset))
            else:
                out.append(Finding(f"{what.capitalize()} the difference between {row.encoder_a} and "
                                   f"{row.encoder_b} ({points(row.diff)}; {ci}{p}) is not significant.", "ns",
                                   row.task, row.subset))
        return out

    def baseline_findings(self) -> list[Finding]:
        """"At chance" when a probe's interval covers chance; "selectivity near zero" when its interval covers 0."""
        out = []
        for kind in ("all", "category"):
            for row in self.accuracy_table(kind).itertuples():
                where = f"{row.task}" if kind == "all" else f"{row.task}, {row.subset} relations"
                at = f"{row.encoder} (layer {row.layer}) on {where}"
                if np.isfinite(row.chance) and (row.ci_low <= row.chance <= row.ci_high):
                    out.append(Finding(f"{at} is at chance: accuracy {row.accuracy:.3f} "
                                       f"[{row.ci_low:.3f}, {row.ci_high:.3f}] covers chance {row.chance:.3f}.",
                                       "chance", row.task, row.subset))
                if kind == "all" and np.isfinite(row.sel_low) and row.sel_low <= 0 <= row.sel_high:
                    out.append(Finding(f"{at}: selectivity near zero ({row.selectivity:+.3f} "
                                       f"[{row.sel_low:+.3f}, {row.sel_high:+.3f}]) — the probe does as well on "
                                       f"the control task, so its accuracy may reflect probe capacity.",
                                       "selectivity", row.task))
        return out

    def grounding_verdicts(self, lab_comparisons: pd.DataFrame | None = None) -> pd.DataFrame:
        """Per task × category: gains (a significant grounded advantage, no significant loss), loses, mixed, resistant.

        Evidence: grounded-vs-distributional rows of ``comparisons.parquet`` and, when given, the lab's
        vision-vs-(mlm|textcl) rows (Holm p of each).
        """
        ev = []
        for row in self.grounding_pairs(self.comparison_table(("category",))).itertuples():
            ev.append((row.task, row.subset, f"{row.encoder_a} vs {row.encoder_b}", row.diff, row.p_holm,
                       min(row.acc_a, row.acc_b)))
        if lab_comparisons is not None and not lab_comparisons.empty:
            lab = lab_comparisons[(lab_comparisons.subset_kind == "category") & (lab_comparisons.metric == "accuracy")]
            for row in lab.itertuples():
                if "vision" not in (row.objective_a, row.objective_b):
                    continue
                sign = 1 if row.objective_a == "vision" else -1
                other = row.objective_b if sign == 1 else row.objective_a
                ev.append((row.task, row.subset, f"{row.lab} vision vs {other}", sign * row.diff, row.p_holm,
                           min(row.mean_a, row.mean_b)))
        cols = ["task", "category", "verdict", "evidence", "n_comparisons", "at_ceiling"]
        if not ev:
            return pd.DataFrame(columns=cols)
        df = pd.DataFrame(ev, columns=["task", "category", "pair", "diff", "p_holm", "min_acc"])
        rows = []
        for (task, cat), grp in df.groupby(["task", "category"], sort=True):
            sig = grp[grp.p_holm < ALPHA]
            up, down = (sig["diff"] > 0).any(), (sig["diff"] < 0).any()
            verdict = "mixed" if up and down else "gains" if up else "loses" if down else "resistant"
            evidence = "; ".join(f"{r.pair}: {points(r.diff)} (Holm {format_p(r.p_holm)})" for r in grp.itertuples())
            rows.append((task, cat, verdict, evidence, len(grp), bool((grp.min_acc >= 0.95).all())))
        return pd.DataFrame(rows, columns=cols)

    # ------------------------------------------------------------------------------------ RSA
    def rsa_table(self) -> pd.DataFrame:
        """RSA rows at each encoder's last layer (``final`` when present), per dataset × reference × method."""
        rsa = self.tables.rsa
        if rsa is None or rsa.empty:
            return pd.DataFrame()
        keys = ["dataset", "encoder", "reference", "rdm_method", "comparison"]
        last = rsa.groupby(keys).layer.agg(lambda s: max(s, key=layer_sort_key)).rename("last").reset_index()
        out = rsa.merge(last, on=keys)
        out = out[out.layer == out["last"]].drop(columns="last")
        return out.sort_values(["dataset", "reference", "rdm_method", "comparison", "encoder"]).reset_index(drop=True)

    def rsa_findings(self) -> list[Finding]:
        """Per dataset × reference (first method/comparison): the best-matching encoder and whether it is significant."""
        table = self.rsa_table()
        out = []
        if table.empty:
            return out
        for (dataset, reference), grp in table.groupby(["dataset", "reference"], sort=True):
            method, comp = grp.rdm_method.iloc[0], grp.comparison.iloc[0]
            grp = grp[(grp.rdm_method == method) & (grp.comparison == comp)]
            best = grp.loc[grp.value.idxmax()]
            sig = grp[grp.p_value < ALPHA].encoder.tolist()
            ci = f" [{best.ci_low:.3f}, {best.ci_high:.3f}]" if np.isfinite(best.ci_low) else ""
            head = (f"{dataset}, {reference} reference ({method} RDMs, {comp}): the closest match is {best.encoder} "
                    f"(layer {best.layer}, {best.value:.3f}{ci}, {format_p(best.p_value)}).")
            tail = (f" Significant (p < {ALPHA}) for {', '.join(sig)}." if sig else
                    " No encoder's RDM matches this reference significantly.")
            out.append(Finding(head + tail, "rsa", dataset, reference))
        return out

    # ------------------------------------------------------------------------------------ lab
    @cached_property
    def lab(self) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        """(objective summary, objective comparisons) at the lab encoders' last layer, for all and per category.

        None, with the reason noted in ``tables.missing``, when the run has no lab encoders or they cannot be compared.
        """
        r = self.tables.results
        is_lab = r.encoder.map(lambda e: parse_lab_encoder(e) is not None) if r is not None else None
        if is_lab is None or not is_lab.any():
            self.tables.note_missing("lab section: no lab encoders (lab-mlm-sK / lab-textcl-sK / lab-vision-sK)")
            return None
        lab_rows = r[is_lab & r.subset_kind.isin(["all", "category"])]
        layer = max(set(lab_rows.layer), key=layer_sort_key)
        lab_rows = lab_rows[lab_rows.layer == layer]
        preds = self.tables.predictions
        if preds is not None:
            preds = preds[preds.encoder.map(lambda e: parse_lab_encoder(e) is not None) & (preds.layer == layer)]
            preds = preds if not preds.empty else None
        try:
            summary = objective_summary(lab_rows)
            try:
                comparisons = objective_comparisons(lab_rows, preds, n_permutations=2000, seed=self.seed)
            except Exception as err:  # item-level tests need predictions in the lab's format; keep seed-level ones
                if preds is None:
                    raise
                self.tables.note_missing(f"lab item-level tests: objective_comparisons failed on predictions.parquet "
                                         f"({type(err).__name__}: {err}); seed-level tests only")
                comparisons = objective_comparisons(lab_rows, None, n_permutations=2000, seed=self.seed)
        except ValueError as err:
            self.tables.note_missing(f"lab section: {err}")
            return None
        return summary, comparisons

    def context(self) -> dict[str, Any]:
        """Counts used by the report's prose (encoders, grounded ones, tasks)."""
        r = self.tables.results
        encoders = sorted(set(r.encoder)) if r is not None else []
        return {"encoders": encoders, "grounded": [e for e in encoders if is_grounded(e)],
                "tasks": sorted(set(r.task)) if r is not None else []}
