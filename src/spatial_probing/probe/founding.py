"""The founding study's probing protocol, exactly, and the corrected protocol on the same data.

The founding study (a student project asking whether CLIP's text embeddings encode spatial relations
better than SBERT's) probed VSR like this, and :func:`founding_study_table` reproduces it with
scikit-learn itself so its numbers come out bit for bit:

* VSR random split, training captions only (7,680); the encoder's sentence embedding, L2-normalised;
* for every relation with ≥ 50 training captions, a binary one-vs-rest
  ``LogisticRegression(C=1.0, max_iter=1000, random_state=42, solver="lbfgs")`` (this relation's
  captions against all other captions);
* ``StratifiedKFold(n_splits=5, shuffle=True, random_state=42)``; per relation the mean over folds of
  accuracy, macro-F1, weighted F1, macro precision and macro recall;
* the model's score: the mean macro-F1 over the retained relations (:func:`summarize_scores`).

Why it needs correcting: a relation holds 0.7–11 % of the captions, so an unregularised-scale,
unstandardised probe on unit-norm vectors with C = 1 can predict "not this relation" for every
caption; its macro-F1 is then ``0.5 × F1`` of the majority class (≈ 0.50), whatever the encoder.
:func:`corrected_table` keeps the data and relations and changes the protocol: standardised
features, C chosen by inner cross-validation (macro-F1) on training rows only, folds grouped by caption
text (VSR repeats 5,976 of its 7,680 training captions' texts, so the founding folds test on seen texts),
every relation's score beside its all-negative baseline with a bootstrap interval, and a
``degenerate`` flag. :func:`compare_across_relations` is the paired test between two encoders.

Column names: ``n_samples`` is the relation's number of captions (the probe's positive class);
``n_positive``/``n_negative`` keep the founding study's names but count the VSR *truth label*
of those captions (caption true / false for its image), not the probe's classes; ``n_total`` is every
training caption (the probe's rows).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

__all__ = [
    "FOUNDING_LOGREG", "FOUNDING_METRICS", "MIN_CAPTIONS", "all_negative_macro_f1", "caption_key",
    "compare_across_relations",
    "corrected_table", "fold_metrics", "founding_study_table", "l2_normalize", "retained_relations",
    "summarize_scores",
]

#: The founding study's classifier, exactly.
FOUNDING_LOGREG: dict[str, Any] = {"C": 1.0, "max_iter": 1000, "random_state": 42, "solver": "lbfgs"}
#: Per-fold metrics, averaged over folds (column names).
FOUNDING_METRICS = ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall")
#: A relation is probed when it has at least this many training captions.
MIN_CAPTIONS = 50
#: The founding study's outer folds.
FOUNDING_FOLDS = {"n_splits": 5, "shuffle": True, "random_state": 42}

SUMMARY_COLUMNS = ["mean", "std", "median", "min", "max", "n_relations"]


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm with scikit-learn's ``normalize`` (as the founding study did)."""
    from sklearn.preprocessing import normalize

    return normalize(np.asarray(X), norm="l2")


def retained_relations(relations: Sequence[str], min_count: int = MIN_CAPTIONS) -> list[str]:
    """Relations with at least ``min_count`` captions, most frequent first (ties by name)."""
    counts = Counter(relations)
    return sorted((r for r, c in counts.items() if c >= min_count), key=lambda r: (-counts[r], r))


def fold_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """The founding study's five metrics of one fold (scikit-learn's definitions; 0/0 precision counts 0)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
            "macro_precision": float(precision_score(y_true, y_pred, average="macro", zero_division=0)),
            "macro_recall": float(recall_score(y_true, y_pred, average="macro", zero_division=0))}


def all_negative_macro_f1(y_true: np.ndarray) -> float:
    """Macro-F1 of predicting the negative class (0) for every item: ``0.5 × F1`` of the negative class.

    sklearn averages over the labels present in ``y_true ∪ y_pred``; with both classes in ``y_true``
    the positive class scores F1 = 0, so the macro average is half the negative class's F1
    ``2·n_neg / (2·n_neg + n_pos)``. This is the floor a degenerate one-vs-rest probe sits on.
    """
    y = np.asarray(y_true)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0:
        return 1.0
    return 0.5 * (2 * n_neg / (2 * n_neg + n_pos))


def _truth_counts(relations: np.ndarray, truth: np.ndarray | None, relation: str) -> dict[str, int]:
    mask = relations == relation
    out = {"n_samples": int(mask.sum())}
    if truth is not None:
        out["n_positive"] = int(np.sum(truth[mask] == 1))
        out["n_negative"] = int(np.sum(truth[mask] == 0))
    return {**out, "n_total": int(relations.size)}


def caption_key(text: str) -> str:
    """A caption's text up to case, spacing and the final full stop: identical captions share a key."""
    return " ".join(text.lower().split()).rstrip(".").strip()


