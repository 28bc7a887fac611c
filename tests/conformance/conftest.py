"""Fixtures scikit-learn's tests expect, and the cases of its test files that cannot apply to torchlogit.

Every entry says why. The marks are strict: a listed case that starts to
pass fails the run, so this list only ever holds true expected failures.
"""

import pytest

from ._shim import mark_expected_failures


@pytest.fixture
def global_random_seed():
    """scikit-learn's default seed (its own conftest can draw others; one is enough here)."""
    return 42


L1 = "L1 / elastic net with solver='sgd' (SGDClassifier's truncated-gradient penalty) is not implemented"
LIBLINEAR = "liblinear-only behaviour: torchlogit maps solver='liblinear' to its exact solver"

LOGISTIC = {
    # L1 / elastic-net: what still differs
    "test_check_solver_option[LogisticRegression]": "expects solver='liblinear' to refuse three classes; torchlogit's "
    "liblinear alias fits the multinomial model (the L1 refusal for lbfgs that follows is given)",
    "test_scores_attribute_layout_elasticnet": "compares LogisticRegressionCV's fold scores with cold "
    "LogisticRegression fits, both stopped at tol=1e-3 (torchlogit's tol bounds the gradient): the warm-started path "
    "point and the cold fit stop at different places within it, and their held-out log-losses differ by 1.3e-3 "
    "relative against the 1e-3 asserted (2e-8 at tol=1e-8)",
    "test_check_solver_option[LogisticRegressionCV]": "as for LogisticRegression: expects solver='liblinear' to "
    "refuse three classes; torchlogit's liblinear alias fits the multinomial model",
    # sparse input: what still differs
    **{
        f"test_dtype_match[{c}-{fi}-liblinear]": LIBLINEAR + ", which computes in float64: the case expects "
        "float64 coefficients for float32 input; torchlogit keeps float32 for every solver name"
        for c in ("csr_matrix", "csr_array")
        for fi in ("False", "True")
    },
    **{
        f"test_large_sparse_matrix[{c}-{solver}]": f"expects solver={solver!r} to refuse a sparse matrix with 64-bit "
        "indices ('Only sparse matrices with 32-bit integer indices'); torchlogit accepts it"
        for c in ("csr_matrix", "csr_array")
        for solver in ("liblinear", "sag", "saga")
    },
    # scikit-learn's private path functions
    "test_logistic_cv_multinomial_score": "passes torchlogit's get_params() to scikit-learn's private "
    "_log_reg_scoring_path, which does not know torchlogit's extra parameters (device, dtype, optimizer, ...)",
    # liblinear
    "test_liblinear_dual_random_state": LIBLINEAR + "; dual=True (liblinear's dual formulation) is refused",
    "test_liblinear_multiclass_raises[LogisticRegression]": LIBLINEAR + ", which fits the multinomial model "
    "instead of refusing three classes",
    "test_liblinear_multiclass_raises[LogisticRegressionCV]": LIBLINEAR + ", which fits the multinomial model "
    "instead of refusing three classes",
    "test_liblinear_with_large_values": LIBLINEAR + ", which does not freeze on values > 1e30, so nothing is refused",
    "test_logisticregression_liblinear_sample_weight[params1]": LIBLINEAR + "; the case uses dual=True",
    "test_sample_and_class_weight_equivalence_liblinear": LIBLINEAR + "; the case uses dual=True",
    # scikit-learn internals and deliberate differences
    "test_logreg_predict_proba_multinomial": "calls scikit-learn's private _predict_proba_lr (one-vs-rest "
    "probabilities), which torchlogit does not have",
    "test_newton_cholesky_fallback_to_lbfgs": "counts scikit-learn's fallback from newton-cholesky to lbfgs on a "
    "rank-deficient Hessian; torchlogit's Newton handles it itself (pseudo-inverse step), in fewer iterations",
    "test_penalty_deprecated[LogisticRegression]": "torchlogit keeps 'penalty' (both scikit-learn generations are "
    "accepted) and does not deprecate it",
    "test_penalty_deprecated[LogisticRegressionCV]": "torchlogit keeps 'penalty' (both scikit-learn generations are "
    "accepted) and does not deprecate it, in LogisticRegressionCV as in LogisticRegression",
    "test_logistic_regression_callback_support[0]": "scipy's L-BFGS runs one iteration even with maxiter=0 (hence "
    "one more hook); torchlogit's max_iter=0 runs none",
    "test_logistic_regression_callback_support_warning": "torchlogit supports callbacks with every solver, so it "
    "does not warn that they are ignored",
}


