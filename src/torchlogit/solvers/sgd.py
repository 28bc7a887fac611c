"""The lecture's recipe as a solver: mini-batch stochastic gradient descent.

    for epoch in range(max_iter):
        for xb, yb, sb in loader:
            logits = model(xb)                      # forward
            loss = criterion(logits, yb, sb) + penalty(model)
            optimizer.zero_grad()
            loss.backward()                         # backward
            optimizer.step()                        # update

Any ``torch.optim`` optimizer can be named (``"sgd"``, ``"adam"``, ...).
One iteration is one epoch, as in scikit-learn's ``SGDClassifier``.
"""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from ._result import IterInfo, Result


class _Rows(Dataset):
    """Rows of (X, y, s) fetched a whole batch at a time: one indexing op per batch."""

    def __init__(self, X, y, sw):
        self.X, self.y, self.sw = X, y, sw

    def __len__(self):
        return len(self.X)

    def __getitem__(self, idx):
        idx = torch.as_tensor(idx, device=self.X.device)
        return self.X[idx], self.y[idx], self.sw[idx]


def make_loader(X, y, sw, *, batch_size, random_state=None):
    """A ``DataLoader`` over shuffled mini-batches; the order is fixed by ``random_state``."""
    gen = torch.Generator()
    gen.manual_seed(int(random_state) if random_state is not None else int(torch.randint(2**31, ()).item()))
    sampler = BatchSampler(RandomSampler(range(len(X)), generator=gen), batch_size, drop_last=False)
    return DataLoader(_Rows(X, y, sw), sampler=sampler, batch_size=None)


def get_optimizer(name):
    """``"sgd"``, ``"adam"``, ... -> the ``torch.optim`` class of that name (any case)."""
    for attr in dir(torch.optim):
        cls = getattr(torch.optim, attr)
        if attr.lower() == str(name).lower() and isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer):
            if cls is torch.optim.LBFGS:
                break  # needs a closure over the full batch: use solver="lbfgs"
            return cls
    raise ValueError(f"unknown optimizer {name!r}: use a torch.optim optimizer name such as 'sgd' or 'adam'")


def sgd(
    fun_and_grad,
    w0,
    *,
    tol=1e-4,
    max_iter=100,
    callback=None,
    model,
    criterion,
    loader,
    penalty=None,
    optimizer="sgd",
    learning_rate=0.01,
    n_iter_no_change=5,
):
    """Run the lecture's loop from ``w0`` (loaded into ``model``).

    criterion(logits, yb, sb) -> scalar batch loss, scaled so its expectation is
    the objective; penalty(model) -> its share of the penalty (or None).
    Stops after ``max_iter`` epochs, or earlier when the epoch's mean loss has
    not improved by ``tol`` for ``n_iter_no_change`` epochs (tol=None: never).
    ``fun_and_grad`` evaluates the full objective once at the end, for the report.
    """
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(w0.to(next(model.parameters()).dtype), model.parameters())
    opt = get_optimizer(optimizer)(model.parameters(), lr=learning_rate)
    history, best, stalled = [], float("inf"), 0
    converged, msg, it = False, f"max_iter={max_iter} epochs done", 0
    for it in range(1, max_iter + 1):
        total, weight = 0.0, 0
        for xb, yb, sb in loader:
            logits = model(xb)
            loss = criterion(logits, yb, sb)
            if penalty is not None:
                loss = loss + penalty(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
            weight += len(xb)
        epoch_loss = total / max(weight, 1)
        history.append(epoch_loss)
        if callback is not None:
            callback(IterInfo(it, epoch_loss, float("nan")))
        if not torch.isfinite(torch.tensor(epoch_loss)):
            msg = "the loss became non-finite: lower learning_rate"
            break
        if tol is not None:
            stalled = stalled + 1 if epoch_loss > best - tol else 0
            best = min(best, epoch_loss)
            if stalled >= n_iter_no_change:
                converged, msg = True, f"epoch loss improved by less than tol for {n_iter_no_change} epochs"
                break
    x = torch.nn.utils.parameters_to_vector(model.parameters()).detach().to(torch.float64)
    f, g = fun_and_grad(x)
    return Result(x, float(f), float(g.abs().max()), it, converged, msg, history)
