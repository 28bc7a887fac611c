"""``LogisticRegressionCV``: a drop-in for scikit-learn's (1.9), on warm-started, certified paths.

For every cross-validation fold and l1_ratio, one regularisation path
(:func:`torchlogit.path.fit_path`) over the grid of C, scored on the fold's
test rows; the best (C, l1_ratio) by the mean score over folds (or by the
one-standard-error rule, ``selection='1se'``) is refitted on all rows.
The attributes, their shapes and the refit semantics are scikit-learn's
(``use_legacy_attributes`` included); the additions are ``selection``,
``grid='data'`` (glmnet's data-derived grid instead of ``logspace(-4, 4)``),
``cv_results_`` (a dict of arrays: ``pandas.DataFrame(model.cv_results_)``)
and ``duality_gaps_`` (every fit's certificate).

A fold is the whole X with zero weight on its test rows (``PathData.weights``),
so no fold copies X and every fold's pass reads the same matrix: what a
later step needs to solve the folds together in one pass.
"""

from __future__ import annotations

import inspect
import numbers
import warnings

import numpy as np
import torch
from sklearn.metrics import get_scorer, get_scorer_names, make_scorer
from sklearn.model_selection import check_cv
from sklearn.utils import metadata_routing
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _manual_routing,
    _raise_for_params,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.validation import _check_method_params, check_is_fitted

from . import _folds
from ._logistic import LogisticRegression, coefficients
from ._sparse import SparseX, is_sparse, linear
from .path import GAP_TOL, data_grid, default_eps, fit_path, path_coefs, prepare, warn_unconverged
from .solvers import ALIASES, SOLVERS

f64 = torch.float64
SCORE_BLOCK_BYTES = 4 << 20  # test rows gathered per product when scoring a path

_EXACT = (set(SOLVERS) - {"sgd"}) | set(ALIASES) | {"auto"}
_NOT_CV = {"C", "l1_ratio", "warm_start", "optimizer", "learning_rate", "batch_size"}  # LogisticRegression's only