# test_sklearn_sgd.py: scikit-learn's SGDClassifier tests through tests/conformance/sgd_shim.py
LOSS = "loss other than 'log_loss': torchlogit is logistic regression only"
HINGE = "loss='hinge' (scikit-learn's default; the case also runs other losses): torchlogit is logistic regression only"
SCHEDULE = "learning_rate 'optimal' / 'invscaling' / 'adaptive': torchlogit's sgd step is constant"
AVERAGED = "averaged SGD (average=...): torchlogit does not average the iterates"
EARLY = "early_stopping on a validation split: torchlogit's sgd has none"
INIT = (
    "coef_init / intercept_init: torchlogit's fit takes no initial coefficients "
    "(warm_start=True reuses the previous fit's)"
)
HINGE_TUNED = (
    "the assertion holds for the hinge loss and the 'optimal' schedule only: scikit-learn's own "
    "SGDClassifier(loss='log_loss', learning_rate='constant') fails it the same way"
)
SCHEDULES, SGD_CLASSES = ["optimal", "invscaling", "adaptive"], ["SGDClassifier", "SparseSGDClassifier"]

SGD = {
    # losses other than log_loss
    "test_sgd_clf": HINGE,
    "test_sgd_proba": HINGE + " (modified_huber too)",
    "test_sgd_predict_proba_method_access": "checks that non-probabilistic losses (hinge, ...) hide predict_proba; "
    "torchlogit's only loss is probabilistic",
    "test_learning_rate_PA_raises": LOSS + " (squared_hinge, with the passive-aggressive rates)",
    "test_regression_losses": LOSS + " (epsilon_insensitive, huber, squared_error)",
    "test_underflow_or_overflow": LOSS + " (squared_hinge); the message checked is scikit-learn's",
    "test_numerical_stability_large_gradient": LOSS + " (squared_hinge) with penalty='elasticnet'",
    # penalties
    "test_sgd_l1": L1,
    "test_l1_ratio": L1,
    "test_sgd_l1_ratio_not_used": L1,
    "test_sgd_failing_penalty_validation": L1,
    "test_large_regularization[l1]": L1,
    "test_large_regularization[elasticnet]": L1,
    "test_large_regularization[l2]": HINGE_TUNED + " (coef_ ~ 0.06, not 0); torchlogit's plain penalty gradient "
    "step diverges at eta0 * alpha = 1e4, where scikit-learn clips its decay factor 1 - eta0 * alpha at 0",
    # learning-rate schedules, averaging, early stopping
    **{f"test_warm_start[{lr}-{klass}]": SCHEDULE for lr in SCHEDULES for klass in SGD_CLASSES},
    "test_warm_start[constant-SGDClassifier]": INIT,
    "test_warm_start[constant-SparseSGDClassifier]": INIT,
    "test_warm_start_multiclass": SCHEDULE + " (the case uses 'optimal'); it also passes coef_init",
    "test_adaptive_longer_than_constant": SCHEDULE,
    **{f"test_partial_fit_equal_fit_classif[{lr}-{klass}]": SCHEDULE for lr in SCHEDULES for klass in SGD_CLASSES},
    "test_power_t_limits": "power_t belongs to the 'invscaling' schedule, which torchlogit does not have; "
    "the deprecation warning checked is scikit-learn's",
    "test_plain_has_no_average_attr": AVERAGED + "; it also checks scikit-learn's private _average_coef attributes",
    "test_late_onset_averaging_not_reached": AVERAGED,
    "test_late_onset_averaging_reached": AVERAGED + "; the case uses loss='squared_error'",
    "test_average_binary_computed_correctly": AVERAGED + "; the case uses loss='squared_error'",
    "test_sgd_multiclass_average": AVERAGED + "; the case uses loss='squared_error'",
    "test_partial_fit_multiclass_average": AVERAGED,
    "test_early_stopping": EARLY,
    "test_validation_set_not_used_for_training": EARLY,
    "test_n_iter_no_change": EARLY + "; n_iter_no_change is fixed at 5 in torchlogit",
    "test_not_enough_sample_for_early_stopping": EARLY,
    "test_sgd_early_stopping_with_partial_fit": EARLY,
    "test_multi_thread_multi_class_and_early_stopping": EARLY,
    "test_multi_core_gridsearch_and_early_stopping": EARLY,
    "test_validation_mask_correctly_subsets": EARLY + "; it mocks scikit-learn's private _ValidationScoreCallback",
    "test_sgd_error_on_zero_validation_weight": EARLY,
    # initial coefficients given to fit
    "test_provide_coef": INIT,
    "test_set_intercept_offset": INIT,
    "test_set_intercept_offset_binary": INIT,
    "test_set_intercept_to_intercept": INIT,
    "test_set_intercept_to_intercept[SparseSGDClassifier]": INIT,
    "test_sgd_multiclass_with_init_coef": INIT,
    "test_set_coef_multiclass": INIT,
    # assertions tuned to the hinge loss
    "test_class_weights[SGDClassifier]": HINGE_TUNED + " (class_weight={1: 0.001} does not flip the prediction)",
    "test_sample_weights[SGDClassifier]": HINGE_TUNED + " (sample weights 0.001 do not flip the prediction)",
    "test_equal_class_weight[SGDClassifier]": HINGE_TUNED + " (halved weights change the log-loss optimum)",
    "test_balanced_weight[SGDClassifier]": HINGE_TUNED + " (the unweighted fit on imbalanced data still scores "
    "f1 >= 0.96)",
    "test_sgd_random_state": HINGE_TUNED + " (two seeds' coefficients differ by < 1 after one epoch at eta0=0.01)",
    # sparse input: the same assertions as for dense input
    **{
        f"{name}[SparseSGDClassifier]": HINGE_TUNED
        for name in ["test_class_weights", "test_equal_class_weight", "test_balanced_weight", "test_sample_weights"]
    },
}

# Expected failures not executed: each takes tens of seconds (1000 epochs of one-row steps) to fail at an
# assertion checked once by hand, against scikit-learn's own log-loss SGDClassifier, which fails it too.
NOT_RUN = {"test_balanced_weight[SGDClassifier]", "test_balanced_weight[SparseSGDClassifier]"}


# Skipped: outcome unknown, far too slow for the suite; each counts against conformance in the notes.
TOO_SLOW = {
    "test_SGDClassifier_fit_for_all_backends": "six fits of up to 1000 epochs of 500 one-row steps on a 20-class "
    "sparse problem: about 15 minutes each in torchlogit's Python step loop (scikit-learn's Cython loop: seconds)",
}


def pytest_collection_modifyitems(config, items):
    mark_expected_failures(items, "test_sklearn_logistic.py", LOGISTIC)
    mark_expected_failures(items, "test_sklearn_sgd.py", SGD, not_run=NOT_RUN, too_slow=TOO_SLOW)


def pytest_configure(config):
    # scikit-learn's own marker (free-threading runs); nothing to do with it here
    config.addinivalue_line("markers", "thread_unsafe: scikit-learn's marker for tests unsafe under free threading")
