"""The lecture's example, as library calls the ``torchlogit demo`` command prints.

Hours studied -> pass/fail: x = 1, 2, 3, y = 0, 0, 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .nn import LinearModel

HOURS = np.array([[1.0], [2.0], [3.0]])
PASSED = np.array([0, 0, 1])
POINTS = np.array([2.0, 4.0, 6.0])  # the linear-regression revision: hours -> points


@dataclass
class LectureRun:
    model: LinearModel
    losses: list  # summed BCE after each epoch

    @property
    def w(self):
        return self.model.linear.weight.item()

    @property
    def b(self):
        return self.model.linear.bias.item()

    def proba(self, hours):
        x = torch.as_tensor(np.asarray(hours, dtype=np.float32).reshape(-1, 1))
        with torch.no_grad():
            return torch.sigmoid(self.model(x)).numpy()[:, 0]


def train_lecture_model(epochs=1000, learning_rate=0.01, seed=0, callback=None) -> LectureRun:
    """The lecture's recipe, verbatim: Linear(1, 1), summed BCE, SGD; forward, backward, step.

    ``callback(epoch, loss)`` is called after every epoch.
    """
    torch.manual_seed(seed)  # nn.Linear's random initial w, b
    x = torch.tensor(HOURS, dtype=torch.float32)
    y = torch.tensor(PASSED, dtype=torch.float32)[:, None]
    model = LinearModel(n_features=1)
    criterion = torch.nn.BCEWithLogitsLoss(reduction="sum")  # BCE(sigmoid(z), y), in logits
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    losses = []
    for epoch in range(1, epochs + 1):
        loss = criterion(model(x), y)  # forward
        optimizer.zero_grad()
        loss.backward()  # backward
        optimizer.step()  # update
        losses.append(loss.item())
        if callback is not None:
            callback(epoch, losses[-1])
    return LectureRun(model, losses)


def separated_1d(x, y) -> bool:
    """True when a threshold on the single feature splits the two classes perfectly."""
    x = np.asarray(x).ravel()
    x0, x1 = x[np.asarray(y) == 0], x[np.asarray(y) == 1]
    return bool(x0.max() < x1.min() or x1.max() < x0.min())
