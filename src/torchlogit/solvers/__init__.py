"""Solvers: free functions ``solve(fun_and_grad, w0, *, tol, max_iter, callback, ...) -> Result``.

They know nothing of estimators, files or terminals; strings become solver
functions here and nowhere else.

``solver="auto"`` rule (see :func:`choose`): ``newton`` when the Hessian has at
most ``NEWTON_MAX_PARAMS`` rows (p = k * (d + 1) parameters), else ``lbfgs``.
Newton's p x p Hessian costs n p^2 / k flops to build and p^3 / 3 to factor;
up to p = 1000 that is cheaper than the many L-BFGS passes an ill-conditioned
problem needs, and it converges on unscaled data where L-BFGS struggles.
"""

from ._result import IterInfo, Result
from .lbfgs import lbfgs
from .newton import newton
from .sgd import get_optimizer, make_loader, sgd

SOLVERS = {"lbfgs": lbfgs, "newton": newton, "sgd": sgd}

# scikit-learn's names, accepted so that existing code runs unchanged. sag, saga
# and liblinear map to an exact solver with the same optimum (liblinear's
# penalised intercept is not reproduced: our intercept is never penalised).
ALIASES = {
    "newton-cg": "newton",
    "newton-cholesky": "newton",
    "sag": "auto",
    "saga": "auto",
    "liblinear": "auto",
}

NEWTON_MAX_PARAMS = 1000


def choose(name, n_params):
    """Resolve a user's solver name to a key of ``SOLVERS``."""
    name = ALIASES.get(name, name)
    if name == "auto":
        return "newton" if n_params <= NEWTON_MAX_PARAMS else "lbfgs"
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose one of {sorted(SOLVERS) + ['auto'] + sorted(ALIASES)}")
    return name


__all__ = ["SOLVERS", "ALIASES", "Result", "IterInfo", "choose", "lbfgs", "newton", "sgd", "get_optimizer", "make_loader"]
