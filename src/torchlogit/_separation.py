"""Detecting (quasi-)complete separation, where the maximum-likelihood estimate does not exist.

Binary (Albert and Anderson; the linear program of Konis, 2007): with
a_i = (2 y_i - 1) x1_i and x1_i = [1, x_i], the classes are separated when some
direction w != 0 has a_i . w >= 0 for every row. Along such a w the
likelihood only grows, so the unpenalised coefficients run off to infinity.
We solve

    maximise sum_i a_i . w   subject to  a_i . w >= 0,  -1 <= w_j <= 1,

whose optimum is 0 exactly when no separating direction exists. The rows
with a_i . w > 0 are the separated ones (their fitted probability goes to 0
or 1); separation is complete when some direction makes every margin strictly
positive (a second program: maximise t subject to a_i . w >= t), quasi-complete
otherwise.

Multinomial: margins (w_{y_i} - w_k) . x1_i >= 0 for every row i and class
k != y_i, with w of the first class fixed at 0 (the softmax's free direction).

Columns are standardised first, so the box and the tolerances mean the same
for every feature. The math knows nothing of estimators: arrays in, a
``Separation`` (or None) out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse
from sklearn.exceptions import ConvergenceWarning

from ._sparse import is_sparse

MAX_LP_ENTRIES = 20_000_000  # rows x columns of the LP's constraint matrix we are willing to build


class SeparationWarning(ConvergenceWarning):
    """The data is (quasi-)separable: the unpenalised maximum-likelihood estimate does not exist."""


@dataclass
class Separation:
    complete: bool
    features: list  # names of the columns of the separating direction ("const" for the intercept)
    class_pairs: list  # (class, other class) pairs with rows strictly on their own side
    n_separated: int  # rows with a strictly positive margin: some fitted probability -> 0 or 1
    n_rows: int

    def message(self) -> str:
        kind = "complete separation" if self.complete else "quasi-complete separation"
        feats = ", ".join(repr(f) for f in self.features[:8])
        if len(self.features) > 8:
            feats += f" and {len(self.features) - 8} more columns"
        classes = "classes " + "; ".join(f"{a!r} and {b!r}" for a, b in self.class_pairs)
        return (
            f"{kind}: {classes} are separated by a linear combination of {feats} "
            f"({self.n_separated} of {self.n_rows} rows have a fitted probability driven to 0 or 1), so the "
            "maximum-likelihood estimate does not exist and unpenalised coefficients grow without bound. "
            "Remedies: fit with an L2 penalty (penalty='l2', finite C), drop or merge the features or "
            "classes involved, or collect data that overlaps."
        )


DIVERGING_LOSS = 1e-6  # a row's loss below this: fitted with probability 1 - 1e-6 or closer


def separation_if_diverging(row_loss, X, y_idx, classes, *, fit_intercept=True, feature_names=None):
    """The Separation behind an unpenalised fit, or None.

    row_loss: (n,) losses of the fitted rows. Divergence along a separating
    direction drives some of them to 0, so the linear program runs only when
    one is below DIVERGING_LOSS: cheap for the fits that are fine.
    """
    if float(row_loss.min()) > DIVERGING_LOSS:
        return None
    if is_sparse(X):  # the LP is dense anyway; beyond its size limit no verdict, as for dense data
        if X.shape[0] * X.shape[1] > MAX_LP_ENTRIES:
            return None
        X = X.matrix.toarray()
    return find_separation(
        X.cpu().numpy() if hasattr(X, "cpu") else X,
        y_idx,
        len(classes),
        fit_intercept=fit_intercept,
        feature_names=feature_names,
        class_labels=classes,
    )


def find_separation(X, y_idx, n_classes, *, fit_intercept=True, feature_names=None, class_labels=None, tol=1e-7):
    """A Separation when the data (X (n, d), y_idx (n,) in 0..K-1) is separable, else None.

    Returns None as well when the linear program would be too large to build
    (see MAX_LP_ENTRIES): callers then say that the check was not made.
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(d)]
    labels = list(class_labels) if class_labels is not None else list(range(n_classes))
    labels = [v.item() if isinstance(v, np.generic) else v for v in labels]
    mu = X.mean(0) if fit_intercept else np.zeros(d)
    sigma = X.std(0)
    sigma[sigma == 0] = 1.0
    X1 = (X - mu) / sigma
    if fit_intercept:
        X1 = np.hstack([np.ones((n, 1)), X1])
        names = ["const"] + names
    d1 = X1.shape[1]
    if n_classes == 2:
        signs = np.where(y_idx == 1, 1.0, -1.0)
        blocks = [(0, 1, sparse.csr_matrix(signs[:, None] * X1), np.arange(n))]
    else:
        blocks = _multinomial_margins(X1, y_idx, n_classes)
    if sum(b.shape[0] for _, _, b, _ in blocks) * blocks[0][2].shape[1] > MAX_LP_ENTRIES:
        return None
    A = sparse.vstack([b for _, _, b, _ in blocks]).tocsr()
    res = optimize.linprog(
        -np.asarray(A.sum(0)).ravel(), A_ub=-A, b_ub=np.zeros(A.shape[0]), bounds=(-1, 1), method="highs"
    )
    if res.status != 0 or -res.fun <= tol * A.shape[0]:
        return None  # optimum 0: no separating direction
    strict = A @ res.x > 10 * tol
    complete = bool(strict.all()) or _complete(A, tol)
    used = np.abs(res.x.reshape(-1, d1)).max(0) > 1e-6
    separated_rows = np.zeros(n, dtype=bool)
    pairs, offset = [], 0
    for a, b, block, rows in blocks:
        hit = strict[offset : offset + block.shape[0]]
        offset += block.shape[0]
        separated_rows[rows[hit]] = True
        if hit.any():
            pairs.append((labels[a], labels[b]))
    return Separation(
        complete=complete,
        features=[names[j] for j in np.flatnonzero(used)],
        class_pairs=pairs,
        n_separated=n if complete else int(separated_rows.sum()),
        n_rows=n,
    )


def _complete(A, tol):
    """Whether some direction puts every margin strictly positive: max t s.t. A w >= t, |w| <= 1."""
    m, q = A.shape
    lhs = sparse.hstack([-A, np.ones((m, 1))]).tocsr()  # -A w + t <= 0
    c = np.zeros(q + 1)
    c[-1] = -1.0
    res = optimize.linprog(c, A_ub=lhs, b_ub=np.zeros(m), bounds=[(-1, 1)] * q + [(None, 1)], method="highs")
    return res.status == 0 and -res.fun > 10 * tol


def _multinomial_margins(X1, y_idx, K):
    """[(class a, class b, margins (rows, (K-1) d1), row indices)]: (w_a - w_b) . x1_i for rows of class a.

    w_0 is fixed at 0; pairs are listed once (a < b), with rows of a giving
    (w_a - w_b) . x1 >= 0 and rows of b giving (w_b - w_a) . x1 >= 0.
    """
    d1 = X1.shape[1]
    out = []
    for a in range(K):
        for b in range(a + 1, K):
            rows_a, rows_b = np.flatnonzero(y_idx == a), np.flatnonzero(y_idx == b)
            rows = np.concatenate([rows_a, rows_b])
            sign = np.concatenate([np.ones(len(rows_a)), -np.ones(len(rows_b))])[:, None]
            M = sparse.lil_matrix((len(rows), (K - 1) * d1))
            if a > 0:
                M[:, (a - 1) * d1 : a * d1] = sign * X1[rows]
            M[:, (b - 1) * d1 : b * d1] = -sign * X1[rows]
            out.append((a, b, M.tocsr(), rows))
    return out
