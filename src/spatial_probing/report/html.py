"""``build_report``: one self-contained HTML file (figures embedded as base64 PNG) from a run directory."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from spatial_probing.io import atomic_path, atomic_write_text
from spatial_probing.lab.config import OBJECTIVE_DESCRIPTIONS, parse_lab_encoder
from spatial_probing.report.figures import Plot, make_figures
from spatial_probing.report.replication import replication_section
from spatial_probing.report.kinds import kind_answer
from spatial_probing.report.summary import (ALPHA, Finding, RunAnalysis, format_p, is_control, is_grounded,
                                            is_reported_pair, points, verdict_finding)
from spatial_probing.report.tables import RunTables, UnreadableRunError, load_run
from spatial_probing.report.template import MACROS, TEMPLATE

_PROBING_CATEGORY_FIGURES = ("category_accuracy",)
_RSA_FIGURES = ("rdms", "rsa_curves", "centroid_pca")
_LAB_FIGURES = ("lab_objectives",)
#: An absolute POSIX path inside text (not the tail of a URL, a hub id or a relative path).
_ABS_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.+@=-]+/)*[\w.+@=-]+/?")


@dataclass
class Table:
    """A table ready for the template: formatted cells, which columns are numeric, rows to highlight."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    highlight: list[bool] = field(default_factory=list)
    caption: str = ""
    ids: list[str] = field(default_factory=list)  #: row anchors (the "In short" statements link to them)


def _num(x: Any, digits: int = 3) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "—" if not np.isfinite(v) else f"{v:.{digits}f}"


def _ci(value: Any, low: Any, high: Any, digits: int = 3) -> str:
    ok = all(isinstance(v, (int, float, np.floating)) and np.isfinite(v) for v in (low, high))
    return f"{_num(value, digits)} [{_num(low, digits)}, {_num(high, digits)}]" if ok else _num(value, digits)


def _p(p: Any) -> str:
    return format_p(float(p)).removeprefix("p = ").removeprefix("p ") if p is not None else "—"


def _table(columns: list[tuple[str, bool]], rows: list[list[str]], highlight: list[bool] | None = None,
           caption: str = "", ids: list[str] | None = None) -> Table:
    return Table([c for c, _ in columns], rows, [n for _, n in columns], highlight or [], caption, ids or [])


def _pairs_table(shown: pd.DataFrame, caption: str) -> Table:
    rows, sig = [], []
    for r in shown.itertuples():
        rows.append([r.task, f"{r.encoder_a} (layer {r.layer_a})", f"{r.encoder_b} (layer {r.layer_b})",
                     _ci(r.acc_a, r.a_low, r.a_high), _ci(r.acc_b, r.b_low, r.b_high),
                     _ci(r.diff, r.diff_low, r.diff_high), _p(r.mcnemar_p), _p(r.permutation_p), _p(r.p_holm),
                     str(r.n)])
        sig.append(bool(r.p_holm < ALPHA))
    return _table([("task", False), ("encoder A (layer)", False), ("encoder B (layer)", False),
                   ("accuracy A [95% CI]", True), ("accuracy B [95% CI]", True), ("A − B [95% CI]", True),
                   ("McNemar p", True), ("permutation p", True), ("Holm p", True), ("n items", True)], rows, sig,
                  caption)


