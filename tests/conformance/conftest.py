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


L1 = "L1 / elastic-net penalties are not implemented yet (issue 13)"
SPARSE = "scipy.sparse input is not accepted yet (issue 13)"
CV = "compares with scikit-learn's LogisticRegressionCV, which torchlogit does not have yet (issue 14)"
LIBLINEAR = "liblinear-only behaviour: torchlogit maps solver='liblinear' to its exact solver"

LOGISTIC = {
    # L1 / elastic-net
    "test_elastic_net_coeffs": L1,
    "test_elastic_net_l1_l2_equivalence": L1,
    "test_elastic_net_vs_l1_l2": L1,
    "test_LogisticRegression_elastic_net_objective": L1,
    "test_LogisticRegressionCV_GridSearchCV_elastic_net[3]": L1,
    "test_l1_ratio_non_elasticnet": L1,
    "test_elastic_net_versus_sgd": L1,
    "test_scores_attribute_layout_elasticnet": L1,
    "test_elasticnet_l1_ratio_err_helpful[LogisticRegression-l1_ratio]": L1,
    "test_lr_penalty_l1ratio_incompatible": L1 + "; its warnings belong to that penalty handling",
    "test_check_solver_option[LogisticRegression]": L1 + "; the check expects scikit-learn's refusal of l1_ratio=1 with lbfgs",
    "test_logreg_l1": L1,
    "test_saga_vs_liblinear": L1,
    "test_logistic_regression_cv_refit[1]": L1 + " (the case fits l1_ratio=1 with saga)",
    # sparse input
    "test_predict_2_classes": SPARSE,
    "test_predict_3_classes": SPARSE,
    "test_sparsify": SPARSE + " (sparsify() turns coef_ into a sparse matrix)",
    "test_logistic_regression_class_weights[csr_matrix]": SPARSE,
    "test_logistic_regression_class_weights[csr_array]": SPARSE,
    "test_large_sparse_matrix": SPARSE,
    "test_dtype_match": SPARSE + "; the liblinear cases also expect float64 coefficients for float32 input, "
    "where torchlogit keeps float32 for every solver name",
    # LogisticRegressionCV and scikit-learn's private path functions
    "test_logistic_cv": CV + "; the reference is liblinear at its own tol",
    "test_logistic_cv_multinomial_score": "passes torchlogit's get_params() to scikit-learn's private "
    "_log_reg_scoring_path, which does not know torchlogit's extra parameters (device, dtype, optimizer, ...)",
    # liblinear
    "test_liblinear_dual_random_state": LIBLINEAR + "; dual=True (liblinear's dual formulation) is refused",
    "test_liblinear_multiclass_raises[LogisticRegression]": LIBLINEAR + ", which fits the multinomial model "
    "instead of refusing three classes",
    "test_liblinear_not_stuck": LIBLINEAR + "; the case fits penalty='l1'",
    "test_liblinear_with_large_values": LIBLINEAR + ", which does not freeze on values > 1e30, so nothing is refused",
    "test_logisticregression_liblinear_sample_weight[params0]": L1 + " (the case fits l1_ratio=1)",
    "test_logisticregression_liblinear_sample_weight[params1]": LIBLINEAR + "; the case uses dual=True",
    "test_sample_and_class_weight_equivalence_liblinear": LIBLINEAR + "; the case uses penalty='l1' and dual=True",
    # scikit-learn internals and deliberate differences
    "test_logreg_predict_proba_multinomial": "calls scikit-learn's private _predict_proba_lr (one-vs-rest "
    "probabilities), which torchlogit does not have",
    "test_newton_cholesky_fallback_to_lbfgs": "counts scikit-learn's fallback from newton-cholesky to lbfgs on a "
    "rank-deficient Hessian; torchlogit's Newton handles it itself (pseudo-inverse step), in fewer iterations",
    "test_penalty_deprecated[LogisticRegression]": "torchlogit keeps 'penalty' (both scikit-learn generations are "
    "accepted) and does not deprecate it",
    "test_logistic_regression_callback_support[0]": "scipy's L-BFGS runs one iteration even with maxiter=0 (hence "
    "one more hook); torchlogit's max_iter=0 runs none",
    "test_logistic_regression_callback_support_warning": "torchlogit supports callbacks with every solver, so it "
    "does not warn that they are ignored",
}


def pytest_collection_modifyitems(config, items):
    mark_expected_failures(items, "test_sklearn_logistic.py", LOGISTIC)


def pytest_configure(config):
    # scikit-learn's own marker (free-threading runs); nothing to do with it here
    config.addinivalue_line("markers", "thread_unsafe: scikit-learn's marker for tests unsafe under free threading")
