"""Controls that mean something and the VSR defaults: type overlap, seen-type scoring, memorisation baseline,
below-chance flag, concept-grouped inner CV, image and caption overlap (issue 11, items 6 and 7)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from spatial_probing.data.schema import Example
from spatial_probing.probe import ProbeSettings, control_labels, get_task, overlap_report, probe_arrays
from spatial_probing.probe.controls import memorisation_predictions, seen_in_training
from spatial_probing.probe.engine import LayerSeedResult
from spatial_probing.probe.runner import summarize_unit
from spatial_probing.probe.splits import inner_concept_masks
from spatial_probing.probe.tasks import ProbeItems


def test_control_labels_follow_the_training_label_distribution() -> None:
    train = ["a"] * 700 + ["b"] * 200 + ["c"] * 100
    types = [f"type{i}" for i in range(6000)]
    share = Counter(control_labels(types, train, seed=3).tolist())
    for label, p in {"a": 0.7, "b": 0.2, "c": 0.1}.items():  # binomial sd ≤ 0.006: 4 sd is ±0.024
        assert abs(share[label] / len(types) - p) < 0.024, share
    again = control_labels(types[:50] + types[:50], train, seed=3)
    assert list(again[:50]) == list(again[50:])  # a type's label is fixed, in train and test alike


def test_memorisation_baseline_copies_the_label_of_the_identical_training_caption() -> None:
    pred = memorisation_predictions(["The cat is on the mat.", "the cat is on the mat. ", "A dog.", "A dog.", "A bird."],
                                    ["true", "true", "false", "true", "false"],
                                    ["THE CAT IS ON THE MAT.", "A dog.", "A fish."])
    assert pred.tolist() == ["true", "false", "true"]  # dog: a tie, broken by label order; fish: training majority


def _items(n: int, labels: list[str], subsets: list[str] | None = None) -> ProbeItems:
    return ProbeItems(ids=[f"i{k}" for k in range(n)], labels=np.asarray(labels, dtype=object),
                      control_types=[f"t{k}" for k in range(n)], groups=[f"g{k}" for k in range(n)],
                      splits=["test"] * n, concepts=[("a", "b")] * n,
                      subsets={"relation": subsets or ["left"] * n}, rows_a=np.arange(n))


def _summarize(y: list[str], pred: list[str], c_true: list[str], c_pred: list[str], seen: list[bool],
               memorised: list[str] | None = None, subsets: list[str] | None = None) -> pd.DataFrame:
    n = len(y)
    r = LayerSeedResult("0", 0, np.asarray(pred, object), np.asarray(c_true, object), np.asarray(c_pred, object),
                        1.0, 1.0, float("nan"), float("nan"))
    results, preds = summarize_unit(_items(n, y, subsets), np.arange(n), [r], dataset="vsr", task="vsr-truth",
                                    encoder="bow:", probe="linear", split="zeroshot", train_labels=["true", "false"],
                                    report_by=["relation"], n_boot=200, chance=0.5, control_seen=np.array(seen),
                                    memorised=None if memorised is None else np.asarray(memorised, object))
    assert preds.control_seen.tolist() == seen
    return results[results.subset == "all"].set_index("metric")


def test_selectivity_is_scored_on_seen_types_and_withheld_below_half_overlap() -> None:
    y = ["true", "false", "true", "false"]
    ok = _summarize(y, y, ["a", "a", "a", "a"], ["a", "a", "b", "b"], [True, True, True, False])
    assert ok.loc["control_type_overlap", "value"] == 0.75 and ok.loc["selectivity_interpretable", "value"] == 1
    assert ok.loc["control_accuracy", "value"] == 0.5  # every item
    assert ok.loc["control_accuracy_seen", "value"] == pytest.approx(2 / 3)  # the three seen-type items
    assert ok.loc["selectivity", "value"] == pytest.approx(1 - 2 / 3) and ok.loc["selectivity", "n_test"] == 3
    low = _summarize(y, y, ["a"] * 4, ["a"] * 4, [True, False, False, False])
    assert low.loc["control_type_overlap", "value"] == 0.25 and low.loc["selectivity_interpretable", "value"] == 0
    assert np.isnan(low.loc["selectivity", ["value", "ci_low", "ci_high"]].astype(float)).all()


def test_text_only_truth_below_chance_is_flagged_beside_memorisation_and_test_majority() -> None:
    y = ["true"] * 30 + ["false"] * 10
    wrong = ["false"] * 30 + ["true"] * 10  # a text-only probe that learnt the opposite from repeated captions
    rows = _summarize(y, wrong, y, y, [True] * 40, memorised=wrong)
    assert rows.loc["below_chance", "value"] == 1 and rows.loc["accuracy", "ci_high"] < 0.5
    assert rows.loc["memorisation_baseline", "value"] == 0 and rows.loc["test_majority_rate", "value"] == 0.75
    lo, hi = rows.loc["test_majority_rate", ["ci_low", "ci_high"]]
    assert lo < 0.75 < hi
    fine = _summarize(y, y, y, y, [True] * 40)
    assert fine.loc["below_chance", "value"] == 0 and "memorisation_baseline" not in fine.index


def test_concept_grouped_inner_folds_never_share_a_concept() -> None:
    rng = np.random.default_rng(0)
    names = [f"c{i}" for i in range(40)]
    concepts = [tuple(rng.choice(names, 2, replace=False)) for _ in range(600)]
    train, val = inner_concept_masks(concepts, n_folds=3, seed=1)
    assert train.shape == val.shape == (3, 600) and not (train & val).any()
    for f in range(3):
        seen = {c for i in np.flatnonzero(train[f]) for c in concepts[i]}
        held = {c for i in np.flatnonzero(val[f]) for c in concepts[i]}
        assert held and not seen & held
    assert val.any(axis=0).sum() < 600  # items mixing folds sit out: none straddles
    with pytest.raises(ValueError, match="fewer inner folds or more data"):
        inner_concept_masks([("a", "b"), ("a", "b")], n_folds=3, seed=0)
    X = rng.normal(size=(600, 8))
    y = np.where(X[:, 0] > 0, "p", "n").astype(object)
    res = probe_arrays({"x": X[:500]}, y[:500], {"x": X[500:]}, groups_train=[str(i) for i in range(500)],
                       control_types_train=[c[0] for c in concepts[:500]], control_types_test=[c[0] for c in concepts[500:]],
                       settings=ProbeSettings(seeds=(0,), Cs=(0.1, 1.0), n_boot=100, mdl_seeds=0, device="cpu"),
                       concepts_train=concepts[:500])
    assert np.mean(res[0].y_pred == y[500:]) > 0.9 and 0.9 < res[0].cv_accuracy <= 1


def test_vsr_tasks_default_to_the_zero_shot_split_with_concept_grouped_inner_cv() -> None:
    for name in ("vsr-relation", "vsr-category", "vsr-truth"):
        spec = get_task(name).spec
        assert (spec.split, spec.inner_cv) == ("zeroshot", "concept"), name
    assert get_task("stepgame-answer").spec.inner_cv == "group"
    truth = get_task("vsr-truth")
    e = Example(id="v/1", dataset="vsr", split="train", text="The cat is on the mat.", relation="on", subject="cat",
                object="mat", truth=True)
    assert truth.control_type(e) == "on"  # recurs between train and test, unlike the concepts


def test_overlap_report_counts_shared_images_and_identical_captions() -> None:
    def ex(i: int, text: str, image: str, split: str) -> Example:
        return Example(id=f"v/{i}", dataset="vsr", split=split, text=text, image=image, group=image)

    train = [ex(0, "The cat is on the mat.", "1.jpg", "train"), ex(1, "A dog.", "2.jpg", "train")]
    test = [ex(2, "the cat is on the mat.", "3.jpg", "test"), ex(3, "A bird.", "2.jpg", "test"),
            ex(4, "A fish.", "4.jpg", "test"), ex(5, "A dog.", "5.jpg", "test")]
    report = overlap_report(train, test)
    assert report["test_images_in_train"] == 1 and report["frac_test_images_in_train"] == 0.25
    assert report["test_texts_in_train"] == 2 and report["frac_test_texts_in_train"] == 0.5
    assert seen_in_training(["x", "y"], ["y", "z"]).tolist() == [True, False]