def _comparison_table(analysis: RunAnalysis) -> tuple[Table | None, Table | None]:
    """The pre-specified contrasts (real encoders against each other) and, folded away, the other reported pairs
    (encoders against their own controls, lab objectives of one seed); the rest stay in comparisons.csv."""
    comps = analysis.comparison_table(("all",))
    if comps.empty:
        return None, None
    shown = comps[[is_reported_pair(a, b) for a, b in zip(comps.encoder_a, comps.encoder_b)]]
    real = [not any(is_control(e) or parse_lab_encoder(e) for e in (a, b))
            for a, b in zip(shown.encoder_a, shown.encoder_b)]
    main, other = (shown[real], shown[[not r for r in real]]) if any(real) else (shown, shown.iloc[:0])
    caption = "Highlighted: Holm p < 0.05. Shown: real encoders against each other" + (
        f"; below, folded: each encoder against its own controls, lab objectives of the same seed ({len(other)} "
        "pairs)" if len(other) else "") + (
        f"; the other {len(comps) - len(shown)} pairs (lab seeds against each other, controls or lab models against "
        "other encoders) are in comparisons.csv" if len(shown) < len(comps) else "") + "."
    return (_pairs_table(main, caption),
            _pairs_table(other, "Highlighted: Holm p < 0.05.") if len(other) else None)


def _chance_categories(analysis: RunAnalysis) -> Table | None:
    """Per task and encoder, the relation categories whose accuracy interval covers chance, in one row."""
    acc = analysis.accuracy_table("category")
    if acc.empty:
        return None
    at = acc[np.isfinite(acc.chance) & (acc.ci_low <= acc.chance) & (acc.chance <= acc.ci_high)]
    rows = [[task, f"{enc} (layer {layer})", _num(grp.chance.iloc[0]), str(len(grp)),
             "; ".join(f"{r.subset} {_ci(r.accuracy, r.ci_low, r.ci_high)}" for r in grp.itertuples())]
            for (task, enc, layer), grp in at.groupby(["task", "encoder", "layer"], sort=True)]
    return _table([("task", False), ("encoder (layer)", False), ("chance", True), ("categories", True),
                   ("at chance: accuracy [95% CI]", False)], rows)


def _relative_paths(text: str, run_dir: Path) -> str:
    """``text`` with every absolute path written relative to ``run_dir`` (no machine's folders in the report)."""
    base = run_dir.resolve()
    return _ABS_PATH.sub(lambda m: os.path.relpath(m.group(0), base), text)


def _accuracy_table(analysis: RunAnalysis) -> Table | None:
    acc = analysis.accuracy_table("all")
    if acc.empty:
        return None
    lexical = dict(zip(analysis.lexical().task, analysis.lexical().lexical)) if not analysis.family.empty else {}
    rows = [[r.task + (" (lexical)" if lexical.get(r.task) else ""), r.encoder, r.layer,
             _ci(r.accuracy, r.ci_low, r.ci_high), _num(r.chance), _num(r.majority),
             _ci(r.selectivity, r.sel_low, r.sel_high), f"{r.n_distinct_fits} of {r.n_seeds}", str(r.n)]
            for r in acc.itertuples()]
    return _table([("task", False), ("encoder", False), ("layer", False), ("accuracy [95% CI]", True),
                   ("chance", True), ("majority", True), ("selectivity [95% CI]", True),
                   ("distinct fits of probe seeds", True), ("n items", True)], rows, ids=list(acc.row_id),
                  caption="A task marked (lexical): the best lexical floor reaches every encoder's accuracy within "
                          "its interval. Distinct fits: probe seeds whose test predictions differ (identical fits "
                          "are one replicate, not several).")


def _verdict_table(verdicts: pd.DataFrame) -> Table | None:
    if verdicts.empty:
        return None
    rows = [[r.task, r.subset, r.summary, ", ".join(r.rows)] for r in verdicts.itertuples()]
    return _table([("task", False), ("subset", False), ("grounding", False), ("family rows", False)],
                  rows, [v == "gains" for v in verdicts.summary])


_CONTRAST_WORDS = {"grounding": "grounded − distributional", "lexical": "encoder − best lexical floor",
                   "lab": "lab objective − objective (seed-paired)"}


