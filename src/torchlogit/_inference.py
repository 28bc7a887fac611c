"""Wald inference for a fitted logistic model: information matrix, sandwich, class conventions.

Parameters are grouped per equation e (class) as beta_e = [b_e, W_e] (d1 = d + 1
entries, intercept first: statsmodels' order), flattened equation-major:
index e * d1 + j. All K softmax equations ("symmetric", sum over classes = 0)
or, statsmodels MNLogit's convention, the K - 1 contrasts beta_k - beta_r
against a baseline class r. Binary models have one equation.

Observed information (Hessian of the negative log-likelihood, plus 1/C on the
coefficients for a penalised fit): the data term's own Hessian
(``LinearModelLoss.hessian`` with unit weights, every product in float64),
reordered to this layout by :func:`equation_major`:

    I = sum_i H_i (x) x1_i x1_i^T,   x1_i = [1, x_i],
    H_i = p_i (1 - p_i) (binary) or diag(p_i) - p_i p_i^T (multinomial).

Robust ("sandwich") covariance: Cov = I^-1 M I^-1 with M = sum_i u_i u_i^T,
u_i = (p_i - y_i) (x) x1_i the per-row score; HC1 multiplies by n / (n - p).
No (n, n) or (n, K d1) array is formed beyond one row block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._sparse import rows

f64 = torch.float64


class InferenceError(ValueError):
    """The requested inference does not exist (singular information, separation)."""


@dataclass
class Covariance:
    cov: torch.Tensor  # (q, q) float64, q = n_equations * d1, equation-major
    n_equations: int
    d1: int


def equation_major(H, k, d, fit_intercept):
    """A (p, p) matrix in the loss's parameter layout [W.ravel(), b] reordered to the equation-major [b_e, W_e] here."""
    order = []
    for e in range(k):
        order += ([k * d + e] if fit_intercept else []) + list(range(e * d, (e + 1) * d))
    order = torch.tensor(order, device=H.device)
    return H[order][:, order]


def score_outer_products(Z, X, y, *, multiclass, fit_intercept, block_rows=4096):
    """M = sum_i u_i u_i^T, u_i = (p_i - y_i) (x) x1_i: the sandwich's meat, (K d1, K d1) float64, equation-major.

    Z: (n, k) fitted logits; X (n, d); y (n,) 0/1 (binary) or class indices.
    Without an intercept the column of ones is left out (d1 = d).
    """
    n, d = X.shape
    k = Z.shape[1]
    d1 = d + int(fit_intercept)
    M = torch.zeros(k * d1, k * d1, dtype=f64, device=X.device)
    for start in range(0, n, block_rows):
        Xb = rows(X, start, start + block_rows).to(f64)  # dense (m, d), also for a sparse X
        if fit_intercept:
            Xb = torch.cat([torch.ones(len(Xb), 1, dtype=f64, device=X.device), Xb], 1)
        zb, yb = Z[start : start + block_rows].to(f64), y[start : start + block_rows]
        if not multiclass:
            r = torch.sigmoid(zb[:, 0]) - yb.to(f64)
            M += Xb.T @ (Xb * (r * r)[:, None])
            continue
        r = torch.softmax(zb, dim=1) - torch.nn.functional.one_hot(yb.long(), k).to(f64)
        U = (r[:, :, None] * Xb[:, None, :]).reshape(len(Xb), k * d1)  # (m, K d1): one block only
        M += U.T @ U
    return M


def penalty_diagonal(k, d1, l2, fit_intercept, device):
    """(K d1,) the penalty's curvature: l2 on coefficients, 0 on intercepts."""
    diag = torch.full((k, d1), float(l2), dtype=f64, device=device)
    if fit_intercept:
        diag[:, 0] = 0.0
    return diag.reshape(-1)


