"""The probing engine on arrays: features per layer, labels, groups → predictions per layer × seed.

The runner (:mod:`spatial_probing.probe.runner`) is a thin layer that turns tasks and encoders
into these arrays and the results into tables. For the linear probe every layer × seed ×
(task, control) × inner fold × C is fitted in one batched computation
(:mod:`spatial_probing.probe.batched`); C is chosen per layer and label set by the pooled inner-CV
accuracy on the training items only, then the probe is refitted on all of them. The task's labels are
the same for every seed, so its C is searched once; the control task's C is searched on the first
seed's mapping and reused for the other seeds' (``ProbeSettings.control_cv="first-seed"``, the default:
the mappings are i.i.d. draws of one relabelling, so they share a hyperparameter as task and control do
in Hewitt and Liang, 2019) or searched for every seed (``"every-seed"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm.auto import tqdm

from spatial_probing.device import resolve_device
from spatial_probing.probe.batched import covariance_basis, distinct_rows, fit_softmax_batched, standardize
from spatial_probing.probe.controls import control_labels
from spatial_probing.probe.estimators import DEFAULT_CS, MLPProbe, check_probe_inputs
from spatial_probing.probe.mdl import online_codelength
from spatial_probing.probe.splits import inner_concept_masks, inner_fold_masks


#: Gradient tolerance of the refit whose predictions are reported (inner-CV fits use sklearn's 1e-4). At 1e-4 a
#: weakly penalised 60-way fit stops where test accuracy is still ~1 point from the optimum's (sklearn's own fit on
#: vsr-relation × mpnet, C=1: 94.58 at tol 1e-4, 95.63 converged), so the reported probe is converged further.
REFIT_TOL = 1e-5


class ProbeSettings(BaseModel):
    """Hyperparameters of a probing run (part of the config hash).

    Attributes:
        probe: ``linear`` (batched multinomial logistic regression) or ``mlp`` (one hidden layer).
        seeds: seeds; each changes the control-task mapping, the MLP's initialisation and the MDL
            ordering. The inner-CV folds are the first seed's for every seed, so the task probe (same
            labels, rows and C) is one problem fitted once, not once per seed.
        Cs: inverse L2 strengths searched by inner CV (one value: no search).
        inner_folds: inner cross-validation folds (stratified, grouped).
        max_iter: L-BFGS iterations (linear; 100 as sklearn's LogisticRegression, with its tol 1e-4) or
            epochs (MLP).
        mlp_hidden, mlp_weight_decay: MLP width and L2 penalty.
        control_cv: how the control task's C is chosen. ``every-seed``: by inner CV for each seed's control
            mapping, as for the task. ``first-seed`` (default): by inner CV on the first seed's control mapping only,
            and that C is reused for the other seeds' controls (each still refitted on its own labels; its
            ``control_cv_accuracy`` is NaN, as no search ran for it). The seeds' control mappings are i.i.d. draws
            of one random relabelling of the same types onto the same label distribution, so they share one
            hyperparameter the way Hewitt and Liang (2019) match hyperparameters across task and control; searching
            it once cuts the inner-CV problems per layer from ``3 · (1 + seeds)`` folds' worth to ``3 · 2``.
        mdl_seeds: how many of the seeds also get an MDL online code (0: none).
        n_boot: bootstrap resamples for the confidence intervals.
        device: ``auto`` (CUDA, else Apple MPS, else CPU), ``cpu``, ``cuda[:N]`` or ``mps``; an absent device
            is an error.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    probe: str = Field(default="linear", pattern="^(linear|mlp)$")
    seeds: tuple[int, ...] = Field(default=(0, 1, 2, 3, 4), min_length=1)
    Cs: tuple[float, ...] = Field(default=DEFAULT_CS, min_length=1)
    inner_folds: int = Field(default=3, ge=2)
    max_iter: int = Field(default=100, ge=1)
    mlp_hidden: int = Field(default=256, ge=1)
    mlp_weight_decay: float = Field(default=1e-3, ge=0)
    control_cv: Literal["first-seed", "every-seed"] = "first-seed"
    mdl_seeds: int = Field(default=1, ge=0)
    n_boot: int = Field(default=1000, ge=100)
    device: str = "auto"

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError(f"expected distinct seeds >= 0 (a repeat would be counted twice in every mean), "
                             f"got {list(seeds)}")
        return seeds

    @field_validator("Cs")
    @classmethod
    def _positive_cs(cls, Cs: tuple[float, ...]) -> tuple[float, ...]:
        if not all(np.isfinite(c) and c > 0 for c in Cs):
            raise ValueError(f"expected inverse L2 strengths > 0, got {list(Cs)}")
        return Cs


