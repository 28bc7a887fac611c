"""
The lecture, replayed with torchlogit
=====================================

Hours studied -> pass/fail: x = 1, 2, 3 hours, y = 0, 0, 1. The lecture
fits it with an ``nn.Module``, a binary cross-entropy loss and
``torch.optim.SGD``; torchlogit keeps that recipe as one of its solvers and
adds the exact optimum, scikit-learn's API and the linear regression of the
revision. ``make demo`` runs the same steps as ``torchlogit demo``.
"""

import torch

from torchlogit import LinearRegression, LogisticRegression
from torchlogit.nn import LinearModel
from torchlogit.plotting import probability_curve

hours = [[1.0], [2.0], [3.0]]
passed = [0, 0, 1]

# %%
# The lecture's recipe, verbatim
# ------------------------------
# An ``nn.Module`` whose ``forward`` returns the logit z = x w + b, the BCE of
# sigmoid(z) computed in logits, and the forward / backward / step loop.
torch.manual_seed(0)
x, y = torch.tensor(hours), torch.tensor([[0.0], [0.0], [1.0]])
model = LinearModel(n_features=1)  # Linear(1, 1): z = x w + b
criterion = torch.nn.BCEWithLogitsLoss(reduction="sum")  # BCE on sigmoid(z), computed in logits
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for epoch in range(1000):
    loss = criterion(model(x), y)  # forward
    optimizer.zero_grad()
    loss.backward()  # backward
    optimizer.step()  # update
    if epoch % 250 == 0:
        print(f"epoch {epoch:4d}  loss {loss.item():.4f}")
p4 = torch.sigmoid(model(torch.tensor([[4.0]]))).item()
print(f"lecture loop:        P(pass | 4 hours) = {p4:.4f}")

# %%
# The same model as a scikit-learn estimator
# ------------------------------------------
# Solved exactly (L2, C = 1). Without a penalty the optimum would not exist:
# the three points are perfectly separated, so the likelihood keeps rising as
# w grows; the default L2 penalty makes it unique.
clf = LogisticRegression().fit(hours, passed)
print(
    f"LogisticRegression:  P(pass | 4 hours) = {clf.predict_proba([[4.0]])[0, 1]:.4f}"
    f"  (w = {clf.coef_[0, 0]:.4f}, b = {clf.intercept_[0]:.4f}, solver {clf.solver_}, {clf.n_iter_[0]} iterations)"
)

# %%
# The lecture's picture: the probability of passing against hours, with the
# 0.5 line where the predicted class changes.
fig = probability_curve(
    lambda grid: clf.predict_proba(grid.reshape(-1, 1))[:, 1],
    x=hours,
    y=passed,
    title="LogisticRegression() on the lecture's data",
)

# %%
# The revision: linear regression, hours -> points
# ------------------------------------------------
reg = LinearRegression().fit(hours, [2.0, 4.0, 6.0])
print(f"LinearRegression:    points at 4 hours = {reg.predict([[4.0]])[0]:.1f}")