class LogisticRegressionCV(LogisticRegression):
    """Logistic regression with C (and l1_ratio) chosen by cross-validation; scikit-learn's API.

    Parameters as scikit-learn 1.9's ``LogisticRegressionCV`` (``Cs``,
    ``l1_ratios``, ``fit_intercept``, ``cv``, ``dual``, ``penalty``,
    ``scoring``, ``solver``, ``tol``, ``max_iter``, ``class_weight``,
    ``n_jobs``, ``verbose``, ``refit``, ``intercept_scaling``,
    ``random_state``, ``use_legacy_attributes``), with its deprecation
    warnings for ``l1_ratios``, ``scoring`` and ``use_legacy_attributes``.
    Differences: ``solver`` defaults to 'auto' and takes torchlogit's exact
    solvers and scikit-learn's names as aliases (not 'sgd': a path point must
    reach its optimum); ``tol`` (default None: 1e-6) and ``max_iter``
    (default 1000) mean what they mean for :class:`LogisticRegression`;
    ``penalty`` is not deprecated (as in ``LogisticRegression``); ``n_jobs``,
    ``intercept_scaling`` and ``random_state`` are accepted and have no effect
    (torch's threads; no liblinear; deterministic solvers). The parameters
    torchlogit adds:

    Parameters
    ----------
    selection : {'min', '1se'}, default='min'
        'min': the best mean score (scikit-learn's rule). '1se': the largest
        penalty (smallest C) whose mean score is within one standard error
        (std over folds / sqrt(n_folds)) of the best, at the best l1_ratio
        (glmnet's ``lambda.1se``). With ``refit=False`` the coefficients are
        the folds' mean at that one (C, l1_ratio).
    grid : {'logspace', 'data'}, default='logspace'
        For ``Cs=int``: scikit-learn's ``np.logspace(-4, 4, Cs)`` (so ``Cs_``
        is scikit-learn's), or 'data': from the C at which every coefficient is
        zero down by the ratio ``eps`` (:mod:`torchlogit.path`).
    eps : float or None, default=None
        ``grid='data'`` only: the ratio of the smallest to the largest penalty;
        None: 1e-4 when n > d, else 1e-2 (glmnet's).
    gap_tol : float or None, default=1e-6
        Every fit (each fold's path points and the refit) is continued with a
        tighter tol until its duality gap is at most ``gap_tol`` times its
        objective: a certificate that it is that close to its optimum, which
        the gradient test of ``tol`` alone does not give at weak penalties.
        None: ``tol`` alone. The gaps reached are in ``duality_gaps_``.
    batch_folds : bool, default=True
        Solve the folds together where it applies (two classes, an L2
        penalty, dense X, solver 'auto' or 'lbfgs'): every fold's L-BFGS in
        lockstep, each pass over X serving all folds (:mod:`torchlogit._folds`).
        False, or elsewhere: one fold's path after another.
    device, dtype : as for :class:`LogisticRegression`.

    Attributes
    ----------
    cv_results_ : dict of (n_l1_ratios * n_cs,) arrays
        Added to scikit-learn's attributes: 'C', 'l1_ratio',
        'mean_test_score', 'std_test_score', 'sem_test_score',
        'split{i}_test_score', 'rank_test_score', 'max_duality_gap'.
    duality_gaps_ : ndarray of shape (n_folds, n_l1_ratios, n_cs)
        Added: the duality gap of every fold's fit.
    best_index_ : int
        Added: the chosen row of ``cv_results_``.
    """

    __metadata_request__score = {"sample_weight": metadata_routing.UNUSED}
    _parameter_constraints = {
        **{k: v for k, v in LogisticRegression._parameter_constraints.items() if k not in _NOT_CV},
        "Cs": [Interval(numbers.Integral, 1, None, closed="left"), "array-like"],
        "l1_ratios": ["array-like", None, Hidden(StrOptions({"warn"}))],
        "cv": ["cv_object"],
        "scoring": [StrOptions(set(get_scorer_names())), callable, None, Hidden(StrOptions({"warn"}))],
        "refit": ["boolean"],
        "penalty": [StrOptions({"l1", "l2", "elasticnet"}), Hidden(StrOptions({"deprecated"}))],
        "solver": [StrOptions(_EXACT)],
        "use_legacy_attributes": ["boolean", Hidden(StrOptions({"warn"}))],
        "selection": [StrOptions({"min", "1se"})],
        "grid": [StrOptions({"logspace", "data"})],
        "eps": [Interval(numbers.Real, 0, 1, closed="neither"), None],
        "gap_tol": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "batch_folds": ["boolean"],
    }

    def __init__(
        self,
        *,
        Cs=10,
        l1_ratios="warn",
        fit_intercept=True,
        cv=None,
        dual=False,
        penalty="deprecated",
        scoring="warn",
        solver="auto",
        tol=None,
        max_iter=1000,
        class_weight=None,
        n_jobs=None,
        verbose=0,
        refit=True,
        intercept_scaling=1.0,
        random_state=None,
        use_legacy_attributes="warn",
        selection="min",
        grid="logspace",
        eps=None,
        gap_tol=GAP_TOL,
        batch_folds=True,
        device="auto",
        dtype=None,
    ):
        self.Cs = Cs
        self.l1_ratios = l1_ratios
        self.fit_intercept = fit_intercept
        self.cv = cv
        self.dual = dual
        self.penalty = penalty
        self.scoring = scoring
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.refit = refit
        self.intercept_scaling = intercept_scaling
        self.random_state = random_state
        self.use_legacy_attributes = use_legacy_attributes
        self.selection = selection
        self.grid = grid
        self.eps = eps
        self.gap_tol = gap_tol
        self.batch_folds = batch_folds
        self.device = device
        self.dtype = dtype

    # ------------------------------------------------------------ parameters
    def _resolve_params(self):
        """(penalty, l1_ratios, l1_ratios_, scoring, legacy) after scikit-learn 1.9's warnings, in its words."""
        l1_ratios = self.l1_ratios
        if isinstance(l1_ratios, str) and l1_ratios == "warn":
            l1_ratios = None
            warnings.warn(
                "The default value for l1_ratios will change from None to (0.0,) in version 1.10. From version "
                "1.10 onwards, only array-like with values in [0, 1] will be allowed, None will be forbidden. "
                "To avoid this warning, explicitly set a value, e.g. l1_ratios=(0,).",
                FutureWarning,
                stacklevel=3,
            )
        if self.penalty == "deprecated":
            if self.l1_ratios is None:
                warnings.warn(
                    "'l1_ratios=None' was deprecated in version 1.8 and will trigger an error in 1.10. Use an "
                    "array-like with values in [0, 1] instead.",
                    FutureWarning,
                    stacklevel=3,
                )
            if l1_ratios is None or np.all(np.asarray(l1_ratios) == 0):
                penalty = "l2"
            elif np.all(np.asarray(l1_ratios) == 1):
                penalty = "l1"
            else:
                penalty = "elasticnet"
        else:
            penalty = self.penalty
        scoring = self.scoring
        if scoring == "warn":
            warnings.warn(
                "The default value of the parameter 'scoring' will change from None, i.e. accuracy, to "
                "'neg_log_loss' in version 1.11. To silence this warning, explicitly set the scoring parameter: "
                "scoring='neg_log_loss' for the new, scoring='accuracy' or scoring=None for the old default.",
                FutureWarning,
                stacklevel=3,
            )
            scoring = None
        legacy = self.use_legacy_attributes
        if legacy == "warn":
            name = type(self).__name__
            warnings.warn(
                f"The fitted attributes of {name} will be simplified in scikit-learn 1.10 to remove redundancy. "
                "Set`use_legacy_attributes=False` to enable the new behavior now, or set it to `True` to silence "
                "this warning during the transition period while keeping the deprecated behavior for the time "
                "being. The default value of use_legacy_attributes will change from True to False in "
                f"scikit-learn 1.10. See the docstring of {name} for more details.",
                FutureWarning,
                stacklevel=3,
            )
            legacy = True
        if self.dual:
            raise ValueError("dual=True is a liblinear formulation; torchlogit solves the primal: use dual=False")
        if penalty == "elasticnet":
            if (
                l1_ratios is None
                or len(l1_ratios) == 0
                or any(not isinstance(r, numbers.Number) or r < 0 or r > 1 for r in l1_ratios)
            ):
                raise ValueError(
                    f"l1_ratios must be an array-like of numbers between 0 and 1; got (l1_ratios={l1_ratios!r})"
                )
            l1_ratios_ = list(l1_ratios)
        else:
            if l1_ratios is not None and self.penalty != "deprecated":
                warnings.warn(
                    f"l1_ratios parameter is only used when penalty is 'elasticnet'. Got (penalty={penalty})",
                    stacklevel=3,
                )
            l1_ratios_ = [None] if l1_ratios is None else list(l1_ratios)
        return penalty, l1_ratios, l1_ratios_, scoring, legacy

    @staticmethod
    def _ratio(penalty, l1_ratio):
        """The l1_ratio a path is fitted with (scikit-learn's None: the penalty's own)."""
        if l1_ratio is not None:
            return float(l1_ratio)
        return 1.0 if penalty == "l1" else 0.0

    def _grid(self, data, penalty, l1_ratios_):
        """Cs_: the user's list, scikit-learn's logspace(-4, 4, Cs), or the data-derived grid."""
        if not isinstance(self.Cs, numbers.Integral):
            return np.asarray(self.Cs, dtype=float).reshape(-1)
        if self.grid == "logspace":
            return np.logspace(-4, 4, self.Cs)
        s, S = data.weights()
        ratios = [self._ratio(penalty, r) for r in l1_ratios_]
        # the weakest L1 part starts the grid (its alpha_max is the largest); the strongest sets its end
        top, bottom = data.alpha_max(min(ratios), s), data.alpha_max(max(ratios), s)
        eps = default_eps(*data.X.shape) if self.eps is None else self.eps
        Cs = data_grid(top, self.Cs, S, eps * bottom / top)
        return Cs

    # ------------------------------------------------------------------- fit
    def fit(self, X, y, sample_weight=None, **params):
        """Fit a path per fold and l1_ratio, choose (C, l1_ratio), and refit (``refit=True``) on all rows.

        ``params`` are routed to the splitter and the scorer as in scikit-learn.
        """
        _raise_for_params(params, self, "fit")
        self._validate_params()
        penalty, l1_ratios, l1_ratios_, scoring, legacy = self._resolve_params()
        tol = 1e-6 if self.tol is None else self.tol
        data, y = prepare(self, X, y, sample_weight, self.class_weight)
        self.classes_ = classes = data.classes
        if _routing_enabled():
            routed = process_routing(self, "fit", sample_weight=sample_weight, **params)
        else:
            score_kwargs = dict(params)
            if sample_weight is not None:
                score_kwargs["sample_weight"] = sample_weight
            routed = _manual_routing({"splitter": {}, "scorer": {"score": score_kwargs}})
        cv = check_cv(self.cv, y, classifier=True)
        X_rows = _row_view(data.X)
        folds = list(cv.split(X_rows, y, **routed.splitter.split))
        self.Cs_ = Cs = self._grid(data, penalty, l1_ratios_)
        n_folds, n_l1, n_cs = len(folds), len(l1_ratios_), len(Cs)
        scorer = _fold_scorer(scoring, classes)
        reg = LogisticRegression(fit_intercept=self.fit_intercept, device=self.device, dtype=self.dtype)
        reg.classes_, reg.n_features_in_ = classes, data.X.shape[1]

        # per fold and l1_ratio: coefficients (n_cs, [K,] n_dof), scores (n_cs,), n_iter (n_cs,), gaps (n_cs,)
        masks = []
        for train, _ in folds:
            mask = torch.zeros(data.X.shape[0], dtype=torch.bool, device=data.y.device)
            mask[torch.as_tensor(train, device=mask.device)] = True
            masks.append(mask)
        paths, preconditioners = self._paths(data, Cs, masks, l1_ratios_, penalty, tol)
        fold_coefs, gaps, thetas = [], np.empty((n_folds, n_l1, n_cs)), {}
        for f, (_, test) in enumerate(folds):
            score_params = _check_method_params(X_rows, params=routed.scorer.score, indices=test)
            for j, r in enumerate(l1_ratios_):
                ratio = self._ratio(penalty, r)
                results, names = paths[f, j]
                warn_unconverged(results, Cs, names, where=f" of fold {f}")
                thetas[f, j] = [res.x for res in results]
                gaps[f, j] = [np.nan if res.duality_gap is None else res.duality_gap for res in results]
                coefs = path_coefs(data, results, penalty_l1=ratio > 0)
                fast = _FAST_SCORES.get(scoring) if isinstance(scoring, str) or scoring is None else None
                if fast is not None and set(score_params) <= {"sample_weight"}:  # every C from one product
                    scores = fast(data, results, test, score_params.get("sample_weight"))
                else:
                    scores = [
                        scorer(_with_coefs(reg, data, res.x, ratio), _take(X_rows, test), y[test], score_params)
                        for res in results
                    ]
                fold_coefs.append((coefs, Cs, np.array(scores), np.array([res.n_iter for res in results])))
        self.duality_gaps_ = gaps
        self._set_attributes(
            data, y, fold_coefs, folds, l1_ratios, l1_ratios_, penalty, legacy, thetas, tol, preconditioners
        )
        return self

    def _paths(self, data, Cs, masks, l1_ratios_, penalty, tol):
        """{(fold, i_l1): (results in the order of Cs, solver names)}: the folds together where
        :func:`torchlogit._folds.applies` (one pass over X for all folds), else one path after another; and
        {(i_l1, i_C): the folds' L-BFGS preconditioner there} where they were solved together."""
        paths, preconditioners = {}, {}
        for j, r in enumerate(l1_ratios_):
            ratio = self._ratio(penalty, r)
            if self.batch_folds and _folds.applies(data, ratio, self.solver, masks):
                together, shared = _folds.solve_folds(
                    data, Cs, masks, penalty=penalty, tol=tol, max_iter=self.max_iter, gap_tol=self.gap_tol
                )
                preconditioners.update({(j, i): M for i, M in enumerate(shared)})
                for f, results in enumerate(together):
                    paths[f, j] = results, ["lbfgs"] * len(Cs)
                continue
            for f, mask in enumerate(masks):
                paths[f, j] = fit_path(
                    data,
                    Cs,
                    ratio,
                    penalty=penalty,
                    mask=mask,
                    solver=self.solver,
                    tol=tol,
                    max_iter=self.max_iter,
                    gap_tol=self.gap_tol,
                )
        return paths, preconditioners

    def _choose(self, scores):
        """(i_C, i_l1) from scores (n_folds, n_cs, n_l1): argmax of the mean, or the one-standard-error rule."""
        n_folds = scores.shape[0]
        mean = scores.mean(axis=0)
        best = np.unravel_index(np.argmax(scores.sum(axis=0)), mean.shape)  # scikit-learn's rule: sum over folds
        if self.selection == "min" or n_folds < 2:
            return best
        sem = scores.std(axis=0, ddof=1) / np.sqrt(n_folds)
        j = best[1]
        within = np.flatnonzero(mean[:, j] >= mean[best] - sem[best])
        return int(within[np.argmin(self.Cs_[within])]), j

    def _set_attributes(
        self, data, y, fold_coefs, folds, l1_ratios, l1_ratios_, penalty, legacy, thetas, tol, preconditioners
    ):
        """scikit-learn's attribute layout (its reshaping, step by step), the choice and the refit."""
        classes = self.classes_
        n_features = data.X.shape[1]
        is_binary = len(classes) == 2
        n_classes = 1 if is_binary else len(classes)
        only_pos = classes[1:] if is_binary else classes
        n_folds, n_l1, n_cs = len(folds), len(l1_ratios_), len(self.Cs_)

        coefs_paths, _, scores, n_iter_ = zip(*fold_coefs)
        if is_binary:
            coefs_paths = np.reshape(coefs_paths, (n_folds, n_l1, n_cs, -1))
            coefs_paths = np.swapaxes(coefs_paths, 1, 2)[None, ...]
        else:
            coefs_paths = np.reshape(coefs_paths, (n_folds, n_l1, n_cs, n_classes, -1))
            coefs_paths = np.moveaxis(coefs_paths, (0, 1, 3), (1, 3, 0))
        self.n_iter_ = np.swapaxes(np.reshape(n_iter_, (n_folds, n_l1, n_cs)), 1, 2)[None, ...].astype(np.int32)
        scores = np.swapaxes(np.reshape(scores, (n_folds, n_l1, n_cs)), 1, 2)  # (n_folds, n_cs, n_l1)
        self._set_cv_results(scores, l1_ratios_, penalty)
        self.scores_ = dict(zip(only_pos, np.tile(scores[None], (n_classes, 1, 1, 1))))
        self.coefs_paths_ = dict(zip(only_pos, coefs_paths))

        if self.refit:
            i_c, i_l1 = self._choose(scores)
            C_, l1_ratio_ = self.Cs_[i_c], l1_ratios_[i_l1]
            self.C_, self.l1_ratio_ = [C_], [l1_ratio_]
            ratio = self._ratio(penalty, l1_ratio_)
            w0 = torch.stack([thetas[f, i_l1][i_c] for f in range(n_folds)]).mean(0)  # scikit-learn's warm start
            results, names = fit_path(
                data,
                [C_],
                ratio,
                penalty=penalty,
                solver=self.solver,
                tol=tol,
                max_iter=self.max_iter,
                w0=w0,
                gap_tol=self.gap_tol,
                precondition=preconditioners.get((i_l1, i_c)),  # the folds' Hessian at C_: all rows' too
            )
            warn_unconverged(results, [C_], names, where=" refitted on all rows")
            self.solver_ = names[0]
            self.refit_duality_gap_ = results[0].duality_gap
            self._refit = (results[0].n_iter, results[0].fun)  # for best_estimator()
            coef, intercept = coefficients(data.datafit, results[0].x, _np_dtype(data), center_weights=not ratio)
        else:
            if self.selection == "1se":
                i_c, i_l1 = self._choose(scores)
                best = [(i_c, i_l1)] * n_folds
            else:
                best = [np.unravel_index(np.argmax(s), s.shape) for s in scores]
            idx = np.asarray(best)
            self.C_ = [np.mean(self.Cs_[idx[:, 0]])]
            if penalty == "elasticnet":
                self.l1_ratio_ = [np.mean(np.asarray(l1_ratios_, dtype=float)[idx[:, 1]])]
            else:
                self.l1_ratio_ = [0.0]
            if is_binary:
                w = np.mean([coefs_paths[0, f, b[0], b[1], :] for f, b in enumerate(best)], axis=0)[None]
            else:
                w = np.mean([coefs_paths[:, f, b[0], b[1], :] for f, b in enumerate(best)], axis=0)
            coef, intercept = w[:, :n_features], (w[:, -1] if self.fit_intercept else np.zeros(n_classes))
            coef, intercept = coef.astype(_np_dtype(data)), intercept.astype(_np_dtype(data))
        self.coef_, self.intercept_ = coef, intercept
        if not is_binary:
            self.C_, self.l1_ratio_ = np.tile(self.C_, n_classes), np.tile(self.l1_ratio_, n_classes)
        self.C_, self.l1_ratio_ = np.asarray(self.C_), np.asarray(self.l1_ratio_)
        self.l1_ratios_ = np.asarray(l1_ratios_)
        if l1_ratios is None:  # no elastic net: no l1_ratios axis
            self.coefs_paths_ = {c: p[:, :, 0, :] for c, p in self.coefs_paths_.items()}
            self.scores_ = {c: s[:, :, 0] for c, s in self.scores_.items()}
            self.n_iter_ = self.n_iter_[:, :, :, 0]
        if not legacy:
            self._new_attributes(l1_ratios, n_folds, n_cs, n_classes, only_pos, data)

    def _new_attributes(self, l1_ratios, n_folds, n_cs, n_classes, only_pos, data):
        """scikit-learn >= 1.10's layout (use_legacy_attributes=False)."""
        n_dof = data.X.shape[1] + int(self.fit_intercept)
        self.C_ = float(self.C_[0])
        paths = np.concatenate(list(self.coefs_paths_.values()))
        scores = self.scores_[only_pos[0]]
        n_iter = self.n_iter_[0]
        if l1_ratios is None:
            paths = paths.reshape(n_classes, n_folds, n_cs, 1, n_dof)  # n_classes is 1 for two classes
            scores, n_iter = scores.reshape(n_folds, n_cs, 1), n_iter.reshape(n_folds, n_cs, 1)
            self.l1_ratio_ = 1.0 if self.penalty == "l1" else 0.0
        else:
            self.l1_ratio_ = float(self.l1_ratio_[0])
            paths = paths.reshape(n_classes, n_folds, n_cs, len(self.l1_ratios_), n_dof)
        self.coefs_paths_ = np.moveaxis(paths, (0, 1, 3), (3, 0, 1))  # (n_folds, n_l1, n_cs, n_classes, n_dof)
        self.scores_ = np.moveaxis(scores, (1, 2), (2, 1))  # (n_folds, n_l1, n_cs)
        self.n_iter_ = np.moveaxis(n_iter, (1, 2), (2, 1))

    def _set_cv_results(self, scores, l1_ratios_, penalty):
        """cv_results_: one row per (l1_ratio, C), l1_ratio-major, C as in Cs_; plain numpy arrays."""
        n_folds, n_cs, n_l1 = scores.shape
        per_row = scores.transpose(2, 1, 0).reshape(n_l1 * n_cs, n_folds)  # (rows, folds)
        mean = per_row.mean(axis=1)
        std = per_row.std(axis=1)
        sem = per_row.std(axis=1, ddof=1) / np.sqrt(n_folds) if n_folds > 1 else np.zeros_like(mean)
        ratios = np.array([self._ratio(penalty, r) for r in l1_ratios_])
        results = {
            "C": np.tile(self.Cs_, n_l1),
            "l1_ratio": np.repeat(ratios, n_cs),
            "mean_test_score": mean,
            "std_test_score": std,
            "sem_test_score": sem,
            **{f"split{f}_test_score": per_row[:, f] for f in range(n_folds)},
            "rank_test_score": (np.argsort(np.argsort(-mean, kind="stable"), kind="stable") + 1).astype(np.int32),
            "max_duality_gap": _max_over_folds(self.duality_gaps_.reshape(n_folds, n_l1 * n_cs)),
        }
        self.cv_results_ = results
        if self.refit or self.selection == "1se":
            i_c, i_l1 = self._choose(scores)
            self.best_index_ = int(i_l1 * n_cs + i_c)

    def best_estimator(self):
        """The refit as a plain :class:`LogisticRegression` at the chosen C and l1_ratio (what a model file
        stores): same ``coef_``, ``intercept_``, classes and feature names. Needs ``refit=True``."""
        check_is_fitted(self)
        if not self.refit:
            raise ValueError("refit=False: the coefficients are the folds' mean, not one fit; refit=True has one")
        C, ratio = float(np.atleast_1d(self.C_)[0]), float(np.atleast_1d(self.l1_ratio_)[0])
        model = LogisticRegression(
            C=C,
            l1_ratio=ratio,
            fit_intercept=self.fit_intercept,
            tol=self.tol,
            max_iter=self.max_iter,
            class_weight=self.class_weight,
            device=self.device,
            dtype=self.dtype,
        )
        for name in ("classes_", "n_features_in_", "feature_names_in_", "coef_", "intercept_", "solver_"):
            if hasattr(self, name):
                setattr(model, name, getattr(self, name))
        n_iter, model.objective_ = self._refit
        model.n_iter_ = np.array([n_iter], dtype=np.int32)
        return model

    # ----------------------------------------------------------------- score
    def score(self, X, y, *, sample_weight=None, **score_params):
        """The ``scoring`` of the fitted model on (X, y) (accuracy by default), as scikit-learn's."""
        _raise_for_params(score_params, self, "score")
        if sample_weight is not None:
            score_params["sample_weight"] = sample_weight
        scoring = self._get_scorer()
        if _routing_enabled():
            routed = process_routing(self, "score", **score_params)
        else:
            sw = score_params.get("sample_weight")
            routed = _manual_routing({"scorer": {"score": {} if sw is None else {"sample_weight": sw}}})
        return scoring(self, X, y, **routed.scorer.score)

    def get_metadata_routing(self):
        """scikit-learn's routing: ``fit`` params to the splitter and the scorer, ``score`` params to the scorer."""
        return (
            MetadataRouter(owner=self)
            .add_self_request(self)
            .add(splitter=self.cv, method_mapping=MethodMapping().add(caller="fit", callee="split"))
            .add(
                scorer=self._get_scorer(),
                method_mapping=MethodMapping().add(caller="score", callee="score").add(caller="fit", callee="score"),
            )
        )

    def _get_scorer(self):
        return get_scorer("accuracy" if self.scoring == "warn" else (self.scoring or "accuracy"))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def cv_table(model):
    """A fitted LogisticRegressionCV's choice as plain JSON-able values: what ``plot --kind cv`` draws.

    The rows of ``cv_results_`` at the chosen l1_ratio ('C', 'mean', 'sem'
    lists, ascending C), the chosen C and l1_ratio, and both rules' choices:
    'min_C' (the best mean) and 'one_se_C' (the smallest C within one
    standard error of it).
    """
    res = model.cv_results_
    ratio = float(np.atleast_1d(model.l1_ratio_)[0])
    rows = np.flatnonzero(np.isclose(res["l1_ratio"], ratio))
    rows = rows[np.argsort(res["C"][rows])]
    C, mean, sem = res["C"][rows], res["mean_test_score"][rows], res["sem_test_score"][rows]
    best = int(np.argmax(mean))
    one_se = int(np.flatnonzero(mean >= mean[best] - sem[best]).min())  # C ascending: the smallest qualifying C
    n_folds = sum(1 for key in res if key.startswith("split"))
    return {
        "C": [float(c) for c in C],
        "mean": [float(v) for v in mean],
        "sem": [float(v) for v in sem],
        "chosen_C": float(np.atleast_1d(model.C_)[0]),
        "l1_ratio": ratio,
        "min_C": float(C[best]),
        "one_se_C": float(C[one_se]),
        "selection": model.selection,
        "n_folds": n_folds,
        "scoring": model.scoring if isinstance(model.scoring, str) and model.scoring != "warn" else "accuracy",
    }


