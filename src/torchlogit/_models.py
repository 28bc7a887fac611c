"""The estimators a model file can hold, and :func:`load`.

Model files (:mod:`torchlogit._io`) know the format only; the estimators
know how to save themselves through it. This module is where the two meet,
so neither imports the other's side.
"""

from __future__ import annotations

from ._io import load_model
from ._linear import LinearRegression, Ridge
from ._logistic import LogisticRegression

ESTIMATORS = {cls.__name__: cls for cls in (LogisticRegression, LinearRegression, Ridge)}


def load(path, device=None):
    """Read a model saved with ``model.save(path)``; returns the fitted estimator.

    ``device``: where the loaded model computes; None keeps the saved setting,
    except that a model trained on a GPU falls back to 'auto' on a machine
    without that GPU. A file modified after saving, or one that ``save`` could
    not have written, raises :class:`torchlogit.ModelFileError` naming the file.
    Loading parses JSON and raw numbers only: a file never runs code.
    """
    return load_model(path, ESTIMATORS, device=device)


__all__ = ["ESTIMATORS", "load"]
