"""The numbers behind the report: chosen layers, item-bootstrap intervals, comparisons and findings.

Intervals. The results table holds one bootstrap interval per probe seed; averaging those bounds
is not an interval for the seed mean. Where ``predictions.parquet`` is present, each test item's
correctness is first averaged over probe seeds and the interval is a percentile bootstrap over
the items' clusters (the ``cluster`` column: scene, image, story; items when absent) of that
mean — the same per-item scores the verdict tests use, so intervals and p-values describe the
same quantity. Without predictions the report falls back to the seed means of the per-seed
bounds and says so.

Verdicts. Every verdict (gain, loss, resistant, inconclusive, uninformative, lexical) comes from
:mod:`spatial_probing.report.verdicts`, with the thresholds of the run's ``verdicts:`` config
(:class:`~spatial_probing.report.verdicts.VerdictRules`, read from the manifest).

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

from spatial_probing.embed.config import is_grounded as _registry_grounded
from spatial_probing.embed.config import is_lexical_floor
from spatial_probing.lab.compare import objective_comparisons, objective_summary
from spatial_probing.lab.config import parse_lab_encoder
from spatial_probing.probe.runner import best_layers
from spatial_probing.probe.stats import bootstrap_mean as _clustered_mean
from spatial_probing.report.tables import RunTables
from spatial_probing.report.verdicts import VerdictRules, slug, grounding_summary, k_trends, lexical_tasks, verdict_family

#: The default family-wise α; a run's own is ``RunAnalysis.rules.alpha`` (its ``verdicts:`` config).
ALPHA = VerdictRules().alpha
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
    """Visually grounded, by the encoder registry's ``grounded`` property (:func:`spatial_probing.embed.is_grounded`)."""
    return _registry_grounded(encoder)


def is_reported_pair(a: str, b: str) -> bool:
    """Pairs that answer a question, shown in the report (every pair stays in ``comparisons.parquet``).

    Two real encoders (neither a control nor a lab model); an encoder against its own control
    (``random-init:X`` / ``static:X`` vs ``X``); two lab objectives of the same lab and seed. Not
    shown: seeds of one lab objective against each other, controls against other encoders, lab
    models against external ones — comparisons no research question asks for.
    """
    controls = [e for e in (a, b) if is_control(e)]
    if controls:
        return len(controls) == 1 and controls[0].split(":", 1)[1] in ("", b if controls[0] == a else a)
    la, lb = parse_lab_encoder(a), parse_lab_encoder(b)
    if la or lb:
        return bool(la and lb and la[0] == lb[0] and la[2] == lb[2] and la[1] != lb[1])
    return True


def verdict_finding(r: dict[str, Any], rules: VerdictRules) -> Finding:
    """One verdict-family row in words: the verdict, the difference with its interval and the Holm p-values."""
    where = "overall" if r["subset_kind"] == "all" else f"{r['subset']} relations"
    ci = f"95% CI {points(r['diff_low'])} to {points(r['diff_high'])}"
    tests = f"Holm {format_p(r['p_t_holm'])} paired t, {format_p(r['p_perm_holm'])} sign-flip"
    head = f"{r['task']}, {where}: "
    verdict, a, b = r["verdict"], r["encoder_a"], r["encoder_b"]
    if r["contrast"] == "lexical" and r["lexical"]:
        text = (f"{r['task']} is lexical: the lexical floor {b} ({r['acc_b']:.3f}) reaches {a}'s accuracy "
                f"{r['acc_a']:.3f} [{r['a_low']:.3f}, {r['a_high']:.3f}] within its interval.")
        return Finding(text, "lexical", r["task"], r["subset"], r["row_id"])
    if verdict in ("gain", "loss"):
        verb = "beats" if verdict == "gain" else "trails"
        what = f"the best lexical floor {b}" if r["contrast"] == "lexical" else b
        text = f"{head}{a} {verb} {what} by {points(r['diff'])} ({ci}; {tests})."
    elif verdict == "equivalent":
        word = {"grounding": " — resistant to grounding", "lab": " — the objectives do not differ"}.get(r["contrast"], "")
        text = (f"{head}{a} and {b} are equivalent within ±{100 * rules.margin:g} points ({points(r['diff'])}, {ci}; "
                f"TOST Holm {format_p(r['p_tost_holm'])}){word}.")
    elif verdict == "uninformative":
        text = f"{head}{a} vs {b} is uninformative: {r['reason']} ({r['acc_a']:.3f} vs {r['acc_b']:.3f})."
    else:
        text = f"{head}{a} vs {b} is inconclusive ({points(r['diff'])}, {ci}; {tests}; {r['reason']})."
    return Finding(text, verdict, r["task"], r["subset"], r["row_id"])


