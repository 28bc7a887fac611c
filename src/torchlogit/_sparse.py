"""Sparse X: the products a fit needs, on the matrix as the user gave it (never densified, never centred).

    X = SparseX.from_scipy(csr_or_csc)          # shares the user's arrays: no copy
    Z = X.linear(W, b)                          # (n, k) = X W^T + b, float64
    G = X.rmatmul(R)                            # (k, d) = R^T X, float64
    m1, m2 = X.column_moments(s)                # sum_i s_i x_ij, sum_i s_i x_ij^2
    B = X.dense_rows(start, stop, columns=None) # (rows, d or m) dense block, for Hessians and samples

On the CPU, float64 data uses scipy's own products (one pass over the
non-zeros each, float64 sums, no transposed copy: X.T of a CSR is a CSC view);
float32 data uses numba kernels over the same arrays
(:mod:`torchlogit._sparse_kernels`), which sum in float64 where scipy would sum
in float32. Elsewhere (a GPU, or without numba) they are torch sparse CSR
products with int32 indices (5x faster than int64) and a stored transpose
(50-100x faster than transposing a CSR on the fly).

The standardisation never centres a sparse X: the mean is folded into the
intercept (``_fit.Standardizer``: b = c - W mu), so X x stays sparse.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch

from ._threads import numba_follows_torch

f64 = torch.float64
_SCATTER_BYTES = 64 << 20  # the scatter's per-chunk accumulators stay under this
# The fused pass's chunks (a fixed count, so its sums do not depend on the thread count): each is a
# (d,) accumulator to zero and add, so more chunks than cores cost without helping; 16 serves up to
# 16 cores. Measured on 100,000 x 50,000 (2 cores): 24 fresh chunks 18.4 ms a pass, 16 kept ones 15.3 ms.
FUSED_CHUNKS = 16


def is_sparse(X) -> bool:
    return isinstance(X, SparseX)


def _kernels():
    try:
        from . import _sparse_kernels
    except ImportError:  # pragma: no cover - numba missing: torch's sparse products
        return None
    return _sparse_kernels


class SparseX:
    """An (n, d) CSR or CSC matrix of float32 or float64 on a device; see the module docstring."""

    def __init__(self, matrix, device):
        self.matrix = matrix  # scipy CSR or CSC with sorted, int32 or int64 indices
        self.device = torch.device(device)
        self.shape = matrix.shape
        self.dtype = torch.float32 if matrix.dtype == np.float32 else torch.float64
        self.nnz = matrix.nnz
        self._torch = None  # (X, X^T) torch sparse CSR on the device, built at first use
        self._partials = None  # the fused pass's per-chunk gradient sums (chunks, d), kept between passes

    @classmethod
    def from_scipy(cls, matrix, device="cpu", dtype=None):
        """Wrap a scipy CSR/CSC matrix (other formats become CSR); a dtype change is the only copy."""
        if matrix.format not in ("csr", "csc"):
            matrix = matrix.tocsr()
        if dtype is not None and matrix.dtype != dtype:
            matrix = matrix.astype(dtype)
        elif matrix.dtype not in (np.float32, np.float64):
            matrix = matrix.astype(np.float64)
        if not matrix.has_sorted_indices:
            matrix = matrix.sorted_indices()
        return cls(matrix, device)

    def to(self, dtype):
        """The same matrix in ``dtype`` (a torch float dtype): itself, or a converted copy of the non-zeros."""
        if dtype == self.dtype:
            return self
        return SparseX(self.matrix.astype(np.float32 if dtype == torch.float32 else np.float64), self.device)

    def element_size(self) -> int:
        """Bytes per stored value, as ``torch.Tensor.element_size()``."""
        return self.matrix.dtype.itemsize

    def _scipy(self):
        """float64 data on the CPU: scipy's own products, which sum in float64 (the peer a pass is measured against)."""
        return self.device.type == "cpu" and self.matrix.dtype == np.float64

    def _numba(self):
        """float32 data on the CPU: our kernels, which sum in float64 where scipy would sum in float32."""
        return self.device.type == "cpu" and _kernels() is not None

    def _arrays(self):
        """The CSR/CSC arrays for a numba kernel, which is about to run with torch's thread count."""
        numba_follows_torch()
        m = self.matrix
        return m.indptr, m.indices, m.data

    def _chunks(self, major, minor, k):
        """Scatter chunks: a function of the shapes only (the sum does not depend on the thread count)."""
        return int(max(1, min(64, major // 4096, _SCATTER_BYTES // max(1, minor * k * 8))))

    def _scatter(self, R, minor):
        from . import _sparse_kernels as kern

        major = len(self.matrix.indptr) - 1
        chunks = self._chunks(major, minor, R.shape[1])
        if R.shape[1] == 1:
            return kern.scatter1(*self._arrays(), np.ascontiguousarray(R[:, 0]), minor, chunks).sum(axis=0)[:, None]
        return kern.scatter(*self._arrays(), R, minor, chunks).sum(axis=0)  # chunk after chunk: any machine, same sum

    def _dot(self, V):
        from . import _sparse_kernels as kern

        if V.shape[1] == 1:
            return kern.dot1(*self._arrays(), np.ascontiguousarray(V[:, 0]))[:, None]
        return kern.dot(*self._arrays(), V)

    def _torch_pair(self):
        """(X, X^T) as torch sparse CSR with int32 indices on the device, built once."""
        if self._torch is None:
            csr = self.matrix.tocsr()
            csr_t = self.matrix.T.tocsr()

            def as_torch(m):
                return torch.sparse_csr_tensor(
                    torch.from_numpy(m.indptr.astype(np.int32)),
                    torch.from_numpy(m.indices.astype(np.int32)),
                    torch.from_numpy(m.data),
                    size=m.shape,
                ).to(self.device)

            self._torch = (as_torch(csr), as_torch(csr_t))
        return self._torch

    # ---------------------------------------------------------------- products
    def linear(self, W, b=None):
        """Z = X W^T + b, (n, k) float64 on the device; W (k, d), b (k,) or None."""
        if self._scipy():
            Z = torch.from_numpy(np.asarray(self.matrix @ W.detach().to(device="cpu", dtype=f64).numpy().T))
        elif self._numba():
            V = np.ascontiguousarray(W.detach().to(device="cpu", dtype=f64).numpy().T)  # (d, k)

            if self.matrix.format == "csr":
                Z = self._dot(V)
            else:
                Z = self._scatter(V, self.shape[0])
            Z = torch.from_numpy(Z)
        else:
            X, _ = self._torch_pair()
            Z = (X @ W.T.to(X.dtype)).to(f64)
        return Z if b is None else Z + b.to(device=Z.device, dtype=f64)

    def rmatmul(self, R):
        """R^T X, (k, d) float64; R (n, k)."""
        if self._scipy():
            Rn = R.detach().to(device="cpu", dtype=f64).numpy()
            return torch.from_numpy(np.ascontiguousarray(np.asarray(self.matrix.T @ Rn).T))
        if self._numba():
            Rn = np.ascontiguousarray(R.detach().to(device="cpu", dtype=f64).numpy())

            if self.matrix.format == "csr":
                G = self._scatter(Rn, self.shape[1])
            else:
                G = self._dot(Rn)
            return torch.from_numpy(np.ascontiguousarray(G.T))
        _, X_t = self._torch_pair()
        return (X_t @ R.to(X_t.dtype)).to(f64).T

    def fuses_binary(self) -> bool:
        """Whether :meth:`binary_loss_gradient` applies: a CSR matrix on the CPU, with numba."""
        return self.matrix.format == "csr" and self.device.type == "cpu" and _kernels() is not None

    def binary_loss_gradient(self, w, b, y, s):
        """(f, g_w (d,), g_b) of f = sum_i s_i [softplus(z_i) - y_i z_i], z = X w + b, in one read of X.

        float64 results whatever X's dtype; see ``_sparse_kernels.binary_loss_gradient``.
        """
        from . import _sparse_kernels as kern

        n, d = self.shape
        chunks = min(FUSED_CHUNKS, self._chunks(n, d, 1))
        if self._partials is None or self._partials.shape[0] != chunks:
            self._partials = np.empty((chunks, d))
        F, G, GB = kern.binary_loss_gradient(
            *self._arrays(),
            np.ascontiguousarray(w.detach().to(device="cpu", dtype=f64).numpy()),
            float(b),
            y.detach().cpu().numpy(),
            s.detach().cpu().numpy(),
            self._partials,
        )
        # chunk after chunk, as the scatter: the same sums on any machine
        return math.fsum(F.tolist()), torch.from_numpy(G.sum(axis=0)), math.fsum(GB.tolist())

    def working_set_gram(self, columns, v, b, y, s, logistic=True):
        """(G (m, m), a (m,), c) float64 numpy: sum_i w_i x_iF x_iF^T, sum_i w_i x_iF, sum_i w_i.

        F = ``columns`` (m,), v the coefficients on F (every other one is 0),
        w_i = s_i p_i (1 - p_i) (``logistic``) or s_i. One read of X's rows, no
        copy of its columns; needs :meth:`fuses_binary`.
        """
        from . import _sparse_kernels as kern

        n, d = self.shape
        m = len(columns)
        pos = np.full(d, -1, dtype=np.int64)
        pos[columns.cpu().numpy()] = np.arange(m)
        chunks = int(max(1, min(8, n // 4096, (16 << 20) // max(1, m * m * 8))))
        G, A, C = kern.working_set_gram(
            *self._arrays(),
            pos,
            np.ascontiguousarray(v.detach().to(device="cpu", dtype=f64).numpy()),
            float(b),
            y.detach().cpu().numpy(),
            s.detach().cpu().numpy(),
            logistic,
            chunks,
        )
        return G.sum(axis=0), A.sum(axis=0), math.fsum(C.tolist())  # chunk after chunk: the same on any machine

    def column_moments(self, s):
        """(sum_i s_i x_ij, sum_i s_i x_ij^2), float64 (d,) each; s (n,)."""
        m1 = self.rmatmul(s.to(f64)[:, None])[0]
        if self._numba():
            from . import _sparse_kernels as kern

            w = np.ascontiguousarray(s.detach().to(device="cpu", dtype=f64).numpy())
            if self.matrix.format == "csr":
                m2 = kern.squared_scatter(*self._arrays(), w, self.shape[1])
            else:
                m2 = kern.squared_dot(*self._arrays(), w)
            return m1, torch.from_numpy(m2)
        squared = self.matrix.multiply(self.matrix)  # one copy of the non-zeros, on the torch path only
        return m1, torch.from_numpy(np.asarray(squared.T @ s.detach().cpu().double().numpy())).ravel()

    def dense_rows(self, start, stop, columns=None):
        """Rows start..stop (and ``columns``) as a dense tensor of X's dtype on the device."""
        block = self.matrix[start:stop]
        if columns is not None:
            block = block[:, columns.cpu().numpy()]
        return torch.from_numpy(block.toarray()).to(self.device)

    def take_rows(self, idx):
        """Rows ``idx`` (a tensor) as a dense tensor: a mini-batch or a sample."""
        return torch.from_numpy(self.matrix[idx.cpu().numpy()].toarray()).to(self.device)

    def columns_matrix(self, columns):
        """The scipy matrix of ``columns`` only (sparse, for a working set's Hessian)."""
        return self.matrix[:, columns.cpu().numpy()]


def as_sparse_input(X, device, dtype):
    """A scipy or torch sparse matrix as SparseX, or None for anything else."""
    if sp.issparse(X):
        return SparseX.from_scipy(X, device, dtype)
    if isinstance(X, torch.Tensor) and X.layout in (torch.sparse_csr, torch.sparse_csc, torch.sparse_coo):
        csr = X.detach().to_sparse_csr().cpu()
        matrix = sp.csr_matrix(
            (csr.values().numpy(), csr.col_indices().numpy(), csr.crow_indices().numpy()), shape=tuple(X.shape)
        )
        return SparseX.from_scipy(matrix, device if device is not None else X.device, dtype)
    return None


# ------------------------------------------------------------------ operations on X, dense or sparse
def linear(X, W, b=None):
    """X W^T + b: (n, k) in X's dtype for a tensor, float64 for a SparseX."""
    if is_sparse(X):
        return X.linear(W, b)
    return torch.nn.functional.linear(X, W, b)


def rows(X, start, stop, columns=None):
    """Rows start..stop (and ``columns``) of X as a dense tensor: a block of a dense X is a view."""
    if is_sparse(X):
        return X.dense_rows(start, stop, columns)
    block = X[start:stop]
    return block if columns is None else block[:, columns]


def take_rows(X, idx):
    """Rows ``idx`` of X as a dense tensor (a mini-batch, a sample)."""
    return X.take_rows(idx) if is_sparse(X) else X[idx]
