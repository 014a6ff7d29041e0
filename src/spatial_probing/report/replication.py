"""The report's Replication section: the founding study's number, the corrected one, and which conclusions survive.

Reads ``replication/`` (written by ``protocol: founding-study``) and ``erasure.csv`` when present. The
rules behind each sentence are in :func:`replication_findings` (tested on tables, not on HTML):

* the founding score *measures the encoder* only when its relations are not degenerate (a probe that
  predicts "not this relation" everywhere scores the all-negative floor ``0.5 × F1`` of the majority class);
* an encoder difference *survives* when the corrected protocol gives the same sign with a 95% interval
  (bootstrap over relations) that excludes zero and a Wilcoxon signed-rank p < ``ALPHA``;
* an encoder *beats the lexical floor* (``bow:``, ``static:`` …) under the same rule;
* a corrected score *holds zero-shot* when most relations' intervals lie above their all-negative floor
  on the concept-disjoint split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from spatial_probing.embed.config import is_lexical_floor
from spatial_probing.report.summary import ALPHA, format_p

__all__ = ["read_replication", "replication_findings", "replication_section"]


def read_replication(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The replication tables of a run directory (empty dict when it has none)."""
    run_dir = Path(run_dir)
    out = {}
    for name, path in (("summary", run_dir / "replication" / "summary.csv"),
                       ("comparisons", run_dir / "replication" / "comparisons.csv"),
                       ("corrected", run_dir / "replication" / "corrected.csv"),
                       ("erasure", run_dir / "erasure.csv")):
        if path.is_file():
            out[name] = pd.read_csv(path)
    founding = sorted((run_dir / "replication").glob("founding__*.csv"))
    if founding:
        out["founding"] = pd.concat([pd.read_csv(p) for p in founding], ignore_index=True)
    return out


def _survives(row: Any) -> bool:
    return bool(row.wilcoxon_p < ALPHA and (row.ci_low > 0 or row.ci_high < 0))


def _pair_words(row: Any) -> str:
    return (f"{row.encoder_a} − {row.encoder_b} = {row.diff:+.3f} macro-F1 [95% CI {row.ci_low:+.3f}, "
            f"{row.ci_high:+.3f}] over {row.n_relations} relations (Wilcoxon {format_p(row.wilcoxon_p)})")


def replication_findings(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Plain-words findings: the founding score, whether it measures the encoder, and which conclusions survive."""
    lines: list[str] = []
    summary, comps = tables.get("summary"), tables.get("comparisons")
    if summary is None or summary.empty:
        return lines
    for r in summary[summary.protocol == "founding"].itertuples():
        corr = summary[(summary.encoder == r.encoder) & (summary.protocol == "corrected") & (summary.split == "random")]
        text = (f"{r.encoder}: founding-study score (mean macro-F1 over {r.n_relations} relations) {r.mean:.3f} "
                f"(sd {r.std:.3f}); the corrected protocol gives {corr['mean'].iloc[0]:.3f}" if not corr.empty else
                f"{r.encoder}: founding-study score {r.mean:.3f}")
        if r.n_degenerate:
            text += (f". {r.n_degenerate} of {r.n_relations} founding-study probes predict 'not this relation' for "
                     f"every caption, so their macro-F1 is the all-negative floor (0.5 × F1 of the majority class), "
                     f"not a property of the encoder")
        lines.append(text + ".")
    founding_rows = tables.get("founding")
    if founding_rows is not None and "test_text_seen" in founding_rows:
        seen = founding_rows.groupby("relation").test_text_seen.first()
        lines.append(f"The founding study's folds test on seen texts: on average {seen.mean():.0%} of a fold's test "
                     f"captions repeat, word for word, a training caption (VSR reuses caption texts across images), "
                     f"so part of its score is recall of memorised captions; the corrected folds keep identical "
                     f"texts on one side.")
    corr = tables.get("corrected")
    if corr is not None and not corr.empty:
        for enc, grp in corr[corr.split == "zeroshot"].groupby("encoder", sort=False):
            above = int((grp.ci_low > grp.all_negative_macro_f1).sum())
            lines.append(f"{enc} on the concept-disjoint (zero-shot) split: {above} of {len(grp)} relations' macro-F1 "
                         f"intervals lie above the all-negative floor (mean macro-F1 {grp.macro_f1.mean():.3f}); "
                         f"the result {'holds' if above * 2 > len(grp) else 'does not hold'} for unseen objects.")
    if comps is None or comps.empty:
        return lines
    founding = {(r.encoder_a, r.encoder_b): r for r in comps[comps.protocol == "founding"].itertuples()}
    for row in comps[(comps.protocol == "corrected") & (comps.split == "random")].itertuples():
        pair = (row.encoder_a, row.encoder_b)
        f = founding.get(pair)
        if is_lexical_floor(pair[0]) != is_lexical_floor(pair[1]):
            enc, floor = (pair[0], pair[1]) if is_lexical_floor(pair[1]) else (pair[1], pair[0])
            beats = _survives(row) and (row.diff > 0) == (enc == pair[0])
            lines.append(f"{enc} {'beats' if beats else 'does not beat'} the lexical floor {floor} under the corrected "
                         f"protocol: {_pair_words(row)}." + ("" if beats else " What the probe reads is then available "
                                                              "from the words alone."))
        else:
            verdict = "survives" if _survives(row) and f is not None and (f.diff > 0) == (row.diff > 0) else \
                "does not survive"
            claim = "" if f is None else f"; founding protocol: {f.diff:+.3f} (Wilcoxon {format_p(f.wilcoxon_p)})"
            lines.append(f"The encoder difference {verdict} the corrected protocol: {_pair_words(row)}{claim}.")
    return lines


def _erasure_lines(erasure: pd.DataFrame) -> list[str]:
    lines = []
    for (enc, src, tgt), g in erasure.groupby(["encoder", "source", "target"], sort=False):
        by = g.set_index("condition")
        if not {"leace", "random"} <= set(by.index):
            continue
        lea, rnd = by.loc["leace"], by.loc["random"]
        depends = lea.drop_ci_low > 0 and lea.drop_ci_low > rnd.drop_ci_high
        lines.append(f"{enc}: erasing the {src} subspace (rank {int(lea['rank'])}) changes {tgt} accuracy by "
                     f"{-lea['drop']:+.3f} [{-lea.drop_ci_high:+.3f}, {-lea.drop_ci_low:+.3f}] vs {-rnd['drop']:+.3f} "
                     f"for random subspaces of the same rank: {tgt} "
                     f"{'depends' if depends else 'does not measurably depend'} on it.")
    return lines


def replication_section(run_dir: str | Path) -> dict[str, Any] | None:
    """Findings and tables for the template, or None when the run has no replication or erasure tables."""
    tables = read_replication(run_dir)
    if not tables:
        return None
    summary = tables.get("summary", pd.DataFrame())
    rows = [[r.encoder, r.protocol, r.split, f"{r.mean:.3f}", f"{r.std:.3f}", f"{r.median:.3f}", f"{r.min:.3f}",
             f"{r.max:.3f}", str(r.n_relations), str(r.n_degenerate)] for r in summary.itertuples()]
    return {"findings": replication_findings(tables),
            "erasure": _erasure_lines(tables["erasure"]) if "erasure" in tables else [],
            "summary_columns": ["encoder", "protocol", "split", "mean macro-F1", "std", "median", "min", "max",
                                "relations", "degenerate"], "summary_rows": rows}
