"""scikit-learn's callback API (``set_callbacks``, scikit-learn >= 1.9) on torchlogit's solvers.

scikit-learn describes a fit as a tree of tasks: the fit is the root, each
solver iteration a child named "<solver>-iter", and, as scikit-learn's own
lbfgs does, one empty child after the last iteration (so a callback written
for scikit-learn counts the same hooks here). Our solvers call
``callback(info)`` after every iteration with the iterate ``info.x`` (theta);
:class:`FitTasks` turns that into scikit-learn's pair of hooks per iteration:
end the iteration that finished, begin the next. A hook that returns True
stops the solver (scikit-learn 1.9 plans this for lbfgs but cannot yet).

With an older scikit-learn the mixin is absent and ``set_callbacks`` does not exist.
"""

from __future__ import annotations

try:
    from sklearn.callback import CallbackSupportMixin, with_callbacks
except ImportError:  # scikit-learn < 1.9: no callback framework

    class CallbackSupportMixin:  # noqa: D101 - an empty stand-in
        pass

    def with_callbacks(method):
        return method


class FitTasks:
    """The root task of one fit and its per-iteration subtasks.

    ``attributes(theta)`` -> the fitted attributes (coef_, intercept_) an
    estimator would have at ``theta``; evaluated lazily, only for callbacks
    that ask for a ``fitted_estimator``.
    """

    def __init__(self, estimator, X, y, metadata, max_iter, solver, attributes):
        self.root = estimator._init_callback_context(max_subtasks=max(max_iter, 1) + 1)
        self.hook_args = {"estimator": estimator, "X": X, "y": y, "metadata": metadata}
        self.root.call_on_fit_task_begin(**self.hook_args)
        self.solver, self.attributes = solver, attributes
        self.current = None

    @classmethod
    def begin(cls, estimator, X, y, metadata, max_iter, solver, attributes):
        """The tasks of this fit, or None when no callback is set (nothing to call)."""
        if not hasattr(estimator, "_init_callback_context"):
            return None
        if not (getattr(estimator, "_skl_callbacks", None) or hasattr(estimator, "_parent_callback_ctx")):
            return None
        return cls(estimator, X, y, metadata, max_iter, solver, attributes)

    def start(self, theta0):
        """Begin the first iteration's task from the initial parameters."""
        self.current = self._begin_iteration(theta0)

    def __call__(self, info):
        """After an iteration: end its task at ``info.x`` and begin the next; True means stop."""
        stop = self.current.call_on_fit_task_end(
            **self.hook_args, reconstruction_attributes=lambda: self.attributes(info.x)
        )
        self.current = self._begin_iteration(info.x)
        return bool(stop)

    def end(self):
        """End the iteration that never ran (an empty task) and then the fit itself."""
        if self.current is not None:
            self.current.call_on_fit_task_end(estimator=self.hook_args["estimator"])
        self.root.call_on_fit_task_end(**self.hook_args, reconstruction_attributes={})

    def _begin_iteration(self, theta):
        ctx = self.root.subcontext(task_name=f"{self.solver}-iter")
        ctx.call_on_fit_task_begin(**self.hook_args, reconstruction_attributes=lambda: self.attributes(theta))
        return ctx
