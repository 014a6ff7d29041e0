"""Objective summary and paired comparisons on small hand-made tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from spatial_probing.lab import objective_comparisons, objective_summary, parse_lab_encoder

T_975_DF2 = 4.302652729749464  # Student t quantile (0.975, 2 df), from tables
#: accuracy per (objective, lab seed); mean over two probe seeds is what counts (±0.02 around these)
ACC = {"mlm": [0.5, 0.6, 0.7], "textcl": [0.6, 0.6, 0.6], "vision": [0.6, 0.8, 1.0]}


def _results() -> pd.DataFrame:
    rows = []
    for objective, values in ACC.items():
        for lab_seed, v in enumerate(values):
            for probe_seed, jitter in ((0, -0.02), (1, 0.02)):
                base = dict(dataset="synthetic", task="synthetic-relation", encoder=f"lab-{objective}-s{lab_seed}",
                            layer="final", probe="linear", seed=probe_seed, split="test", subset_kind="all",
                            subset="all")
                rows += [{**base, "metric": "accuracy", "value": v + jitter},
                         {**base, "metric": "chance", "value": 1 / 12}]
    rows.append(dict(dataset="synthetic", task="synthetic-relation", encoder="sbert-minilm", layer="final",
                     probe="linear", seed=0, split="test", subset_kind="all", subset="all", metric="accuracy",
                     value=0.99))  # not a lab encoder: ignored
    return pd.DataFrame(rows)


def _predictions(n_items: int = 10) -> pd.DataFrame:
    """vision right on every item, mlm wrong on every item, textcl right on the first half."""
    rows = []
    for objective in ACC:
        for lab_seed in range(3):
            for i in range(n_items):
                correct = {"vision": True, "mlm": False, "textcl": i < n_items // 2}[objective]
                rows.append(dict(dataset="synthetic", task="synthetic-relation", encoder=f"lab-{objective}-s{lab_seed}",
                                 layer="final", probe="linear", seed=0, example_id=f"x{i}", correct=correct,
                                 relation="left" if i % 2 else "above"))
    return pd.DataFrame(rows)


def test_parse_lab_encoder() -> None:
    assert parse_lab_encoder("lab-vision-s2") == ("lab", "vision", 2)
    assert parse_lab_encoder("runs/lab/textcl-seed1") == ("lab", "textcl", 1)
    assert parse_lab_encoder("sbert-minilm") is None and parse_lab_encoder("lab-clip-s0") is None


def test_objective_summary_means_and_t_intervals_across_lab_seeds() -> None:
    summary = objective_summary(_results(), metrics=("accuracy",))
    assert list(summary.objective) == ["mlm", "textcl", "vision"] and (summary.n_seeds == 3).all()
    row = summary.set_index("objective").loc["mlm"]
    assert row["mean"] == pytest.approx(0.6) and row["sd"] == pytest.approx(0.1)
    half = T_975_DF2 * 0.1 / np.sqrt(3)
    assert (row.ci_low, row.ci_high) == pytest.approx((0.6 - half, 0.6 + half))
    flat = summary.set_index("objective").loc["textcl"]
    assert flat["sd"] == pytest.approx(0.0, abs=1e-12) and flat.ci_low == pytest.approx(flat.ci_high)
    assert summary.chance.unique() == pytest.approx([1 / 12])


def test_objective_comparisons_seed_paired_tests() -> None:
    comps = objective_comparisons(_results(), metric="accuracy").set_index(["objective_a", "objective_b"])
    assert list(comps.index) == [("mlm", "textcl"), ("mlm", "vision"), ("textcl", "vision")]
    mv = comps.loc[("mlm", "vision")]  # differences −0.1, −0.2, −0.3
    assert mv["diff"] == pytest.approx(-0.2) and mv.n_seeds == 3
    assert mv.t_stat == pytest.approx(-0.2 / (0.1 / np.sqrt(3)))
    assert mv.seed_t_p == pytest.approx(0.07417990022744858)  # two-sided t(2) tail of |t| = 2√3
    assert mv.seed_signflip_p == pytest.approx(0.25)  # 2 of the 8 sign patterns are as extreme
    half = T_975_DF2 * 0.1 / np.sqrt(3)
    assert (mv.diff_ci_low, mv.diff_ci_high) == pytest.approx((-0.2 - half, -0.2 + half))
    mt = comps.loc[("mlm", "textcl")]  # differences −0.1, 0, +0.1: no effect
    assert mt["diff"] == pytest.approx(0.0, abs=1e-12) and mt.seed_t_p == pytest.approx(1.0)
    assert np.isnan(mv.item_signflip_p)  # no predictions given


def test_item_level_sign_flip_and_holm() -> None:
    comps = objective_comparisons(_results(), _predictions(), metric="accuracy")
    whole = comps[comps.subset_kind == "all"].set_index(["objective_a", "objective_b"])
    mv = whole.loc[("mlm", "vision")]
    assert mv.item_diff == pytest.approx(-1.0) and mv.n_items == 10
    assert mv.item_signflip_p == pytest.approx(2 / 2 ** 10)  # exact: only all-minus and all-plus are as extreme
    tv = whole.loc[("textcl", "vision")]
    assert tv.item_diff == pytest.approx(-0.5) and tv.item_signflip_p == pytest.approx(2 / 2 ** 5)
    p = whole.item_signflip_p.to_numpy()
    order = np.argsort(p)
    expected = np.maximum.accumulate(np.minimum(1, p[order] * np.array([3, 2, 1])))
    assert whole.p_holm.to_numpy()[order] == pytest.approx(expected)


def test_per_relation_subsets_use_only_their_items() -> None:
    results = _results()
    sub = results[results.metric == "accuracy"].assign(subset_kind="relation", subset="left")
    comps = objective_comparisons(pd.concat([results, sub]), _predictions(), metric="accuracy")
    left = comps[(comps.subset_kind == "relation") & (comps.objective_a == "mlm") & (comps.objective_b == "vision")]
    assert len(left) == 1 and int(left.n_items.iloc[0]) == 5  # odd example ids are "left"


def test_errors_name_what_is_missing() -> None:
    with pytest.raises(ValueError, match=r"missing column\(s\) \['layer'\]"):
        objective_summary(_results().drop(columns="layer"))
    with pytest.raises(ValueError, match="no lab encoders"):
        objective_summary(_results().assign(encoder="bert"))
    with pytest.raises(ValueError, match="none of the metrics"):
        objective_summary(_results(), metrics=("mdl_compression",))


# ------------------------------------------------------------------ the lab's answer (per relation kind)

def test_parse_lab_arm_and_hard_negative_names() -> None:
    from spatial_probing.lab.config import parse_lab_arm

    assert parse_lab_arm("lab-vision-hn1-s2") == ("lab", "vision-hn1", "vision", 1.0, 2)
    assert parse_lab_arm("lab-textcl-hn05-s0") == ("lab", "textcl-hn05", "textcl", 0.5, 0)
    assert parse_lab_arm("runs/lab/vision-hn1-seed3") == ("lab", "vision-hn1", "vision", 1.0, 3)
    assert parse_lab_encoder("lab-vision-hn1-s2") == ("lab", "vision", 2)  # still grounded, still a lab encoder


def test_answer_pairs() -> None:
    from spatial_probing.lab.compare import answer_pairs

    pairs = [(a, b) for a, b, _ in answer_pairs(["mlm", "textcl", "textcl-hn1", "vision", "vision-hn1"])]
    assert pairs == [("vision", "textcl"), ("vision", "mlm"), ("textcl", "mlm"), ("vision-hn1", "textcl-hn1"),
                     ("vision-hn1", "mlm"), ("textcl-hn1", "mlm"), ("vision-hn1", "vision"),
                     ("textcl-hn1", "textcl")]
    assert answer_pairs(["mlm", "vision"]) == [("vision", "mlm", "grounding vs masked LM")]


def test_hierarchical_interval_counts_seeds_and_clusters() -> None:
    from spatial_probing.lab.compare import hierarchical_diff

    rng = np.random.default_rng(0)
    same = rng.integers(0, 2, (3, 40)).astype(float)
    clusters = np.repeat(np.arange(10), 4)
    null = hierarchical_diff(same, same, clusters, n_boot=500)
    assert (null["diff"], null["ci_low"], null["ci_high"], null["p_boot"]) == (0.0, 0.0, 0.0, 1.0)
    shift = hierarchical_diff(same + 0.2, same, clusters, n_boot=500)
    assert shift["diff"] == pytest.approx(0.2) and shift["ci_low"] == pytest.approx(0.2) and shift["p_boot"] == 0
    noisy_shift = hierarchical_diff(same + rng.normal(0.1, 0.3, same.shape), same, clusters, n_boot=2000)
    z = noisy_shift["diff"] / noisy_shift["se"]
    assert 0 < noisy_shift["p_boot"] == pytest.approx(2 * stats.norm.sf(abs(z)))
    # seeds disagree, items within a seed do not: only the seed level can give the interval its width
    by_seed = np.array([[0.0] * 40, [0.1] * 40, [0.2] * 40])
    seeds_only = hierarchical_diff(by_seed, np.zeros_like(by_seed), clusters, n_boot=2000)
    assert seeds_only["diff"] == pytest.approx(0.1) and seeds_only["ci_low"] < 0.05 and seeds_only["ci_high"] > 0.15
    # the same 40 noisy items: as 10 clusters of 4 identical items the interval is wider than as 40 items
    noisy = np.tile(np.repeat(rng.integers(0, 2, 10), 4).astype(float), (3, 1))
    grouped = hierarchical_diff(noisy, np.zeros_like(noisy), clusters, n_boot=2000)
    single = hierarchical_diff(noisy, np.zeros_like(noisy), np.arange(40), n_boot=2000)
    assert grouped["ci_high"] - grouped["ci_low"] > 1.5 * (single["ci_high"] - single["ci_low"])


def test_lab_answer_per_relation_kind_with_verdicts_and_convergence_flags(answer_predictions) -> None:
    from spatial_probing.lab.compare import ANSWER_COLUMNS, lab_answer

    training = pd.DataFrame({"arm": ["vision-hn1"] * 3 + ["mlm"] * 3, "status": ["ok", "not converged", "ok"] +
                             ["ok"] * 3})
    answer = lab_answer(answer_predictions(), training=training, n_boot=1000)
    assert list(answer.columns) == ANSWER_COLUMNS
    assert set(answer.relation_kind) == {"horizontal", "proximity", "all"}
    row = answer.set_index(["relation_kind", "arm_a", "arm_b"])
    win = row.loc[("horizontal", "vision-hn1", "textcl-hn1")]
    assert win["diff"] == pytest.approx(0.5) and win.verdict == "vision-hn1 better" and win.p_holm < 0.05
    assert win.n_items == 200 and win.n_clusters == 100 and win.n_seeds == 3  # two captions per scene, one cluster
    assert win.convergence == "vision-hn1: 1 not converged of 3 seeds"
    tie = row.loc[("proximity", "vision-hn1", "textcl-hn1")]
    assert tie["diff"] == 0 and tie.half_width == 0 and tie.verdict == "no difference (within ±3 points)"
    assert row.loc[("horizontal", "textcl", "mlm")].convergence == "ok"
    small = lab_answer(answer_predictions(n_scenes=12), n_boot=500)
    assert (small[small.relation_kind == "horizontal"].set_index(["arm_a", "arm_b"])
            .loc[("vision", "textcl")].verdict) == "no difference (within ±3 points)"  # identical arms, exactly 0
    family = answer[(answer.task == "synthetic-relation")]
    assert family.p_holm.ge(family.p_boot).all()  # Holm over the whole task's family never lowers a p



def test_lab_answer_sets_the_strictest_lexical_floor_beside_each_row(answer_predictions) -> None:
    """Floors right on every horizontal item (bow:) and on none (order:): bow: is named with its accuracy on each
    row's very items, so "vision-hn1 better" on horizontal relations is seen not to beat the words."""
    from spatial_probing.lab.compare import lab_answer

    lab = answer_predictions()
    one = lab[lab.encoder == "lab-mlm-s0"]
    floors = pd.concat([one.assign(encoder="bow:", correct=one.category.eq("horizontal")),
                        one.assign(encoder="order:", correct=False),  # a floor with layers is read at the lab's layer:
                        one.assign(encoder="random-init:lab-mlm-s0", layer="0", correct=True),
                        one.assign(encoder="random-init:lab-mlm-s0", layer="final", correct=False)],
                       ignore_index=True)
    answer = lab_answer(lab, n_boot=500, floor_predictions=pd.concat([lab, floors], ignore_index=True))
    row = answer.set_index(["relation_kind", "arm_a", "arm_b"])
    assert row.loc[("horizontal", "vision-hn1", "textcl-hn1")][["floor", "floor_acc"]].tolist() == ["bow:", 1.0]
    assert row.loc[("proximity", "vision-hn1", "textcl-hn1")][["floor", "floor_acc"]].tolist() == ["bow:", 0.0]
    assert row.loc[("all", "vision-hn1", "textcl-hn1")].floor_acc == pytest.approx(0.5)
    assert lab_answer(lab, n_boot=500).floor.isna().all()  # no floor predictions: no floor claimed