@dataclass
class LayerSeedResult:
    """Test predictions of the task and control probes of one layer and seed."""

    layer: str
    seed: int
    y_pred: np.ndarray
    control_true: np.ndarray
    control_pred: np.ndarray
    C: float
    control_C: float
    cv_accuracy: float
    control_cv_accuracy: float
    mdl_bits: float = float("nan")
    mdl_compression: float = float("nan")
    control_mdl_bits: float = float("nan")
    control_mdl_compression: float = float("nan")


def _check_lengths(X_train: Mapping[str, np.ndarray], X_test: Mapping[str, np.ndarray], y_train: np.ndarray,
                   per_item: Mapping[str, Sequence]) -> None:
    """Every per-item argument as long as the rows it describes; the message names both arguments and lengths."""
    n_train, n_test = len(y_train), None
    for layer in X_train:
        if len(X_train[layer]) != n_train:
            raise ValueError(f"X_train[{layer!r}] has {len(X_train[layer])} rows but y_train has {n_train} labels; "
                             f"they must match (one label per training row)")
        if n_test is None:
            n_test = len(X_test[layer])
        elif len(X_test[layer]) != n_test:
            raise ValueError(f"X_test[{layer!r}] has {len(X_test[layer])} rows but X_test[{next(iter(X_test))!r}] "
                             f"has {n_test}; every layer must hold the same test items")
    for name, values in per_item.items():
        n, of = (n_train, "y_train (training labels)") if name.endswith("_train") else (n_test, "X_test (test rows)")
        if len(values) != n:
            raise ValueError(f"{name} has {len(values)} entries but {of} has {n}; they must match one to one")


def _check_inputs(X_train: Mapping[str, np.ndarray], X_test: Mapping[str, np.ndarray], y_train: np.ndarray,
                  groups: Sequence, settings: ProbeSettings, control_types_train: Sequence = (),
                  control_types_test: Sequence = ()) -> None:
    if not X_train:
        raise ValueError("no layers to probe")
    if set(X_train) != set(X_test):
        raise ValueError(f"train and test layers differ: {sorted(X_train)} vs {sorted(X_test)}")
    _check_lengths(X_train, X_test, y_train, {"groups_train": groups, "control_types_train": control_types_train,
                                              "control_types_test": control_types_test})
    n_folds = settings.inner_folds if len(settings.Cs) > 1 else None
    for layer in X_train:
        check_probe_inputs(X_train[layer], y_train, n_folds=n_folds, where=f"layer {layer} (train)")
        xt = np.asarray(X_test[layer])
        if xt.ndim != 2 or xt.shape[1] != np.asarray(X_train[layer]).shape[1]:
            raise ValueError(f"layer {layer}: test features have shape {xt.shape}, train {X_train[layer].shape}")
        if not np.isfinite(xt).all():
            raise ValueError(f"layer {layer} (test): embeddings contain NaN or infinite values")


