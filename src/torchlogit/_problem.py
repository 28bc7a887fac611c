"""One fit's fixed data: the data term, the penalty, and where the rows come from.

    f(theta) = L(theta) + P(W),    L = sum_i s_i loss(z_i, y_i)   (see :mod:`torchlogit._loss`)

``theta`` is the flat parameter vector [W.ravel(), b] of :mod:`torchlogit._loss`;
s sums to 1; P is a :class:`torchlogit.penalties.Penalty` on W only. A
problem never changes during a fit (per-iteration state lives in the
solvers); the exact solvers see it through the standardised coordinates of
:mod:`torchlogit._fit`.

The rows are a data source: anything that yields ``blocks()`` of (X, y, s)
covering the data once (a pass) and sums a tensor over the processes of a
distributed fit with ``total()``. Two sources exist: :class:`Problem` holds
X in memory (one block, dense or sparse; the fused kernels are chosen inside
the loss by X's type), :class:`StreamProblem` reads the blocks of a file
stream at every pass (and all-reduces across ranks). Everything a solver
needs (f, its gradient, a working set's Hessian) is a sum over blocks, so
both go through the same ``fit_problem``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import torch

from ._loss import LinearModelLoss
from ._sparse import SparseX
from .penalties import Penalty

f64 = torch.float64
Block = tuple  # (X (m, d), y (m,), s (m,)): rows of the data, s the weights of the whole fit


class _Sums:
    """f, its gradient and Hessians as sums over a source's blocks; shared by every source.

    A subclass has ``datafit``, ``penalty``, ``blocks()``, ``total(t)``,
    ``device`` and ``dtype`` (of X's blocks).
    """

    datafit: LinearModelLoss
    penalty: Penalty

    @property
    def penalized(self) -> torch.Tensor:
        """(p,) bool in theta's layout: the coordinates the penalty touches (the weights; never the intercept)."""
        mask = torch.zeros(self.datafit.n_params, dtype=torch.bool, device=self.device)
        if self.penalty.alpha:
            mask[: self.datafit.n_outputs * self.datafit.n_features] = True
        return mask

    def weights(self, theta: torch.Tensor) -> torch.Tensor:
        """W (k, d), a view of theta."""
        return self.datafit.unpack(theta)[0]

    def smooth_part(self):
        """The same problem with only the smooth (L2) part of the penalty: what a prox method differentiates."""
        return replace(self, penalty=self.penalty.split()[0])

    def data_loss_gradient(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L, grad L) float64 (scalar, (p,)): the data term summed over one pass of blocks and the ranks."""
        f, g = None, None
        for X, y, s in self.blocks():
            fb, gb = self.datafit.loss_gradient(theta.to(X.dtype), X, y, s)
            f, g = (fb, gb) if f is None else (f + fb, g + gb)
        if f is None:
            f, g = torch.zeros((), dtype=f64), torch.zeros(self.datafit.n_params, dtype=f64, device=self.device)
        return self.total(f), self.total(g)

    def data_hessian(self, theta, std=None, loss=None, columns=None, block_bytes: int = 4 << 20) -> torch.Tensor:
        """The data term's Hessian (float64), summed over one pass; ``loss``, ``columns``, ``std``: see
        :meth:`LinearModelLoss.hessian` (a working set's loss and columns, and phi coordinates)."""
        loss = self.datafit if loss is None else loss
        H = None
        for X, y, s in self.blocks():
            Hb = loss.hessian(theta.to(X.dtype), X, y, s, block_bytes=block_bytes, std=std, columns=columns)
            H = Hb if H is None else H + Hb
        return self.total(H)

    def objective(self, theta: torch.Tensor) -> float:
        """f(theta) in float64: data term plus the whole penalty."""
        f, _ = self.data_loss_gradient(theta)
        return float(f) + float(self.penalty.value(self.weights(theta.to(f64))))

    def loss_gradient(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, grad) of a smooth problem, float64; grad of shape (p,)."""
        f, g = self.data_loss_gradient(theta)
        if self.penalty.alpha:
            W = self.weights(theta.to(f64))
            k_d = W.numel()
            f = f + self.penalty.value(W)
            g = g.clone()
            g[:k_d] += self.penalty.gradient(W).reshape(-1)
        return f, g

    def hessian(self, theta: torch.Tensor, std=None, block_bytes: int = 4 << 20) -> torch.Tensor:
        """The (p, p) Hessian of the smooth problem, float64 (in phi coordinates with ``std``).

        Data term (:meth:`LinearModelLoss.hessian`), plus the penalty's
        curvature on the weights (with weights 1 / sigma in phi coordinates),
        then the softmax null space filled for the coordinates no penalty curvature reaches.
        """
        H = self.data_hessian(theta, std=std, block_bytes=block_bytes)
        penalty = self.penalty if std is None else self.penalty.rescaled(std.sigma)
        W = self.weights(theta.to(f64))
        curved = torch.zeros(self.datafit.n_params, dtype=torch.bool, device=H.device)
        penalty.add_curvature(H, W)
        curved[: W.numel()] = bool(penalty.l2)
        return self.datafit.fill_softmax_null_space(H, curved)


@dataclass(frozen=True)
class Problem(_Sums):
    """Data in memory: one block."""

    datafit: LinearModelLoss
    penalty: Penalty
    X: torch.Tensor | SparseX  # (n, d): dense, or sparse (never densified)
    y: torch.Tensor  # (n,) float 0/1 (binary), int64 classes (multinomial), float (squared)
    s: torch.Tensor  # (n,) weights summing to 1, X's dtype

    in_memory = True  # X can be read at random (column models, the duality gap's two passes)

    @property
    def device(self) -> torch.device:
        return self.X.device

    @property
    def dtype(self) -> torch.dtype:
        return self.X.dtype

    def blocks(self) -> Iterable[Block]:
        return ((self.X, self.y, self.s),)

    def total(self, t):
        return t

    def preconditioner_rows(self):
        """(X, s): the rows a correlation preconditioner is estimated from."""
        return self.X, self.s

    def gradient_hessp(self, theta: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """(grad, hessp) of a smooth problem: hessp(v) = H v, float64 (p,)."""
        g, data_hessp = self.datafit.gradient_hessp(theta.to(self.X.dtype), self.X, self.y, self.s)
        if not self.penalty.alpha:
            return g, data_hessp
        W = self.weights(theta.to(f64))
        k_d = W.numel()
        g = g.clone()
        g[:k_d] += self.penalty.gradient(W).reshape(-1)
        curvature = self.penalty.curvature(W).reshape(-1)

        def hessp(v):
            hv = data_hessp(v).clone()
            hv[:k_d] += curvature * v[:k_d].to(f64)
            return hv

        return g, hessp


@dataclass(frozen=True)
class StreamProblem(_Sums):
    """Rows read block by block at every pass (a file stream), summed over the ranks of a distributed fit.

    ``passes()`` starts one pass: an iterable of (X, y, s) blocks whose s sum
    to 1 over all blocks of all ranks. ``reduce(t)``: t summed over the
    ranks (None in one process). ``sample``: (rows, weights) for the
    preconditioner, the same on every rank, or None.
    """

    datafit: LinearModelLoss
    penalty: Penalty
    passes: Callable[[], Iterable[Block]]
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
    sample: tuple | None = None
    dtype: torch.dtype = torch.float32
    device: torch.device = torch.device("cpu")

    in_memory = False

    def blocks(self) -> Iterable[Block]:
        return self.passes()

    def total(self, t):
        return t if self.reduce is None else self.reduce(t)

    def preconditioner_rows(self):
        return self.sample
