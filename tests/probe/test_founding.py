"""The founding-study protocol against a direct scikit-learn computation, and the corrected protocol's checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.model_selection import StratifiedKFold

from spatial_probing.probe.founding import (
    all_negative_macro_f1,
    compare_across_relations,
    corrected_table,
    founding_study_table,
    retained_relations,
    summarize_scores,
)


def _data(seed: int = 0, n: int = 400, d: int = 12):
    """Captions of 6 relations (4 with ≥ 50), each relation a noisy direction; truth labels random."""
    rng = np.random.default_rng(seed)
    names = np.array(["on", "under", "near", "behind", "rare-a", "rare-b"])
    rel = names[rng.choice(6, size=n, p=[0.3, 0.25, 0.2, 0.17, 0.05, 0.03])]
    centres = rng.normal(size=(6, d)) * 0.6
    X = (centres[np.searchsorted(np.sort(names), rel)] + rng.normal(size=(n, d))).astype(np.float32)
    X[:, 0] += 3.0  # a shared offset: L2 normalisation matters
    truth = rng.integers(0, 2, size=n)
    return X, rel.tolist(), truth


def _direct(X, relations, truth):
    """The founding study's protocol written out with scikit-learn only (the reference)."""
    from sklearn.preprocessing import normalize

    Xn = normalize(X, norm="l2")
    rel = np.array(relations)
    rows = []
    for r in sorted({r for r in relations if relations.count(r) >= 50}, key=lambda r: (-relations.count(r), r)):
        y = (rel == r).astype(int)
        acc, mf1, wf1, mp, mr = [], [], [], [], []
        for tr, te in StratifiedKFold(n_splits=5, shuffle=True, random_state=42).split(Xn, y):
            clf = LogisticRegression(C=1.0, max_iter=1000, random_state=42, solver="lbfgs").fit(Xn[tr], y[tr])
            p = clf.predict(Xn[te])
            acc.append(accuracy_score(y[te], p))
            mf1.append(f1_score(y[te], p, average="macro", zero_division=0))
            wf1.append(f1_score(y[te], p, average="weighted", zero_division=0))
            mp.append(precision_score(y[te], p, average="macro", zero_division=0))
            mr.append(recall_score(y[te], p, average="macro", zero_division=0))
        rows.append({"relation": r, "n_samples": int((rel == r).sum()), "n_positive": int(truth[rel == r].sum()),
                     "n_negative": int((truth[rel == r] == 0).sum()), "accuracy": np.mean(acc),
                     "macro_f1": np.mean(mf1), "weighted_f1": np.mean(wf1), "macro_precision": np.mean(mp),
                     "macro_recall": np.mean(mr)})
    return pd.DataFrame(rows)


def test_founding_table_equals_direct_sklearn_computation():
    X, rel, truth = _data()
    got = founding_study_table(X, rel, truth, show_progress=False)
    want = _direct(X, rel, truth)
    assert got.relation.tolist() == want.relation.tolist() == ["on", "under", "near", "behind"]
    for col in ("n_samples", "n_positive", "n_negative"):
        assert got[col].tolist() == want[col].tolist()
    for col in ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall"):
        np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=0, atol=1e-12)
    assert (got.n_total == len(rel)).all()
    s = summarize_scores(got)
    assert s["n_relations"] == 4 and s["mean"] == pytest.approx(want.macro_f1.mean(), abs=1e-12)
    assert s["std"] == pytest.approx(want.macro_f1.std(ddof=1), abs=1e-12)
    assert s["median"] == pytest.approx(want.macro_f1.median(), abs=1e-12)


def test_truth_counts_are_the_captions_truth_labels_not_the_probe_classes():
    X, rel, truth = _data(seed=3)
    got = founding_study_table(X, rel, truth, show_progress=False).set_index("relation")
    rel_a = np.array(rel)
    for r in got.index:
        assert got.loc[r, "n_positive"] + got.loc[r, "n_negative"] == got.loc[r, "n_samples"] == (rel_a == r).sum()
        assert got.loc[r, "n_positive"] == truth[rel_a == r].sum()


def test_retained_relations_threshold_and_order():
    rel = ["a"] * 50 + ["b"] * 49 + ["c"] * 60 + ["d"] * 50
    assert retained_relations(rel) == ["c", "a", "d"]