def _family_table(analysis: RunAnalysis) -> Table | None:
    fam = analysis.family
    if fam.empty:
        return None
    rows = []
    for r in fam.itertuples():
        seeds = f", {r.n_seeds} lab seeds" if r.n_seeds > 1 else ""
        verdict = r.verdict + (" (lexical)" if r.lexical else "")
        rows.append([_CONTRAST_WORDS[r.contrast], r.task, r.subset, f"{r.encoder_a} ({r.layer_a})",
                     f"{r.encoder_b} ({r.layer_b})", _ci(r.acc_a, r.a_low, r.a_high), _ci(r.acc_b, r.b_low, r.b_high),
                     _ci(r.diff, r.diff_low, r.diff_high), f"{_p(r.p_t)} ({_p(r.p_t_holm)})",
                     f"{_p(r.p_perm)} ({_p(r.p_perm_holm)})", f"{_p(r.p_tost)} ({_p(r.p_tost_holm)})",
                     f"{r.n_clusters} / {r.n_items}{seeds}", f"{verdict}: {r.reason}"])
    return _table([("contrast", False), ("task", False), ("subset", False), ("A (layer)", False), ("B (layer)", False),
                   ("accuracy A [95% CI]", True), ("accuracy B [95% CI]", True), ("A − B [95% CI]", True),
                   ("paired t p (Holm)", True), ("sign-flip p (Holm)", True), ("TOST p (Holm)", True),
                   ("clusters / items", True), ("verdict", False)], rows,
                  [v in ("gain", "loss") for v in fam.verdict], ids=list(fam.row_id))


def _trend_table(analysis: RunAnalysis) -> Table | None:
    t = analysis.trends
    if t.empty:
        return None
    rows = [[r.task, r.encoder, r.layer, _ci(100 * r.slope, 100 * r.slope_low, 100 * r.slope_high, 1),
             f"{r.k_min}–{r.k_max}", f"{r.n_clusters} / {r.n_items}"] for r in t.itertuples()]
    return _table([("task", False), ("encoder", False), ("layer", False), ("points per extra hop [95% CI]", True),
                   ("k", True), ("clusters / items", True)], rows, ids=list(t.row_id))


def _controls_table(analysis: RunAnalysis) -> Table | None:
    c = analysis.control_checks()
    if c.empty:
        return None
    rows = [[r.task, r.encoder, r.what, _ci(r.value, r.low, r.high), _num(r.chance), r.status] for r in c.itertuples()]
    return _table([("task", False), ("encoder", False), ("what", False), ("value [95% CI]", True), ("chance", True),
                   ("status", False)], rows, ids=list(c.row_id))


def _rsa_table(analysis: RunAnalysis) -> Table | None:
    rsa = analysis.rsa_table()
    if rsa.empty:
        return None
    holm_p = rsa.p_holm if "p_holm" in rsa.columns else pd.Series(np.nan, index=rsa.index)
    partial = rsa.partial_value if "partial_value" in rsa.columns else pd.Series(np.nan, index=rsa.index)
    rows = [[r.dataset, r.reference, r.encoder, r.layer, f"{r.rdm_method} / {r.comparison}",
             _ci(r.value, r.ci_low, r.ci_high), _p(r.p_value), _p(h), _num(pv), str(r.n_items), str(r.n_permutations)]
            for r, h, pv in zip(rsa.itertuples(), holm_p, partial)]
    return _table([("dataset", False), ("reference", False), ("encoder", False), ("layer", False),
                   ("RDM / comparison", False), ("value [95% CI]", True), ("permutation p", True),
                   ("Holm p (layers × references)", True), ("partial ρ | bag of words", True), ("n items", True),
                   ("permutations", True)], rows,
                  [bool(h < ALPHA and n >= 1000) for h, n in zip(holm_p.fillna(1.0), rsa.n_permutations)],
                  "Each encoder's last layer; highlighted: Holm p < 0.05 from ≥ 1,000 permutations. Intervals "
                  "resample clusters (scenes, images, stories). Partial ρ: the fit controlling for the texts' "
                  "bag-of-words RDM.")