def founding_study_table(X: np.ndarray, relations: Sequence[str], truth: Sequence[int] | None = None, *,
                         texts: Sequence[str] | None = None, min_count: int = MIN_CAPTIONS, normalize: bool = True,
                         show_progress: bool = True) -> pd.DataFrame:
    """One row per retained relation: the founding study's one-vs-rest probe, metrics averaged over 5 folds.

    Args:
        X: sentence embeddings ``(n, d)`` of the training captions (L2-normalised here when ``normalize``).
        relations: each caption's relation.
        truth: each caption's VSR label (1 = true for its image), counted into ``n_positive``/``n_negative``.
        min_count: relations with fewer captions are not probed.

    Besides the founding study's columns, ``n_folds_all_negative`` counts folds where the probe
    predicted no caption as this relation and ``all_negative_macro_f1`` is that predictor's macro-F1
    (mean over the same folds); ``degenerate`` is true when every fold was all-negative. With ``texts``,
    ``test_text_seen`` is the mean share of a fold's test captions whose text (:func:`caption_key`) is also a
    training caption of that fold: VSR repeats caption texts across images, so the founding folds leak.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    X = l2_normalize(X) if normalize else np.asarray(X)
    rel = np.asarray(relations, dtype=object)
    tru = None if truth is None else np.asarray(truth)
    if X.shape[0] != rel.size or (tru is not None and tru.size != rel.size):
        raise ValueError(f"founding_study_table: {X.shape[0]} embeddings, {rel.size} relations"
                         f"{'' if tru is None else f', {tru.size} truth labels'}; they must match one to one")
    keys = None if texts is None else np.asarray([caption_key(t) for t in texts], dtype=object)
    kept = retained_relations(rel.tolist(), min_count)
    if not kept:
        raise ValueError(f"founding_study_table: no relation has ≥ {min_count} captions (of {rel.size})")
    rows = []
    for relation in tqdm(kept, desc="founding-study probes", disable=not show_progress):
        y = (rel == relation).astype(int)
        folds = StratifiedKFold(**FOUNDING_FOLDS).split(X, y)
        per_fold, n_all_negative, floor, seen = [], 0, [], []
        for train, test in folds:
            if keys is not None:
                seen.append(float(np.isin(keys[test], keys[train]).mean()))
            clf = LogisticRegression(**FOUNDING_LOGREG).fit(X[train], y[train])
            pred = clf.predict(X[test])
            per_fold.append(fold_metrics(y[test], pred))
            n_all_negative += int(not pred.any())
            floor.append(all_negative_macro_f1(y[test]))
        means = {m: float(np.mean([f[m] for f in per_fold])) for m in FOUNDING_METRICS}
        rows.append({"relation": relation, **_truth_counts(rel, tru, relation), **means,
                     "all_negative_macro_f1": float(np.mean(floor)), "n_folds": len(per_fold),
                     "n_folds_all_negative": n_all_negative, "degenerate": n_all_negative == len(per_fold),
                     **({"test_text_seen": float(np.mean(seen))} if seen else {})})
    return pd.DataFrame(rows)


def summarize_scores(table: pd.DataFrame, column: str = "macro_f1") -> dict[str, float]:
    """The founding study's summary of a per-relation table: mean, std (pandas', ddof = 1), median, min, max, n."""
    x = table[column].astype(float)
    return {"mean": float(x.mean()), "std": float(x.std()), "median": float(x.median()), "min": float(x.min()),
            "max": float(x.max()), "n_relations": int(x.size)}


# ---------------------------------------------------------------------------------------- corrected protocol

def _outer_folds(relations: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold id per caption: stratified by relation, grouped (a group's captions share a fold)."""
    from sklearn.model_selection import StratifiedGroupKFold

    fold = np.empty(relations.size, dtype=int)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for f, (_, test) in enumerate(cv.split(np.zeros(relations.size), relations, groups)):
            fold[test] = f
    return fold


