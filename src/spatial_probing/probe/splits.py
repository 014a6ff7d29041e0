"""Train/test splits that mean what they say, and checks of what leaks across them.

Policies (by name):

* ``own`` — the dataset's own split (train → test).
* ``zeroshot`` — VSR's concept-disjoint zero-shot split (the task loads VSR's ``zeroshot`` files).
* ``concept-kfold`` — grouped k-fold by object concepts: concepts are hashed into k folds; in
  fold f an item is tested when both its subject and object concepts fall in f and trained on
  when neither does (mixed items are left out of that fold), so no concept is seen on both sides.
* ``heldout-wording`` — the task marks each item ``train`` or ``test`` by its wording (see
  :func:`wording_side`): test items use templates and paraphrases never seen in training, so a
  probe must generalise across wordings (synthetic geometry tasks).
* ``converse-transfer`` — the task marks items by which member of a converse pair phrases them
  (see :func:`converse_side`): train on "left of"/"above", test on "right of"/"below".

The last two are *task-defined*: only tasks built for them declare them, and :func:`outer_folds`
then trains on the items marked ``train`` and tests on those marked ``test``.

Inner cross-validation folds are stratified and grouped by ``Example.group`` (image, story,
scene), so an image or story never straddles an inner split either; tasks that declare
``inner_cv="concept"`` (VSR) group them by concept instead (:func:`inner_concept_masks`).
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from spatial_probing.data.schema import Example

SplitPolicy = Literal["own", "zeroshot", "concept-kfold", "heldout-wording", "converse-transfer"]
SPLIT_POLICIES: tuple[str, ...] = ("own", "zeroshot", "concept-kfold", "heldout-wording", "converse-transfer")
#: Policies whose train/test sides the task itself assigns to items.
TASK_DEFINED_POLICIES: tuple[str, ...] = ("heldout-wording", "converse-transfer")


@dataclass(frozen=True)
class Fold:
    """Indices (into a list of items) of one outer fold's training and test items."""

    train: np.ndarray
    test: np.ndarray


def _fold_of(key: str, seed: int, k: int) -> int:
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16) % k


def outer_folds(policy: str, splits: Sequence[str], concepts: Sequence[tuple[str, str]], *, n_folds: int = 5,
                seed: int = 0, train_splits: Sequence[str] = ("train",),
                test_splits: Sequence[str] = ("test",)) -> list[Fold]:
    """The outer train/test folds of ``policy`` for items with dataset ``splits`` and (subject, object) ``concepts``."""
    split_arr = np.asarray(splits, dtype=object)
    if policy in ("own", "zeroshot", *TASK_DEFINED_POLICIES):
        train = np.flatnonzero(np.isin(split_arr, list(train_splits)))
        test = np.flatnonzero(np.isin(split_arr, list(test_splits)))
        if train.size == 0 or test.size == 0:
            raise ValueError(f"split {policy!r}: found {train.size} items in {list(train_splits)} and {test.size} in "
                             f"{list(test_splits)}; both must be non-empty (dataset splits present: "
                             f"{sorted(set(splits))})")
        return [Fold(train, test)]
    if policy != "concept-kfold":
        raise ValueError(f"unknown split policy {policy!r}; expected one of {list(SPLIT_POLICIES)}")
    if n_folds < 2:
        raise ValueError(f"concept-kfold needs ≥ 2 folds, got {n_folds}")
    fa = np.array([_fold_of(a, seed, n_folds) for a, _ in concepts])
    fb = np.array([_fold_of(b, seed, n_folds) for _, b in concepts])
    folds = []
    for f in range(n_folds):
        test = np.flatnonzero((fa == f) & (fb == f))
        train = np.flatnonzero((fa != f) & (fb != f))
        if test.size and train.size:
            folds.append(Fold(train, test))
    if not folds:
        raise ValueError(f"concept-kfold: no fold has both training and test items ({len(concepts)} items, "
                         f"{n_folds} folds); use fewer folds or more data")
    return folds


def wording_side(template: int, phrase: int, *, heldout_templates: Sequence[int],
                 heldout_phrases: Sequence[int]) -> Literal["train", "test"] | None:
    """``test`` when both the template and the paraphrase are held out, ``train`` when neither is, else None.

    Mixed wordings are left out, so no test item shares its frame or its relation phrase with training.
    """
    t, p = template in heldout_templates, phrase in heldout_phrases
    if t and p:
        return "test"
    if not t and not p:
        return "train"
    return None


