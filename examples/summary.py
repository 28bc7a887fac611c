"""
A statsmodels-style summary: standard errors, p-values, intervals
=================================================================

``model.summary(X, y)`` gives the inference statsmodels' ``Logit`` gives:
standard errors from the information matrix, z statistics, p-values, Wald
confidence intervals, log-likelihoods, pseudo R-squared, AIC and BIC, with
robust (sandwich) standard errors on request. Without a penalty the numbers
are statsmodels' to ~1e-14 (see the performance page).

Data: the Spector and Mazzeo teaching-method data bundled with statsmodels
(32 students; did a new method, PSI, raise grades?), read from the installed
package, no network.
"""

import numpy as np
import statsmodels.api as sm

from torchlogit import LogisticRegression
from torchlogit.plotting import probability_curve

d = sm.datasets.spector.load_pandas()
X, y = d.exog, d.endog  # GPA, TUCE, PSI; grade improved (0/1)

# %%
# The table
# ---------
# ``penalty=None``: the maximum-likelihood estimate, as statsmodels fits it.
# The intercept comes first and is named ``const``.
model = LogisticRegression(penalty=None).fit(X, y)
result = model.summary(X, y)
print(result)

# %%
# The same numbers as arrays, and as a pandas DataFrame.
print("params", np.round(result.params, 4))
print("p-values", np.round(result.pvalues, 4))
print(result.to_frame())

# %%
# Robust standard errors
# ----------------------
# ``cov_type="HC1"``: the sandwich estimate with the n / (n - p) factor.
robust = model.summary(X, y, cov_type="HC1")
print("robust standard errors", np.round(robust.bse, 3))

# %%
# A confidence band for the probability
# -------------------------------------
# One feature, GPA: the probability of an improved grade with its pointwise
# 95 % band (the Wald interval of the logit through the sigmoid).
gpa = X[["GPA"]].to_numpy()
one = LogisticRegression(penalty=None).fit(gpa, y)
band = one.summary(gpa, y)


def ci(grid):
    lower, upper = band.predict_proba_ci(grid.reshape(-1, 1))
    return lower[:, 1], upper[:, 1]


fig = probability_curve(
    lambda grid: one.predict_proba(grid.reshape(-1, 1))[:, 1],
    x=gpa,
    y=y,
    x_max=4.5,
    xlabel="GPA",
    band=ci,
    title="P(grade improved | GPA), 95 % band",
)
fig.axes[0].set_ylabel("Probability of an improved grade")
