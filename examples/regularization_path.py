"""
A regularisation path, and choosing C by cross-validation
=========================================================

:func:`torchlogit.path.regularization_path` fits the model at a grid of C,
from the penalty at which every coefficient is zero down, each fit
warm-started from the previous one and certified by its duality gap.
:class:`torchlogit.LogisticRegressionCV` runs such paths on every fold and
picks C by the best mean score or by the one-standard-error rule.

Data: scikit-learn's bundled breast cancer table (569 rows, 30 features in
very different units), standardised so that the coefficients compare.
"""

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from torchlogit import LogisticRegressionCV
from torchlogit.path import regularization_path
from torchlogit.plotting import coefficient_path, cv_scores

data = load_breast_cancer()
X, y = StandardScaler().fit_transform(data.data), data.target

# %%
# The L1 path
# -----------
# 30 values of C on the data-derived grid (``Cs=30``); ``l1_ratio=1.0`` is the
# lasso, so features enter the model one by one as C grows.
path = regularization_path(X, y, Cs=30, l1_ratio=1.0)
non_zero = (path.coef[:, 0, :] != 0).sum(axis=1)
for C, k, gap, solver in list(zip(path.Cs, non_zero, path.duality_gaps, path.solvers))[::6]:
    print(f"C = {C:9.4f}: {k:2d} non-zero coefficients, duality gap {gap:.1e} ({solver})")
print(f"largest duality gap relative to its objective: {np.nanmax(path.duality_gaps / np.abs(path.objectives)):.1e}")

# %%
# Each coefficient against C; the eight largest at the weakest penalty are
# named.
fig = coefficient_path(path.Cs, path.coef[:, 0, :], feature_names=data.feature_names)

# %%
# Choosing C
# ----------
# 5-fold cross-validation scored by log-loss over 30 values of C on the data-derived grid, elastic net
# with half of the penalty L1. ``selection="1se"`` takes the smallest C whose
# mean score is within one standard error of the best (glmnet's
# ``lambda.1se``): a simpler model that the data cannot tell from the best.
cv = LogisticRegressionCV(
    Cs=30, grid="data", cv=5, l1_ratios=(0.5,), scoring="neg_log_loss", selection="1se", use_legacy_attributes=False
).fit(X, y)
res = cv.cv_results_
order = np.argsort(res["C"])
C, mean, sem = res["C"][order], -res["mean_test_score"][order], res["sem_test_score"][order]  # log-loss
best = int(np.argmin(mean))
one_se = int(np.flatnonzero(mean <= mean[best] + sem[best]).min())  # C ascending: the smallest within reach
chosen = np.atleast_1d(cv.C_)[0]
print(f"best mean: C = {C[best]:.4g}, one-standard-error rule: C = {C[one_se]:.4g}; chosen C_ = {chosen:.4g}")
print(f"{int((cv.coef_ != 0).sum())} of {X.shape[1]} coefficients non-zero after the refit on all rows")
print(f"largest duality gap of a fold's fit: {np.nanmax(cv.duality_gaps_):.1e}")

# %%
fig = cv_scores(
    C,
    mean,
    sem,
    chosen_C=chosen,
    min_C=C[best],
    one_se_C=C[one_se],
    score_name="log-loss",
    greater_is_better=False,
)