def _kinds_table(kinds: pd.DataFrame) -> Table | None:
    """The answer per relation kind (:mod:`spatial_probing.report.kinds`): identity, meaning, converse transfer."""
    from spatial_probing.report import kinds as k

    if kinds.empty:
        return None
    rows = [[r.dataset, r.kind, r.encoder, _ci(r.identity_acc, r.identity_low, r.identity_high), k.identity_words(r),
             _ci(r.meaning, r.meaning_low, r.meaning_high) + (f" (layer {r.meaning_layer})" if r.meaning_layer else ""),
             k.meaning_words(r), _ci(r.converse_acc, r.converse_low, r.converse_high), _num(r.converse_chance),
             k.converse_words(r)] for _, r in kinds.iterrows()]
    return _table([("dataset", False), ("relation kind", False), ("encoder", False), ("relation identity [95% CI]", True),
                   ("lexical?", False), ("meaning over words [95% CI]", True), ("reading", False),
                   ("converse transfer [95% CI]", True), ("chance", True), ("reading", False)], rows,
                  [(pd.notna(r.identity_acc) and r.identity_lexical is not None and not r.identity_lexical)
                   or bool(r.meaning_low > 0.5) or r.converse_verdict == "gain" for _, r in kinds.iterrows()],
                  "Relation identity and converse transfer at each encoder's chosen layer (the verdict family's "
                  "encoder − best lexical floor rows); meaning over words at the deepest layer. Highlighted: a "
                  "kind where some answer is not in the words (identity above the floor, index above 0.5, or a "
                  "corrected gain over the floor on converse transfer).",
                  ids=[f"kind-{r.dataset}-{r.kind}-{r.encoder}".replace(":", "_").replace(" ", "_")
                       for _, r in kinds.iterrows()])


def _words_section(tables: RunTables, per_kind: pd.DataFrame) -> dict[str, Any] | None:
    """The answer per relation kind, the meaning-over-words index and the caption-pair step, if run."""
    from spatial_probing.report import kinds, words

    meaning, pairs = words.meaning_rows(tables.meaning), words.pairs_rows(tables.pairs)
    if not meaning and not pairs and per_kind.empty:
        return None
    mtable = _table([("dataset", False), ("encoder", False), ("layer", False), ("relation kind", False),
                     ("index [95% CI]", True), ("triples", True), ("clusters", True), ("skipped captions (why)", False)],
                    [[d, e, layer, k, _ci(v, lo, hi), str(n), str(c), sk] for d, e, layer, k, v, lo, hi, n, c, sk in meaning],
                    [row[5] > 0.5 for row in meaning],
                    "Share of (caption, converse paraphrase, argument swap) triples where the caption is closer to "
                    "its paraphrase than to its swap, at each encoder's deepest layer. A bag of words scores 0 by "
                    "construction (the swap shares every word). Highlighted: interval above 0.5. Intervals resample "
                    "scenes/images.") if meaning else None
    ptable = _table([("dataset", False), ("encoder", False), ("layer", False), ("analysis", False), ("subset", False),
                     ("value [95% CI]", True), ("chance", True), ("items", True), ("what it measures", False)],
                    [[d, e, layer, a, sub, _ci(v, lo, hi), _num(ch), str(n), note]
                     for d, e, layer, a, sub, v, lo, hi, ch, n, note in pairs],
                    caption="Caption pairs, text side: the blind choice probe is a text-plausibility baseline, not "
                            "grounding; image–text matching needs images and an image–text encoder.") \
        if pairs else None
    return {"meaning_sentences": words.meaning_sentences(tables.meaning), "meaning": mtable, "pairs": ptable,
            "kinds": _kinds_table(per_kind), "kind_sentences": kinds.kind_sentences(per_kind)}


