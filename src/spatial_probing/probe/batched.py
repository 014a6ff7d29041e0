"""Many multinomial logistic-regression probes fitted as one batched computation (torch, L-BFGS).

A probing sweep fits the same kind of model hundreds of times: every layer × seed × (task,
control) × inner-CV fold × L2 strength. Those problems are independent, so the sum of their
objectives is minimised jointly by full-batch L-BFGS; one batched matrix product per step
evaluates all of them. Each probe ``(g, q)`` minimises sklearn's objective (divided by C·n)::

    Σ_i w_i · CE(y_i, softmax(x_i W + b)) / Σ_i w_i  +  ||W||² / (2 · C · Σ_i w_i)

so at convergence it equals ``sklearn.linear_model.LogisticRegression(C=C)`` fitted on the rows
with weight 1 (the intercept is not penalised, as in sklearn). Problems sharing the features
``X[g]`` (one layer) differ in labels ``Y[g, q]`` and row weights ``weights[g, q]``, so inner-CV
folds and the online-code portions of MDL are row masks on the same matrix.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["fit_softmax_batched", "predict_log_proba_batched", "resolve_device", "standardize"]


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def standardize(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Z-score features with the training rows' mean and std (constant features become 0)."""
    mean = train.mean(axis=-2, keepdims=True, dtype=np.float64)
    std = train.std(axis=-2, keepdims=True, dtype=np.float64)
    std[std == 0] = 1.0
    return tuple(((a - mean) / std).astype(np.float32) for a in (train, *others))


def _fit_chunk(X: torch.Tensor, Y: torch.Tensor, W8: torch.Tensor, inv_c: torch.Tensor, n_classes: int,
               max_iter: int, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    G, n, d = X.shape
    Q = Y.shape[1]
    W = torch.zeros(G, d, Q * n_classes, dtype=X.dtype, device=X.device, requires_grad=True)
    b = torch.zeros(G, 1, Q * n_classes, dtype=X.dtype, device=X.device, requires_grad=True)
    wsum = W8.sum(-1).clamp_min(1.0)  # (G, Q)
    wn = (W8 / wsum[..., None]).transpose(1, 2)  # (G, n, Q), rows of each problem sum to 1
    lam = (inv_c / wsum)[..., None]  # (G, Q, 1)
    Yt = Y.transpose(1, 2)[..., None]  # (G, n, Q, 1)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, history_size=10, tolerance_grad=tol,
                            tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = torch.baddbmm(b, X, W).view(G, n, Q, n_classes)
        nll = -torch.gather(torch.log_softmax(logits, dim=-1), -1, Yt).squeeze(-1)  # (G, n, Q)
        penalty = 0.5 * (lam * W.view(G, d, Q, n_classes).pow(2).sum((1, 3))[..., None]).sum()
        loss = (nll * wn).sum() + penalty
        loss.backward()
        return loss

    opt.step(closure)
    return (W.detach().view(G, d, Q, n_classes).permute(0, 2, 1, 3).contiguous(),
            b.detach().view(G, Q, n_classes))


def fit_softmax_batched(X: np.ndarray, Y: np.ndarray, *, n_classes: int, C: float | np.ndarray = 1.0,
                        weights: np.ndarray | None = None, max_iter: int = 500, tol: float = 1e-4,
                        device: str = "auto", dtype: torch.dtype = torch.float32,
                        max_elements: int = 200_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``G × Q`` multinomial logistic regressions; returns ``W (G, Q, d, K)`` and ``b (G, Q, K)``.

    Args:
        X: features ``(G, n, d)``, shared by the ``Q`` problems of each group (standardise first).
        Y: integer labels in ``[0, n_classes)``, shape ``(G, Q, n)``.
        C: inverse L2 strength (sklearn's ``C``), a scalar or ``(G, Q)``.
        weights: 0/1 row masks ``(G, Q, n)``; None trains every problem on every row.
        tol: stop when the largest gradient entry is below it; 1e-4 is sklearn's default ``tol`` for the same
            per-sample-scaled objective (1e-6 took ~30× longer here for the same test predictions).
        max_elements: bound on ``G × n × Q × K`` per chunk; groups are fitted in chunks under it
            (exact: the problems are independent), so memory stays bounded on CPU.
    """
    X = np.asarray(X)
    Y = np.asarray(Y)
    if X.ndim != 3 or Y.ndim != 3 or Y.shape[0] != X.shape[0] or Y.shape[2] != X.shape[1]:
        raise ValueError(f"expected X (G, n, d) and Y (G, Q, n) with matching G and n, got {X.shape} and {Y.shape}")
    if not np.isfinite(X).all():
        raise ValueError("features contain NaN or infinite values")
    if Y.size and (Y.min() < 0 or Y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got range [{Y.min()}, {Y.max()}]")
    G, n, _ = X.shape
    Q = Y.shape[1]
    Cs = np.broadcast_to(np.asarray(C, dtype=np.float64), (G, Q))
    W8 = np.ones((G, Q, n), dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
    if W8.shape != (G, Q, n):
        raise ValueError(f"weights must have shape {(G, Q, n)}, got {W8.shape}")
    dev = resolve_device(device)
    per_group = max(1, n * Q * n_classes)
    step = max(1, min(G, max_elements // per_group))
    Ws, bs = [], []
    for s in range(0, G, step):
        sl = slice(s, s + step)
        W, b = _fit_chunk(torch.as_tensor(np.require(X[sl], requirements=('C', 'W')), dtype=dtype, device=dev),
                          torch.as_tensor(np.require(Y[sl], requirements=('C', 'W')), dtype=torch.long, device=dev),
                          torch.as_tensor(np.require(W8[sl], requirements=('C', 'W')), dtype=dtype, device=dev),
                          torch.as_tensor(1.0 / Cs[sl], dtype=dtype, device=dev), n_classes, max_iter, tol)
        Ws.append(W.cpu().numpy())
        bs.append(b.cpu().numpy())
    return np.concatenate(Ws), np.concatenate(bs)


def predict_log_proba_batched(X: np.ndarray, W: np.ndarray, b: np.ndarray, *, device: str = "auto") -> np.ndarray:
    """Log-probabilities ``(G, Q, m, K)`` of the fitted probes on features ``X (G, m, d)``."""
    dev = resolve_device(device)
    with torch.no_grad():
        Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32, device=dev)
        Wt = torch.as_tensor(W, dtype=torch.float32, device=dev)
        bt = torch.as_tensor(b, dtype=torch.float32, device=dev)
        logits = torch.einsum("gmd,gqdk->gqmk", Xt, Wt) + bt[:, :, None, :]
        return torch.log_softmax(logits, dim=-1).cpu().numpy()
