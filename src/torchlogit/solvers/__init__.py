"""Solvers: free functions ``solve(fun_and_grad, w0, *, tol, max_iter, callback, ...) -> Result``.

They know nothing of estimators, files or terminals; strings become solver
functions here and nowhere else.

``solver="auto"`` rule (see :func:`choose`): ``newton`` when the Hessian has at
most ``NEWTON_MAX_PARAMS`` rows (p = k * (d + 1) parameters) and building it
costs at most ``NEWTON_MAX_WORK`` multiply-adds (n p (d + 1) per iteration),
else ``lbfgs``. Newton needs ~5 iterations whatever the conditioning, but each
builds the p x p Hessian; L-BFGS (preconditioned, see ``_fit``) needs more
iterations of one cheap pass each. Measured on 2 cores: 1,000,000 x 100
binary, newton 1.9 s against lbfgs 0.75 s (work 1e10); breast cancer and
digits (work <= 1e8), newton is faster and more robust. When the gradient
pass reads X only once (the fused kernels of ``_kernels``: large float32
binary problems on the CPU), a pass is so cheap that lbfgs wins at every
size measured, 2-4x (50,000 x 40 to 1,000,000 x 100, scaled or not), and
``auto`` picks it.
"""

from ._result import IterInfo, Result
from .lbfgs import lbfgs
from .newton import newton
from .sgd import get_optimizer, make_batches, make_optimizer, sgd

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
NEWTON_MAX_WORK = 2e9


def choose(name, n_params, hessian_work=0.0, fused_gradient=False):
    """Resolve a user's solver name to a key of ``SOLVERS``; ``hessian_work`` = n p (d + 1)."""
    name = ALIASES.get(name, name)
    if name == "auto":
        small = n_params <= NEWTON_MAX_PARAMS and hessian_work <= NEWTON_MAX_WORK
        return "newton" if small and not fused_gradient else "lbfgs"
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose one of {sorted(SOLVERS) + ['auto'] + sorted(ALIASES)}")
    return name


__all__ = ["SOLVERS", "ALIASES", "Result", "IterInfo", "choose", "lbfgs", "newton", "sgd", "get_optimizer", "make_batches", "make_optimizer"]