def _setup(tables: RunTables, analysis: RunAnalysis) -> dict[str, Any]:
    r = tables.results
    units = (tables.manifest or {}).get("units", [])
    task_rows, seen_tasks, enc_rows, seen_enc = [], set(), [], set()
    for u in units:
        task, enc = u.get("task") or {}, u.get("encoder") or {}
        if task.get("name") and task["name"] not in seen_tasks:
            seen_tasks.add(task["name"])
            task_rows.append([task["name"], str(task.get("dataset", "")), str(task.get("description", "")),
                              str(task.get("control_type", "")), str(u.get("n_items", "—"))])
        if enc.get("name") and enc["name"] not in seen_enc:
            seen_enc.add(enc["name"])
            enc_rows.append([enc["name"], str(enc.get("kind", "")), str(enc.get("modality", "")),
                             _relative_paths(str(enc.get("source", "")), tables.run_dir),
                             str(enc.get("revision") or "—"),
                             str(enc.get("weights_hash", ""))[:12] or "—", str(enc.get("control") or "—"),
                             "yes" if is_grounded(enc["name"]) else "no"])
    if not enc_rows and r is not None:  # no manifest: names only
        enc_rows = [[e, "—", "—", "—", "—", "—", "—", "yes" if is_grounded(e) else "no"] for e in sorted(set(r.encoder))]
    if not task_rows and r is not None:
        task_rows = [[t, str(r[r.task == t].dataset.iloc[0]), "—", "—", "—"] for t in sorted(set(r.task))]
    encoders = sorted({row[0] for row in enc_rows})
    seeds = (tables.manifest or {}).get("seeds") or (sorted(set(r.seed)) if r is not None else [])
    items = tables.predictions is not None
    return {
        "datasets": sorted(set(r.dataset)) if r is not None else sorted({row[1] for row in task_rows}),
        "probes": sorted(set(r.probe)) if r is not None else [],
        "seeds": [str(s) for s in seeds],
        "control_encoders": [e for e in encoders if is_control(e)],
        "layer_words": ("best inner-CV layer per encoder (best-cv: chosen on training data only)"
                        if analysis.selection == "best-cv" else "each encoder's final layer"),
        "ci_words": ("95% percentile bootstrap over test items of each item's correctness averaged over probe seeds"
                     if items else "seed means of the per-seed 95% bootstrap bounds (predictions.parquet absent: "
                                   "not an interval for the seed mean)"),
        "ci_short": "item bootstrap over seed-averaged correctness" if items else "seed means of per-seed bounds",
        "tasks": _table([("task", False), ("dataset", False), ("what is probed", False), ("control task's lexical type",
                                                                                        False), ("items", True)],
                        task_rows),
        "encoders": _table([("encoder", False), ("kind", False), ("modality", False), ("source", False),
                            ("revision", False), ("weights sha256", False), ("control", False), ("grounded", False)],
                           enc_rows),
    }


def _lab_section(analysis: RunAnalysis) -> dict[str, Any] | None:
    lab = analysis.lab
    if lab is None:
        return None
    summary, comps = lab
    s = summary[summary.metric == "accuracy"]
    srows = [[r.task, r.subset, r.objective, _ci(r.mean, r.ci_low, r.ci_high), str(r.n_seeds),
              _num(getattr(r, "chance", np.nan)), _num(getattr(r, "majority", np.nan))] for r in s.itertuples()]
    c = comps[comps.metric == "accuracy"]
    crows, sig = [], []
    for r in c.itertuples():
        crows.append([r.task, r.subset, f"{r.objective_a} − {r.objective_b}", _ci(r.diff, r.diff_ci_low, r.diff_ci_high),
                      str(r.n_seeds), _p(r.seed_t_p), _p(r.seed_signflip_p), _p(r.item_signflip_p), _p(r.p_holm)])
        sig.append(bool(r.p_holm < analysis.rules.alpha))
    fam = analysis.family
    lab_rows = fam[(fam.contrast == "lab") & fam.verdict.isin(["gain", "loss", "equivalent"])] if not fam.empty else fam
    findings = [verdict_finding(r, analysis.rules) for r in lab_rows.to_dict("records")]
    if not findings and not fam.empty and (fam.contrast == "lab").any():
        findings.append(Finding("No lab contrast of the verdict family is a gain, a loss or an equivalence (see its "
                                "rows).", "count", row="verdict-family"))
    objectives = sorted({parse_lab_encoder(e)[1] for e in analysis.tables.results.encoder if parse_lab_encoder(e)})
    return {**_lab_answer(analysis, str(s.layer.iloc[0]) if not s.empty else None),
            "layer": str(s.layer.iloc[0]) if not s.empty else "—",
            "n_seeds": int(s.n_seeds.max()) if not s.empty else 0,
            "objectives": "; ".join(f"{o} — {OBJECTIVE_DESCRIPTIONS.get(o, o)}" for o in objectives),
            "findings": findings,
            "summary": _table([("task", False), ("subset", False), ("objective", False),
                               ("accuracy, mean over seeds [95% t CI]", True), ("seeds", True), ("chance", True),
                               ("majority", True)], srows),
            "comparisons": _table([("task", False), ("subset", False), ("difference", False),
                                   ("diff [95% t CI]", True), ("seeds", True), ("paired t p", True),
                                   ("sign-flip p (seeds)", True), ("sign-flip p (items)", True), ("Holm p", True)],
                                  crows, sig, "Highlighted: Holm p < 0.05.")}