def _binary_macro_f1(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """sklearn's binary macro-F1 along the last axis of 0/1 arrays (vectorised over leading axes)."""
    out = []
    for c in (0, 1):
        t, p = y == c, pred == c
        tp = (t & p).sum(-1)
        denom = t.sum(-1) + p.sum(-1)
        out.append((np.divide(2 * tp, denom, out=np.zeros(denom.shape), where=denom > 0), denom > 0))
    (f0, h0), (f1, h1) = out
    return (f0 * h0 + f1 * h1) / np.maximum(h0.astype(int) + h1.astype(int), 1)


def _fit_fold(X: np.ndarray, Y: np.ndarray, train: np.ndarray, test: np.ndarray, groups: np.ndarray, *,
              Cs: Sequence[float], inner_folds: int, max_iter: int, seed: int, device: str
              ) -> tuple[np.ndarray, np.ndarray]:
    """Test predictions ``(R, n_test)`` and chosen C ``(R,)`` of every relation's probe on one outer fold.

    All relations × Cs × (inner folds + refit) are fitted as one batched problem set on the
    standardised training rows; C maximises the mean inner-validation macro-F1.
    """
    from spatial_probing.probe.batched import fit_softmax_batched, predict_log_proba_batched, standardize
    from spatial_probing.probe.splits import inner_fold_masks

    R, nC, K = Y.shape[0], len(Cs), inner_folds if len(Cs) > 1 else 0  # one C: nothing to choose
    Xtr, Xte = standardize(X[train], X[test])
    Ytr = Y[:, train]
    inner = [inner_fold_masks(Ytr[r], groups[train], n_folds=K, seed=seed) if K else None for r in range(R)]
    masks = np.ones((R, nC, K + 1, train.size), dtype=np.float32)
    for r in range(R if K else 0):
        masks[r, :, :K] = inner[r][None]
    labels = np.broadcast_to(Ytr[:, None, None, :], masks.shape)
    C = np.broadcast_to(np.asarray(Cs, dtype=np.float64)[None, :, None], masks.shape[:3])
    W, b = fit_softmax_batched(Xtr[None], labels.reshape(1, -1, train.size), n_classes=2, C=C.reshape(1, -1),
                               weights=masks.reshape(1, -1, train.size), max_iter=max_iter, device=device)
    W, b = W.reshape(R, nC, K + 1, *W.shape[2:]), b.reshape(R, nC, K + 1, -1)
    scores = np.zeros((R, nC))
    if K:
        pred_tr = predict_log_proba_batched(Xtr[None], W[:, :, :K].reshape(1, -1, *W.shape[3:]),
                                            b[:, :, :K].reshape(1, -1, 2), device=device).argmax(-1)
        pred_tr = pred_tr.reshape(R, nC, K, train.size)
    for r in range(R if K else 0):
        for k in range(K):
            val = ~inner[r][k]
            scores[r] += _binary_macro_f1(Ytr[r, val][None], pred_tr[r, :, k][:, val]) / K
    best = scores.argmax(1)  # first (smallest) C on ties: the strongest regularisation
    Wb = W[np.arange(R), best, K]
    bb = b[np.arange(R), best, K]
    pred_te = predict_log_proba_batched(Xte[None], Wb[None], bb[None], device=device)[0].argmax(-1)
    return pred_te, np.asarray(Cs, dtype=float)[best]


def corrected_table(X: np.ndarray, relations: Sequence[str], groups: Sequence[str], *,
                    kept: Sequence[str], truth: Sequence[int] | None = None,
                    X_test: np.ndarray | None = None, relations_test: Sequence[str] | None = None,
                    Cs: Sequence[float] = (0.001, 0.01, 0.1, 1.0), inner_folds: int = 3, n_folds: int = 5,
                    max_iter: int = 100, n_boot: int = 1000, seed: int = 0, device: str = "auto",
                    show_progress: bool = True) -> pd.DataFrame:
    """The corrected probe for the relations ``kept``: one row per relation.

    Standardised features (training rows' statistics), C chosen per relation and fold by inner CV on
    macro-F1 (grouped by ``groups``), one-vs-rest logistic regression fitted with the toolkit's batched
    engine. Without ``X_test``: ``n_folds`` outer folds stratified by relation and grouped by ``groups``
    (the caption text, :func:`caption_key`: VSR repeats a caption's text across images, and a text probe
    must not meet its test caption in training); with ``X_test`` (the concept-disjoint split): trained on
    all of ``X`` and tested once on it.

    Columns: ``macro_f1`` (pooled test predictions) with a percentile-bootstrap ``ci_low``/``ci_high``,
    ``macro_f1_fold_mean`` (mean over folds, the founding study's averaging), ``accuracy``,
    ``all_negative_macro_f1`` (the all-negative predictor on the same items), ``gain`` (difference),
    ``predicted_positive`` (share of test captions predicted as this relation), ``degenerate``
    (no test caption predicted positive: then ``macro_f1 == all_negative_macro_f1``), ``C`` (median chosen).
    """
    from spatial_probing.probe.stats import bootstrap_metric

    X = np.asarray(X, dtype=np.float32)
    rel = np.asarray(relations, dtype=object)
    grp = np.asarray(groups, dtype=object)
    kept = list(kept)
    Y = np.stack([(rel == r).astype(np.int64) for r in kept])
    if X_test is None:
        fold = _outer_folds(rel, grp, n_folds, seed)
        splits = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(n_folds)]
        Xall, Yall = X, Y
    else:
        rel_te = np.asarray(relations_test, dtype=object)
        Xall = np.concatenate([X, np.asarray(X_test, dtype=np.float32)])
        Yall = np.concatenate([Y, np.stack([(rel_te == r).astype(np.int64) for r in kept])], axis=1)
        grp = np.concatenate([grp, np.array([f"test:{i}" for i in range(rel_te.size)], dtype=object)])
        splits = [(np.arange(rel.size), np.arange(rel.size, rel.size + rel_te.size))]
    preds, truths, chosen, fold_f1 = [], [], [], []
    for train, test in tqdm(splits, desc="corrected probes", disable=not show_progress):
        pred, C = _fit_fold(Xall, Yall, train, test, grp, Cs=Cs, inner_folds=inner_folds, max_iter=max_iter,
                            seed=seed, device=device)
        preds.append(pred)
        truths.append(Yall[:, test])
        chosen.append(C)
        fold_f1.append(_binary_macro_f1(Yall[:, test], pred))
    pred, y = np.concatenate(preds, axis=1), np.concatenate(truths, axis=1)
    tru = None if truth is None else np.asarray(truth)
    rows = []
    for i, relation in enumerate(kept):
        f1, lo, hi = bootstrap_metric("macro_f1", y[i], pred[i], n_boot=n_boot, seed=seed)
        floor = all_negative_macro_f1(y[i])
        rows.append({"relation": relation, **_truth_counts(rel, tru, relation), "n_test": int(y.shape[1]),
                     "n_test_positive": int(y[i].sum()), "macro_f1": f1, "ci_low": lo, "ci_high": hi,
                     "macro_f1_fold_mean": float(np.mean([f[i] for f in fold_f1])),
                     "accuracy": float(np.mean(y[i] == pred[i])), "all_negative_macro_f1": floor,
                     "gain": f1 - floor, "predicted_positive": float(pred[i].mean()),
                     "degenerate": not pred[i].any(), "C": float(np.median([c[i] for c in chosen]))})
    return pd.DataFrame(rows)


