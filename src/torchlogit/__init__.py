"""torchlogit: logistic regression done right, on PyTorch.

    from torchlogit import LogisticRegression   # instead of sklearn.linear_model
"""

from ._io import ModelFileError
from ._io import load_model as load
from ._linear import LinearRegression, Ridge
from ._logistic import LogisticRegression
from .nn import LinearModel

__version__ = "0.1.0"
__all__ = ["LogisticRegression", "LinearRegression", "Ridge", "LinearModel", "load", "ModelFileError", "__version__"]
