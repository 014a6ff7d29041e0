"""Targets whose answer is not in the words: known-answer tests with hand-built lexical and planted encoders.

The lexical floor is the toolkit's own ``bow:`` (unigram + bigram counts) and ``order:`` (one-hot of the
first and second noun), fitted on the training items only, as in a run; a plain first-noun rule and a
unigram bag are checked too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from spatial_probing.data.schema import Example
from spatial_probing.embed import load_encoder
from spatial_probing.data.synthetic import SUBJECT_FIRST, SceneObject
from spatial_probing.probe import get_task, outer_folds
from spatial_probing.probe.stats import bootstrap_metric
from spatial_probing.probe.targets import HELDOUT_PHRASES, HELDOUT_TEMPLATES
from spatial_probing.probe.tasks import ProbeItems


def first_second(e: Example) -> tuple[str, str]:
    """The caption's first and second noun in reading order."""
    subj, obj = str(e.subject).lower(), str(e.object).lower()
    if e.dataset == "synthetic":
        return (subj, obj) if SUBJECT_FIRST[int(e.source["template"])] else (obj, subj)
    text = e.text.lower()
    return (subj, obj) if text.find(subj) <= text.find(obj) else (obj, subj)


def probe(items: ProbeItems, x: np.ndarray) -> tuple[float, float, float]:
    """Accuracy (with a bootstrap CI) of a logistic probe trained on the items marked train, on those marked test."""
    fold = outer_folds("own", items.splits, items.concepts)[0]
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(x[fold.train], items.labels[fold.train])
    return bootstrap_metric("accuracy", items.labels[fold.test].astype(str), clf.predict(x[fold.test]).astype(str),
                            n_boot=500)


def item_features(items: ProbeItems, fn) -> np.ndarray:
    """``fn`` applied to the items' examples, fitted on the training items only (as ``bow:`` is)."""
    ex = items.examples
    train = [ex[i] for i, s in zip(items.rows_a, items.splits) if s == "train"]
    return fn(train, ex)


def lexical(name: str):
    """The toolkit's lexical-floor encoder ``name`` as ``fn(train_examples, examples) -> features``."""
    def fn(train: list[Example], ex: list[Example]) -> np.ndarray:
        return load_encoder(name).fit(train).encode_examples(ex)["0"].astype(float)

    fn.__name__ = name
    return fn


_bow, _order = lexical("bow:"), lexical("order:")


@pytest.fixture(scope="module")
def transfer() -> ProbeItems:
    task = get_task("synthetic-converse-transfer")
    return task.items(task.load(n_scenes=240))


def test_converse_transfer_sides(transfer: ProbeItems) -> None:
    sides = dict(zip(transfer.ids, transfer.splits))
    train_rel = {e.relation for e, s in zip(transfer.examples, transfer.splits) if s == "train"}
    test_rel = {e.relation for e, s in zip(transfer.examples, transfer.splits) if s == "test"}
    assert train_rel == {"left", "above", "upper-left", "upper-right", "inside"}
    assert test_rel == {"right", "below", "lower-right", "lower-left", "contains"}
    groups = {s: {e.group for e, side in zip(transfer.examples, transfer.splits) if side == s} for s in sides.values()}
    assert not groups["train"] & groups["test"]
    assert all(e.truth for e in transfer.examples)


def test_converse_transfer_labels_are_scene_facts(transfer: ProbeItems) -> None:
    for e, y in zip(transfer.examples, transfer.labels):
        objs = {f"{o['colour']} {o['shape']}": SceneObject(**o) for o in e.source["scene"]["objects"]}
        first, second = sorted(objs)
        fact = {"right": "left", "below": "above", "lower-right": "upper-left", "lower-left": "upper-right",
                "contains": "inside"}.get(str(e.relation), e.relation)
        from spatial_probing.data.synthetic import holds
        assert (y == "yes") == holds(fact, objs[first], objs[second])


def test_converse_transfer_first_noun_rule_is_below_chance_and_bow_at_chance(transfer: ProbeItems) -> None:
    fs = [first_second(e) for e in transfer.examples]
    rule = np.array(["yes" if a < b else "no" for a, b in fs])
    train, test = np.array(transfer.splits) == "train", np.array(transfer.splits) == "test"
    assert np.mean(rule[train] == transfer.labels[train]) == 1.0  # the rule fits training perfectly ...
    assert np.mean(rule[test] == transfer.labels[test]) == 0.0  # ... and every test item reverses it
    acc, lo, hi = probe(transfer, item_features(transfer, _order))
    assert hi < 0.5  # a probe on first/second-noun features learns the rule: below chance
    acc, lo, hi = probe(transfer, item_features(transfer, _bow))
    assert acc == 0.5  # every test caption's twin has the same unigrams and bigrams and the opposite label


def test_converse_transfer_meaning_encoder_scores_near_one(transfer: ProbeItems) -> None:
    # planted: an encoder that represents the stated fact (x and y of the alphabetically first object minus
    # the other's, whatever the wording) transfers from 'left of' to 'right of'
    def meaning(e: Example) -> list[float]:
        objs = {f"{o['colour']} {o['shape']}": SceneObject(**o) for o in e.source["scene"]["objects"]}
        a, b = (objs[k] for k in sorted(objs))
        return [a.x - b.x, a.y - b.y, float(a.size == "small") - float(b.size == "small")]

    acc, lo, hi = probe(transfer, np.array([meaning(e) for e in transfer.examples]))
    assert lo > 0.9


@pytest.fixture(scope="module")
def geometry() -> dict[str, ProbeItems]:
    out = {}
    for key in ("dx", "dy", "distance"):
        task = get_task(f"synthetic-geometry-{key}")
        out[key] = task.items(task.load(n_scenes=720))
    return out


