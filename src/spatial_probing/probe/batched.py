"""Many multinomial logistic-regression probes fitted as one batched computation (torch, L-BFGS).

A probing sweep fits the same kind of model hundreds of times: every layer × seed × (task,
control) × inner-CV fold × L2 strength. Each probe ``(g, q)`` minimises sklearn's objective
(divided by C·n)::

    Σ_i w_i · CE(y_i, softmax(x_i W + b)) / Σ_i w_i  +  ||W||² / (2 · C · Σ_i w_i)

so at convergence it equals ``sklearn.linear_model.LogisticRegression(C=C)`` fitted on the rows
with weight 1 (the intercept is not penalised, as in sklearn). Problems sharing the features
``X[g]`` (one layer) differ in labels ``Y[g, q]`` and row weights ``weights[g, q]``, so inner-CV
folds and the online-code portions of MDL are row masks on the same matrix.

Why it is fast (each step is exact; the optimum is unchanged):

* **one L-BFGS per problem, run in lockstep** — every problem keeps its own curvature history,
  step length and stopping test (sklearn's: largest gradient entry ≤ ``tol``); a converged
  problem leaves the computation, and a line-search retry re-evaluates only the problems that
  need it. The problems of one layer share a single matrix product per evaluation. The optimiser's
  state holds only the running problems (compacted when one finishes), so no iteration copies or
  touches a finished problem's curvature history; it is one flat vector per problem, and problems
  sharing rows sit side by side, so an evaluation slices its problems' parameters, labels and
  weights instead of gathering them.
* **preconditioning by the features' covariance and the classes' curvature** — the fit runs in
  coordinates ``V`` with ``W = U (D ⊙ V)``, where ``U diag(e) Uᵀ`` is the eigendecomposition of
  ``XᵀX/n`` and ``D_jk = ((e_j + μ)·h_k + λ)^-½`` per problem (``λ`` its penalty): the Hessian's block
  of class ``k`` along eigenvector ``j`` is about ``e_j·h_k + λ``. At a cold start (zero weights) the
  class curvature is exactly ``h_k = π_k(1 − π_k)`` of the class share ``π_k``, so rare and common
  classes step at their own scale (the intercepts are scaled by ``h_k^-½`` too); from a warm start,
  near a fitted solution, it is spread about evenly, ``h_k = 1/K``. The penalty is kept exact as
  ``Σ λ D² V²``. Embedding features are strongly correlated, so this cuts the iterations several-fold,
  and a strongly penalised problem (small C, a small MDL portion) keeps near-natural coordinates
  instead of an ill-conditioned penalty (on vsr-relation × mpnet the class curvature halved a cold
  start's iterations at C = 0.001, 37 to 18).
* **identical problems are fitted once** — e.g. the task probe of every seed when seeds only
  change the control task.
* **only a problem's own rows are computed** — problems are grouped by the rows they train on
  (an inner-CV fold, an MDL portion), and each group's products use those rows alone.
* **one eigendecomposition per layer** — :func:`covariance_basis` is computed once and passed to
  every fit on the same features (inner-CV folds, every C, the refit, every MDL portion); any
  fixed basis preconditions without changing the optimum.
* **warm starts** — ``init`` starts each problem from a nearby solution (the secant through the
  previous two C on the path, the inner-CV fits for the refit, the previous MDL portion); the optimum
  is unchanged. A cold
  start has zero weights and the null model's intercepts (log class shares).
* **few rows, few coordinates** — a problem on ``r < d`` rows has its optimum in their span, so
  :func:`subspace_basis` fits it in the ``r`` coordinates of that span (an MDL code's first portions:
  3 to ~600 of VSR's rows instead of 768 coordinates, and well conditioned where the full basis is not).
* **repeated rows once** — :func:`distinct_rows` merges rows identical in features and labels; weighted
  by their count they give the same loss and gradient (VSR's 3,000 training captions are 2,084 distinct).
* **a cheap stopping test** — the largest gradient entry is bounded by column norms in the rotated
  coordinates; the ``d × d`` rotation runs only for problems the bounds leave undecided.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import numpy as np
import torch

from spatial_probing.device import resolve_device

__all__ = ["CovarianceBasis", "covariance_basis", "distinct_rows", "fit_softmax_batched", "predict_log_proba_batched",
           "standardize", "subspace_basis"]

#: Curvature pairs kept per problem (scipy's L-BFGS-B, which sklearn uses, keeps 10).
HISTORY = 10
#: Ridge added to the covariance eigenvalues in the preconditioner, relative to their mean.
PRECONDITIONER_RIDGE = 0.1


def standardize(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Z-score features with the training rows' mean and std (constant features become 0)."""
    mean = train.mean(axis=-2, keepdims=True, dtype=np.float64)
    std = train.std(axis=-2, keepdims=True, dtype=np.float64)
    std[std == 0] = 1.0
    return tuple(((a - mean) / std).astype(np.float32) for a in (train, *others))


