"""What every torchlogit estimator shares: devices, dtypes, input validation,
the solver call and the convergence warning.

Inputs go through scikit-learn's own validation (so its error messages read
the same) and then become tensors without a copy where possible: a C- or
F-contiguous float32/float64 numpy array is wrapped by ``torch.from_numpy``;
only a move to another device or a dtype change copies.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.sparse
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, assert_all_finite, check_is_fitted, validate_data

from . import _threads
from ._callbacks import CallbackSupportMixin, FitTasks
from ._convergence import ConvergenceReport
from ._costs import estimate
from ._fit import fit_problem, representer_applies
from ._io import save_model
from ._sparse import SparseX, linear
from .solvers import SOLVERS, choose

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    np.float32: torch.float32,
    np.float64: torch.float64,
    torch.float32: torch.float32,
    torch.float64: torch.float64,
}


def resolve_device(device) -> torch.device:
    """'auto' -> the first CUDA GPU when there is one, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):  # 'meta', 'mps', ...: no data or no kernels we test on
        raise ValueError(f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but no CUDA GPU is available; use device='cpu' or 'auto'")
    return dev


def _numpy_dtype(dtype):
    """The numpy dtype(s) that scikit-learn's validation should produce."""
    if dtype is None:  # follow the input: float32 stays, everything else -> float64
        return [np.float64, np.float32]
    try:
        return np.float32 if _DTYPES[dtype] == torch.float32 else np.float64
    except (KeyError, TypeError):
        raise ValueError(f"dtype must be None, 'float32' or 'float64'; got {dtype!r}") from None


def to_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """numpy -> torch sharing memory when possible, then to ``device``."""
    if not (a.flags.c_contiguous or a.flags.f_contiguous):
        a = np.ascontiguousarray(a)
    with warnings.catch_warnings():  # read-only arrays (memory maps) are fine: we never write
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(a)
    return t.to(device)


def _tensor_input(X):
    """A CPU tensor becomes a numpy view (no copy); a GPU tensor stays where it is; a torch sparse tensor
    becomes a scipy CSR (sharing its arrays on the CPU)."""
    if isinstance(X, torch.Tensor) and X.layout != torch.strided:
        csr = X.detach().to_sparse_csr().cpu()
        return scipy.sparse.csr_matrix(
            (csr.values().numpy(), csr.col_indices().numpy(), csr.crow_indices().numpy()), shape=tuple(X.shape)
        ), None
    if isinstance(X, torch.Tensor):
        X = X.detach()
        if X.device.type == "cpu":
            return X.numpy(), None
        return None, X
    return X, None


class TorchLinearModel(CallbackSupportMixin, BaseEstimator):
    """Shared machinery; subclasses define the loss, the targets and ``_attributes`` (theta -> coef_, intercept_)."""

    _common_constraints = {
        "fit_intercept": ["boolean"],
        "tol": [Interval(numbers.Real, 0, None, closed="left"), None],  # 0: until the solver stops (scikit-learn)
        "max_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "device": [str, torch.device, None],
        "dtype": [None, str, type, torch.dtype],
        "random_state": ["random_state"],
        "optimizer": [str],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    # ------------------------------------------------------------------ data
    def _validate_X(self, X, *, reset, y=None):
        """Validate X (and y, required when reset=True: fitting) with scikit-learn's helpers; return (tensor, y)."""
        X, gpu = _tensor_input(X)
        if reset and y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().numpy()
        if gpu is not None:
            return self._validate_gpu_tensor(gpu, reset=reset), y
        dtype = _numpy_dtype(self.dtype)
        # finiteness is checked below by torch, in parallel: scikit-learn's check is a single-threaded pass
        sparse = {"accept_sparse": ["csr", "csc"], "accept_large_sparse": True}  # CSR/CSC kept as they are; COO -> CSR
        if y is None:
            X = validate_data(self, X, reset=reset, dtype=dtype, ensure_all_finite=False, **sparse)
        else:
            X, y = validate_data(
                self, X, y, reset=reset, dtype=dtype, y_numeric=self._y_numeric, ensure_all_finite=False, **sparse
            )
        if scipy.sparse.issparse(X):  # never densified: see torchlogit._sparse
            if not np.isfinite(X.data).all():
                assert_all_finite(X.data, input_name="X")  # scikit-learn's own message
            return SparseX.from_scipy(X, self._device()), y
        tensor = to_tensor(X, self._device())
        # the sum's threads as a fit of this size gets them: torch's pool on a small X, with another process
        # busy on the cores, waits for its descheduled worker (10,000 x 20 under load: 2.1 ms against 0.16)
        with _threads.for_work(float(tensor.numel())):
            finite = bool(torch.isfinite(tensor.sum()))  # NaN and inf propagate into the sum (or it overflowed)
        if not finite:
            assert_all_finite(X, input_name="X")  # scikit-learn's own message; passes if only the sum overflowed
        return tensor, y

    def _validate_gpu_tensor(self, X, *, reset):
        """The same checks scikit-learn makes, for data that must stay on its GPU."""
        if X.ndim != 2:
            raise ValueError(f"Expected 2D array, got {X.ndim}D array instead")
        if X.shape[0] < 1:
            raise ValueError(f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a minimum of 1 is required.")
        target = _DTYPES.get(self.dtype) if self.dtype is not None else None
        if target is None and X.dtype not in (torch.float32, torch.float64):
            target = torch.float64
        if target is not None and X.dtype != target:
            X = X.to(target)
        if torch.isnan(X).any():
            raise ValueError("Input X contains NaN.")
        if not torch.isfinite(X).all():
            raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X.to(self._device())

    def _sample_weight(self, sample_weight, X, n):
        """Validated (n,) weights as a tensor of X's dtype on X's device."""
        if isinstance(sample_weight, torch.Tensor):
            sample_weight = sample_weight.detach().cpu().numpy()
        dtype = np.float32 if X.dtype == torch.float32 else np.float64
        sw = _check_sample_weight(sample_weight, np.empty((n, 0)), dtype=dtype, ensure_non_negative=True)
        return torch.as_tensor(np.ascontiguousarray(sw), device=X.device)

    def _device(self):
        return resolve_device(self.device)

    def save(self, path):
        """Store the fitted model at ``path``: safetensors + JSON metadata, no pickle.

        The write is atomic. Read it back with :func:`torchlogit.load`.
        """
        save_model(self, path)

    # ---------------------------------------------------------------- solving
    def _solve(self, problem, w0, callback=None, *, labels=None, metadata=None):
        """Run the chosen solver, write the fitted state, warn (ConvergenceWarning) when it stopped short.

        ``callback(info)`` gets an ``IterInfo`` (iteration, fun, grad_max, x)
        after every iteration (epoch for sgd): how the CLI draws its progress
        bar; returning True stops the fit. Callbacks set with scikit-learn's
        ``set_callbacks`` see the same iterations (:mod:`torchlogit._callbacks`).
        ``problem``: a :class:`torchlogit._problem.Problem`. The fitted
        attributes come from ``self._attributes(problem, theta)``.
        ``labels`` (the user's y) and ``metadata`` are what those callbacks are shown.
        """
        loss, X = problem.datafit, problem.X
        solver = choose(
            self.solver,
            loss.n_params,
            lambda: estimate(loss, X),
            penalty_kind=problem.penalty.name,
            representer=representer_applies(problem),
        )
        X_hooks = X.matrix if isinstance(X, SparseX) else (X.numpy() if X.device.type == "cpu" else X)
        tasks = FitTasks.begin(
            self, X_hooks, labels, metadata, self.max_iter, solver, lambda theta: self._attributes(problem, theta)
        )
        listeners = [c for c in (callback, self._print_progress if self.verbose else None, tasks) if c is not None]

        def every_callback(info):  # all of them see every iteration; any one can stop the fit
            return any([bool(listen(info)) for listen in listeners])

        if tasks is not None:
            tasks.start(w0)
        tol = self.tol if self.tol is not None else SOLVERS[solver].default_tol
        sgd_options = {
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "random_state": self.random_state,
        }
        with _threads.for_work(float(X.shape[0]) * loss.n_params):
            res = fit_problem(
                problem,
                solver=solver,
                w0=w0,
                tol=tol,
                max_iter=self.max_iter,
                callback=every_callback if listeners else None,
                sgd_options=sgd_options,
            )
        self._refuse_non_finite(res.x, loss, X.dtype)
        self._record_fit(solver, res, tol, self._attributes(problem, res.x))
        if tasks is not None:
            tasks.end()
        # sgd with tol=None runs a fixed number of epochs; a fit stopped by a callback was asked to stop
        if not res.converged and tol is not None and not res.stopped:
            warnings.warn(self._convergence_message(solver, res, tol), ConvergenceWarning, stacklevel=3)
        return res

    def _record_fit(self, solver, res, tol, attributes):
        """Write a finished fit's state: ``attributes`` (coef_, intercept_, ...) and what the solver reports.

        The one writer of fitted state for ``fit`` and ``fit_stream`` (a loaded
        model's state comes from its file, :mod:`torchlogit._io`).
        """
        for name, value in attributes.items():
            setattr(self, name, value)
        self.solver_ = solver
        self.convergence_ = ConvergenceReport(
            solver,
            bool(res.converged),
            int(res.n_iter),
            res.message,
            float(res.grad_max),
            None if tol is None else float(tol),
            float(res.fun),
            getattr(res, "duality_gap", None),
        )
        self.n_iter_ = np.array([res.n_iter], dtype=np.int32)
        self.objective_ = res.fun
        self.loss_curve_ = list(res.history)

    def _refuse_non_finite(self, theta, loss, dtype):
        """The last guard: a fit that produced NaN or inf parameters is an error naming the columns, not a model."""
        bad = ~torch.isfinite(theta)
        if not bool(bad.any()):
            return
        W, b = loss.unpack(bad)
        columns = torch.nonzero(W.any(0)).flatten().tolist()
        names = getattr(self, "feature_names_in_", None)
        named = ", ".join(f"column {names[j]!r}" if names is not None else f"column {j}" for j in columns[:5])
        where = f"for {named}" if columns else "for the intercept"
        raise ValueError(
            f"the fit produced non-finite coefficients {where}: the values of X are too extreme for "
            f"{str(dtype).replace('torch.', '')} arithmetic; rescale those columns"
        )

    def _convergence_message(self, solver, res, tol):
        """One line that starts with scikit-learn's phrase for the solver the user named.

        Users filter scikit-learn's ConvergenceWarnings by these phrases
        ("lbfgs failed to converge", "Newton solver did not converge"), so they
        are kept; what follows is torchlogit's own account of the stop.
        """
        name, n = type(self).__name__, res.n_iter
        if solver == "sgd":  # SGDClassifier's phrase
            return (
                "Maximum number of iteration reached before convergence. Consider increasing max_iter to improve "
                f"the fit. {name}(solver='sgd') ran max_iter={self.max_iter} epochs ({res.message}); or tune "
                "learning_rate/batch_size, or use solver='auto' for the exact optimum."
            )
        phrase = {
            "lbfgs": f"lbfgs failed to converge after {n} iteration(s).",
            "newton-cg": f"newton-cg failed to converge at loss = {res.fun}. Increase the number of iterations.",
            "liblinear": "Liblinear failed to converge, increase the number of iterations.",
            "sag": "The max_iter was reached which means the coef_ did not converge.",
            "saga": "The max_iter was reached which means the coef_ did not converge.",
        }.get(
            self.solver,
            f"lbfgs failed to converge after {n} iteration(s)."
            if solver == "lbfgs"
            else f"Newton solver did not converge after {n} iterations.",
        )
        return (
            f"{phrase} {name}(solver={solver!r}) stopped: {res.message}; max|gradient| = {res.grad_max:.3g} "
            f"against tol = {tol:.3g}. Increase the number of iterations to improve the convergence "
            f"(max_iter={self.max_iter})."
        )

    @staticmethod
    def _print_progress(info):
        print(f"iter {info.iteration:5d}  objective {info.fun:.10g}  max|grad| {info.grad_max:.3g}")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # scipy.sparse CSR/CSC (and COO), never densified
        return tags

    def _fitted_theta(self, X_dtype, device):
        """(W, b) tensors from the public ``coef_``/``intercept_`` (users may set them)."""
        check_is_fitted(self)
        coef = self.coef_.toarray() if scipy.sparse.issparse(self.coef_) else self.coef_  # after sparsify()
        W = torch.as_tensor(np.atleast_2d(coef), dtype=X_dtype, device=device)
        b = torch.as_tensor(np.atleast_1d(self.intercept_), dtype=X_dtype, device=device)
        return W, b

    def _linear_predictor(self, X):
        """z = X @ coef_.T + intercept_ as a tensor (n, k)."""
        check_is_fitted(self)
        X, _ = self._validate_X(X, reset=False)
        W, b = self._fitted_theta(X.dtype, X.device)
        return linear(X, W, b)


__all__ = [
    "TorchLinearModel",
    "resolve_device",
    "to_tensor",
    "StrOptions",
    "Interval",
]
