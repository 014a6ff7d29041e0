"""scikit-learn compatible probes: what a user fits by hand, and the reference for the batched engine.

Both standardise features with statistics of the training rows only. :class:`LinearProbe`
chooses its L2 strength by inner cross-validation on the training data it is given (grouped
when ``groups`` is passed, so an image or story never sits on both sides of an inner split).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

#: Default grid of inverse L2 strengths searched by inner cross-validation.
DEFAULT_CS = (0.001, 0.01, 0.1, 1.0)


def check_probe_inputs(X: np.ndarray, y: Sequence, *, n_folds: int | None = None, where: str = "probe") -> None:
    """Clear errors for the inputs a probe cannot learn from (shape, NaN, one class, too few items)."""
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"{where}: expected a 2-D feature matrix (n_items, dim), got shape {X.shape}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{where}: {X.shape[0]} embeddings but {y.shape[0]} labels; they must match one to one")
    if not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(f"{where}: embeddings contain NaN or infinite values (first at row {bad})")
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise ValueError(f"{where}: the training labels hold a single class ({classes.tolist()}); a probe needs ≥ 2")
    if n_folds is not None and counts.max() < n_folds:
        raise ValueError(f"{where}: too few examples for {n_folds}-fold inner cross-validation "
                         f"(largest class has {counts.max()} items); use fewer folds or more data")


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression on standardised features, C chosen by inner CV on train only.

    Args:
        Cs: inverse L2 strengths searched.
        n_folds: inner cross-validation folds (stratified, and grouped when ``fit`` gets ``groups``).
        max_iter: L-BFGS iterations.
        random_state: seed of the inner fold assignment.
    """

    def __init__(self, *, Cs: Sequence[float] = DEFAULT_CS, n_folds: int = 3, max_iter: int = 1000,
                 random_state: int | None = 0) -> None:
        self.Cs = Cs
        self.n_folds = n_folds
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: Sequence, groups: Sequence | None = None) -> LinearProbe:
        check_probe_inputs(X, y, n_folds=self.n_folds if len(self.Cs) > 1 else None, where="LinearProbe")
        pipe = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(max_iter=self.max_iter))])
        if len(self.Cs) == 1:
            self.pipeline_ = pipe.set_params(lr__C=float(self.Cs[0])).fit(X, y)
            self.C_ = float(self.Cs[0])
        else:
            cv = (StratifiedGroupKFold(self.n_folds, shuffle=True, random_state=self.random_state) if groups is not None
                  else StratifiedKFold(self.n_folds, shuffle=True, random_state=self.random_state))
            search = GridSearchCV(pipe, {"lr__C": list(self.Cs)}, cv=cv, scoring="accuracy", refit=True)
            search.fit(X, y, groups=groups)
            self.pipeline_ = search.best_estimator_
            self.C_ = float(search.best_params_["lr__C"])
            self.cv_results_ = search.cv_results_
        self.classes_ = self.pipeline_.classes_
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict_proba(X)


class MLPProbe(ClassifierMixin, BaseEstimator):
    """One-hidden-layer MLP probe (ReLU, Adam) on standardised features.

    Args:
        hidden_size: width of the hidden layer.
        weight_decay: L2 penalty (sklearn's ``alpha``).
        max_iter: training epochs.
        early_stopping: hold out 10% of the training rows to stop early.
        random_state: seed of the initialisation and the mini-batch order.
    """

    def __init__(self, *, hidden_size: int = 256, weight_decay: float = 1e-3, max_iter: int = 200,
                 early_stopping: bool = True, random_state: int | None = 0) -> None:
        self.hidden_size = hidden_size
        self.weight_decay = weight_decay
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: Sequence, groups: Sequence | None = None) -> MLPProbe:
        check_probe_inputs(X, y, where="MLPProbe")
        del groups  # accepted for a uniform probe interface; the MLP has no inner CV
        y = np.asarray(y)
        early = self.early_stopping and len(y) >= 50 and np.unique(y, return_counts=True)[1].min() >= 2
        self.pipeline_ = make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(self.hidden_size,), alpha=self.weight_decay, max_iter=self.max_iter,
            early_stopping=early, random_state=self.random_state)).fit(X, y)
        self.classes_ = self.pipeline_.classes_
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict_proba(X)
