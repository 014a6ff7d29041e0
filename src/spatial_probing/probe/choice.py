"""Caption-choice items and the blind "which caption is the true one" probe.

A caption-choice item is one image with K captions, one of them true (SugarCrepe and ARO: K = 2;
What'sUp: K = 4, or 2 for its COCO/GQA subsets). :func:`choice_items` gathers the options of each item
from :class:`~spatial_probing.data.Example` records (by ``pair_id``).

:func:`blind_choice_probe` asks whether the *text alone* tells the true caption from the negatives: a
linear scorer on each option's embedding minus the mean embedding of its item's options, trained to
score the true option highest (logistic loss on "is this option the true one", no intercept; the
prediction is the item's highest-scoring option). For K = 2 the two centred options are
``±(e(true) − e(false)) / 2``, so this is the probe on the difference with both orders present — the
symmetric form of the "random order flip" design, with no order shortcut. Folds are grouped by image, so
an image never straddles train and test. Its accuracy is a **text-plausibility baseline, not grounding**:
the negatives were written to be wrong about the image, and a text-only model can still prefer the
true caption because it reads as more plausible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spatial_probing.data.schema import Example


@dataclass(frozen=True)
class ChoiceItems:
    """Items with the same number K of options, as row indices into an example list.

    Attributes:
        ids: the item ids (``pair_id``).
        options: ``(n, K)`` rows of each item's options, in the dataset's option order.
        correct: ``(n,)`` position of the true option.
        clusters: ``(n,)`` the item's image (``Example.group``), the bootstrap and fold unit.
        categories: ``(n,)`` change type / subset (``Example.category``), "" when absent.
        relations: ``(n,)`` the relation the true option states (``Example.relation``), "" when absent.
    """

    ids: np.ndarray
    options: np.ndarray
    correct: np.ndarray
    clusters: np.ndarray
    categories: np.ndarray
    relations: np.ndarray

    @property
    def k(self) -> int:
        return int(self.options.shape[1])

    def __len__(self) -> int:
        return int(self.options.shape[0])

    def take(self, mask: np.ndarray) -> ChoiceItems:
        """The items where ``mask`` is true."""
        return ChoiceItems(*(getattr(self, f)[mask] for f in
                             ("ids", "options", "correct", "clusters", "categories", "relations")))


def choice_items(examples: Sequence[Example]) -> list[ChoiceItems]:
    """The caption-choice items in ``examples``, one :class:`ChoiceItems` per distinct option count K.

    Raises ValueError naming the item when an item has no ``pair_id``, no true option or several.
    """
    by_item: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        if e.pair_id is None or e.truth is None:
            raise ValueError(f"{e.id} ({e.origin}): a caption-choice example needs pair_id and truth")
        by_item.setdefault(e.pair_id, []).append(i)
    by_k: dict[int, list[tuple[str, list[int], int]]] = {}
    for item, rows in by_item.items():
        true = [j for j, r in enumerate(rows) if examples[r].truth]
        if len(true) != 1 or len(rows) < 2:
            raise ValueError(f"item {item!r}: expected ≥ 2 options with exactly one true, got {len(rows)} options, "
                             f"{len(true)} true ({examples[rows[0]].origin})")
        by_k.setdefault(len(rows), []).append((item, rows, true[0]))
    out = []
    for _, entries in sorted(by_k.items()):
        first = [examples[rows[c]] for _, rows, c in entries]
        out.append(ChoiceItems(
            ids=np.array([item for item, _, _ in entries], dtype=object),
            options=np.array([rows for _, rows, _ in entries], dtype=np.int64),
            correct=np.array([c for _, _, c in entries], dtype=np.int64),
            clusters=np.array([str(e.group or e.pair_id) for e in first], dtype=object),
            categories=np.array([e.category or "" for e in first], dtype=object),
            relations=np.array([e.relation or "" for e in first], dtype=object)))
    return out


def cluster_folds(clusters: Sequence, n_folds: int, seed: int) -> np.ndarray:
    """Fold number of each item: whole clusters assigned to ``n_folds`` folds in a seeded random order."""
    names, codes = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    if names.size < n_folds:
        raise ValueError(f"{n_folds}-fold cross-validation needs ≥ {n_folds} images (clusters), got {names.size}")
    order = np.random.default_rng(seed).permutation(names.size)
    fold_of = np.empty(names.size, dtype=np.int64)
    fold_of[order] = np.arange(names.size) % n_folds
    return fold_of[codes.ravel()]


def blind_choice_probe(x: np.ndarray, items: ChoiceItems, *, n_folds: int = 5, C: float = 1.0, seed: int = 0,
                       shuffle_labels: bool = False, max_iter: int = 1000) -> np.ndarray:
    """Out-of-fold correctness ``(n,)`` (ties earn 1/t, see :func:`argmax_credit`) of the text-only choice probe on embeddings ``x`` (rows of examples).

    ``shuffle_labels`` is the control: every item's true option is replaced by a random one (seeded), so
    nothing links text to label and the probe must sit at chance (1/K).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x, dtype=np.float64)
    n, k = items.options.shape
    feats = x[items.options]                                   # (n, K, d)
    feats = feats - feats.mean(axis=1, keepdims=True)
    correct = items.correct
    if shuffle_labels:
        correct = np.random.default_rng(seed + 1).integers(0, k, size=n)
    target = (np.arange(k)[None, :] == correct[:, None])       # (n, K)
    folds = cluster_folds(items.clusters, n_folds, seed)
    hit = np.zeros(n)
    for f in range(n_folds):
        train, test = folds != f, folds == f
        scaler = StandardScaler(with_mean=False).fit(feats[train].reshape(-1, x.shape[1]))
        model = LogisticRegression(C=C, fit_intercept=False, max_iter=max_iter)
        model.fit(scaler.transform(feats[train].reshape(-1, x.shape[1])), target[train].ravel())
        scores = model.decision_function(scaler.transform(feats[test].reshape(-1, x.shape[1]))).reshape(-1, k)
        hit[test] = argmax_credit(scores, correct[test])
    return hit


def argmax_credit(scores: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Expected correctness of picking the top-scoring option with random tie-breaking: 1/t when the true option
    is among t tied maxima, else 0 — so an encoder that cannot tell the options apart scores exactly chance."""
    scores = np.asarray(scores, dtype=np.float64)
    top = scores.max(axis=1, keepdims=True)
    tied = np.isclose(scores, top, rtol=1e-9, atol=1e-12)
    return tied[np.arange(scores.shape[0]), correct] / tied.sum(axis=1)