def converse_side(relation: str, dataset_split: str, *, train_relations: Sequence[str],
                  test_relations: Sequence[str], train_splits: Sequence[str] = ("train",),
                  test_splits: Sequence[str] = ("test",)) -> Literal["train", "test"] | None:
    """``train`` for a train-member relation in a training split, ``test`` for a test member in a test split.

    Everything else (the other member on either side, other relations, other splits) is left out, so the
    test items are phrased only with relations never seen in training, on scenes/images never seen either.
    """
    if relation in train_relations and dataset_split in train_splits:
        return "train"
    if relation in test_relations and dataset_split in test_splits:
        return "test"
    return None


def inner_fold_masks(y: Sequence, groups: Sequence, *, n_folds: int, seed: int) -> np.ndarray:
    """Training-row masks ``(n_folds, n)`` of stratified, grouped inner CV folds on the training items."""
    y = np.asarray(y)
    groups = np.asarray(groups, dtype=object)
    n_groups = len(set(groups.tolist()))
    if y.size < n_folds or n_groups < n_folds:
        raise ValueError(f"too few examples for {n_folds}-fold inner cross-validation: {y.size} training items in "
                         f"{n_groups} groups; need at least {n_folds} groups (use fewer folds or more data)")
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    masks = np.ones((n_folds, y.size), dtype=bool)
    with warnings.catch_warnings():  # rare classes with < n_folds members are expected (VSR has 66 relations)
        warnings.filterwarnings("ignore", message="The least populated class")
        for f, (_, val) in enumerate(cv.split(np.zeros(y.size), y, groups)):
            masks[f, val] = False
    return masks


def inner_concept_masks(concepts: Sequence[tuple[str, str]], *, n_folds: int,
                        seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row masks ``(n_folds, n)`` of inner CV folds grouped by concept.

    As ``concept-kfold`` does for the outer split: concepts are hashed into ``n_folds`` folds; in fold f an item
    is validated when both its concepts fall in f and trained on when neither does (mixed items sit out that
    fold), so no concept straddles an inner split — what a concept-disjoint (zero-shot) outer split needs to
    choose C for unseen concepts. (VSR's concepts form one connected graph, so no grouping of whole items can.)
    """
    fa = np.array([_fold_of(str(a), seed, n_folds) for a, _ in concepts])
    fb = np.array([_fold_of(str(b), seed, n_folds) for _, b in concepts])
    folds = np.arange(n_folds)[:, None]
    train, val = (fa != folds) & (fb != folds), (fa == folds) & (fb == folds)
    empty = [f for f in range(n_folds) if not train[f].any() or not val[f].any()]
    if empty:
        raise ValueError(f"concept-grouped inner cross-validation: fold(s) {empty} of {n_folds} have no training or "
                         f"no validation items ({len(concepts)} items, {len(set(fa.tolist() + fb.tolist()))} concept "
                         f"folds used); use fewer inner folds or more data")
    return train, val


_WORD = re.compile(r"[a-z0-9]+")


def overlap_report(train: Sequence[Example], test: Sequence[Example]) -> dict[str, float | int]:
    """What the test set shares with the training set: groups, images, exact texts, relation triples, concepts,
    words (counts and shares of test items)."""
    def triple(e: Example) -> tuple:
        return (e.subject, e.relation, e.object)

    train_groups = {e.group for e in train if e.group is not None}
    train_images = {e.image for e in train if e.image is not None}
    train_texts = {e.text.strip().lower() for e in train}
    with_image = [e for e in test if e.image is not None]
    n_same_text = sum(e.text.strip().lower() in train_texts for e in test)
    train_triples = {triple(e) for e in train if e.subject and e.object}
    train_concepts = {c for e in train for c in (e.subject, e.object) if c}
    train_vocab = {w for e in train for w in _WORD.findall(e.text.lower())}
    test_vocab = {w for e in test for w in _WORD.findall(e.text.lower())}
    with_args = [e for e in test if e.subject and e.object]
    n = max(len(test), 1)
    return {
        "n_train": len(train),
        "n_test": len(test),
        "test_groups_in_train": sum(e.group in train_groups for e in test if e.group is not None),
        "test_images_in_train": sum(e.image in train_images for e in with_image),
        "frac_test_images_in_train": (sum(e.image in train_images for e in with_image) / len(with_image)
                                      if with_image else float("nan")),
        "test_texts_in_train": n_same_text,
        "frac_test_texts_in_train": n_same_text / n,
        "frac_test_triples_in_train": (sum(triple(e) in train_triples for e in with_args) / len(with_args)
                                       if with_args else float("nan")),
        "frac_test_concepts_seen": (sum(e.subject in train_concepts and e.object in train_concepts
                                        for e in with_args) / len(with_args) if with_args else float("nan")),
        "frac_test_vocab_in_train": len(test_vocab & train_vocab) / max(len(test_vocab), 1),
    }