def format_p(p: float) -> str:
    """``p = 0.003`` / ``p < 0.001`` / ``p = n/a``."""
    if p is None or not np.isfinite(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def points(diff: float) -> str:
    """A proportion difference as signed percentage points: ``+12.3 points``."""
    return f"{100 * diff:+.1f} points"


def bootstrap_mean(values: np.ndarray, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95,
                   clusters: np.ndarray | None = None) -> tuple[float, float, float]:
    """``(mean, ci_low, ci_high)``: percentile bootstrap over items, or over their ``clusters`` (NaN bounds for < 2)."""
    return _clustered_mean(np.asarray(values, dtype=np.float64), n_boot=n_boot, seed=seed, confidence=confidence,
                           clusters=clusters)


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
    row: str = ""  #: the id of the table row the statement comes from (an anchor in the report)


class RunAnalysis:
    """Lazy, cached summaries of one run's tables (layers, intervals, comparisons, findings)."""

    def __init__(self, tables: RunTables, *, n_boot: int = 2000, seed: int = 0,
                 rules: VerdictRules | None = None) -> None:
        self.tables = tables
        self.n_boot = n_boot
        self.seed = seed
        config = ((tables.manifest or {}).get("config") or {}).get("verdicts") or {}
        self.rules = rules or VerdictRules(**{"n_boot": n_boot, "seed": seed, **config})
        self._items: dict[tuple, pd.DataFrame | None] = {}
        self._intervals: dict[tuple, Interval] = {}  # every pair of the comparison table asks for its two cells again
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
                    meta = [c for c in ("category", "relation", "k", "question_type", "cluster") if c in cell.columns]
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
        key = (task, encoder, probe, layer, subset_kind, subset, metric)
        if key not in self._intervals:
            self._intervals[key] = self._interval(*key)
        return self._intervals[key]

    def _interval(self, task: str, encoder: str, probe: str, layer: str, subset_kind: str, subset: str,
                  metric: str) -> Interval:
        items = self.items(task, encoder, probe, layer)
        usable = items is not None and (subset_kind == "all" or subset_kind in items.columns) and (
            metric == "accuracy" or "control_correct" in items.columns)
        if not usable:
            return self._seed_mean(task, encoder, probe, layer, subset_kind, subset, metric)
        rows = items if subset_kind == "all" else items[items[subset_kind] == subset]
        if rows.empty:
            return self._seed_mean(task, encoder, probe, layer, subset_kind, subset, metric)
        x = rows.correct.to_numpy() if metric == "accuracy" else (rows.correct - rows.control_correct).to_numpy()
        clusters = rows["cluster"].to_numpy() if "cluster" in rows.columns else None
        return Interval(*bootstrap_mean(x, n_boot=self.n_boot, seed=self.seed, clusters=clusters), len(x), "items")

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
        clusters = ia.loc[common, "cluster"].to_numpy() if "cluster" in ia.columns else None
        return bootstrap_mean(d, n_boot=self.n_boot, seed=self.seed, clusters=clusters)[1:]

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
                "ci_high", "n", "source", "chance", "majority", "selectivity", "sel_low", "sel_high", "n_seeds",
                "n_distinct_fits", "row_id"]
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
                n_seeds, distinct = self.distinct_fits(task, encoder, probe, layer)
                rows.append([dataset, task, encoder, probe, layer, subset_kind, subset, acc.value, acc.low, acc.high,
                             acc.n, acc.source, self.baseline(task, "chance"),
                             self.baseline(task, "majority", subset_kind, subset), sel.value, sel.low, sel.high,
                             n_seeds, distinct, slug("acc", task, encoder, probe, subset_kind, subset)])
        return pd.DataFrame(rows, columns=cols)

    def distinct_fits(self, task: str, encoder: str, probe: str, layer: str) -> tuple[int, int]:
        """(probe seeds, seeds with distinct test predictions) behind a seed mean: identical fits are not replicates."""
        p = self.tables.predictions
        if p is not None and "y_pred" in p.columns:
            cell = p[(p.task == task) & (p.encoder == encoder) & (p.probe == probe) & (p.layer == layer)]
            if not cell.empty:
                fits = {tuple(g.sort_values("example_id").y_pred.astype(str)) for _, g in cell.groupby("seed")}
                return int(cell.seed.nunique()), len(fits)
        r = self.tables.results
        rows = r[(r.task == task) & (r.encoder == encoder) & (r.probe == probe) & (r.layer == layer)] if r is not None \
            else pd.DataFrame(columns=["seed", "metric", "value"])
        fits = rows[rows.metric == "n_distinct_fits"].value
        return int(rows.seed.nunique()), int(fits.iloc[0]) if not fits.empty else int(rows.seed.nunique())

    # ------------------------------------------------------------------------------- verdicts
    @cached_property
    def family(self) -> pd.DataFrame:
        """The run's verdict family (:func:`~spatial_probing.report.verdicts.verdict_family`) at the chosen layers."""
        return verdict_family(self.tables.predictions, self.tables.results, self.layers, self.rules)

    @cached_property
    def trends(self) -> pd.DataFrame:
        """Per-k accuracy slopes with clustered intervals (tasks with hop counts, e.g. StepGame)."""
        return k_trends(self.tables.predictions, self.layers, self.rules)

    def lexical(self) -> pd.DataFrame:
        """Per task: whether the best lexical floor reaches every encoder's accuracy (task is *lexical*)."""
        return lexical_tasks(self.family)

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
        """Per task and relation category: every grounding row of the verdict family, in words."""
        fam = self.family
        rows = fam[(fam.subset_kind == "category") & fam.contrast.isin(["grounding", "lab"])]
        return [verdict_finding(r, self.rules) for r in rows.to_dict("records")]

    def control_checks(self) -> pd.DataFrame:
        """Controls that should sit at chance or below an encoder: probes whose interval lies below chance, and
        the ``memorisation_baseline`` rows of the results (caption memorisation; from the lexical-floor step)."""
        cols = ["row_id", "task", "encoder", "what", "value", "low", "high", "chance", "status"]
        out = []
        for r in self.accuracy_table("all").itertuples():
            if np.isfinite(r.ci_high) and np.isfinite(r.chance) and r.ci_high < r.chance:
                out.append([slug("ctl", r.task, r.encoder, r.probe), r.task, r.encoder, f"probe accuracy ({r.probe})",
                            r.accuracy, r.ci_low, r.ci_high, r.chance, "below chance"])
        res = self.tables.results
        if res is not None:  # encoder-free: one row per task
            mem = res[(res.metric == "memorisation_baseline") & (res.subset_kind == "all")]
            for task, g in mem.groupby("task", sort=True):
                chance = self.baseline(task, "chance")
                v, lo, hi = float(g.value.mean()), float(g.ci_low.mean()), float(g.ci_high.mean())
                status = ("below chance" if np.isfinite(hi) and hi < chance else
                          "above chance" if np.isfinite(lo) and lo > chance else "at chance")
                out.append([slug("ctl", task, "memorisation"), task, "(no encoder)", "caption-memorisation baseline",
                            v, lo, hi, chance, status])
        return pd.DataFrame(out, columns=cols)

    def headline(self) -> list[Finding]:
        """The "In short" statements: only what the tables support, each with the id of its table row."""
        fam, rules = self.family, self.rules
        out: list[Finding] = []
        informative = fam[fam.in_family.astype(bool)]
        if not fam.empty:
            out.append(Finding(f"The verdict family has {len(informative)} pre-specified contrasts, Holm-corrected "
                               f"together at α = {rules.alpha:g}; {int((fam.verdict == 'uninformative').sum())} "
                               "more cells had both sides at the ceiling or at chance and were left out.",
                               "family", row="verdict-family"))
        lex = fam[(fam.contrast == "lexical") & (fam.subset_kind == "all")]
        for r in lex.to_dict("records"):
            out.append(verdict_finding(r, rules))
        if not self.context()["grounded"]:
            out.append(Finding("This run has no grounded encoder, so it cannot say which relations gain from "
                               "grounding.", "no-grounded", row="setup"))
        shown = fam[fam.contrast.isin(["grounding", "lab"]) & fam.verdict.isin(["gain", "loss", "equivalent"])]
        for r in shown.to_dict("records"):
            out.append(verdict_finding(r, rules))
        for r in self.trends.to_dict("records"):
            out.append(Finding(f"{r['task']}, {r['encoder']} (layer {r['layer']}): accuracy changes by "
                               f"{points(r['slope'])} per extra hop (95% CI {points(r['slope_low'])} to "
                               f"{points(r['slope_high'])}; k = {r['k_min']}–{r['k_max']}, "
                               f"{r['n_clusters']} stories).", "trend", r["task"], row=r["row_id"]))
        checks = self.control_checks()
        memo = {r["task"]: r for r in checks.to_dict("records") if r["what"] == "caption-memorisation baseline"}
        for r in checks.to_dict("records"):
            if r["status"] == "at chance":
                continue
            who = "" if r["encoder"] == "(no encoder)" else f" of {r['encoder']}"
            text = (f"{r['task']}: {r['what']}{who} is {r['status']} ({r['value']:.3f} [{r['low']:.3f}, "
                    f"{r['high']:.3f}], chance {r['chance']:.3f})")
            m = memo.get(r["task"])
            if r["status"] == "below chance" and r["what"] != "caption-memorisation baseline":
                if m and m["status"] == "below chance":
                    text += ": caption memorisation (its baseline is below chance too)"
                elif r["encoder"] != "(no encoder)" and not is_lexical_floor(r["encoder"]):
                    text += (": the encoder follows a lexical shortcut this split is built to punish (e.g. the "
                             "first-noun rule on converse transfer), which is a finding about the encoder, not "
                             "evidence of spatial encoding")
                else:
                    text += " — a control that misbehaves"
            out.append(Finding(text + ".", "control", r["task"], row=r["row_id"]))
        n_inc = int((informative.verdict == "inconclusive").sum())
        if n_inc:
            out.append(Finding(f"{n_inc} of {len(informative)} contrasts in the family are inconclusive: neither a "
                               f"difference nor equivalence within ±{100 * rules.margin:g} points is shown.",
                               "count", row="verdict-family"))
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

    def grounding_verdicts(self) -> pd.DataFrame:
        """Per task × subset: grounding in one word (gains, loses, mixed, resistant, inconclusive, uninformative),
        from the verdict family's grounded − distributional and lab vision − other rows."""
        return grounding_summary(self.family)

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
        """Per dataset × reference (first method/comparison): which fits are significant after Holm over layers ×
        references (only from ≥ 1,000 permutations), and which encoder fits best *only* when the paired bootstrap
        (``rsa_pairs``, Holm over pairs) says it beats every other encoder."""
        table = self.rsa_table()
        out = []
        if table.empty:
            return out
        alpha = self.rules.alpha
        pairs = self.tables.rsa_pairs
        for (dataset, reference), grp in table.groupby(["dataset", "reference"], sort=True):
            method, comp = grp.rdm_method.iloc[0], grp.comparison.iloc[0]
            grp = grp[(grp.rdm_method == method) & (grp.comparison == comp)]
            p = grp.p_holm if "p_holm" in grp.columns and grp.p_holm.notna().any() else None
            head = f"{dataset}, {reference} reference ({method} RDMs, {comp}, each encoder's last layer): "
            if p is None:
                fits = "p-values are not corrected over layers × references in this run, so no fit is called significant."
            elif (grp.n_permutations < 1000).any():
                fits = (f"p-values from fewer than 1,000 permutations ({int(grp.n_permutations.min())}) are too coarse "
                        "to call any fit significant.")
            else:
                sig = grp[p < alpha]
                fits = (f"significant after Holm over layers × references for "
                        + ", ".join(f"{r.encoder} ({r.value:.3f}, Holm {format_p(r.p_holm)})" for r in sig.itertuples())
                        + "." if not sig.empty else "no encoder's fit is significant after Holm over layers × references.")
            best = ""
            if pairs is not None and not pairs.empty:
                pr = pairs[(pairs.dataset == dataset) & (pairs.reference == reference) & (pairs.rdm_method == method)
                           & (pairs.comparison == comp)]
                for enc in grp.encoder:
                    others = [e for e in grp.encoder if e != enc]
                    wins = [((pr.encoder_a == enc) & (pr.encoder_b == o) & (pr["diff"] > 0) & (pr.ci_low > 0)
                             & (pr.p_holm < alpha)).any() or ((pr.encoder_a == o) & (pr.encoder_b == enc)
                                                               & (pr["diff"] < 0) & (pr.ci_high < 0)
                                                               & (pr.p_holm < alpha)).any() for o in others]
                    if others and all(wins):
                        best = f" {enc} fits it better than every other encoder (paired bootstrap, Holm over pairs)."
                if not best and len(grp) > 1:
                    best = " No encoder fits it significantly better than all the others (paired bootstrap, Holm)."
            out.append(Finding(head + fits + best, "rsa", dataset, reference))
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
