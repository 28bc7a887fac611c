"""Line searches along a descent direction d from x, on float64 objective values.

Written as a generator (:func:`wolfe_steps`: it yields each trial point and
receives its (f, g)), so that one caller can evaluate many searches' points in
one pass over the data (``torchlogit._folds``); :func:`wolfe` drives it with a
function.
"""

from __future__ import annotations


def drive(steps, fun_and_grad):
    """Run a generator that yields points and receives (f, g) with ``fun_and_grad``; return what it returns."""
    try:
        x = next(steps)
        while True:
            x = steps.send(fun_and_grad(x))
    except StopIteration as done:
        return done.value


def wolfe_steps(x, f, g, d, *, step=1.0, c1=1e-4, c2=0.9, f_noise=0.0, max_steps=40):
    """Weak Wolfe conditions by bracketing and bisection (Lewis and Overton), as a generator.

    Finds t with f(x + t d) <= f + c1 t g.d + f_noise  (sufficient decrease) and
                 g(x + t d).d >= c2 g.d               (curvature, so s.y > 0 for L-BFGS).
    ``f_noise`` is the absolute accuracy of f values (Hager and Zhang's
    approximate Wolfe conditions): near the optimum of a float32 problem the
    true decrease is below the rounding of f, and the curvature test alone
    then decides. Yields x + t d, receives (f, g) there; returns (t, f_new,
    g_new), or None when no t was found.
    """
    gd = float(g @ d)
    lo, hi, t = 0.0, float("inf"), step
    best = None
    for _ in range(max_steps):
        f_t, g_t = yield x + t * d
        if not f_t <= f + c1 * t * gd + f_noise:  # also rejects NaN
            hi = t
        else:
            best = (t, f_t, g_t)
            if float(g_t @ d) >= c2 * gd:
                return best
            lo = t
        t = 0.5 * (lo + hi) if hi < float("inf") else 2.0 * lo
    return best  # sufficient decrease without curvature is still progress


def wolfe(fun_and_grad, x, f, g, d, **options):
    """:func:`wolfe_steps` with ``fun_and_grad(x) -> (f, g)`` evaluating each trial point."""
    return drive(wolfe_steps(x, f, g, d, **options), fun_and_grad)