def contrast_matrix(k, d1, baseline, device):
    """A (q, K d1) mapping symmetric parameters to the reported ones.

    baseline None: the identity (all K equations); else the K - 1 contrasts
    beta_e - beta_baseline, e != baseline, in class order.
    """
    eye = torch.eye(k * d1, dtype=f64, device=device)
    if baseline is None:
        return eye
    rows = []
    ref = eye[baseline * d1 : (baseline + 1) * d1]
    for e in range(k):
        if e != baseline:
            rows.append(eye[e * d1 : (e + 1) * d1] - ref)
    return torch.cat(rows)


def symmetric_inverse(I, k, d1, fit_intercept, penalized, names):
    """Inverse of the information in the symmetric parametrisation.

    For K >= 3 softmax equations I is singular along 1_K (x) e for every
    unpenalised column e (the intercept; every column without a penalty):
    adding one vector to all classes changes no probability. With P the
    projector on that null space, (I + P)^-1 - P is the pseudo-inverse, the
    covariance of the sum-to-zero parameters (computed on a scaled copy of I,
    then projected back onto the sum-to-zero subspace). Any further singularity is
    diagnosed by name (see ``singular_columns``).
    """
    P = torch.zeros_like(I)
    if k > 1:
        free = range(d1) if not penalized else ([0] if fit_intercept else [])
        for j in free:
            idx = torch.arange(k, device=I.device) * d1 + j
            P[idx[:, None], idx[None, :]] = 1.0 / k
    # Scale column j of every class by one number, so that the null directions
    # stay 1_K (x) e_j and the singularity test below is relative to each
    # column's own curvature (unscaled features are not "near-singular").
    col = I.diagonal().view(k, d1).mean(0)  # (d1,)
    dead = col <= 1e-300
    if bool(dead.any()):
        raise InferenceError(_singular_message([names[j] for j in torch.nonzero(dead).ravel().tolist()]))
    s = col.sqrt().repeat(k)
    outer = s[:, None] * s[None, :]
    A = I / outer + P
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0 or float(torch.linalg.eigvalsh(A)[0]) < RCOND:
        raise InferenceError(singular_columns(A, k, d1, names))
    inv = torch.cholesky_solve(torch.eye(len(A), dtype=f64, device=A.device), L)
    G = (inv - P) / outer  # a generalised inverse of I: right for every contrast,
    Q = torch.eye(len(A), dtype=f64, device=A.device) - P  # and projected onto sum-to-zero
    return Q @ G @ Q  # parameters it is the Moore-Penrose one, their covariance


RCOND = 1e-12  # smallest eigenvalue of the scaled information still called regular


def singular_columns(A, k, d1, names):
    """One line naming the columns behind the (near-)null eigenvectors of A (scaled information)."""
    values, vectors = torch.linalg.eigh(A)
    null = vectors[:, values < RCOND * 100]
    if null.shape[1] == 0:
        null = vectors[:, :1]
    loading = null.reshape(k, d1, -1).abs().amax(dim=(0, 2))  # each column's largest share
    return _singular_message([names[j] for j in torch.nonzero(loading > 0.05 * loading.max()).ravel().tolist()])


MAX_NAMED = 8  # columns an error line names before it counts the rest


def _singular_message(columns):
    if len(columns) == 1:
        what = (
            f"column {columns[0]!r} has no variation the model can use (constant, all zero, or a copy of the intercept)"
        )
    else:
        shown = ", ".join(repr(c) for c in columns[:MAX_NAMED])
        if len(columns) > MAX_NAMED:  # wide data: thousands of names would not make one readable line
            shown += f" and {len(columns) - MAX_NAMED} more"
        what = f"columns {shown} are collinear (one is a linear combination of the others)"
    return (
        f"the information matrix is singular: {what}; drop or merge them, or fit with an L2 penalty "
        "(their standard errors would be infinite)"
    )


def sandwich(bread, meat):
    return bread @ meat @ bread


__all__ = [
    "InferenceError",
    "equation_major",
    "score_outer_products",
    "penalty_diagonal",
    "contrast_matrix",
    "symmetric_inverse",
    "singular_columns",
    "sandwich",
]
