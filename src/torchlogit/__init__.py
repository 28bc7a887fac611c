"""torchlogit: logistic regression done right, on PyTorch.

    from torchlogit import LogisticRegression   # instead of sklearn.linear_model
"""

from ._io import ModelFileError
from ._io import load_model as load
from ._linear import LinearRegression, Ridge
from ._inference import InferenceError
from ._logistic import LogisticRegression
from ._summary import SummaryResult
from .nn import LinearModel

__version__ = "0.1.0"
__all__ = [
    "LogisticRegression", "LinearRegression", "Ridge", "LinearModel", "load", "ModelFileError",
    "SummaryResult", "InferenceError", "__version__",
]  # fmt: skip
