"""scikit-learn's SGDClassifier tests (sklearn/linear_model/tests/test_sgd.py), run against torchlogit's sgd solver.

The test functions are scikit-learn's, executed from the installed package
(see ``_shim.py``) with ``sklearn.linear_model.SGDClassifier`` replaced by
``TorchlogitSGDClassifier`` (``sgd_shim.py``), which trains
``torchlogit.LogisticRegression(solver='sgd')`` one sample at a time. The
swap reaches every way the file builds a classifier: parametrize lists and
the ``_SparseSGDClassifier`` subclass are made while the module is executed
(swapped by ``load_with``); the factories ``SGDClassifier(**kw)`` and a few
tests look up ``linear_model.SGDClassifier`` when they run, so the module's
``linear_model`` is afterwards a copy of ``sklearn.linear_model`` with the
shim in it.

Selection: only the classifier is tested.

- parametrizations over estimators keep their classifier values and drop
  SGDRegressor / SGDOneClassSVM (dense and sparse); a test left with none is
  not collected;
- tests with no estimator parameter are dropped by name when they are about
  another estimator or about no estimator (``NOT_THE_CLASSIFIER``).

Cases that cannot apply are expected failures listed with their reason in
``conftest.py`` (``SGD``).
"""

from types import SimpleNamespace

import pytest
import sklearn.linear_model

from ._shim import load_with
from .sgd_shim import TorchlogitSGDClassifier

upstream = load_with("sklearn.linear_model.tests.test_sgd", {"SGDClassifier": TorchlogitSGDClassifier})
upstream.linear_model = SimpleNamespace(**{**vars(sklearn.linear_model), "SGDClassifier": TorchlogitSGDClassifier})

OTHER_ESTIMATORS = {
    upstream.SGDRegressor,
    upstream.SparseSGDRegressor,
    upstream.SGDOneClassSVM,
    upstream.SparseSGDOneClassSVM,
    sklearn.linear_model.SGDRegressor,
    sklearn.linear_model.SGDOneClassSVM,
}

NOT_THE_CLASSIFIER = {
    # SGDOneClassSVM
    "test_ocsvm_vs_sgdocsvm",
    "test_sgd_oneclass_convergence",
    "test_sgd_oneclass_vs_linear_oneclass",
    "test_sgd_oneclass_vs_linear_oneclass_offsets_match",
    "test_sgd_one_class_svm_estimator_type",
    "test_sgd_one_class_svm_formulation_with_scipy_minimize",
    # scikit-learn's private loss objects (sklearn.linear_model._sgd_fast), no estimator
    "test_loss_hinge",
    "test_gradient_squared_hinge",
    "test_loss_modified_huber",
    "test_loss_epsilon_insensitive",
    "test_loss_squared_epsilon_insensitive",
}


def _is_other_estimator(value):
    values = value if isinstance(value, tuple) else (value,)
    return any(v is other for v in values for other in OTHER_ESTIMATORS)


def classifier_only(test):
    """``test`` with its estimator parametrizations reduced to the classifier ones; None if none is left."""
    marks = []
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize":
            names, values = mark.args
            kept = [v for v in values if not _is_other_estimator(v)]
            if not kept:
                return None
            if len(kept) != len(values):
                mark = pytest.mark.parametrize(names, kept, **mark.kwargs).mark
        marks.append(mark)
    test.pytestmark = marks
    return test


for _name, _test in vars(upstream).items():
    if _name.startswith("test_") and callable(_test) and _name not in NOT_THE_CLASSIFIER:
        _test = classifier_only(_test)
        if _test is not None:
            globals()[_name] = _test
if hasattr(upstream, "pytestmark"):
    pytestmark = upstream.pytestmark