def _stack(X_train: Mapping[str, np.ndarray], X_test: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Standardise each layer on its training rows and stack, zero-padding to the widest layer."""
    d = max(np.asarray(x).shape[1] for x in X_train.values())
    layers = list(X_train)
    n, m = len(X_train[layers[0]]), len(X_test[layers[0]])
    tr = np.zeros((len(layers), n, d), np.float32)
    te = np.zeros((len(layers), m, d), np.float32)
    for i, layer in enumerate(layers):
        a, b = standardize(np.asarray(X_train[layer], np.float64), np.asarray(X_test[layer], np.float64))
        tr[i, :, : a.shape[1]], te[i, :, : b.shape[1]] = a, b
    return tr, te


def _secant(at: tuple[np.ndarray, np.ndarray], before: tuple[np.ndarray, np.ndarray], ratio: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """``at + ratio · (at − before)`` of weights and intercepts: a point further along the path through both."""
    return tuple(a + ratio * (a - b) for a, b in zip(at, before))


def _val_accuracy(X: np.ndarray, W: np.ndarray, b: np.ndarray, Y: np.ndarray, val: np.ndarray,
                  device: str) -> np.ndarray:
    """Accuracy ``(G, Q)`` of each problem on its validation rows (``val``: each row's count ``(Q, n)``), layer by layer."""
    dev = resolve_device(device)
    out = np.zeros(W.shape[:2])
    with torch.no_grad():
        vt = torch.as_tensor(val, dtype=torch.float32, device=dev)
        for g in range(X.shape[0]):
            logits = torch.einsum("nd,qdk->qnk", torch.as_tensor(X[g], device=dev), torch.as_tensor(W[g], device=dev))
            pred = (logits + torch.as_tensor(b[g], device=dev)[:, None, :]).argmax(-1)
            hit = (pred == torch.as_tensor(Y, device=dev)) * vt
            out[g] = (hit.sum(1) / vt.sum(1).clamp_min(1)).cpu().numpy()
    return out


def probe_arrays(X_train: Mapping[str, np.ndarray], y_train: Sequence[str], X_test: Mapping[str, np.ndarray], *,
                 groups_train: Sequence[str], control_types_train: Sequence[str],
                 control_types_test: Sequence[str], settings: ProbeSettings = ProbeSettings(),
                 concepts_train: Sequence[tuple[str, str]] | None = None,
                 show_progress: bool = False) -> list[LayerSeedResult]:
    """Fit task and control probes on every layer for every seed; predict the test items.

    Args:
        X_train, X_test: layer name → features ``(n_train, d)`` / ``(n_test, d)``.
        y_train: training labels (strings).
        groups_train: leakage groups of the training items (inner CV never splits one).
        control_types_train, control_types_test: the control task's type of each item.
        concepts_train: (subject, object) concepts of the training items: when given, inner CV is grouped by
            concept (:func:`~spatial_probing.probe.splits.inner_concept_masks`) instead of by ``groups_train``.
    """
    y_train = np.asarray(y_train, dtype=object)
    _check_inputs(X_train, X_test, y_train, groups_train, settings, control_types_train, control_types_test)
    classes = np.array(sorted(set(y_train.tolist())), dtype=object)
    index = {c: i for i, c in enumerate(classes)}
    K = len(classes)
    seeds = list(settings.seeds)
    ctrl_tr = {s: control_labels(control_types_train, y_train.tolist(), seed=s) for s in seeds}
    ctrl_te = {s: control_labels(control_types_test, y_train.tolist(), seed=s) for s in seeds}
    labelsets = [(s, which) for s in seeds for which in ("task", "control")]
    Yint = np.stack([np.array([index[v] for v in (y_train if w == "task" else ctrl_tr[s])]) for s, w in labelsets])
    if settings.probe == "mlp":
        return _probe_mlp(X_train, X_test, Yint, labelsets, classes, ctrl_te, settings, show_progress)
    layers = list(X_train)
    threads = torch.get_num_threads()
    workers = min(len(layers), threads) if resolve_device(settings.device).type == "cpu" else 1
    # one bar over every layer chunk's stages (inner CV per C, refit, MDL per seed), shared by the layer threads
    stages = (len(settings.Cs) if len(settings.Cs) > 1 else 0) + 1 + len(seeds[: settings.mdl_seeds])
    bar = tqdm(total=stages * workers, desc=f"probe {len(layers)} layers × {len(seeds)} seeds", unit="stage",
               leave=False, disable=not show_progress)
    args = (Yint, labelsets, classes, ctrl_te, y_train, groups_train, concepts_train, settings, bar)
    if workers == 1:
        try:
            return _probe_linear(X_train, X_test, *args)
        finally:
            bar.close()

    def job(chunk: list[str]) -> list[LayerSeedResult]:
        torch.set_num_threads(max(1, threads // workers))  # this thread's share of the cores
        return _probe_linear({k: X_train[k] for k in chunk}, {k: X_test[k] for k in chunk}, *args)

    # the layers are independent problems: on a CPU, a thread per core fits a share of them (torch releases the
    # GIL in its kernels) with no OpenMP team waiting on small operations (on 2 layers of the default unit at load
    # ~3: two intra-op threads took 2.1x one thread's CPU-s, two layer threads 1.04x)
    try:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(job, [list(c) for c in np.array_split(np.array(layers, dtype=object), workers)]))
    finally:
        torch.set_num_threads(threads)
        bar.close()
    by_key = {(r.layer, r.seed): r for part in parts for r in part}
    return [by_key[(layer, s)] for layer in layers for s in seeds]


def _probe_linear(X_train: Mapping[str, np.ndarray], X_test: Mapping[str, np.ndarray], Yint: np.ndarray,
                  labelsets: list[tuple[int, str]], classes: np.ndarray, ctrl_te: dict[int, np.ndarray],
                  y_train: np.ndarray, groups_train: Sequence[str], concepts_train: Sequence[tuple[str, str]] | None,
                  settings: ProbeSettings, bar: tqdm) -> list[LayerSeedResult]:
    """:func:`probe_arrays`' linear probe on the given layers (all fitted as one batched computation); ``bar``
    advances once per stage."""
    seeds = list(settings.seeds)
    K = len(classes)
    layers = list(X_train)
    Xtr, Xte = _stack(X_train, X_test)
    L, n, _ = Xtr.shape
    J = len(labelsets)
    # repeated captions (same features and labels) become one row weighted by its count in each problem's rows
    first, inverse = distinct_rows(Xtr, Yint)
    Xu, Yu = Xtr[:, first], Yint[:, first]

    def counts(masks: np.ndarray) -> np.ndarray:  # (F, n) row masks → (F, distinct rows) counts
        return np.stack([np.bincount(inverse, weights=m, minlength=len(first)) for m in masks]).astype(np.float32)

    basis = covariance_basis(Xu, device=settings.device)  # one eigendecomposition per layer, shared by every fit
    Cs = np.sort(np.asarray(settings.Cs, dtype=np.float64))  # ascending: each C starts from the previous solution
    best_C = np.full((L, J), Cs[0])
    cv_acc = np.full((L, J), np.nan)
    # the label sets whose C is searched: the task once (identical for every seed), and each seed's control or,
    # with control_cv="first-seed", the first seed's only (the others reuse its C); source[j]: whose C j takes
    searched = [j for j, (s, w) in enumerate(labelsets)
                if s == seeds[0] or (w == "control" and settings.control_cv == "every-seed")]
    source = np.array([searched.index(j) if j in searched else searched.index(labelsets.index((seeds[0], w)))
                       for j, (s, w) in enumerate(labelsets)])
    reused = np.array([len(Cs) > 1 and w == "control" and j not in searched for j, (_, w) in enumerate(labelsets)])
    init = None
    if len(Cs) > 1:  # stage 1: inner CV along the C path, every (label set, fold) as one batched problem set
        F = settings.inner_folds
        # the same folds for every seed, so the task probe's problems are identical across seeds and fitted once
        if concepts_train is not None:
            train_m, val_m = inner_concept_masks(concepts_train, n_folds=F, seed=seeds[0])
        else:
            train_m = inner_fold_masks(y_train, groups_train, n_folds=F, seed=seeds[0])
            val_m = ~train_m
        S = len(searched)
        probs = [(j, f) for j in searched for f in range(F)]
        train_c, val_c = counts(train_m), counts(val_m)
        Y1 = np.stack([Yu[j] for j, _ in probs])
        M1 = np.stack([train_c[f] for _, f in probs])
        V1 = np.stack([val_c[f] for _, f in probs])
        acc = np.zeros((L, S, F, len(Cs)))
        fold_mean: list[tuple[np.ndarray, np.ndarray]] = []  # per C: the folds' mean solution, a refit's warm start
        start = previous = None
        log_c = np.log(Cs)
        for ci, C in enumerate(Cs):
            bar.set_postfix_str(f"inner CV, C={C:g}", refresh=True)
            W, b = fit_softmax_batched(basis, np.broadcast_to(Y1, (L, *Y1.shape)), n_classes=K, C=C,
                                       weights=np.broadcast_to(M1, (L, *M1.shape)), max_iter=settings.max_iter,
                                       device=settings.device, init=start)
            acc[..., ci] = _val_accuracy(Xu, W, b, Y1, V1, settings.device).reshape(L, S, F)
            fold_mean.append((W.reshape(L, S, F, *W.shape[2:]).mean(2), b.reshape(L, S, F, -1).mean(2)))
            # the next C starts on the secant (in log C) through this solution and the previous one: the solutions move
            # smoothly along the path, so the secant lands nearer the next optimum than this solution does (on
            # vsr-relation × mpnet it cut the iterations at C = 0.1 and 1 from 27 and 16 to 20 and 7)
            if 0 < ci < len(Cs) - 1:
                start = _secant((W, b), previous, (log_c[ci + 1] - log_c[ci]) / (log_c[ci] - log_c[ci - 1]))
            else:
                start = (W, b)
            previous = (W, b)
            bar.update()
        val_n = val_m.sum(1)  # pooled over folds
        pooled = (acc * val_n[None, None, :, None]).sum(2) / val_n.sum()
        best = pooled.argmax(-1)  # first maximum: the smallest C (strongest penalty) wins ties
        best_C, cv_acc = Cs[best][:, source], np.take_along_axis(pooled, best[..., None], -1)[..., 0][:, source]
        cv_acc[:, reused] = np.nan  # no search ran for these label sets
        init = tuple(np.take_along_axis(np.stack([m[i] for m in fold_mean], 2),
                                        best.reshape(L, S, 1, *([1] * (fold_mean[0][i].ndim - 2))), 2)[:, :, 0][:, source]
                     for i in (0, 1))
    # stage 2: refit every label set on all training items with its chosen C, from the folds' mean solution (a
    # label set whose C was reused has no folds of its own: it starts cold)
    bar.set_postfix_str("refit on all training items", refresh=True)
    W = np.zeros((L, J, Xu.shape[-1], K), np.float32)
    b = np.zeros((L, J, K), np.float32)
    everyone = counts(np.ones((1, n)))[0]  # each distinct row's count among all training items
    for js, start in ((np.flatnonzero(~reused), init), (np.flatnonzero(reused), None)):
        if len(js):
            W[:, js], b[:, js] = fit_softmax_batched(
                basis, np.broadcast_to(Yu[js], (L, len(js), Yu.shape[1])), n_classes=K, C=best_C[:, js],
                weights=np.broadcast_to(everyone, (L, len(js), Yu.shape[1])), max_iter=settings.max_iter,
                tol=REFIT_TOL, device=settings.device, init=None if start is None else (start[0][:, js], start[1][:, js]))
    bar.update()
    with torch.no_grad():
        logits = torch.einsum("lmd,lqdk->lqmk", torch.as_tensor(Xte), torch.as_tensor(W)) + torch.as_tensor(b)[:, :, None]
        pred = logits.argmax(-1).numpy()  # (L, Q, m)
    mdl = {}
    for s in seeds[: settings.mdl_seeds]:
        q = [labelsets.index((s, "task")), labelsets.index((s, "control"))]
        bar.set_postfix_str(f"MDL online code, seed {s}", refresh=True)
        bits, comp = online_codelength(Xu, Yint[q], n_classes=K, C=best_C[:, q], seed=s, device=settings.device,
                                       max_iter=settings.max_iter, groups=groups_train, basis=basis, rows=inverse)
        mdl[s] = (bits[:, 0], comp[:, 0], bits[:, 1], comp[:, 1])  # the task's and its control task's code
        bar.update()
    out = []
    for li, layer in enumerate(layers):
        for s in seeds:
            t, c = labelsets.index((s, "task")), labelsets.index((s, "control"))
            bits, comp, cbits, ccomp = mdl.get(s, (np.full(L, np.nan),) * 4)
            out.append(LayerSeedResult(layer, s, classes[pred[li, t]], ctrl_te[s], classes[pred[li, c]],
                                       float(best_C[li, t]), float(best_C[li, c]), float(cv_acc[li, t]),
                                       float(cv_acc[li, c]), float(bits[li]), float(comp[li]),
                                       float(cbits[li]), float(ccomp[li])))
    return out


def _probe_mlp(X_train: Mapping[str, np.ndarray], X_test: Mapping[str, np.ndarray], Yint: np.ndarray,
               labelsets: list[tuple[int, str]], classes: np.ndarray, ctrl_te: dict[int, np.ndarray],
               settings: ProbeSettings, show_progress: bool) -> list[LayerSeedResult]:
    out = []
    jobs = [(layer, s) for layer in X_train for s in settings.seeds]
    for layer, s in tqdm(jobs, desc="MLP probes", disable=not show_progress):
        preds, scores = {}, {}
        for which in ("task", "control"):
            probe = MLPProbe(hidden_size=settings.mlp_hidden, weight_decay=settings.mlp_weight_decay,
                             max_iter=settings.max_iter, random_state=s)
            probe.fit(X_train[layer], Yint[labelsets.index((s, which))])
            preds[which] = classes[probe.predict(X_test[layer])]
            scores[which] = float(getattr(probe.pipeline_[-1], "best_validation_score_", None) or np.nan)
        out.append(LayerSeedResult(layer, s, preds["task"], ctrl_te[s], preds["control"], float("nan"),
                                   float("nan"), scores["task"], scores["control"]))
    return out