def test_lab_answer_without_relation_kinds_is_empty(answer_predictions) -> None:
    from spatial_probing.lab.compare import lab_answer

    assert lab_answer(answer_predictions().drop(columns="category")).empty


def test_summary_interval_stays_within_the_metric_range() -> None:
    """Two lab seeds at 0.2 and 1.0: the t interval (±5.1 points × 0.4) is clipped to [0, 1], the mean is not."""
    rows = [{"dataset": "synthetic", "task": "t", "encoder": f"lab-vision-s{s}", "layer": "final", "probe": "linear",
             "seed": 0, "subset_kind": "all", "subset": "all", "metric": "accuracy", "value": v}
            for s, v in ((0, 0.2), (1, 1.0))]
    summary = objective_summary(pd.DataFrame(rows), metrics=("accuracy",))
    row = summary.iloc[0]
    assert row["mean"] == pytest.approx(0.6) and row.ci_low == 0.0 and row.ci_high == 1.0


def test_differences_equal_up_to_rounding_get_no_t_test_and_no_warning(monkeypatch) -> None:
    """vision − mlm is 0.1 on every seed, up to float rounding (0.7 − 0.6 ≠ 0.8 − 0.7 in binary): the seed t-test
    is undefined (NaN), not a huge t with scipy's 'catastrophic cancellation' warning on the user's console."""
    import warnings

    monkeypatch.setitem(ACC, "mlm", [0.6, 0.7, 0.3])
    monkeypatch.setitem(ACC, "vision", [0.7, 0.8, 0.4])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = objective_comparisons(_results())
    row = out[(out.objective_a == "mlm") & (out.objective_b == "vision") & (out.metric == "accuracy")].iloc[0]
    assert abs(row["diff"] + 0.1) < 1e-12 and np.isnan(row["seed_t_p"])