def compare_across_relations(scores_a: Sequence[float], scores_b: Sequence[float], *, n_boot: int = 10000,
                             n_permutations: int = 10000, seed: int = 0) -> dict[str, float]:
    """Paired comparison of two encoders' per-relation scores (relations are the units).

    Returns the mean difference ``a − b`` with a percentile-bootstrap interval over relations, the
    Wilcoxon signed-rank p-value (scipy, two-sided; 1.0 when every difference is 0), the paired
    sign-flip permutation p-value, how many relations favour a, and ``n_relations``.
    """
    from scipy.stats import wilcoxon

    from spatial_probing.probe.stats import bootstrap_mean, paired_permutation

    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"compare_across_relations: expected two 1-D score arrays of equal length ≥ 2, "
                         f"got shapes {a.shape} and {b.shape}")
    d = a - b
    mean, lo, hi = bootstrap_mean(d, n_boot=n_boot, seed=seed)
    p_w = 1.0 if not np.any(d != 0) else float(wilcoxon(a, b).pvalue)
    return {"diff": mean, "ci_low": lo, "ci_high": hi, "wilcoxon_p": p_w,
            "permutation_p": paired_permutation(a, b, n_permutations=n_permutations, seed=seed),
            "n_a_better": int((d > 0).sum()), "n_b_better": int((d < 0).sum()), "n_relations": int(a.size)}
