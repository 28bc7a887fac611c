"""The lecture, replayed with torchlogit (``make demo``).

Hours studied -> pass/fail: x = 1, 2, 3 hours, y = 0, 0, 1.
"""

import torch

from torchlogit import LinearRegression, LogisticRegression
from torchlogit.nn import LinearModel

hours = [[1.0], [2.0], [3.0]]
passed = [0, 0, 1]

# 1. The lecture's recipe, verbatim: nn.Module, BCE, SGD, forward/backward/step.
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

# 2. The same model as a scikit-learn estimator, solved exactly (L2, C = 1).
clf = LogisticRegression().fit(hours, passed)
print(
    f"LogisticRegression:  P(pass | 4 hours) = {clf.predict_proba([[4.0]])[0, 1]:.4f}"
    f"  (w = {clf.coef_[0, 0]:.4f}, b = {clf.intercept_[0]:.4f}, solver {clf.solver_}, {clf.n_iter_[0]} iterations)"
)

# 3. The revision: linear regression, hours -> points.
reg = LinearRegression().fit(hours, [2.0, 4.0, 6.0])
print(f"LinearRegression:    points at 4 hours = {reg.predict([[4.0]])[0]:.1f}")
