"""Known-answer tests of the verdict rules (report/verdicts.py) on planted prediction tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spatial_probing.report.verdicts import (TaskItems, VerdictRules, apply_rules, grounding_summary, k_trends,
                                             lexical_tasks, verdict_family)

RULES = VerdictRules(n_boot=1000, n_permutations=1000)


def _frame(correct: dict[str, np.ndarray], categories: np.ndarray, clusters: np.ndarray, *, task: str = "t",
           seeds: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Predictions and results tables for encoders with the given per-item correctness (same for every seed)."""
    ids = [f"item{i:05d}" for i in range(len(categories))]
    preds, res = [], []
    for enc, ok in correct.items():
        for s in range(seeds):
            preds.append(pd.DataFrame({"dataset": "synthetic", "task": task, "encoder": enc, "layer": "final",
                                       "probe": "linear", "seed": s, "example_id": ids, "correct": ok.astype(bool),
                                       "category": categories, "cluster": clusters}))
            res.append({"dataset": "synthetic", "task": task, "encoder": enc, "layer": "final", "probe": "linear",
                        "seed": s, "subset_kind": "all", "subset": "all", "metric": "chance", "value": 0.5,
                        "ci_low": np.nan, "ci_high": np.nan, "n_test": len(ids)})
    layers = {(task, e, "linear"): "final" for e in correct}
    return pd.concat(preds, ignore_index=True), pd.DataFrame(res), layers


def _planted(n_clusters: int, size: int, seed: int = 0, gain: float = 0.10) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Three categories; clip-text = sbert-mpnet except on category A, where whole clusters are flipped to right
    so that clip-text gains about ``gain`` (a clustered effect)."""
    rng = np.random.default_rng(seed)
    clusters = np.repeat(np.arange(n_clusters), size)
    categories = np.array(["A", "B", "C"])[np.repeat(np.arange(n_clusters) % 3, size)]
    difficulty = rng.normal(size=n_clusters)[clusters]
    base = (difficulty + rng.normal(0, 0.5, clusters.size)) < 0.4  # ≈ 0.63, correlated within clusters
    wrong_clusters = np.unique(clusters[(categories == "A") & ~base])
    flip = rng.choice(wrong_clusters, size=int(round(gain * (categories == "A").sum() / size * 1.6)), replace=False)
    better = base | np.isin(clusters, flip)
    return _frame({"clip-text": better, "sbert-mpnet": base}, categories, clusters.astype(str))


def test_planted_gain_is_found_and_clustered_interval_is_wider_than_naive() -> None:
    preds, res, layers = _planted(600, 4)
    fam = verdict_family(preds, res, layers, RULES)
    g = fam[fam.contrast == "grounding"].set_index("subset")
    assert g.loc["A", "verdict"] == "gain" and 0.05 < g.loc["A", "diff"] < 0.2
    assert g.loc["A", "encoder_a"] == "clip-text"  # oriented grounded − distributional by the registry, not the name
    assert (g.loc[["B", "C"], "verdict"] != "gain").all()
    assert g.loc["A", "in_family"] and g.loc["A", "p_t_holm"] >= g.loc["A", "p_t"]
    # same table, items treated as independent: a narrower interval for the same difference
    naive = TaskItems(preds.drop(columns="cluster"), RULES)
    clustered = TaskItems(preds, RULES)
    d = clustered.scores[("clip-text", "final")] - clustered.scores[("sbert-mpnet", "final")]
    mask = clustered.mask("category", "A")
    _, clo, chi = clustered.mean_ci(d, mask)
    _, nlo, nhi = naive.mean_ci(d, mask)
    assert chi - clo > 1.3 * (nhi - nlo)
    assert clo == pytest.approx(g.loc["A", "diff_low"]) and chi == pytest.approx(g.loc["A", "diff_high"])


def test_identical_up_to_noise_is_resistant_only_when_tost_says_so() -> None:
    for n_clusters, expected in ((2000, "equivalent"), (20, "inconclusive")):
        rng = np.random.default_rng(n_clusters)
        clusters = np.repeat(np.arange(n_clusters), 2)
        latent = rng.random(clusters.size)
        a = latent + rng.normal(0, 0.02, clusters.size) < 0.75  # same accuracy, small independent noise
        b = latent + rng.normal(0, 0.02, clusters.size) < 0.75
        preds, res, layers = _frame({"clip-text": a, "sbert-mpnet": b}, np.array(["A"] * clusters.size),
                                    clusters.astype(str))
        fam = verdict_family(preds, res, layers, RULES)
        row = fam[(fam.contrast == "grounding") & (fam.subset == "A")].iloc[0]
        assert row.verdict == expected
        assert (row.verdict == "equivalent") == (row.p_tost_holm < RULES.alpha)
        summary = grounding_summary(fam).set_index("subset").loc["A", "summary"]
        assert summary == ("resistant" if expected == "equivalent" else "inconclusive")


def test_both_at_ceiling_is_uninformative_and_leaves_the_family() -> None:
    n = 200
    clusters = np.repeat(np.arange(n // 2), 2).astype(str)
    preds, res, layers = _frame({"clip-text": np.ones(n, bool), "sbert-mpnet": np.ones(n, bool)},
                                np.array(["A", "B"])[np.arange(n) % 2], clusters)
    fam = verdict_family(preds, res, layers, RULES)
    grounding = fam[fam.contrast == "grounding"]
    assert (grounding.verdict == "uninformative").all() and not grounding.in_family.any()
    assert grounding.p_t_holm.isna().all()
    assert set(grounding_summary(fam).summary) == {"uninformative (ceiling/floor)"}


def test_both_at_chance_is_uninformative() -> None:
    rng = np.random.default_rng(1)
    n = 300
    preds, res, layers = _frame({"clip-text": rng.random(n) < 0.5, "sbert-mpnet": rng.random(n) < 0.5},
                                np.array(["A"] * n), np.arange(n).astype(str))
    fam = verdict_family(preds, res, layers, RULES)
    assert set(fam[fam.contrast == "grounding"].uninformative) == {"chance"}


def test_lexical_floor_contrast_and_lexical_label() -> None:
    rng = np.random.default_rng(2)
    n = 800
    clusters = np.repeat(np.arange(n // 4), 4).astype(str)
    words = rng.random(n) < 0.9
    preds, res, layers = _frame({"sbert-mpnet": words, "static:sbert-mpnet": words.copy(),
                                 "random-init:sbert-mpnet": rng.random(n) < 0.3}, np.array(["A"] * n), clusters)
    res = pd.concat([res, res.assign(metric="cv_accuracy", value=res.encoder.map(
        {"sbert-mpnet": 0.9, "static:sbert-mpnet": 0.88, "random-init:sbert-mpnet": 0.3}))], ignore_index=True)
    fam = verdict_family(preds, res, layers, RULES)
    lex = fam[fam.contrast == "lexical"]
    assert set(lex.encoder_a) == {"sbert-mpnet"} and set(lex.encoder_b) == {"static:sbert-mpnet"}  # best by CV
    assert lex.lexical.all()
    assert lexical_tasks(fam).set_index("task").loc["t", "lexical"]



def test_each_subset_is_judged_against_its_own_strictest_floor() -> None:
    """bow: is the task's best floor (it wins on A, the larger category), static: is best on B; the B row must
    stand beside static:, the floor hardest to beat on B's own items."""
    rng = np.random.default_rng(5)
    cats = np.array(["A"] * 600 + ["B"] * 200)
    clusters = np.repeat(np.arange(400), 2).astype(str)
    bow = np.where(cats == "A", rng.random(800) < 0.9, rng.random(800) < 0.5)
    static = np.where(cats == "A", rng.random(800) < 0.6, rng.random(800) < 0.85)
    preds, res, layers = _frame({"sbert-mpnet": rng.random(800) < 0.9, "bow:": bow, "static:sbert-mpnet": static},
                                cats, clusters)
    fam = verdict_family(preds, res, layers, RULES)
    floor_of = fam[fam.contrast == "lexical"].set_index("subset").encoder_b
    assert floor_of["all"] == "bow:" and floor_of["A"] == "bow:"
    assert floor_of["B"] == "static:sbert-mpnet"


