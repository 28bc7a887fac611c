"""``LogisticRegression``: a drop-in for scikit-learn's, on PyTorch.

Binary targets use the sigmoid model with one logit; three or more classes a
true multinomial softmax over K logits (never one-vs-rest). The objective is
scikit-learn's (see :mod:`torchlogit._loss`): sum_i sw_i loss_i + 0.5 ||W||^2 / C.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.sparse
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted

from ._base import TorchLinearModel
from ._callbacks import with_callbacks
from ._fit import sgd_forward_backward
from ._labels import encode_labels, label_indices
from ._loss import POINTWISE, LinearModelLoss
from ._problem import Problem
from ._separation import SeparationWarning, separation_if_diverging
from .nn import LinearModel
from .penalties import from_params
from .solvers import ALIASES, SOLVERS
from .solvers.sgd import make_batches, make_optimizer, proximal_step, row_batches, seed, sgd_epoch


def coefficients(loss, theta, np_dtype, center_weights=True):
    """(coef_ (k, d), intercept_ (k,)) numpy arrays from a solver's flat theta.

    The softmax is unchanged by adding one vector to every class: multinomial
    models report the representative with intercepts, and (``center_weights``)
    coefficients, summing to zero over classes. With an L2 penalty or none
    that is also the exact optimum along this direction (it minimises
    ||W||^2 and leaves the likelihood alone), which a solver stopped by tol
    may not have reached: its curvature is only 1/(C n). An L1 part is not
    invariant along it, so its optimum's coefficients are kept as they are.
    """
    W, b = loss.unpack(theta)
    W = W.clone()
    b = b.clone() if b is not None else torch.zeros(loss.n_outputs, dtype=W.dtype, device=W.device)
    if loss.pointwise.multiclass:
        b -= b.mean()
        if center_weights:
            W -= W.mean(dim=0, keepdim=True)
    return W.cpu().numpy().astype(np_dtype), b.cpu().numpy().astype(np_dtype)


class LogisticRegression(ClassifierMixin, TorchLinearModel):
    """Logistic regression (binary and multinomial) with scikit-learn's API and optimum.

    Minimises ``sum_i sample_weight_i * loss_i + (1 / C) * (r * ||coef_||_1 +
    (1 - r) / 2 * ||coef_||^2)`` with r = ``l1_ratio``; the intercept is not
    penalised. Dense arrays, pandas frames, torch tensors and scipy/torch
    sparse matrices are accepted (sparse input is never densified).

    Parameters
    ----------
    penalty : {'deprecated', 'l2', 'l1', 'elasticnet', None}, default='deprecated'
        scikit-learn >= 1.8's default 'deprecated': the kind of penalty follows
        ``l1_ratio`` and ``C=np.inf`` fits without one. The explicit spellings
        of scikit-learn < 1.8 are accepted, with scikit-learn's warnings where
        they contradict ``l1_ratio``.
    C : float > 0 or np.inf, default=1.0
        Inverse penalty strength.
    l1_ratio : float in [0, 1], default=0.0
        The L1 share r of the penalty: 0 is L2, 1 is the lasso, in between the
        elastic net.
    fit_intercept : bool, default=True
        Fit an unpenalised intercept per class.
    solver : str, default='auto'
        'newton' (Newton/IRLS, Cholesky), 'lbfgs', 'prox-newton' (L1 and
        elastic net: working sets, coordinate descent on the working set's
        model), 'sgd' (the lecture's mini-batch loop, proximal for an L1 part)
        or 'auto': prox-newton for an L1 part, else lbfgs when a gradient pass
        reads X once (fused kernels), else newton when the Hessian is small
        (p = k (d + 1) <= 1000 and n p (d + 1) <= 2e9), else lbfgs.
        scikit-learn's names are aliases: 'newton-cg', 'newton-cholesky' ->
        newton; 'sag' -> auto (L2 only); 'saga', 'liblinear' -> auto (any
        penalty; liblinear's penalised intercept is not reproduced).
    tol : float or None, default=None
        Exact solvers: stop when the largest gradient entry (L1: KKT violation)
        of the objective divided by sum(sample_weight), with respect to the
        coefficients of standardised features, is <= tol; None means 1e-6;
        0 runs to ``max_iter``. sgd: minimum improvement of the epoch loss;
        None runs all ``max_iter`` epochs.
    max_iter : int, default=1000
        Iterations (epochs for sgd). 0 fits nothing.
    class_weight : dict, 'balanced' or None, default=None
        Weights per class, multiplied into the sample weights.
    warm_start : bool, default=False
        Start from the previous ``coef_``/``intercept_``.
    random_state : int or None, default=None
        Seeds the mini-batch order of solver='sgd' (the exact solvers are
        deterministic).
    verbose : int, default=0
        > 0 prints one line per iteration.
    device : str, default='auto'
        'auto' (a CUDA GPU when there is one), 'cpu', 'cuda' or 'cuda:N'.
    dtype : {None, 'float32', 'float64'}, default=None
        None follows the input like scikit-learn: float32 stays float32,
        float64 and integers compute in float64.
    optimizer : str, default='sgd'
        solver='sgd': a ``torch.optim`` optimizer name (an L1 part needs plain 'sgd').
    learning_rate : float, default=0.01
        solver='sgd': the step size.
    batch_size : int, default=32
        solver='sgd': rows per mini-batch.
    dual, intercept_scaling, n_jobs
        Accepted for compatibility and ignored (dual=True is refused).

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
        The class labels, sorted.
    coef_ : ndarray of shape (1, d) for two classes, else (K, d)
        Coefficients (a scipy sparse matrix after :meth:`sparsify`).
        Multinomial L2 fits report coefficients centred across classes.
    intercept_ : ndarray of shape (1,) or (K,)
    n_iter_ : ndarray of shape (1,), int32
        Iterations (epochs for sgd) run.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (d,)
        Only for input with string column names (pandas, pyarrow).
    solver_ : str
        The solver actually used.
    objective_ : float
        The final objective divided by sum(sample_weight).
    loss_curve_ : list of float
        The objective after each iteration.
    convergence_ : ConvergenceReport
        Iterations, the final gradient (or KKT violation) against tol, the
        objective and, for a penalised fit, the duality gap bounding its
        distance to the optimum.
    separation_ : Separation or None
        penalty=None: the (quasi-)separation found, which makes the unpenalised
        optimum not exist; else None.
    """

    _y_numeric = False
    _parameter_constraints = {
        **TorchLinearModel._common_constraints,
        "penalty": [StrOptions({"l2", "l1", "elasticnet", "none", "deprecated"}), None],
        "C": [Interval(numbers.Real, 0, None, closed="right")],
        "l1_ratio": [Interval(numbers.Real, 0, 1, closed="both"), None],
        "dual": ["boolean"],
        "intercept_scaling": [Interval(numbers.Real, 0, None, closed="neither")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "solver": [StrOptions(set(SOLVERS) | set(ALIASES) | {"auto"})],
        "n_jobs": [None, numbers.Integral],
    }

    def __init__(
        self,
        penalty="deprecated",
        *,
        C=1.0,
        l1_ratio=0.0,
        dual=False,
        tol=None,
        fit_intercept=True,
        intercept_scaling=1,
        class_weight=None,
        random_state=None,
        solver="auto",
        max_iter=1000,
        verbose=0,
        warm_start=False,
        n_jobs=None,
        device="auto",
        dtype=None,
        optimizer="sgd",
        learning_rate=0.01,
        batch_size=32,
    ):
        self.penalty = penalty
        self.C = C
        self.l1_ratio = l1_ratio
        self.dual = dual
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.class_weight = class_weight
        self.random_state = random_state
        self.solver = solver
        self.max_iter = max_iter
        self.verbose = verbose
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.device = device
        self.dtype = dtype
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size

    # ------------------------------------------------------------------ fit
    def _check_penalty_params(self):
        """The warnings and refusals of scikit-learn's penalty parameters, in its words (users grep for them)."""
        if self.l1_ratio is None:
            warnings.warn(
                "'l1_ratio=None' was deprecated in version 1.8 and will trigger an error in 1.10. "
                "Use 0<=l1_ratio<=1 instead.",
                FutureWarning,
                stacklevel=3,
            )
        if self.n_jobs is not None:
            warnings.warn(
                f"'n_jobs' has no effect (torchlogit computes with torch's threads) and will be removed "
                f"as in scikit-learn 1.10. You provided 'n_jobs={self.n_jobs}', please leave it "
                "unspecified.",
                FutureWarning,
                stacklevel=3,
            )
        if self.dual:
            raise ValueError("dual=True is a liblinear formulation; torchlogit solves the primal: use dual=False")
        if self.penalty in (None, "none") and self.C != 1.0:
            warnings.warn("Setting penalty=None will ignore the C and l1_ratio parameters", UserWarning, stacklevel=3)
        r = self.l1_ratio
        if self.penalty in ("l1", "l2", None, "none") and r is not None and 0 < r < 1:
            warnings.warn(
                f"l1_ratio parameter is only used when penalty is 'elasticnet'. Got (penalty={self.penalty})",
                UserWarning,
                stacklevel=3,
            )
        if (self.penalty == "l2" and r not in (0, None)) or (self.penalty == "l1" and r != 1):
            warnings.warn(
                f"Inconsistent values: penalty={self.penalty} with l1_ratio={r}. penalty is deprecated. "
                "Please use l1_ratio only.",
                UserWarning,
                stacklevel=3,
            )
        if self.penalty == "elasticnet" and r is None:
            raise ValueError("l1_ratio must be specified when penalty is elasticnet.")

    def _make_penalty(self, total_weight):
        """The penalty on the objective divided by ``total_weight`` = sum(sample_weight): alpha = 1 / (C S)."""
        return from_params(self.penalty, self.C, self.l1_ratio, total_weight)

    @with_callbacks
    def fit(self, X, y, sample_weight=None, *, callback=None):
        """Fit the model to X (n, d) and labels y (n,) of any type.

        ``callback(info)`` is called after every iteration (an ``IterInfo``:
        iteration, objective, max|gradient|, the iterate); returning True stops
        the fit. scikit-learn's ``set_callbacks`` works too.
        """
        self._validate_params()
        self._check_penalty_params()
        X, y = self._validate_X(X, reset=True, y=y)
        self.classes_, y_idx = encode_labels(y)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, but the data "
                f"contains only one class: {self.classes_[:1].tolist()[0]!r}"  # a plain value, not np.int64(1)
            )
        sw = self._sample_weight(sample_weight, X, X.shape[0])
        if self.class_weight is not None:
            # scikit-learn's rule: 'balanced' counts each sample with its weight
            sw_np = None if sample_weight is None else sw.cpu().numpy()
            cw = compute_class_weight(self.class_weight, classes=self.classes_, y=y, sample_weight=sw_np)
            sw = sw * torch.as_tensor(cw[y_idx], dtype=sw.dtype, device=sw.device)
        S = float(sw.sum(dtype=torch.float64))
        if S <= 0:
            raise ValueError("The sample weights sum to zero: there is nothing to fit.")

        binary = n_classes == 2
        k = 1 if binary else n_classes
        loss = LinearModelLoss(POINTWISE["binary" if binary else "multinomial"], X.shape[1], k, self.fit_intercept)
        if binary:
            target = torch.as_tensor(y_idx, dtype=X.dtype, device=X.device)
        else:
            target = torch.as_tensor(y_idx, dtype=torch.long, device=X.device)
        w0 = self._initial_theta(loss, X.device)
        metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        problem = Problem(loss, self._make_penalty(S), X, target, sw / S)
        res = self._solve(problem, w0, callback, labels=y, metadata=metadata)
        self.separation_ = None if problem.penalty.alpha else self._check_separation(loss, res.x, X, target, y_idx)
        return self

    @staticmethod
    def _attributes(problem, theta):
        """The fitted attributes at theta: coef_ (k, d) and intercept_ (k,) in the data's dtype."""
        np_dtype = np.float32 if problem.X.dtype == torch.float32 else np.float64
        coef, intercept = coefficients(problem.datafit, theta, np_dtype, center_weights=not problem.penalty.l1)
        return {"coef_": coef, "intercept_": intercept}

    def sparsify(self):
        """Store ``coef_`` as a scipy CSR matrix (scikit-learn's SparseCoefMixin): less memory when most are 0.

        Predictions are unchanged; :meth:`densify` turns it back. Worth it when
        fewer than about a third of the coefficients are non-zero (an L1 fit).
        """
        check_is_fitted(self)
        self.coef_ = scipy.sparse.csr_matrix(self.coef_)
        return self

    def densify(self):
        """Store ``coef_`` as a dense numpy array again (the default)."""
        check_is_fitted(self)
        if scipy.sparse.issparse(self.coef_):
            self.coef_ = self.coef_.toarray()
        return self

    def _sgd_only(self):
        if ALIASES.get(self.solver, self.solver) != "sgd":
            raise AttributeError("partial_fit trains with the sgd solver: use LogisticRegression(solver='sgd')")
        return True

    @available_if(_sgd_only)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of the sgd solver over (X, y), continuing from the previous call.

        scikit-learn's contract: the first call on an unfitted model needs
        ``classes`` (every label the stream will contain); later calls must use
        the same features. A fitted model (by ``fit``, by earlier calls, or
        loaded) continues from its ``coef_``/``intercept_``.
        Mini-batches of ``batch_size`` rows in an order seeded by
        ``random_state``; the optimizer (``optimizer``, ``learning_rate``) and
        its state persist between calls. Rows are weighted by
        ``sample_weight`` times their ``class_weight`` (a dict: 'balanced'
        needs the whole data set's class frequencies, which one call does not
        see). The penalty is 0.5 ||W||^2 / (C N) with N the rows seen so far:
        one pass over a data set, in any number of calls, ends with ``fit``'s
        penalty on it; later passes count their rows again, so k passes over
        the same rows aim at the optimum of ``C * k``. An L1 part (``penalty='l1'``,
        elastic net) is applied by a proximal step after each update, which
        needs ``optimizer='sgd'``. One call takes the same steps as one epoch
        of ``fit(solver='sgd')`` on the same rows, seed and batch size (equal sample weights).
        """
        if self.class_weight == "balanced":  # scikit-learn's words: users search for them
            raise ValueError(
                "class_weight 'balanced' is not supported for partial_fit. In order to use 'balanced' weights, use "
                "compute_class_weight('balanced', classes=classes, y=y). In place of y you can use a large enough "
                "sample of the full training set target to properly estimate the class frequency distributions. "
                "Pass the resulting weights as the class_weight parameter."
            )
        first = not (hasattr(self, "classes_") and hasattr(self, "coef_"))
        if first:
            self._validate_params()
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            self.classes_ = np.unique(np.asarray(classes))
            if len(self.classes_) < 2:
                raise ValueError(f"partial_fit needs at least 2 classes, got {self.classes_.tolist()}")
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(
                f"classes {np.unique(classes).tolist()} differ from the first call's {self.classes_.tolist()}"
            )
        X, y = self._validate_X(X, reset=first, y=y)
        idx, unknown = label_indices(self.classes_, y)
        if unknown is not None:
            raise ValueError(f"label {unknown!r} is not in classes {self.classes_.tolist()} given to partial_fit")
        binary = len(self.classes_) == 2
        k = 1 if binary else len(self.classes_)
        loss = LinearModelLoss(POINTWISE["binary" if binary else "multinomial"], X.shape[1], k, self.fit_intercept)
        state = getattr(self, "_partial", None)
        # new state on the first call, and when coef_ is no longer what the last call left (fit, or a loaded model)
        if first or state is None or state["coef"] is not self.coef_:
            state = self._partial = self._new_partial_state(X, k, first)
            if first or not hasattr(self, "n_iter_"):
                self.n_iter_ = np.zeros(1, dtype=np.int32)
        model, opt = state["model"], state["opt"]
        X = X.to(model.linear.weight.dtype)  # a later chunk may come in the other float dtype
        sw = self._sample_weight(sample_weight, X, X.shape[0])
        if self.class_weight is not None:
            cw = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
            sw = sw * torch.as_tensor(cw[idx], dtype=sw.dtype, device=sw.device)
        target = torch.as_tensor(idx, device=X.device, dtype=X.dtype if binary else torch.long)
        W, b = model.linear.weight, model.linear.bias
        penalty = self._make_penalty(state["rows"] + X.shape[0])  # on the rows seen so far (see the docstring)
        prox = proximal_step(penalty, W, opt)  # refuses an L1 part with an adaptive optimizer, before any change
        state["rows"] += X.shape[0]
        step = sgd_forward_backward(loss.pointwise, W, b, penalty.l2)
        weights = None if bool((sw == 1).all()) else sw  # the data term is (1 / rows) sum sw_i loss_i
        batches = make_batches(X.shape[0], self.batch_size, generator=state["gen"], device=X.device)
        sums = sgd_epoch(batches(), row_batches(step, X, target, weights), opt, prox=prox)
        self.n_iter_ = self.n_iter_ + 1
        self.solver_ = "sgd"
        self.coef_ = W.detach().cpu().numpy().copy()
        self.intercept_ = b.detach().cpu().numpy().copy() if self.fit_intercept else np.zeros(k, dtype=self.coef_.dtype)
        state["coef"] = self.coef_
        self.loss_curve_ = getattr(self, "loss_curve_", []) + [sums.mean]
        return self

    def _new_partial_state(self, X, k, first):
        """partial_fit's state: the model (from zeros, or from coef_/intercept_), its optimizer, the seeded order."""
        model = LinearModel(X.shape[1], k, bias=self.fit_intercept).to(X.device, X.dtype)
        with torch.no_grad():
            model.linear.weight.copy_(torch.as_tensor(0.0 if first else self.coef_))
            if self.fit_intercept:
                model.linear.bias.copy_(torch.as_tensor(0.0 if first else self.intercept_))
        opt = make_optimizer(self.optimizer, model.parameters(), self.learning_rate)
        gen = torch.Generator().manual_seed(seed(self.random_state))
        return {"model": model, "opt": opt, "rows": 0, "gen": gen}

    def _check_separation(self, loss, theta, X, target, y_idx):
        """Without a penalty, rows fitted with probability ~1 may mean that no optimum exists.

        Then a linear program decides (see :mod:`torchlogit._separation`); when
        the data is separable a SeparationWarning names the features and classes
        and ``separation_`` keeps the finding.
        """
        with torch.no_grad():
            row_loss = loss.pointwise.loss(loss.logits(theta.to(X.dtype), X), target)
        names = getattr(self, "feature_names_in_", None)
        found = separation_if_diverging(
            row_loss,
            X,
            y_idx,
            self.classes_,
            fit_intercept=self.fit_intercept,
            feature_names=None if names is None else list(names),
        )
        if found is not None:
            warnings.warn(found.message(), SeparationWarning, stacklevel=3)
        return found

    def _initial_theta(self, loss, device):
        """Zeros, or the previous fit's parameters when warm_start=True and shapes match."""
        theta = torch.zeros(loss.n_params, dtype=torch.float64, device=device)
        coef = getattr(self, "coef_", None)
        if not self.warm_start or coef is None or coef.shape != (loss.n_outputs, loss.n_features):
            return theta
        parts = [torch.as_tensor(coef, dtype=torch.float64).reshape(-1)]
        if loss.fit_intercept:
            parts.append(torch.as_tensor(self.intercept_, dtype=torch.float64).reshape(-1))
        return torch.cat(parts).to(device)

    # --------------------------------------------------------------- predict
    def decision_function(self, X):
        """Logits: (n,) for binary (the logit of classes_[1]), (n, K) otherwise."""
        z = self._linear_predictor(X)
        z = z[:, 0] if z.shape[1] == 1 else z
        return z.cpu().numpy()

    def _link(self):
        check_is_fitted(self)
        return POINTWISE["binary" if len(self.classes_) == 2 else "multinomial"].link

    def predict_proba(self, X):
        """(n, n_classes) probabilities, columns in the order of ``classes_``, in the input's dtype.

        The link is applied in float64 (an (n, K) array, cheap) and the result
        returned in X's dtype, as scikit-learn does: float32 arithmetic would
        round p = 1 - 3e-8 to 1 before the normalisation.
        """
        z = self._linear_predictor(X)
        return self._link().inverse(z.double()).to(z.dtype).cpu().numpy()

    def predict_log_proba(self, X):
        """(n, n_classes) log-probabilities in the input's dtype, computed in logits (no log(0)).

        Consistent with ``predict_proba`` as scikit-learn's log(predict_proba)
        is: where a float32 probability rounds to exactly 1 (p > 1 - 3e-8), its
        log is 0, not the -3e-9 that float32 could still hold.
        """
        z = self._linear_predictor(X)
        log_p = self._link().log_inverse(z.double())
        if z.dtype != torch.float64:
            log_p = torch.where(log_p.exp().to(z.dtype) == 1, 0.0, log_p)
        return log_p.to(z.dtype).cpu().numpy()

    def predict(self, X):
        """The most probable class label for each row."""
        check_is_fitted(self)
        z = self._linear_predictor(X)
        idx = (z[:, 0] > 0).long() if z.shape[1] == 1 else z.argmax(dim=1)
        return self.classes_[idx.cpu().numpy()]

    # ------------------------------------------------------------- inference
    def summary(self, X, y, *, cov_type="nonrobust", baseline="first"):
        """Standard errors, z and p values, confidence intervals, log-likelihoods.

        X, y: the data for inference, normally the training data. ``cov_type``:
        'nonrobust' (inverse observed information), 'HC0' or 'HC1' (sandwich).
        Multinomial models report each class against ``baseline`` ('first' =
        classes_[0], statsmodels MNLogit's convention, or any class label), or
        all K classes with sum-to-zero coefficients when ``baseline=None``.
        Returns a :class:`torchlogit.SummaryResult`; ``print()`` it for a table.
        """
        from ._summary import summarize

        check_is_fitted(self)
        return summarize(self, X, y, cov_type=cov_type, baseline=baseline)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags
