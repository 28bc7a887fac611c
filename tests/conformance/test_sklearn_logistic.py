"""scikit-learn's own LogisticRegression tests (sklearn/linear_model/tests/test_logistic.py), run against torchlogit.

The test functions are scikit-learn's, executed from the installed package
with torchlogit's ``LogisticRegression`` in place of scikit-learn's (see
``_shim.py``). Cases that cannot apply are expected failures listed with
their reason in ``conftest.py``.
"""

import torchlogit

from ._shim import load_with

upstream = load_with(
    "sklearn.linear_model.tests.test_logistic",
    {"LogisticRegression": torchlogit.LogisticRegression, "LogisticRegressionCV": torchlogit.LogisticRegressionCV},
)
globals().update({k: v for k, v in vars(upstream).items() if k.startswith("test_") or k == "pytestmark"})
