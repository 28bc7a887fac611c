"""``LinearRegression`` and ``Ridge``: the lecture's contrast on the same machinery.

Affine model z = X w + b with the identity link and the squared loss
0.5 (y - z)^2, so the objective sum_i sw_i 0.5 (y_i - z_i)^2 + 0.5 alpha ||w||^2
has scikit-learn's ``Ridge(alpha)`` minimiser (alpha = 0: ``LinearRegression``).
Newton reaches it in one step.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import TorchLinearModel
from ._callbacks import with_callbacks
from ._loss import POINTWISE, LinearModelLoss
from ._problem import Problem
from .penalties import L2, NoPenalty
from .solvers import SOLVERS


class Ridge(RegressorMixin, TorchLinearModel):
    """Least squares with an L2 penalty ``alpha * ||w||^2`` (intercept free).

    Shares ``solver``, ``tol``, ``max_iter``, ``device``, ``dtype`` and the sgd
    options with :class:`torchlogit.LogisticRegression`. y must be 1-D.
    """

    _y_numeric = True
    _parameter_constraints = {
        **TorchLinearModel._common_constraints,
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "solver": [StrOptions(set(SOLVERS) | {"auto"})],
    }

    def __init__(
        self,
        alpha=1.0,
        *,
        fit_intercept=True,
        solver="auto",
        tol=None,
        max_iter=1000,
        warm_start=False,
        random_state=None,
        verbose=0,
        device="auto",
        dtype=None,
        optimizer="sgd",
        learning_rate=0.01,
        batch_size=32,
    ):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.dtype = dtype
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size

    @with_callbacks
    def fit(self, X, y, sample_weight=None, *, callback=None):
        """Fit; ``callback(info)`` is called after every iteration (see ``LogisticRegression.fit``)."""
        self._validate_params()
        X, y = self._validate_X(X, reset=True, y=y)
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D for {type(self).__name__}; got shape {y.shape}")
        sw = self._sample_weight(sample_weight, X, X.shape[0])
        loss = LinearModelLoss(POINTWISE["squared"], X.shape[1], 1, self.fit_intercept)
        target = torch.as_tensor(y, device=X.device).to(X.dtype)
        w0 = torch.zeros(loss.n_params, dtype=torch.float64, device=X.device)
        if self.warm_start and getattr(self, "coef_", None) is not None and self.coef_.shape == (X.shape[1],):
            w0 = torch.as_tensor(np.append(self.coef_, self.intercept_ if self.fit_intercept else []), device=X.device)
            w0 = w0.to(torch.float64)
        metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        S = float(sw.sum(dtype=torch.float64))
        penalty = L2(float(self.alpha) / S) if self.alpha else NoPenalty()  # 0.5 alpha ||w||^2, divided by S
        self._solve(Problem(loss, penalty, X, target, sw / S), w0, callback, labels=y, metadata=metadata)
        return self

    @staticmethod
    def _attributes(problem, theta):
        """The fitted attributes at theta: coef_ (d,) in the data's dtype and intercept_ a float."""
        W, b = problem.datafit.unpack(theta)
        coef = W[0].cpu().numpy().astype(np.float32 if problem.X.dtype == torch.float32 else np.float64)
        return {"coef_": coef, "intercept_": float(b[0]) if b is not None else 0.0}

    def predict(self, X):
        """``z = X @ coef_ + intercept_``, shape (n,)."""
        return self._linear_predictor(X)[:, 0].cpu().numpy()


class LinearRegression(Ridge):
    """Ordinary least squares (``Ridge`` with alpha = 0)."""

    _parameter_constraints = {k: v for k, v in Ridge._parameter_constraints.items() if k != "alpha"}

    def __init__(
        self,
        *,
        fit_intercept=True,
        solver="auto",
        tol=None,
        max_iter=1000,
        warm_start=False,
        random_state=None,
        verbose=0,
        device="auto",
        dtype=None,
        optimizer="sgd",
        learning_rate=0.01,
        batch_size=32,
    ):
        super().__init__(
            0.0,
            fit_intercept=fit_intercept,
            solver=solver,
            tol=tol,
            max_iter=max_iter,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
            device=device,
            dtype=dtype,
            optimizer=optimizer,
            learning_rate=learning_rate,
            batch_size=batch_size,
        )
