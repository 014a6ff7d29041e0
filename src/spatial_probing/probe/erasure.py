"""Causal test with LEACE: erase the subspace that encodes one target, re-measure the others.

A probe that reads a target from an embedding shows the information is *there*, not that anything
*uses* it. Erasure asks the converse question for the representation itself: if the linear subspace
that encodes spatial target S (fitted on S's training split) is removed, which other targets T lose
accuracy? LEACE (Belrose et al., NeurIPS 2023; ``concept-erasure`` on PyPI) gives the least-squares
affine edit after which no linear classifier recovers S. Its control is an edit of the same form and
rank in a *random* direction: LEACE is ``x − W⁺ U Uᵀ W (x − μ)`` with ``W`` the whitening matrix and ``U``
the ``r`` directions of the whitened cross-covariance with S; the control replaces ``U`` by a random
orthonormal ``r``-frame (Haar), so it removes as much whitened variance, only not S's.

:func:`fit_erasure` fits both; :func:`erasure_table` probes every target on original, LEACE-erased and
random-erased embeddings with the same train/test split and reports per-item paired drops with
bootstrap intervals. Targets are :class:`ProbeTarget` values; :func:`task_target` builds one from any
registered probe task by name, so new tasks (converse transfer, SugarCrepe sensitivity, …) plug in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ERASURE_COLUMNS", "ErasureFit", "ErasureSettings", "ProbeTarget", "erasure_table", "fit_erasure",
           "run_erasure", "task_target"]

ERASURE_COLUMNS = ["source", "target", "encoder", "layer", "condition", "rank", "accuracy", "ci_low", "ci_high",
                   "drop", "drop_ci_low", "drop_ci_high", "chance", "n_train", "n_test"]


def _identity(x: np.ndarray) -> np.ndarray:
    return x


@dataclass
class ProbeTarget:
    """A target measured on (possibly erased) embeddings.

    ``emb`` are the ``(n_examples, d)`` embeddings the encoder produced; ``features(emb)`` turns them into
    the ``(n_items, d')`` probe features (identity for single texts, a pair difference for minimal pairs);
    ``labels`` are per item and ``train``/``test`` index items.
    """

    name: str
    emb: np.ndarray
    labels: np.ndarray
    train: np.ndarray
    test: np.ndarray
    features: Callable[[np.ndarray], np.ndarray] = _identity
    groups: Sequence[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ErasureFit:
    """The LEACE eraser of a source target and ``n_random`` control erasers of the same form and rank."""

    source: str
    rank: int
    leace: Any
    random: list[Any]

    def apply(self, eraser: Any, emb: np.ndarray) -> np.ndarray:
        """``emb`` with ``eraser`` applied (float64 arithmetic, float32 result)."""
        import torch

        with torch.no_grad():
            return eraser(torch.from_numpy(np.array(emb, dtype=np.float64))).numpy().astype(np.float32)


def fit_erasure(X: np.ndarray, labels: Sequence, *, source: str = "source", n_random: int = 5,
                seed: int = 0) -> ErasureFit:
    """LEACE for the classes ``labels`` of rows ``X`` (one-hot concept) and random erasers of the same rank."""
    import torch
    from concept_erasure import LeaceEraser, LeaceFitter

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(labels, dtype=object)
    if X.ndim != 2 or X.shape[0] != y.size:
        raise ValueError(f"fit_erasure: expected X (n, d) and n labels, got {X.shape} and {y.size}")
    classes = sorted(set(y.tolist()), key=str)
    if len(classes) < 2:
        raise ValueError(f"fit_erasure: source {source!r} has a single class {classes}; nothing to erase")
    z = torch.as_tensor(np.stack([y == c for c in classes], axis=1).astype(np.float64))
    fitter = LeaceFitter.fit(torch.as_tensor(X), z, constrain_cov_trace=False)
    leace = fitter.eraser
    rank = int(torch.linalg.matrix_rank(leace.proj_left).item())
    L, V = torch.linalg.eigh(fitter.sigma_xx)
    keep = L > (L[-1] * L.shape[-1] * torch.finfo(L.dtype).eps)
    L = L.clamp_min(0.0)
    W = V * torch.where(keep, L.rsqrt(), 0.0) @ V.mH
    W_inv = V * torch.where(keep, L.sqrt(), 0.0) @ V.mH
    gen = torch.Generator().manual_seed(seed)
    randoms = []
    for _ in range(n_random):
        Q, _ = torch.linalg.qr(torch.randn(X.shape[1], rank, generator=gen, dtype=torch.float64))
        randoms.append(LeaceEraser(W_inv @ Q, Q.mH @ W, bias=fitter.mean_x))
    return ErasureFit(source=source, rank=rank, leace=leace, random=randoms)


def _correct(target: ProbeTarget, emb: np.ndarray, *, Cs: Sequence[float], inner_folds: int) -> np.ndarray:
    """Per-test-item correctness of the toolkit's linear probe (standardised, C by inner CV) on ``emb``."""
    from spatial_probing.probe.estimators import LinearProbe

    X = target.features(emb)
    y = np.asarray(target.labels, dtype=object).astype(str)
    groups = None if target.groups is None else np.asarray(target.groups, dtype=object)[target.train]
    probe = LinearProbe(Cs=tuple(Cs), n_folds=inner_folds).fit(X[target.train], y[target.train], groups=groups)
    return probe.predict(X[target.test]) == y[target.test]


def erasure_table(fit: ErasureFit, targets: Sequence[ProbeTarget], *, encoder: str = "", layer: str = "",
                  Cs: Sequence[float] = (0.01, 0.1, 1.0), inner_folds: int = 3, n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """Accuracy of every target on original, LEACE-erased and random-erased embeddings, with paired drops.

    ``drop`` is accuracy(original) − accuracy(erased) on the same test items, its interval a percentile
    bootstrap of the per-item differences; the random condition averages per-item correctness over the
    ``fit.random`` erasers. ``chance`` is the majority class's share of the test items.
    """
    from spatial_probing.probe.stats import bootstrap_mean

    rows = []
    for target in targets:
        y_test = np.asarray(target.labels, dtype=object)[target.test].astype(str)
        chance = float(pd.Series(y_test).value_counts(normalize=True).iloc[0])
        base = _correct(target, target.emb, Cs=Cs, inner_folds=inner_folds).astype(float)
        conditions = {"original": base,
                      "leace": _correct(target, fit.apply(fit.leace, target.emb), Cs=Cs,
                                        inner_folds=inner_folds).astype(float),
                      "random": np.mean([_correct(target, fit.apply(e, target.emb), Cs=Cs, inner_folds=inner_folds)
                                         for e in fit.random], axis=0)}
        for condition, correct in conditions.items():
            acc, lo, hi = bootstrap_mean(correct, n_boot=n_boot, seed=seed)
            drop = (np.nan, np.nan, np.nan) if condition == "original" else \
                bootstrap_mean(base - correct, n_boot=n_boot, seed=seed)
            rows.append({"source": fit.source, "target": target.name, "encoder": encoder, "layer": layer,
                         "condition": condition, "rank": fit.rank if condition != "original" else 0,
                         "accuracy": acc, "ci_low": lo, "ci_high": hi, "drop": drop[0], "drop_ci_low": drop[1],
                         "drop_ci_high": drop[2], "chance": chance, "n_train": int(target.train.size),
                         "n_test": int(target.test.size)})
    return pd.DataFrame(rows, columns=ERASURE_COLUMNS)


# ---------------------------------------------------------------------------------------- run step

class ErasureSettings(BaseModel):
    """The erasure step of a run: erase ``source``'s subspace at ``layer`` of each encoder, re-measure ``targets``.

    Attributes:
        source: the probe task whose linear subspace is erased (fitted on its training items).
        targets: probe tasks re-measured (any registered task name; the source itself is always measured).
        encoders: encoders to test (default: the run's encoders that are not lexical-floor controls).
        layer: the layer erased and probed.
        n_random: random same-rank erasers in the control.
        max_train, max_test: caps on each task's examples (whole groups, seeded), to bound CPU time.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    targets: list[str] = Field(default_factory=list)
    encoders: list[str] | None = None
    layer: str = "final"
    n_random: int = Field(default=3, ge=1)
    Cs: list[float] = Field(default=[0.01, 0.1, 1.0], min_length=1)
    inner_folds: int = Field(default=3, ge=2)
    n_boot: int = Field(default=1000, ge=100)
    seed: int = 0
    max_train: int | None = Field(default=2000, ge=2)
    max_test: int | None = Field(default=1000, ge=1)

    @field_validator("source", "targets")
    @classmethod
    def _known_tasks(cls, value: str | list[str]) -> str | list[str]:
        from spatial_probing.probe.tasks import TASKS

        unknown = [t for t in ([value] if isinstance(value, str) else value) if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; expected registered probe tasks, e.g. {sorted(TASKS)}")
        return value


def task_target(task: str, encoder: Any, *, layer: str, data_dir: str | Path | None = None,
                cache_dir: str | Path | None = None, max_train: int | None = None, max_test: int | None = None,
                seed: int = 0, load_kwargs: dict[str, Any] | None = None, show_progress: bool = True) -> ProbeTarget:
    """A registered probe task as a :class:`ProbeTarget` of ``encoder`` at ``layer`` (its first outer fold)."""
    from spatial_probing.embed import embed_examples
    from spatial_probing.probe.runner import task_examples
    from spatial_probing.probe.splits import outer_folds
    from spatial_probing.probe.tasks import get_task

    t = get_task(task)
    examples = task_examples(task, data_dir=data_dir, load_kwargs=load_kwargs, max_train=max_train,
                             max_test=max_test, seed=seed)
    items = t.items(examples)
    fold = outer_folds(t.spec.split, items.splits, items.concepts, seed=seed, train_splits=t.spec.train_splits,
                       test_splits=t.spec.test_splits)[0]
    emb = embed_examples(items.examples, encoder, layers=[layer], cache_dir=cache_dir,
                         show_progress=show_progress)[layer]
    return ProbeTarget(name=task, emb=np.asarray(emb, dtype=np.float32), labels=items.labels, train=fold.train,
                       test=fold.test, features=items.features, groups=items.groups)


def run_erasure(settings: ErasureSettings, encoders: Sequence[str], out_dir: str | Path, *,
                data_dir: str | Path | None = None, model_paths: dict[str, Path] | None = None,
                cache_dir: str | Path | None = None, task_options: dict[str, dict[str, Any]] | None = None,
                device: str = "auto", log=print, show_progress: bool = True) -> dict[str, Path]:
    """Fit the source's LEACE and random erasers per encoder, measure every target, write ``erasure.parquet``/``.csv``."""
    from spatial_probing.embed import is_lexical_floor, load_encoder
    from spatial_probing.probe.replicate import write_table

    names = settings.encoders if settings.encoders is not None else [e for e in encoders if not is_lexical_floor(e)]
    opts = task_options or {}
    tables = []
    for name in names:
        encoder = load_encoder(name, model_path=(model_paths or {}).get(name), device=device)
        common = {"layer": settings.layer, "data_dir": data_dir, "cache_dir": cache_dir, "seed": settings.seed,
                  "max_train": settings.max_train, "max_test": settings.max_test, "show_progress": show_progress}
        src = task_target(settings.source, encoder, load_kwargs=opts.get(settings.source), **common)
        fit = fit_erasure(src.features(src.emb)[src.train], np.asarray(src.labels)[src.train],
                          source=settings.source, n_random=settings.n_random, seed=settings.seed)
        log(f"erasure × {name}: {settings.source} subspace of rank {fit.rank} at layer {settings.layer}")
        targets = [src] + [task_target(t, encoder, load_kwargs=opts.get(t), **common)
                           for t in settings.targets if t != settings.source]
        tables.append(erasure_table(fit, targets, encoder=name, layer=settings.layer, Cs=settings.Cs,
                                    inner_folds=settings.inner_folds, n_boot=settings.n_boot, seed=settings.seed))
    df = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=ERASURE_COLUMNS)
    return {"erasure": write_table(df, Path(out_dir) / "erasure")["parquet"]}
