"""torchlogit: logistic regression done right, on PyTorch.

    from torchlogit import LogisticRegression   # instead of sklearn.linear_model

The names below load on first use (PEP 562), so ``import torchlogit`` is
cheap and the ``torchlogit`` command can catch Ctrl-C while torch loads
(see :mod:`torchlogit._console`).
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "LogisticRegression": "._logistic",
    "LogisticRegressionCV": "._cv",
    "LinearRegression": "._linear",
    "Ridge": "._linear",
    "LinearModel": ".nn",
    "load": "._models",
    "ModelFileError": "._io",
    "SummaryResult": "._summary",
    "InferenceError": "._inference",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'torchlogit' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name], __name__)
    value = getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
