"""Load a scikit-learn test module with torchlogit's estimator in place of scikit-learn's.

The module is executed from the installed scikit-learn package (never copied
here) as a fresh module of its own name, while ``sklearn.linear_model``
exposes torchlogit's class; the original is restored right after. Swapping
during the import, not after, matters: parametrize lists such as
``[LogisticRegression, LogisticRegressionCV]`` are built when the module is
executed, and a later patch would leave them testing scikit-learn itself.
scikit-learn's own internals (LogisticRegressionCV, SGDClassifier) import
their classes from private modules and are untouched.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import sklearn.linear_model


def load_with(module: str, replacements: dict):
    """Execute ``module`` (a dotted name inside scikit-learn) with ``sklearn.linear_model`` names replaced."""
    spec = importlib.util.find_spec(module)
    name = "torchlogit_conformance." + module
    fresh = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, spec.origin))
    originals = {key: getattr(sklearn.linear_model, key) for key in replacements}
    try:
        for key, value in replacements.items():
            setattr(sklearn.linear_model, key, value)
        sys.modules[name] = fresh
        fresh.__spec__.loader.exec_module(fresh)
    finally:
        for key, value in originals.items():
            setattr(sklearn.linear_model, key, value)
    return fresh


def mark_expected_failures(items, module_file: str, expected: dict, not_run=(), too_slow=None):
    """Mark the collected cases of ``module_file`` listed in ``expected`` (name or name[params] -> reason).

    Strict: a listed case that passes fails the run, so the list cannot go stale.
    Cases in ``not_run`` are listed but not executed (too slow to run for a known failure).
    ``too_slow`` (name -> reason): skipped, each with its reason; not counted as passing.
    """
    for item in items:
        if item.fspath.basename != module_file:
            continue
        name = item.name.split("[")[0]
        if too_slow and name in too_slow:
            item.add_marker(pytest.mark.skip(reason=too_slow[name]))
            continue
        reason = expected.get(item.name, expected.get(name))
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True, run=item.name not in not_run))
