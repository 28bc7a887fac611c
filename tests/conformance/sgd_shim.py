"""``TorchlogitSGDClassifier``: scikit-learn's ``SGDClassifier`` interface, trained by torchlogit.

Test scaffolding for ``test_sklearn_sgd.py``, not product code. It takes
SGDClassifier's constructor parameters (same names, so ``clone`` and
``get_params`` work) and fits a ``torchlogit.LogisticRegression(solver='sgd',
batch_size=1, optimizer='sgd')``, which, like scikit-learn's SGD, updates the
coefficients after every single sample.

Translation:

- ``loss='log_loss'`` only. Its default is ``'log_loss'`` here, not
  scikit-learn's ``'hinge'``: torchlogit is logistic regression, and most of
  scikit-learn's cases use the default loss for behaviour that does not
  depend on it (input checks, the partial_fit contract, weights, shapes).
- ``learning_rate='constant'`` only, with ``eta0`` as torchlogit's
  ``learning_rate`` (torchlogit's step is constant). Its default is
  ``'constant'`` here, not ``'optimal'``, for the same reason.
- ``penalty='l2'`` with ``alpha`` -> ``C = 1 / (alpha * n)``, n the rows of
  the call: scikit-learn minimises mean logloss + alpha/2 ||w||^2, torchlogit
  sum logloss + ||w||^2 / (2 C). ``penalty=None`` -> ``penalty=None``.
- ``fit_intercept``, ``max_iter`` (epochs), ``tol``, ``random_state``,
  ``class_weight``, ``warm_start``, ``verbose``: passed on unchanged.
- ``shuffle``: torchlogit always visits the rows in a random order seeded by
  ``random_state`` and has no in-order pass; ``shuffle=False`` runs that same
  reproducible order (what the cases using it rely on: equal runs for equal
  settings). The cases that compare with an in-order reference also average,
  which is refused.
- ``n_jobs`` (scikit-learn's one-vs-all threads): not passed on; torchlogit
  fits the multinomial model with torch's threads.
- ``l1_ratio``, ``epsilon``, ``power_t``, ``validation_fraction``: ignored
  as scikit-learn ignores them, since they belong to refused settings.
- refused with NotImplementedError naming the parameter: any other loss or
  learning rate, ``penalty='l1'``/``'elasticnet'``, ``average``,
  ``early_stopping``, ``n_iter_no_change`` other than 5 (torchlogit's fixed
  patience), ``coef_init``/``intercept_init`` (torchlogit's fit takes no
  initial values; ``warm_start=True`` reuses the previous fit).

The fitted attributes are torchlogit's (``coef_``, ``intercept_``,
``classes_``, ``n_iter_``, ``n_features_in_``); ``t_`` (scikit-learn's count of
single-sample updates, plus one) is counted here from them.
"""

from __future__ import annotations

import numpy as np
import sklearn.linear_model
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

import torchlogit


def _forward(name):
    return property(lambda self: getattr(self.model_, name), doc=f"torchlogit's ``{name}``")


class TorchlogitSGDClassifier(ClassifierMixin, BaseEstimator):
    """SGDClassifier's parameters and methods over ``torchlogit.LogisticRegression(solver='sgd')``."""

    loss_functions = sklearn.linear_model.SGDClassifier.loss_functions  # the names one case iterates over

    def __init__(
        self,
        loss="log_loss",
        *,
        penalty="l2",
        alpha=0.0001,
        l1_ratio=0.15,
        fit_intercept=True,
        max_iter=1000,
        tol=1e-3,
        shuffle=True,
        verbose=0,
        epsilon=0.1,
        n_jobs=None,
        random_state=None,
        learning_rate="constant",
        eta0=0.01,
        power_t=0.5,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        class_weight=None,
        warm_start=False,
        average=False,
    ):
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.verbose = verbose
        self.epsilon = epsilon
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.average = average

    def _refuse_unsupported(self):
        refused = {
            "loss": (self.loss != "log_loss", "torchlogit is logistic regression only (loss='log_loss')"),
            "penalty": (self.penalty not in ("l2", None), "torchlogit has no L1 / elastic-net penalty yet"),
            "learning_rate": (self.learning_rate != "constant", "torchlogit's step size is constant"),
            "average": (bool(self.average), "torchlogit does not average the iterates"),
            "early_stopping": (bool(self.early_stopping), "torchlogit has no validation-split stopping"),
            "n_iter_no_change": (self.n_iter_no_change != 5, "torchlogit's sgd waits a fixed 5 epochs"),
        }
        for name, (bad, why) in refused.items():
            if bad:
                raise NotImplementedError(f"{name}={getattr(self, name)!r}: {why}")

    def _model(self, n_rows):
        """The torchlogit estimator these parameters translate to, for a call on ``n_rows`` rows."""
        self._refuse_unsupported()
        params = dict(
            solver="sgd",
            batch_size=1,
            optimizer="sgd",
            learning_rate=self.eta0,
            penalty=self.penalty,
            fit_intercept=self.fit_intercept,
            max_iter=self.max_iter,
            tol=self.tol,
            random_state=self.random_state,
            class_weight=self.class_weight,
            warm_start=self.warm_start,
            verbose=self.verbose,
        )
        if self.penalty == "l2":
            params["C"] = np.inf if self.alpha == 0 else 1.0 / (self.alpha * n_rows)
        if not hasattr(self, "model_"):
            self.model_ = torchlogit.LogisticRegression(**params)
        else:  # kept between calls: warm_start and partial_fit continue from it
            self.model_.set_params(**params)
        return self.model_

    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        for name, value in (("coef_init", coef_init), ("intercept_init", intercept_init)):
            if value is not None:
                raise NotImplementedError(f"{name}: torchlogit's fit takes no initial values (use warm_start=True)")
        self._model(np.shape(X)[0]).fit(X, y, sample_weight=sample_weight)
        self.t_ = 1 + int(self.model_.n_iter_[0]) * np.shape(X)[0]
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        self._model(np.shape(X)[0]).partial_fit(X, y, classes=classes, sample_weight=sample_weight)
        self.t_ = getattr(self, "t_", 1) + np.shape(X)[0]
        return self

    def _fitted(self):
        check_is_fitted(self, "model_")
        return self.model_

    def decision_function(self, X):
        return self._fitted().decision_function(X)

    def predict(self, X):
        return self._fitted().predict(X)

    def predict_proba(self, X):
        return self._fitted().predict_proba(X)

    def predict_log_proba(self, X):
        return self._fitted().predict_log_proba(X)

    coef_ = _forward("coef_")
    intercept_ = _forward("intercept_")
    classes_ = _forward("classes_")
    n_iter_ = _forward("n_iter_")
    n_features_in_ = _forward("n_features_in_")