def _floor_remark(r: Any) -> str:
    """Whether either arm of a lab answer row is above the words alone (the strictest floor on its items)."""
    if not isinstance(r.floor, str) or not np.isfinite(r.floor_acc):
        return ""
    above = [arm for arm, acc in ((r.arm_a, r.mean_a), (r.arm_b, r.mean_b)) if acc > r.floor_acc]
    what = ("neither arm is above it: the words (and their order) alone could have produced these numbers"
            if not above else
            f"only {above[0]} is above it" if len(above) == 1 else "both arms are above it")
    return f" The strictest lexical floor on these items, {r.floor}, scores {r.floor_acc:.3f}: {what}."


def _lab_answer(analysis: RunAnalysis, layer: str | None) -> dict[str, Any]:
    """The lab's answer per relation kind (:func:`~spatial_probing.lab.compare.lab_answer`) at ``layer``, with the
    lab's own tables found beside its ``encoders.yaml`` (convergence and retrieval per arm, the scene-CNN check)."""
    from spatial_probing.lab.compare import ANSWER_COLUMNS, lab_answer, lab_outputs

    tables = analysis.tables
    outputs = lab_outputs((tables.manifest or {}).get("config", {}).get("encoder_registries", []))
    label = outputs.get("label", "lab")
    preds = tables.predictions
    answer = pd.DataFrame(columns=ANSWER_COLUMNS)
    if preds is not None and layer is not None:
        lab_preds = preds[preds.encoder.map(lambda e: parse_lab_encoder(str(e)) is not None)
                          & (preds.layer.astype(str) == layer)]
        if not lab_preds.empty:
            answer = lab_answer(lab_preds, training=outputs.get("training"), n_boot=analysis.n_boot,
                                seed=analysis.seed, floor_predictions=preds)
    if answer.empty:
        tables.note_missing("lab answer per relation kind: no lab predictions with a relation kind (category)")
    lines = []
    for r in answer[answer.question.str.startswith("grounding")].itertuples():
        where = "overall" if r.relation_kind == "all" else f"on {r.relation_kind} relations"
        lines.append(f"{r.task} {where}, {r.question}: {r.verdict} — {points(r.diff)} "
                     f"[{points(r.ci_low)}, {points(r.ci_high)}], half-width {100 * r.half_width:.1f} points "
                     f"({r.n_seeds} seeds × {r.n_clusters} scenes; Holm {format_p(r.p_holm)})"
                     + ("" if r.convergence == "ok" else f"; not converged: {r.convergence}") + "."
                     + _floor_remark(r))
    rows = [[r.task, r.relation_kind, r.question, _num(r.mean_a), _num(r.mean_b),
             f"{r.floor} {_num(r.floor_acc)}" if isinstance(r.floor, str) else "—",
             _ci(r.diff, r.ci_low, r.ci_high), _num(r.half_width), _p(r.p_holm), r.verdict, str(r.n_seeds),
             str(r.n_clusters), r.convergence] for r in answer.itertuples()]
    out: dict[str, Any] = {
        "label": label, "answer_lines": lines,
        "answer": _table([("task", False), ("relation kind", False), ("comparison (a vs b)", False),
                          ("accuracy a", True), ("accuracy b", True), ("strictest lexical floor", True),
                          ("a − b [95% seeds × scenes bootstrap]", True),
                          ("half-width", True), ("Holm p", True), ("verdict", False), ("seeds", True),
                          ("scenes", True), ("convergence", False)],
                         rows, [not str(v).startswith(("no difference", "inconclusive")) for v in answer.verdict],
                         f"From the {label}. Highlighted: Holm p < 0.05. A null is claimed only when the interval lies "
                         f"within ±3 points."),
        "training": None, "vision_check": None}
    training = outputs.get("training")
    if training is not None and not training.empty:
        trows = []
        for arm, g in training.groupby("arm", sort=False):
            trows.append([str(arm), str(len(g)), str(int(g.n_encoder_parameters.iloc[0])),
                          f"{int(g.converged.astype(bool).sum())}/{len(g)}",
                          *(_num(g[c].mean()) if c in g and g[c].notna().any() else "—"
                            for c in ("heldout_random_acc", "heldout_hard_acc", "heldout_hard_acc_image"))])
        out["training"] = _table([("arm", False), ("seeds", True), ("encoder parameters", True),
                                  ("converged (held-out loss plateau)", True), ("held-out random-negative retrieval",
                                                                                True),
                                  ("held-out hard-negative accuracy (chance 0.5)", True),
                                  ("of which image side", True)], trows,
                                 [bool((g.status.astype(str) != "ok").any()) for _, g in training.groupby("arm",
                                                                                                          sort=False)],
                                 "Highlighted: an arm with a seed that did not converge or learn.")
    check = outputs.get("vision_check")
    if check is not None and not check.empty:
        crows = [[str(f), str(t), _num(g.accuracy.mean()), f"{_num(g.accuracy.min())}–{_num(g.accuracy.max())}",
                  _num(g.majority.mean()), str(len(g))]
                 for (f, t), g in check.groupby(["features", "target"], sort=False)]
        out["vision_check"] = _table([("scene CNN features", False), ("target", False), ("probe accuracy (mean)", True),
                                      ("range over encoders", True), ("majority class", True), ("encoders", True)],
                                     crows)
    return out