def test_all_negative_macro_f1_is_sklearns_value_of_the_all_negative_predictor():
    y = np.array([1] * 7 + [0] * 93)
    want = f1_score(y, np.zeros_like(y), average="macro", zero_division=0)
    assert all_negative_macro_f1(y) == pytest.approx(want, abs=1e-15)
    assert want == pytest.approx(0.5 * f1_score(y, np.zeros_like(y), pos_label=0), abs=1e-15)


def test_degenerate_flag_marks_exactly_the_all_negative_probes():
    rng = np.random.default_rng(1)
    n, d = 600, 10
    X = rng.normal(size=(n, d))
    rel = np.array(["rest"] * n, dtype=object)
    rel[:60] = "noise"  # rare and indistinguishable: C = 1 on unit vectors predicts "not noise" everywhere
    rel[60:180] = "planted"
    X[60:180, 3] += 8.0  # separable
    table = founding_study_table(X, rel.tolist(), show_progress=False).set_index("relation")
    assert bool(table.loc["noise", "degenerate"]) and table.loc["noise", "n_folds_all_negative"] == 5
    assert table.loc["noise", "macro_f1"] == pytest.approx(table.loc["noise", "all_negative_macro_f1"], abs=1e-12)
    assert not table.loc["planted", "degenerate"] and table.loc["planted", "macro_f1"] > 0.9


def test_corrected_protocol_finds_a_planted_rare_relation_the_founding_protocol_misses():
    rng = np.random.default_rng(2)
    n, d = 900, 16
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, :] += rng.normal(size=d) * 5  # a large common offset: unit-normalised vectors all point one way
    rel = np.array(["rest"] * n, dtype=object)
    rel[:60], rel[60:120] = "planted", "noise"
    X[:60, 5] += 2.5
    groups = [f"img{i // 2}" for i in range(n)]
    founding = founding_study_table(X, rel.tolist(), show_progress=False).set_index("relation")
    corrected = corrected_table(X, rel.tolist(), groups, kept=["planted", "noise"], Cs=(0.01, 0.1, 1.0),
                                n_boot=200, device="cpu", show_progress=False).set_index("relation")
    assert founding.loc["planted", "degenerate"]  # the founding protocol's C = 1 on unit vectors gives up
    assert not corrected.loc["planted", "degenerate"] and corrected.loc["planted", "ci_low"] > \
        corrected.loc["planted", "all_negative_macro_f1"]
    assert corrected.loc["noise", "ci_low"] <= corrected.loc["noise", "all_negative_macro_f1"] + 0.02
    assert (corrected.n_test == n).all()  # every caption tested once across the outer folds


def test_corrected_protocol_on_a_held_out_split():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    rel = np.where(np.arange(400) < 100, "planted", "rest")
    X[:100, 2] += 4
    Xt = rng.normal(size=(200, 8)).astype(np.float32)
    rel_t = np.where(np.arange(200) < 50, "planted", "rest")
    Xt[:50, 2] += 4
    t = corrected_table(X, rel.tolist(), [str(i) for i in range(400)], kept=["planted"], X_test=Xt,
                        relations_test=rel_t.tolist(), n_boot=200, device="cpu", show_progress=False)
    assert t.n_test.iloc[0] == 200 and t.n_test_positive.iloc[0] == 50 and t.macro_f1.iloc[0] > 0.9


def test_compare_across_relations_known_answers():
    a = np.linspace(0.6, 0.9, 20)
    better = compare_across_relations(a + 0.05, a, n_boot=500)
    assert better["diff"] == pytest.approx(0.05) and better["ci_low"] > 0 and better["wilcoxon_p"] < 1e-3
    assert better["n_a_better"] == 20
    same = compare_across_relations(a, a)
    assert same["wilcoxon_p"] == 1.0 and same["permutation_p"] == 1.0 and same["diff"] == 0.0
    with pytest.raises(ValueError, match="equal length"):
        compare_across_relations(a, a[:5])


def test_test_text_seen_measures_duplicate_caption_leakage():
    X, rel, truth = _data(seed=5)
    unique = [f"caption {i}." for i in range(len(rel))]
    twins = [f"The Caption  {i // 2}" + ("." if i % 2 else "") for i in range(len(rel))]  # pairs, same up to case/stop
    assert founding_study_table(X, rel, texts=unique, show_progress=False).test_text_seen.eq(0).all()
    seen = founding_study_table(X, rel, texts=twins, show_progress=False).test_text_seen
    assert (seen > 0.5).all() and (seen <= 1).all()  # most test captions have their twin in training
