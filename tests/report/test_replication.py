"""The Replication section's verdicts, checked on tables with known answers."""

from __future__ import annotations

import pandas as pd

from spatial_probing.report.replication import replication_findings, replication_section


def _summary() -> pd.DataFrame:
    rows = []
    for enc, fmean, cmean, degen in (("sbert-mpnet", 0.52, 0.90, 30), ("clip-text", 0.51, 0.85, 33),
                                     ("static:sbert-mpnet", 0.50, 0.91, 36)):
        rows.append({"encoder": enc, "layer": "final", "protocol": "founding", "split": "random", "mean": fmean,
                     "std": 0.02, "median": fmean, "min": 0.49, "max": 0.7, "n_relations": 36, "n_degenerate": degen})
        rows.append({"encoder": enc, "layer": "final", "protocol": "corrected", "split": "random", "mean": cmean,
                     "std": 0.05, "median": cmean, "min": 0.6, "max": 1.0, "n_relations": 36, "n_degenerate": 0})
    return pd.DataFrame(rows)


def _comp(protocol, a, b, diff, lo, hi, p, split="random"):
    return {"protocol": protocol, "split": split, "encoder_a": a, "encoder_b": b, "diff": diff, "ci_low": lo,
            "ci_high": hi, "wilcoxon_p": p, "permutation_p": p, "n_a_better": 20, "n_b_better": 16, "n_relations": 36}


def test_findings_say_which_conclusions_survive():
    comps = pd.DataFrame([
        _comp("founding", "sbert-mpnet", "clip-text", 0.01, -0.01, 0.03, 0.3),
        _comp("corrected", "sbert-mpnet", "clip-text", 0.05, 0.02, 0.08, 0.001),
        _comp("founding", "sbert-mpnet", "static:sbert-mpnet", 0.02, 0.0, 0.04, 0.04),
        _comp("corrected", "sbert-mpnet", "static:sbert-mpnet", -0.01, -0.03, 0.01, 0.4),
        _comp("founding", "clip-text", "static:sbert-mpnet", 0.01, 0.0, 0.02, 0.04),
        _comp("corrected", "clip-text", "static:sbert-mpnet", -0.06, -0.09, -0.03, 0.001),
    ])
    zs = pd.DataFrame({"encoder": ["sbert-mpnet"] * 3, "split": ["zeroshot"] * 3, "macro_f1": [0.7, 0.8, 0.5],
                       "ci_low": [0.6, 0.7, 0.45], "all_negative_macro_f1": [0.49, 0.49, 0.49]})
    founding = pd.DataFrame({"encoder": ["sbert-mpnet"] * 2, "relation": ["on", "near"],
                             "test_text_seen": [0.7, 0.5]})
    lines = replication_findings({"summary": _summary(), "comparisons": comps, "corrected": zs,
                                  "founding": founding})
    text = "\n".join(lines)
    assert "sbert-mpnet: founding-study score (mean macro-F1 over 36 relations) 0.520" in text
    assert "30 of 36 founding-study probes" in text and "all-negative floor" in text
    assert "The encoder difference survives the corrected protocol: sbert-mpnet − clip-text = +0.050" in text
    assert "sbert-mpnet does not beat the lexical floor static:sbert-mpnet" in text
    assert "clip-text does not beat the lexical floor" in text  # significant, but the floor is the better one
    assert "on average 60% of a fold's test captions repeat" in text
    assert "2 of 3 relations' macro-F1 intervals lie above the all-negative floor" in text and "holds" in text


def test_an_encoder_difference_with_an_interval_covering_zero_does_not_survive():
    comps = pd.DataFrame([_comp("founding", "a", "b", 0.03, 0.01, 0.05, 0.01),
                          _comp("corrected", "a", "b", 0.03, -0.01, 0.07, 0.2)])
    summary = _summary().replace({"sbert-mpnet": "a", "clip-text": "b"})
    lines = replication_findings({"summary": summary, "comparisons": comps})
    assert any("The encoder difference does not survive" in line for line in lines)


def test_section_reads_the_run_directory(tmp_path):
    assert replication_section(tmp_path) is None
    (tmp_path / "replication").mkdir()
    _summary().to_csv(tmp_path / "replication" / "summary.csv", index=False)
    pd.DataFrame([
        {"source": "vsr-relation", "target": "stepgame-answer", "encoder": "e", "layer": "final", "condition": c,
         "rank": r, "accuracy": a, "ci_low": a - 0.02, "ci_high": a + 0.02, "drop": d, "drop_ci_low": d - 0.02,
         "drop_ci_high": d + 0.02, "chance": 0.11, "n_train": 100, "n_test": 50}
        for c, r, a, d in (("original", 0, 0.6, float("nan")), ("leace", 65, 0.4, 0.2), ("random", 65, 0.59, 0.01))
    ]).to_csv(tmp_path / "erasure.csv", index=False)
    section = replication_section(tmp_path)
    assert len(section["summary_rows"]) == 6
    assert section["erasure"] and "stepgame-answer depends on it" in section["erasure"][0]