def test_strictest_floor_takes_the_highest_finite_accuracy_and_breaks_ties_by_name() -> None:
    from spatial_probing.embed.config import strictest_floor

    assert strictest_floor({"static:x": 0.7, "bow:": 0.7, "order:": float("nan")}) == ("bow:", 0.7)
    assert strictest_floor({"order:": float("nan")})[0] is None
    assert strictest_floor({"bow:": 0.4, "random-init:x": 0.8}) == ("random-init:x", 0.8)


def test_lab_arms_stand_beside_the_lexical_floor_over_their_seeds() -> None:
    """A lab arm that only matches the bag of words is labelled lexical; one that beats it gains, over its seeds."""
    rng = np.random.default_rng(3)
    n = 900
    clusters = np.repeat(np.arange(n // 3), 3)
    words = rng.random(n // 3)[clusters] < 0.6  # the floor: right on 60 % of the scenes
    beyond = words | (rng.random(n // 3)[clusters] < 0.5)  # right on those and on half the others
    correct = {"bow:": words}
    for s in range(3):
        correct[f"lab-vision-s{s}"] = words.copy()
        correct[f"lab-vision-hn1-s{s}"] = beyond.copy()
        correct[f"lab-mlm-s{s}"] = beyond.copy()
    preds, res, layers = _frame(correct, np.array(["A"] * n), clusters.astype(str))
    fam = verdict_family(preds, res, layers, RULES)
    lex = fam[(fam.contrast == "lexical") & (fam.subset_kind == "all")].set_index("encoder_a")
    assert set(lex.index) == {"lab-vision", "lab-vision-hn1", "lab-mlm"} and set(lex.encoder_b) == {"bow:"}
    assert (lex.n_seeds == 3).all() and lex.loc["lab-vision-hn1", "verdict"] == "gain"
    lab = fam[(fam.contrast == "lab") & (fam.subset_kind == "all")]
    assert set(zip(lab.encoder_a, lab.encoder_b)) == {("lab-vision", "lab-mlm"), ("lab-vision-hn1", "lab-mlm"),
                                                      ("lab-vision-hn1", "lab-vision")}  # the lab's questions
    assert lex.loc["lab-vision", "lexical"] and lex.loc["lab-vision", "diff"] == 0
    assert not lex.loc["lab-mlm", "lexical"] and lex.loc["lab-mlm", "verdict"] == "gain"
    assert 0.15 < lex.loc["lab-mlm", "diff"] < 0.25

def test_tests_that_disagree_give_inconclusive_not_gain() -> None:
    row = pd.DataFrame([{"uninformative": "", "p_t": 0.001, "p_perm": 0.2, "p_tost": 0.9, "diff": 0.05,
                         "diff_low": 0.01, "diff_high": 0.09, "contrast": "grounding", "acc_b": 0.5, "a_low": 0.5}])
    out = apply_rules(row, RULES).iloc[0]
    assert out.verdict == "inconclusive" and out.reason == "tests disagree"
    ok = apply_rules(row.assign(p_perm=0.001), RULES).iloc[0]
    assert ok.verdict == "gain"
    flipped_ci = apply_rules(row.assign(p_perm=0.001, diff_low=-0.01), RULES).iloc[0]
    assert flipped_ci.verdict == "inconclusive"


def test_holm_runs_over_the_whole_family() -> None:
    rows = pd.DataFrame([{"uninformative": "", "p_t": p, "p_perm": p, "p_tost": 0.9, "diff": 0.1, "diff_low": 0.02,
                          "diff_high": 0.2, "contrast": "grounding", "acc_b": 0.5, "a_low": 0.6}
                         for p in (0.01, 0.02, 0.03)])
    out = apply_rules(rows, RULES)
    assert out.p_t_holm.tolist() == pytest.approx([0.03, 0.04, 0.04])
    assert out.verdict.tolist() == ["gain", "gain", "gain"]
    # the same p-values in a family twice as large: no longer significant (Holm counts every member)
    assert "gain" not in apply_rules(pd.concat([rows] * 2, ignore_index=True), RULES).verdict.tolist()


def test_k_trend_slope_and_interval() -> None:
    rng = np.random.default_rng(3)
    k = np.repeat(np.arange(1, 6), 200)
    clusters = np.arange(k.size) // 5
    ok = rng.random(k.size) < 0.9 - 0.1 * k
    preds = pd.DataFrame({"task": "stepgame-answer", "encoder": "sbert-mpnet", "layer": "final", "probe": "linear",
                          "seed": 0, "example_id": [f"i{i}" for i in range(k.size)], "correct": ok,
                          "k": k.astype(str), "cluster": clusters.astype(str)})
    t = k_trends(preds, {("stepgame-answer", "sbert-mpnet", "linear"): "final"}, RULES).iloc[0]
    assert t.slope_low < -0.1 < t.slope_high and t.slope_high < 0
    assert t.slope == pytest.approx(np.polyfit(k, ok.astype(float), 1)[0])


def test_family_signflip_p_is_each_rows_own_cluster_test() -> None:
    """The family draws its random signs once per cluster count; each row's p must still be its own clustered
    sign-flip test: within Monte Carlo error of cluster_signflip where it samples (hundreds of clusters
    differ), and equal to it where it enumerates (few clusters)."""
    from spatial_probing.probe.stats import cluster_signflip

    rng = np.random.default_rng(4)
    n = 1200
    clusters = np.repeat(np.arange(n // 3), 3)
    cats = np.array(["A", "B"])[clusters % 2]
    base = rng.random(n) < 0.6
    other = np.where(rng.random(n) < 0.15, ~base, base) | ((cats == "A") & (rng.random(n) < 0.05))
    for keep, sampled in ((clusters < n // 3, True), (clusters < 8, False)):
        preds, res, layers = _frame({"clip-text": other[keep], "sbert-mpnet": base[keep]}, cats[keep],
                                    clusters[keep].astype(str))
        fam = verdict_family(preds, res, layers, RULES)
        items = TaskItems(preds, RULES)
        d = items.scores[("clip-text", "final")] - items.scores[("sbert-mpnet", "final")]
        rows = fam[fam.uninformative.eq("")]
        assert len(rows) == (3 if sampled else 1), fam[["subset", "uninformative"]]
        for r in rows.itertuples():
            m = items.mask(r.subset_kind, r.subset)
            if sampled:
                own = cluster_signflip(d[m], items.clusters[m], n_permutations=50000, seed=1)
                assert 0.002 < own < 0.9 and abs(r.p_perm - own) <= 4 * np.sqrt(own * (1 - own) / 1000) + 1e-3, \
                    (r.subset, r.p_perm, own)
            else:
                assert r.p_perm == pytest.approx(cluster_signflip(d[m], items.clusters[m], n_permutations=1000))