def _max_over_folds(gaps):
    """(rows,) the largest gap over folds; NaN where no fit has one (C = inf)."""
    top = np.where(np.isnan(gaps), -np.inf, gaps).max(axis=0)
    return np.where(np.isinf(top), np.nan, top)


def _np_dtype(data):
    return np.float32 if data.X.dtype == torch.float32 else np.float64


def _row_view(X):
    """What the splitter and the scorers see: numpy (CPU), scipy (sparse) or the tensor itself (GPU)."""
    if hasattr(X, "matrix"):  # SparseX
        return X.matrix
    return X.numpy() if X.device.type == "cpu" else X


def _take(X, rows):
    return X[torch.as_tensor(rows, device=X.device)] if isinstance(X, torch.Tensor) else X[rows]


def _with_coefs(reg, data, theta, ratio):
    """``reg`` (a fitted-looking LogisticRegression) holding the path point theta."""
    reg.coef_, reg.intercept_ = coefficients(data.datafit, theta, _np_dtype(data), center_weights=not ratio)
    return reg


def _path_logits(data, results, test):
    """Z (n_test, n_cs, k) in X's dtype: every path point's logits on the rows ``test``, one product per block
    of test rows (all C at once)."""
    loss = data.datafit
    rows = torch.as_tensor(test, device=data.y.device)
    dtype = f64 if is_sparse(data.X) else data.X.dtype
    thetas = torch.stack([res.x for res in results]).to(dtype)  # (n_cs, p)
    k, d = loss.n_outputs, loss.n_features
    W = thetas[:, : k * d].reshape(-1, d)  # (n_cs k, d)
    if is_sparse(data.X):
        Z = linear(SparseX.from_scipy(data.X.matrix[test], data.X.device), W)
    else:  # blocks of test rows gathered into one buffer: no copy of X[test] (fresh pages cost ~1 ms per 4 MB)
        Z = torch.empty(len(test), W.shape[0], dtype=dtype, device=W.device)
        block = max(1, SCORE_BLOCK_BYTES // (d * data.X.element_size()))
        buf = torch.empty(min(block, len(test)), d, dtype=dtype, device=W.device)
        for i in range(0, len(test), block):
            idx = rows[i : i + block]
            Xb = torch.index_select(data.X, 0, idx, out=buf[: len(idx)])
            torch.matmul(Xb, W.T, out=Z[i : i + len(idx)])
    Z = Z.reshape(len(test), len(results), k)  # (n_test, n_cs, k)
    if loss.fit_intercept:
        Z = Z + thetas[:, k * d :]
    return Z


def _accuracies(data, results, test, sample_weight):
    """(n_cs,) accuracy of each path point on the rows ``test``: the weighted share of rows whose most probable
    class is their own (ties to the first class, as ``predict``), what ``accuracy_score`` computes."""
    Z = _path_logits(data, results, test)
    pred = (Z[..., 0] > 0).long() if Z.shape[2] == 1 else Z.argmax(dim=2)  # (n_test, n_cs)
    hits = (pred == torch.as_tensor(data.y_idx[test], device=pred.device)[:, None]).cpu().numpy()
    return [float(np.average(hits[:, c], weights=sample_weight)) for c in range(len(results))]


def _neg_log_losses(data, results, test, sample_weight):
    """(n_cs,) minus the log-loss of each path point on the rows ``test`` (what the 'neg_log_loss' scorer
    computes from ``predict_proba``), the probabilities of every C from one product."""
    Z = _path_logits(data, results, test)
    y_test = torch.as_tensor(data.y_idx[test], device=Z.device)
    if Z.shape[2] == 1:  # the true class's column of predict_proba's [1 - p1, p1], the same values
        p1 = torch.sigmoid(Z[..., 0])
        p_true = torch.where(y_test[:, None] == 1, p1, 1 - p1)  # (n_test, n_cs), X's dtype
    else:
        index = y_test[:, None, None].expand(-1, Z.shape[1], 1)
        p_true = torch.softmax(Z, dim=2).gather(2, index)[..., 0]
    p_true = p_true.cpu().numpy()
    # log_loss's formula without its per-call validation: the probability of the true class, clipped to
    # [eps, 1 - eps] of its dtype, -log averaged with the weights
    eps = np.finfo(p_true.dtype).eps
    logs = np.log(np.clip(p_true, eps, 1 - eps).astype(np.float64))  # (n_test, n_cs)
    return [float(np.average(logs[:, c], weights=sample_weight)) for c in range(len(results))]


_FAST_SCORES = {None: _accuracies, "accuracy": _accuracies, "neg_log_loss": _neg_log_losses}


def _fold_scorer(scoring, classes):
    """score(estimator, X_test, y_test, params) as scikit-learn's ``_log_reg_scoring_path`` computes it.

    None: accuracy, which :func:`_accuracies` computes for a whole path at once. A
    scorer whose metric takes ``labels`` is rebuilt with every class (a fold
    may lack one), and for two classes ``pos_label`` the second class.
    """
    if scoring is None:
        return None  # accuracy, computed by _accuracies
    scorer = get_scorer(scoring)
    sig = inspect.signature(scorer._score_func).parameters if hasattr(scorer, "_score_func") else []
    if "labels" in sig:
        pos = {"pos_label": classes[-1]} if len(classes) <= 2 and "pos_label" in sig else {}
        scorer = make_scorer(
            scorer._score_func,
            greater_is_better=scorer._sign == 1,
            response_method=scorer._response_method,
            labels=classes,
            **pos,
            **getattr(scorer, "_kwargs", {}),
        )
    return lambda est, X, y, params: scorer(est, X, y, **params)


__all__ = ["LogisticRegressionCV", "cv_table"]