def distinct_rows(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows identical in every group's features ``X (G, n, d)`` and every label set ``Y (Q, n)``, merged.

    Returns ``first`` (one item per distinct row, in order of first occurrence) and ``inverse`` (the distinct row
    of each item: ``X[:, first][:, inverse]`` equals ``X``). A row weighted by its count in a problem's rows costs
    the same loss and gradient as its copies, so problems on ``X[:, first]`` with counts as weights are the same
    problems on fewer rows (repeated captions are common: VSR describes many images with the same sentence).
    """
    n = X.shape[1]
    probe = np.random.default_rng(0).normal(size=X.shape[-1])
    fingerprint = np.concatenate([(X.astype(np.float64) @ probe).T, np.asarray(Y).T.astype(np.float64)], 1)
    _, first, inverse = np.unique(fingerprint, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(n)
    # the fingerprint only proposes merges: each is checked on the full rows and labels
    same = (X[:, first[inverse]] == X).all((0, 2)) & (np.asarray(Y)[:, first[inverse]] == np.asarray(Y)).all(0)
    if not same.all():  # a fingerprint collision (practically never): keep the rows apart
        return np.arange(n), np.arange(n)
    order = np.argsort(first)  # distinct rows in order of first occurrence
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse]


class CovarianceBasis:
    """Features of each group rotated into the eigenbasis ``U`` of their covariance (see the module docstring).

    Build it once per feature array (:func:`covariance_basis`) and pass it to every
    :func:`fit_softmax_batched` call on that array: the eigendecomposition is the costly part. The scaling
    ``D`` of the coordinates ``W = U D V`` is per problem (it depends on the problem's penalty), so it is not
    stored here.
    """

    def __init__(self, X: torch.Tensor) -> None:
        wide = torch.float32 if X.device.type == "mps" else torch.float64  # MPS has no float64
        S = torch.stack([x.to(wide).T @ x.to(wide) for x in X]) / X.shape[1]  # one layer at a time
        e, U = torch.linalg.eigh(S.cpu().double())  # d × d per layer: small, so on the CPU in float64
        e = e.clamp_min(0)
        ridge = PRECONDITIONER_RIDGE * e.mean(-1, keepdim=True).clamp_min(1e-12)
        self.U, self.e, self.ridge = (t.to(device=X.device, dtype=X.dtype) for t in (U, e, ridge))
        self.Xh = torch.bmm(X, self.U)

    def astype(self, dtype: torch.dtype) -> CovarianceBasis:
        """The same basis in ``dtype`` (memoised; no new eigendecomposition)."""
        if self.Xh.dtype == dtype:
            return self
        cache = self.__dict__.setdefault("_as", {})
        if dtype not in cache:
            other = object.__new__(CovarianceBasis)
            other.U, other.e, other.ridge, other.Xh = (t.to(dtype) for t in (self.U, self.e, self.ridge, self.Xh))
            cache[dtype] = other
        return cache[dtype]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.Xh.shape)  # type: ignore[return-value]


def covariance_basis(X: np.ndarray, *, device: str = "auto", dtype: torch.dtype = torch.float32) -> CovarianceBasis:
    """The preconditioning basis of features ``X (G, n, d)``, to share across fits on the same features."""
    X = np.asarray(X)
    if X.ndim != 3 or not np.isfinite(X).all():
        raise ValueError(f"expected finite features (G, n, d), got shape {X.shape}")
    with torch.no_grad():
        return CovarianceBasis(torch.as_tensor(X, dtype=dtype, device=resolve_device(device)))


def subspace_basis(X: np.ndarray, rows: np.ndarray, *, device: str = "auto",
                   dtype: torch.dtype = torch.float64) -> CovarianceBasis:
    """A basis of the span of rows ``rows`` of ``X (G, n, d)``, for problems that train on those rows only.

    With ``r < d`` rows the optimum lies in their span (the data term's gradient ``XᵀR`` and the penalty's ``λW``
    both do), so fitting in the ``r`` coordinates of its orthonormal basis (a thin SVD of the ``r × d`` rows, with
    their covariance eigenvalues as the preconditioner's) is the same problem on ``r`` instead of ``d``
    coordinates, and well conditioned where the full data's basis is not: an MDL online code's first portions.
    ``Xh`` is left zero outside ``rows`` (those rows must have weight 0 in every problem fitted with it), and a
    warm start must lie in the span (e.g. a fit on a subset of ``rows``).
    """
    rows = np.asarray(rows)
    with torch.no_grad():
        Xr = torch.as_tensor(np.asarray(X)[:, rows], dtype=torch.float64)
        left, sv, right = torch.linalg.svd(Xr, full_matrices=False)  # (G, r, r'), (G, r'), (G, r', d)
        e = sv.pow(2) / len(rows)
        basis = object.__new__(CovarianceBasis)
        Xh = torch.zeros(X.shape[0], X.shape[1], len(sv[0]), dtype=torch.float64)
        Xh[:, torch.as_tensor(rows)] = left * sv[:, None, :]  # = Xr @ right.T
        ridge = PRECONDITIONER_RIDGE * e.mean(-1, keepdim=True).clamp_min(1e-12)
        basis.U, basis.e, basis.ridge, basis.Xh = (t.to(device=resolve_device(device), dtype=dtype)
                                                   for t in (right.transpose(1, 2), e, ridge, Xh))
    return basis


def _by_group(group: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """Each group present in ``group`` with the positions that belong to it."""
    for g in torch.unique(group).tolist():
        yield g, torch.nonzero(group == g).squeeze(1)


def _take(t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``t[p]`` for ascending problem ids ``p``: a view when they are consecutive (the common case), else a copy."""
    lo = int(p[0])
    return t[lo:lo + len(p)] if int(p[-1]) - lo == len(p) - 1 else t[p]


class _Problems:
    """``P`` problems (flat), each on the rows of one segment (a layer's features restricted to the rows the
    problem trains on); evaluates loss and gradient.

    The problems come ordered by segment (:func:`fit_softmax_batched` sorts them), so the running problems of a
    segment are one block of the optimiser's state, and their labels and weights one block of the segment's
    ``rows × problems`` tables: an evaluation slices them instead of gathering. A problem's parameters are one flat
    vector: the ``d × K`` coordinates ``V`` (row-major), then the ``K`` intercept coordinates ``c``.
    """

    def __init__(self, pre: CovarianceBasis, segments: list[tuple[int, torch.Tensor | None]], group: torch.Tensor,
                 Y: torch.Tensor, w: torch.Tensor, lam: torch.Tensor, n_classes: int, n_rows: torch.Tensor,
                 cold: bool) -> None:
        self.U = pre.U
        self.K, self.d = n_classes, pre.U.shape[2]
        self.dK = self.d * n_classes
        self.Xh = [pre.Xh[g] if rows is None else pre.Xh[g][rows] for g, rows in segments]
        self.layer = torch.as_tensor([g for g, _ in segments], device=group.device)
        self.group, self.Y, self.w, self.n_rows = group, Y, w, n_rows
        self.start = torch.searchsorted(group, torch.arange(len(segments), device=group.device)).tolist()
        # each segment's labels (rows × problems × 1) and weights (rows × problems) on its own rows
        self.Yt, self.wt = [], []
        for s, (_, rows) in enumerate(segments):
            members = slice(self.start[s], self.start[s + 1] if s + 1 < len(segments) else len(group))
            y, ws = (Y[members], w[members]) if rows is None else (Y[members][:, rows], w[members][:, rows])
            self.Yt.append(y.T.contiguous()[..., None])
            self.wt.append(ws.T.contiguous())
        # per-problem scaling D (d × K) of V and Dc (K) of c, from the Hessian's block for class k along eigenvector
        # j, about e_j·h_k + λ with h_k the class's share of curvature: at a cold start (zero weights) exactly
        # π_k(1 − π_k) of its class share π_k, so rare and common classes take steps of their own size; near a
        # fitted solution (a warm start) the curvature is spread evenly, about 1/K per class
        if cold:
            share = torch.zeros(len(Y), n_classes, dtype=w.dtype, device=w.device).scatter_add_(1, Y, w)
            h = (share * (1 - share)).clamp_min(0.5 / n_rows[:, None])
        else:
            h = torch.full((len(Y), n_classes), 1.0 / n_classes, dtype=w.dtype, device=w.device)
        layer = self.layer[group]
        D = ((pre.e[layer] + pre.ridge[layer])[:, :, None] * h[:, None, :] + lam[:, None, None]).rsqrt()
        self.D, self.Dinv, self.lamD2 = D, 1 / D, lam[:, None, None] * D.pow(2)
        self.Dc = h.rsqrt()

    def pack(self, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The flat coordinates ``(P, d·K + K)`` of weights ``W (P, d, K)`` and intercepts ``b (P, K)``."""
        V = W.new_empty((len(W), self.d, self.K))
        for g, sel in _by_group(self.layer[self.group]):
            V[sel] = self.Dinv[sel] * torch.einsum("de,qdk->qek", self.U[g], W[sel])
        return torch.cat([V.reshape(len(W), -1), b / self.Dc], 1)

    def unpack(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights ``W = U D V`` and intercepts ``b = Dc·c`` of every problem's flat coordinates ``x``, the intercepts
        centred as sklearn's (the softmax is the same for any shift of them, and per-class steps shift them)."""
        V = x[:, : self.dK].reshape(len(x), self.d, self.K)
        W = V.new_empty((len(V), self.U.shape[1], self.K))
        for g, sel in _by_group(self.layer[self.group]):
            W[sel] = torch.einsum("de,qek->qdk", self.U[g], self.D[sel] * V[sel])
        b = self.Dc * x[:, self.dK:]
        return W, b - b.mean(-1, keepdim=True)

    def null_start(self) -> torch.Tensor:
        """Zero weights and each problem's intercepts at zero weights' optimum, the log class shares (centred; an
        absent class at half a row's share): the default start, where the intercepts would otherwise spend
        iterations."""
        share = torch.zeros(len(self.Y), self.K, dtype=self.w.dtype, device=self.w.device).scatter_add_(1, self.Y, self.w)
        b = torch.log(share + 0.5 / self.n_rows[:, None])
        x = torch.zeros(len(b), self.dK + self.K, dtype=b.dtype, device=b.device)
        x[:, self.dK:] = (b - b.mean(-1, keepdim=True)) / self.Dc
        return x

    def loss_grad(self, idx: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss ``(p,)`` and gradient ``(p, d·K + K)`` of problems ``idx`` (ascending) at coordinates ``x``."""
        f = x.new_empty(len(idx))
        grad = torch.empty_like(x)
        K, d, dK = self.K, self.d, self.dK
        segs, sizes = torch.unique_consecutive(self.group[idx], return_counts=True)
        a = 0
        for s, q in zip(segs.tolist(), sizes.tolist()):
            p, b = idx[a:a + q], a + q
            Xh = self.Xh[s]
            n = Xh.shape[0]
            lo = int(p[0]) - self.start[s]
            cols = slice(lo, lo + q) if int(p[-1]) - int(p[0]) == q - 1 else p - self.start[s]
            y, w = self.Yt[s][:, cols], self.wt[s][:, cols]
            D, lamD2 = _take(self.D, p), _take(self.lamD2, p)
            V = x[a:b, :dK].view(q, d, K)
            logits = torch.addmm((_take(self.Dc, p) * x[a:b, dK:]).reshape(1, q * K), Xh,
                                 (D * V).permute(1, 0, 2).reshape(d, q * K)).view(n, q, K)
            zy = logits.gather(-1, y)
            top = logits.amax(-1, keepdim=True)
            E = logits.sub_(top).exp_()  # one exp: the softmax's numerators, in place of the logits
            total = E.sum(-1, keepdim=True)
            nll = total.log().add_(top).sub_(zy)  # (n, q, 1)
            pen = lamD2 * V
            f[a:b] = (nll[..., 0] * w).sum(0) + 0.5 * _dot(pen.view(q, -1), x[a:b, :dK])
            R = E.mul_(w[..., None] / total).scatter_add_(-1, y, -w[..., None])  # w·(softmax − onehot)
            G = (Xh.T @ R.view(n, q * K)).view(d, q, K).permute(1, 0, 2)
            grad[a:b, :dK].view(q, d, K).copy_(G).mul_(D).add_(pen)
            grad[a:b, dK:] = _take(self.Dc, p) * R.sum(0)
            a = b
        return f, grad

    def grad_max(self, idx: torch.Tensor, grad: torch.Tensor, tol: float) -> torch.Tensor:
        """Whether each problem's largest absolute gradient entry in the original coordinates exceeds ``tol``
        (sklearn's stopping test).

        ``gW = U D⁻¹ gV`` with ``U`` orthogonal, so a column's largest entry lies between its 2-norm / √d and its
        2-norm, which the rotated gradient gives without the ``d × d`` rotation; only the problems these bounds
        leave undecided are rotated (the same answer, mostly without the rotation).
        """
        out = (grad[:, self.dK:] / _take(self.Dc, idx)).abs().amax(-1) > tol
        scaled = _take(self.Dinv, idx) * grad[:, : self.dK].view(len(idx), self.d, self.K)
        norm = scaled.pow(2).sum(1).sqrt().amax(-1)  # largest column 2-norm
        out |= norm > tol * math.sqrt(self.U.shape[1])  # d entries per column (a subspace basis has fewer coordinates)
        check = torch.nonzero(~out & (norm > tol)).squeeze(1)
        for g, sel in _by_group(self.layer[self.group[idx[check]]]):
            rows = check[sel]
            gW = torch.einsum("de,qek->qdk", self.U[g], scaled[rows])
            out[rows] = gW.abs().amax((1, 2)) > tol
        return out


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of ``(P, N)`` tensors."""
    return torch.linalg.vecdot(a, b)


def _lbfgs(prob: _Problems, P: int, max_iter: int, tol: float, x: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L-BFGS on each of ``P`` problems in lockstep (own history, step and stop), Armijo backtracking, from flat
    coordinates ``x`` (by default :meth:`_Problems.null_start`); returns ``W``, ``b`` and each problem's iteration
    count. The state holds only the running problems (``ids``): a finished problem's solution is written out and its
    rows dropped, so an iteration touches no finished problem's history."""
    m = HISTORY
    x_out = prob.null_start() if x is None else x.clone()
    n_iter = torch.zeros(P, dtype=torch.long, device=x_out.device)
    ids = torch.arange(P, device=x_out.device)
    x = x_out
    f, g = prob.loss_grad(ids, x)
    active = prob.grad_max(ids, g, tol)
    S, Yh = x.new_zeros((m, P, x.shape[1])), x.new_zeros((m, P, x.shape[1]))
    rho = x.new_zeros((m, P))
    gamma = x.new_ones(P)
    for it in range(max_iter):
        if not bool(active.all()):  # drop the finished problems from the state
            keep = torch.nonzero(active).squeeze(1)
            x_out[ids[~active]] = x[~active]
            ids, x, f, g, gamma = (t[keep] for t in (ids, x, f, g, gamma))
            S, Yh, rho = S[:, keep], Yh[:, keep], rho[:, keep]
            active = active[keep]
        if len(ids) == 0:
            break
        # two-loop recursion (a pair with rho = 0 is a no-op)
        q = -g
        slots = [(it - 1 - j) % m for j in range(min(it, m))]
        alphas = []
        for s in slots:
            al = rho[s] * _dot(S[s], q)
            alphas.append(al)
            q.addcmul_(Yh[s], al[:, None], value=-1)
        q.mul_(gamma[:, None])
        for s, al in zip(reversed(slots), reversed(alphas)):
            q.addcmul_(S[s], (al - rho[s] * _dot(Yh[s], q))[:, None])
        slope = _dot(g, q)
        uphill = slope >= 0  # not a descent direction: fall back to steepest descent
        if bool(uphill.any()):
            q[uphill] = -g[uphill]
            slope = torch.where(uphill, -_dot(g, g), slope)
        step = torch.ones_like(f) if it else 1.0 / (-slope).sqrt().clamp_min(1.0)
        # backtracking (quadratic interpolation) until the Armijo condition holds, retrying only failures
        pend = torch.arange(len(ids), device=x.device)
        nf, ng = f.clone(), g.clone()
        for _ in range(30):
            trial = torch.addcmul(x, step[:, None], q) if len(pend) == len(ids) else \
                torch.addcmul(x[pend], step[pend, None], q[pend])
            tf, tg = prob.loss_grad(ids[pend], trial)
            ok = tf <= f[pend] + 1e-4 * step[pend] * slope[pend]
            done = pend[ok]
            nf[done], ng[done] = tf[ok], tg[ok]
            pend = pend[~ok]
            if len(pend) == 0:
                break
            st = step[pend]
            dec = tf[~ok] - f[pend] - st * slope[pend]
            new = -slope[pend] * st * st / (2 * dec.clamp_min(1e-30))
            step[pend] = torch.minimum(torch.maximum(new, 0.1 * st), 0.5 * st)
        moved = torch.ones(len(ids), dtype=torch.bool, device=x.device)
        moved[pend] = False  # line search failed: the problem stops where it is
        step = step * moved
        sx = q.mul_(step[:, None])
        yg = ng.sub(g)
        sy, yy = _dot(sx, yg), _dot(yg, yg)
        curv = moved & (sy > 1e-10 * yy)
        slot = it % m
        S[slot], Yh[slot] = sx, yg
        rho[slot] = torch.where(curv, 1.0 / sy.clamp_min(1e-30), torch.zeros_like(sy))
        gamma = torch.where(curv, sy / yy.clamp_min(1e-30), gamma)
        x, f, g = x + sx, nf, ng
        n_iter[ids] += 1
        active = moved & prob.grad_max(ids, ng, tol)
    x_out[ids] = x
    W, b = prob.unpack(x_out)
    return W, b, n_iter


def _problem_keys(Y: np.ndarray, W8: np.ndarray, Cs: np.ndarray) -> list[bytes]:
    """One key per (g, q): identical keys mean identical problems (same features, labels, rows and C)."""
    keys = []
    for g in range(Y.shape[0]):
        for q in range(Y.shape[1]):
            h = hashlib.blake2b(np.ascontiguousarray(Y[g, q]).tobytes(), digest_size=16)
            h.update(np.ascontiguousarray(W8[g, q]).tobytes())
            h.update(np.float64(Cs[g, q]).tobytes())
            keys.append(g.to_bytes(4, "little") + h.digest())
    return keys


def fit_softmax_batched(X: np.ndarray | CovarianceBasis, Y: np.ndarray, *, n_classes: int,
                        C: float | np.ndarray = 1.0, weights: np.ndarray | None = None, max_iter: int = 500,
                        tol: float = 1e-4, device: str = "auto", dtype: torch.dtype = torch.float32,
                        max_elements: int = 200_000_000,
                        init: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``G × Q`` multinomial logistic regressions; returns ``W (G, Q, d, K)`` and ``b (G, Q, K)``.

    Args:
        X: features ``(G, n, d)``, shared by the ``Q`` problems of each group (standardise first), or their
            :func:`covariance_basis` when several fits share the features (skips the eigendecomposition).
        Y: integer labels in ``[0, n_classes)``, shape ``(G, Q, n)``.
        C: inverse L2 strength (sklearn's ``C``), a scalar or ``(G, Q)``.
        weights: 0/1 row masks ``(G, Q, n)``; None trains every problem on every row. Rows with weight 0
            cost nothing.
        max_iter: L-BFGS iterations per problem (sklearn's ``max_iter``).
        tol: a problem stops when its largest gradient entry is below it (sklearn's ``tol``, same objective).
        max_elements: bound on the optimiser's state (``HISTORY`` curvature pairs of ``d × K`` per problem) and
            on one layer's logits (``n × problems × K``); problems are fitted in chunks under it (exact: they are
            independent), so memory stays bounded.
        init: starting ``(W (G, Q, d, K), b (G, Q, K))`` (a warm start; by default zero weights and the null model's intercepts).
    """
    if isinstance(X, CovarianceBasis):
        pre, (G, n, d) = X.astype(dtype), X.shape
        dev = pre.Xh.device
    else:
        X = np.asarray(X)
        if X.ndim != 3:
            raise ValueError(f"expected X (G, n, d), got {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("features contain NaN or infinite values")
        G, n, d = X.shape
        pre = None
    Y = np.asarray(Y)
    if Y.ndim != 3 or Y.shape[0] != G or Y.shape[2] != n:
        raise ValueError(f"expected X (G, n, d) and Y (G, Q, n) with matching G and n, got {(G, n, d)} and {Y.shape}")
    if Y.size and (Y.min() < 0 or Y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got range [{Y.min()}, {Y.max()}]")
    Q = Y.shape[1]
    Cs = np.broadcast_to(np.asarray(C, dtype=np.float64), (G, Q))
    W8 = np.ones((G, Q, n), dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
    if W8.shape != (G, Q, n):
        raise ValueError(f"weights must have shape {(G, Q, n)}, got {W8.shape}")
    keys = _problem_keys(Y, W8, Cs)
    first: dict[bytes, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    slot = {k: j for j, k in enumerate(first)}
    where = np.array([slot[k] for k in keys])  # (g, q) → its unique problem
    unique = np.array(list(first.values()))  # first (g, q) of each unique problem, group-major
    if pre is None:
        dev = resolve_device(device)
        with torch.no_grad():
            pre = CovarianceBasis(torch.as_tensor(X, dtype=dtype, device=dev))
    per_problem = max(d * n_classes * (4 * HISTORY + 8), n * n_classes * 4)
    step = max(1, max_elements // per_problem)
    out_dtype = torch.empty((), dtype=dtype).numpy().dtype
    Ws = np.zeros((len(unique), pre.U.shape[1], n_classes), out_dtype)  # d features (a subspace basis fits fewer coordinates)
    bs = np.zeros((len(unique), n_classes), out_dtype)
    for s in range(0, len(unique), step):
        chunk = unique[s:s + step]
        segments, group = _segments(chunk // Q, W8[chunk // Q, chunk % Q], dev)
        order = np.argsort(group, kind="stable")  # a segment's problems side by side (see _Problems)
        chunk, group = chunk[order], torch.as_tensor(group[order], device=dev)
        g, q = chunk // Q, chunk % Q
        wsum = W8[g, q].sum(-1).clip(min=1.0)
        prob = _Problems(pre, segments, group, torch.as_tensor(Y[g, q], dtype=torch.long, device=dev),
                         torch.as_tensor(W8[g, q] / wsum[:, None], dtype=dtype, device=dev),
                         torch.as_tensor(1.0 / (Cs[g, q] * wsum), dtype=dtype, device=dev), n_classes,
                         torch.as_tensor(wsum, dtype=dtype, device=dev), cold=init is None)
        with torch.no_grad():
            x0 = None if init is None else prob.pack(torch.as_tensor(init[0][g, q], dtype=dtype, device=dev),
                                                     torch.as_tensor(init[1][g, q], dtype=dtype, device=dev))
            W, b, _ = _lbfgs(prob, len(chunk), max_iter, tol, x0)
        Ws[s + order], bs[s + order] = W.cpu().numpy(), b.cpu().numpy()
    return Ws[where].reshape(G, Q, *Ws.shape[1:]), bs[where].reshape(G, Q, n_classes)


def _segments(g: np.ndarray, W8: np.ndarray, device: torch.device
              ) -> tuple[list[tuple[int, torch.Tensor | None]], np.ndarray]:
    """Problems grouped by (layer, rows with weight > 0): each segment's products use only its rows."""
    index: dict[tuple[int, bytes], int] = {}
    segments: list[tuple[int, torch.Tensor | None]] = []
    group = np.empty(len(g), dtype=np.int64)
    for i, (layer, w) in enumerate(zip(g.tolist(), W8)):
        used = w > 0
        key = (layer, np.packbits(used).tobytes())
        if key not in index:
            index[key] = len(segments)
            rows = None if used.all() else torch.as_tensor(np.flatnonzero(used), device=device)
            segments.append((layer, rows))
        group[i] = index[key]
    return segments, group


def predict_log_proba_batched(X: np.ndarray, W: np.ndarray, b: np.ndarray, *, device: str = "auto") -> np.ndarray:
    """Log-probabilities ``(G, Q, m, K)`` of the fitted probes on features ``X (G, m, d)``."""
    dev = resolve_device(device)
    with torch.no_grad():
        Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32, device=dev)
        Wt = torch.as_tensor(W, dtype=torch.float32, device=dev)
        bt = torch.as_tensor(b, dtype=torch.float32, device=dev)
        logits = torch.einsum("gmd,gqdk->gqmk", Xt, Wt) + bt[:, :, None, :]
        return torch.log_softmax(logits, dim=-1).cpu().numpy()