def _embed(plot: Plot) -> dict[str, str]:
    return {"name": plot.name, "title": plot.title, "caption": plot.caption,
            "png": base64.b64encode(plot.png or b"").decode("ascii")}


def build_report(run_dir: str | Path, *, out: str | Path | None = None, figures_dir: str | Path | None = None,
                 n_boot: int = 2000, seed: int = 0, partial: bool = False, show_progress: bool = False) -> Path:
    """Write one self-contained HTML report of a run directory and return its path.

    Figures are also written as PNG and SVG to ``figures_dir`` (default ``run_dir/figures``). Missing or
    unreadable tables are listed under "Not in this run"; a path that is not a run directory (neither
    ``results.parquet`` nor ``manifest.json``) raises :class:`~spatial_probing.report.tables.NotARunDirectory`.
    ``n_boot``/``seed`` set the item bootstrap behind the intervals. A file that exists but cannot be read
    raises :class:`~spatial_probing.report.tables.UnreadableRunError` (nothing written) unless ``partial``.
    ``show_progress`` shows a bar over the report's stages (its postfix names the one at work; a many-encoder run
    spends minutes in the verdicts and comparisons) and one over the figures.
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=5, desc="report", unit="stage", disable=not show_progress)
    done: list[str] = []

    def stage(name: str) -> None:  # the previous stage is finished; ``name`` starts
        bar.update(1 if done else 0)
        done.append(name)
        bar.set_postfix_str(name, refresh=True)

    stage("tables and lab section")
    tables = load_run(run_dir)
    if tables.unreadable and not partial:
        raise UnreadableRunError(tables.run_dir, tables.unreadable)
    run_dir = tables.run_dir
    out = Path(out) if out is not None else run_dir / "report.html"
    analysis = RunAnalysis(tables, n_boot=n_boot, seed=seed)
    lab = _lab_section(analysis)
    stage("figures")
    plots = make_figures(analysis, Path(figures_dir) if figures_dir is not None else run_dir / "figures",
                         show_progress=show_progress)
    for plot in plots:
        if plot.missing and not (lab is None and plot.name in _LAB_FIGURES):  # the lab's absence is noted once
            tables.note_missing(f"figure “{plot.title}”: {plot.missing}")
    stage("verdict family")
    verdicts = analysis.grounding_verdicts()
    if not analysis.family.empty:  # the verdict family beside the tables it is derived from
        with atomic_path(run_dir / "verdicts.csv") as tmp:
            analysis.family.to_csv(tmp, index=False)
    per_kind = kind_answer(analysis.family, tables.meaning)  # read off the family: beside it, as kinds.csv
    if not per_kind.empty:
        with atomic_path(run_dir / "kinds.csv") as tmp:
            per_kind.to_csv(tmp, index=False)
    if tables.comparisons is not None and analysis.comparison_table(("category",)).empty:
        tables.note_missing("per-category comparisons: comparisons.parquet has no subset_kind == 'category' rows")
    stage("comparisons and page")
    drawn = {p.name: _embed(p) for p in plots if p.png is not None}
    manifest = tables.manifest or {}
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    comparisons, other_comparisons = _comparison_table(analysis)
    html = env.from_string(MACROS.strip() + TEMPLATE).render(
        title="Spatial probing report", run_dir=run_dir.resolve().name, finished=manifest.get("finished"),
        built=datetime.now(timezone.utc).isoformat(timespec="seconds"), alpha=analysis.rules.alpha,
        rules=analysis.rules, headline=analysis.headline(), setup=_setup(tables, analysis),
        family=_family_table(analysis), family_size=int(analysis.family.in_family.sum()) if not analysis.family.empty
        else 0, trends=_trend_table(analysis), controls=_controls_table(analysis),
        selection_words=("each encoder's best inner-CV layer" if analysis.selection == "best-cv"
                         else "each encoder's final layer"),
        comparisons=comparisons, other_comparisons=other_comparisons, grounded=analysis.context()["grounded"],
        verdicts=_verdict_table(verdicts), category_findings=analysis.category_findings(),
        baseline_findings=[f for f in analysis.baseline_findings()  # per-category "at chance": chance_categories
                           if not (f.kind == "chance" and f.subset not in ("", "all"))],
        chance_categories=_chance_categories(analysis), accuracy=_accuracy_table(analysis),
        rsa_findings=analysis.rsa_findings(), rsa=_rsa_table(analysis), lab=lab, words=_words_section(tables, per_kind),
        replication=replication_section(run_dir),
        figures={"probing_categories": [drawn[n] for n in _PROBING_CATEGORY_FIGURES if n in drawn],
                 "probing": [f for n, f in drawn.items()
                             if n not in _PROBING_CATEGORY_FIGURES + _RSA_FIGURES + _LAB_FIGURES],
                 "rsa": [drawn[n] for n in _RSA_FIGURES if n in drawn],
                 "lab": [drawn[n] for n in _LAB_FIGURES if n in drawn]},
        missing=[_relative_paths(m, run_dir) for m in tables.missing],
        manifest_json=_relative_paths(json.dumps(manifest, indent=2, sort_keys=True, default=str), run_dir)
        if manifest else "")
    stage("write")
    atomic_write_text(out, html)
    bar.update()
    bar.close()
    return out