def test_geometry_wording_split_holds_out_templates_and_phrases(geometry: dict[str, ProbeItems]) -> None:
    items = geometry["dx"]
    for e, side in zip(items.examples, items.splits):
        held = (e.source["template"] in HELDOUT_TEMPLATES, e.source["phrase"] in HELDOUT_PHRASES)
        assert held == ((True, True) if side == "test" else (False, False))
    assert {SUBJECT_FIRST[t] for t in HELDOUT_TEMPLATES} == {True, False}
    assert all(e.truth for e in items.examples)


@pytest.mark.parametrize("key", ["dx", "dy", "distance"])
def test_geometry_planted_feature_scores_near_one(geometry: dict[str, ProbeItems], key: str) -> None:
    items = geometry[key]
    x = np.array([[e.source["dx"], e.source["dy"], e.source["distance"]] for e in items.examples], float)
    assert probe(items, x)[1] > 0.9


def test_geometry_bow_is_at_chance_where_words_do_not_give_the_answer(geometry: dict[str, ProbeItems]) -> None:
    # dx of a near/far caption is not in its words: a bag of words is no better than the majority class there
    items = geometry["dx"]
    x = item_features(items, _bow)
    fold = outer_folds("own", items.splits, items.concepts)[0]
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(x[fold.train], items.labels[fold.train])
    prox = np.array([items.examples[i].category == "proximity" for i in fold.test])
    y, pred = items.labels[fold.test][prox], clf.predict(x[fold.test][prox])
    _, lo, _ = bootstrap_metric("accuracy", y.astype(str), pred.astype(str), n_boot=500)
    majority = max(np.mean(y == c) for c in set(y))
    assert prox.sum() >= 20 and lo <= majority
    # ... while on captions whose relation names it, the same probe reads it off the words (the lexical ceiling)
    horiz = np.array([items.examples[i].category == "horizontal" for i in fold.test])
    assert np.mean(clf.predict(x[fold.test][horiz]) == items.labels[fold.test][horiz]) > 0.9


def test_argument_order_v2_default_has_1000_test_pairs_and_balanced_order() -> None:
    task = get_task("synthetic-argument-order-v2")
    items = task.items(task.load())
    assert sum(s == "test" for s in items.splits) >= 1000
    first = [items.examples[i].source["subject_first"] for i in items.rows_a]
    assert sum(first) * 2 == len(first)


def test_argument_order_v2_lexical_features_at_chance() -> None:
    task = get_task("synthetic-argument-order-v2")
    items = task.items(task.load(n_scenes=2400))
    ex = items.examples
    train_rows = [i for i, s in zip(items.rows_a, items.splits) if s == "train"]
    train_rows += [i for i, s in zip(items.rows_b, items.splits) if s == "train"]
    for fn in (_bow, _order):
        emb = fn([ex[i] for i in train_rows], ex)
        acc, lo, hi = probe(items, items.features(emb))
        assert lo <= 0.5 <= hi, (fn.__name__, acc, lo, hi)


def test_task_defined_split_on_another_task_is_an_error() -> None:
    with pytest.raises(ValueError, match="defined by the tasks built for it"):
        get_task("synthetic-relation").load(split="heldout-wording", n_scenes=12)


def test_vsr_converse_transfer_first_noun_rule_is_exactly_wrong(real_data: Path) -> None:
    task = get_task("vsr-converse-transfer")
    items = task.items(task.load(real_data))
    splits = np.array(items.splits)
    fs = [first_second(e) for e in items.examples]
    rule = np.array(["yes" if a < b else "no" for a, b in fs])
    assert np.mean(rule[splits == "train"] == items.labels[splits == "train"]) == 1.0
    assert np.mean(rule[splits == "test"] == items.labels[splits == "test"]) == 0.0
    assert (splits == "test").sum() > 100 and all(e.truth for e in items.examples)
    train_images = {e.group for e, s in zip(items.examples, splits) if s == "train"}
    assert not any(e.group in train_images for e, s in zip(items.examples, splits) if s == "test")
    assert probe(items, item_features(items, _order))[2] < 0.5


def test_skipped_examples_are_counted_with_reasons() -> None:
    def ex(i: int, text: str, relation: str, truth: bool = True, split: str = "train", image: str = "a") -> Example:
        return Example(id=f"vsr/x/{i}", dataset="vsr", split=split, text=text, relation=relation, truth=truth,
                       group=f"image:{image}", category="Projective")

    examples = [ex(0, "The cat is left of the dog.", "left of"), ex(1, "The dog is right of the cat.", "right of",
                                                                    split="test", image="b"),
                ex(2, "cat left of dog", "left of"), ex(3, "The cat is near the dog.", "near"),
                ex(4, "The cat is left of the dog.", "left of", truth=False),
                ex(5, "The cat is left of the dog.", "left of", split="test", image="c"),
                ex(6, "The dog is right of the cat.", "right of", split="test")]
    task = get_task("vsr-converse-transfer")
    items = task.items(examples)
    assert items.ids == ["vsr/x/0", "vsr/x/1"]
    reasons = task.skip_reasons(examples)
    assert sum(reasons.values()) == len(examples) - 2
    assert reasons["false caption (its words contradict the scene)"] == 1
    assert reasons["relation 'near' is in no converse-transfer family"] == 1
    assert reasons["on neither side of the converse-transfer split"] == 1
    assert reasons["test caption of an image/scene with a training caption"] == 1
    assert any(r.startswith("caption is not") for r in reasons)
