"""Baselines and control tasks computed alongside every probe result.

Control task (Hewitt and Liang, 2019): every *type* gets a random but fixed label, so a probe can
only score on it by memorising types. For sentence-level tasks the type is a lexical key the task
declares — for VSR and StepGame the (subject, object) pair, for synthetic argument order the
ordered object pair, for SpartQA the story — and its control label is drawn from the task's
training label distribution by a hash of ``(seed, type)``: the same type always gets the same
label within a seed, in train and test alike. Selectivity = task accuracy − control accuracy, on the test
items whose type occurs in training (a probe can only memorise types it saw); when fewer than
:data:`MIN_CONTROL_OVERLAP` of the test items have a seen type, selectivity is not interpretable.

Baselines: the training majority label, the test set's own majority rate, and caption memorisation
(:func:`memorisation_predictions`: the label an identical training caption had).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

import numpy as np


def _unit_hash(seed: int, key: str) -> float:
    """A deterministic number in [0, 1) from ``(seed, key)``, independent of item order and platform."""
    return int(hashlib.sha256(f"{seed}\x1f{key}".encode()).hexdigest()[:13], 16) / float(1 << 52)


def control_labels(types: Sequence[str], train_labels: Sequence[str], *, seed: int) -> np.ndarray:
    """Control label of each item: a fixed random function of its type, matching the train label distribution."""
    counts = Counter(train_labels)
    if not counts:
        raise ValueError("control task: no training labels to draw the control distribution from")
    classes = sorted(counts)
    cdf = np.cumsum([counts[c] for c in classes], dtype=np.float64)
    cdf /= cdf[-1]
    cache: dict[str, str] = {}
    out = []
    for t in types:
        if t not in cache:
            cache[t] = classes[min(int(np.searchsorted(cdf, _unit_hash(seed, t), side="right")), len(classes) - 1)]
        out.append(cache[t])
    return np.asarray(out, dtype=object)


def majority_label(train_labels: Sequence[str]) -> str:
    """The most frequent training label (ties broken by label order, for determinism)."""
    counts = Counter(train_labels)
    return min(counts, key=lambda c: (-counts[c], c))


def chance_level(n_classes: int) -> float:
    """Uniform-guessing accuracy, 1 / #classes."""
    return 1.0 / n_classes


#: Below this share of test items whose control type occurs in training, selectivity is not interpretable:
#: the control is then mostly scored on types the probe never saw, where it can only guess.
MIN_CONTROL_OVERLAP = 0.5


def seen_in_training(train_types: Sequence[str], test_types: Sequence[str]) -> np.ndarray:
    """Per test item, whether its control type occurs among the training items' types."""
    seen = set(train_types)
    return np.array([t in seen for t in test_types], dtype=bool)


def memorisation_predictions(train_texts: Sequence[str], train_labels: Sequence[str],
                             test_texts: Sequence[str]) -> np.ndarray:
    """Caption-memorisation baseline: per test text, the majority training label of the identical training text
    (case and surrounding space ignored); a text never seen in training gets the overall training majority."""
    by_text: dict[str, list[str]] = {}
    for text, label in zip(train_texts, train_labels):
        by_text.setdefault(text.strip().lower(), []).append(label)
    fallback = majority_label(list(train_labels))
    table = {t: majority_label(labels) for t, labels in by_text.items()}
    return np.asarray([table.get(t.strip().lower(), fallback) for t in test_texts], dtype=object)
