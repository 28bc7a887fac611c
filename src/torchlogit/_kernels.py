"""Fused CPU kernels (numba): one read of X where torch needs two.

Why: a binary gradient pass needs z = X w + b, then r = s (sigmoid(z) - y),
then X^T r. In torch these are two GEMVs, each reading X from memory (the
second from cache at best): about 2.7x the time of one read of X on 1M x 100
float32 (2 cores). Here each tile of 64 rows is read once from memory and
reused from L1 for X^T r: 1.5x the one-read time, the memory-bandwidth limit
within reach.

The transcendentals are written out as polynomials so that the compiler can
vectorise them across the tile (libm's exp/log1p are scalar calls and cost
as much as reading X when d ~ 10):

    exp(-|z|) = 2^k * 2^f,  t = -|z| log2(e) = k + f, |f| <= 1/2,
                2^f = exp(f ln 2) by its Taylor series (degree 7 in float32,
                error < 6e-9; degree 12 in float64, < 2e-16), 2^k from its bits;
                rounding t adds a relative error of ~|t| eps (1e-13 at |z| = 700)
    log1p(e)  = 2 atanh(u),  u = e / (2 + e) in (0, 1/3] for e in (0, 1],
                atanh by its odd series (to u^15 / u^33: error < 1e-9 / 1e-17)
    sigmoid(z) = 1 / (1 + e) for z >= 0, e / (1 + e) for z < 0, and 1 - sigmoid(z)
                 the other way round

and the loss and its derivative are taken in forms without cancellation for
y in {0, 1}:

    softplus(z) - y z = (1 - y) max(z, 0) + y max(-z, 0) + log1p(e)
    sigmoid(z) - y    = (1 - y) sigmoid(z) - y (1 - sigmoid(z))

so both are exact to the working precision's rounding even where they are
tiny (torch's float64 binary_cross_entropy_with_logits is off by 3e-7
relative at z = -20, y = 0). Per-row losses are summed in float64, X^T r in
X's dtype over 1,024 rows and then in float64; chunks of rows are fixed by n
alone and their partial sums are added outside the parallel region in chunk
order, so the result does not depend on the number of threads.

Only C-contiguous float32 or float64 X on the CPU takes this path (GPUs and
other layouts use torch). The multinomial loss has a kernel of its own
(each tile's logits in register blocks of four rows by five classes, the
softmax along the tile's rows, X^T R five classes per sweep); it
serves a shape only where it measured faster than torch's pass on the
machine (``LinearModelLoss._multinomial_kernel``). A fresh install has to compile
the kernels (2 cores: 6-17 s; ``make`` does it at install time through
:func:`warm_up`); numba caches them next to this file, or in its user cache
where that is read-only. So that no fit waits for the compiler (a plain
``pip install`` has no warm cache), :func:`ready` loads a warm cache at once
(under a second, once per process), so the kernels serve from the first
pass, but fills a cold one by a compile in a separate Python process
(numba's compiler holds the GIL: in a thread it slowed the torch passes of
the fit running beside it 10x); meanwhile passes go to torch (the same
sums, rounded differently) and switch to the kernels once the cache is
filled.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading

import torch

from . import _measured
from ._threads import numba_follows_torch

f64 = torch.float64
MIN_ELEMENTS = 1 << 21  # below ~2M entries of X a pass takes ~1 ms and torch is as good

_compiled = None  # the module of numba kernels once imported; False when numba is missing


def _kernels():
    global _compiled
    if _compiled is None:
        try:
            from . import _numba_kernels as _compiled  # compiles, or loads numba's cache
        except ImportError:  # numba not installed: torch does the work
            _compiled = False
    return _compiled


_warming = {"thread": None, "done": False}


def ready() -> bool:
    """Whether the numba kernels can run now without waiting for a compile; False without numba.

    With numba's cache warm it returns True, so fits are the same in every
    process; each kernel is loaded from the cache at its first call (~14 ms
    per kernel and dtype: loading all 25 up front cost a fresh process's
    first MNIST fit 0.38 s). With a cold cache it starts the compile in
    another process and returns False at once; a later call after that
    process has ended returns True, and the kernels load the cache it
    filled. If that process could not fill it (an unwritable cache), each
    kernel is compiled here at its first call, as numba does.
    """
    if _warming["done"]:
        return bool(_kernels())
    if not _kernels():
        return False
    thread = _warming["thread"]
    # a compile started elsewhere is waited for to its end: its first kernels' cache files appear while
    # the others (float64, sparse) are still compiling, which would be compiled again here, holding the GIL
    if (thread is None and _cache_is_warm()) or (thread is not None and not thread.is_alive()):
        _warming["done"] = True
        return True
    if thread is None:
        thread = threading.Thread(target=_compile_elsewhere, name="torchlogit-kernels", daemon=True)
        _warming["thread"] = thread
        thread.start()
    return False


def _compile_elsewhere():
    """Fill numba's cache from a separate Python process (the compiler would hold this one's GIL)."""
    command = [sys.executable, "-c", "from torchlogit._kernels import warm_up; warm_up()"]
    try:
        subprocess.run(command, capture_output=True, timeout=900, check=False)
    except (OSError, subprocess.SubprocessError):
        pass  # ready() then compiles in this process


def _cache_is_warm() -> bool:
    """Whether numba's cache holds the dense kernels (their index files exist); True where that cannot be told."""
    try:
        compiled = _kernels()
        dense = (
            "binary_loss_gradient",
            "multinomial_loss_gradient",
            "shifted_moments",
            "weighted_gram",
            "design_newton_terms",
        )
        from . import _design_kernels  # (defines its kernels; nothing is compiled or loaded by the import)

        whole = (_design_kernels.newton, _design_kernels.prox_newton, _design_kernels.gap_terms)
        for kernel in (*(getattr(compiled, name) for name in dense), *whole):
            if not os.path.exists(kernel._cache._cache_file._index_path):  # numba's own bookkeeping
                return False
    except (AttributeError, TypeError):  # another numba version's layout: load (or compile) here, as before
        return True
    return True


def design_solvers():
    """:mod:`torchlogit._design_kernels` (Newton and prox-Newton compiled whole), or None where the kernels
    cannot serve now (no numba, or a cold cache still compiling: :func:`ready`)."""
    if not ready():
        return None
    from . import _design_kernels

    return _design_kernels


def applies(X) -> bool:
    """Whether the fused kernels handle X: float32 or float64, C-contiguous, CPU, large enough, compiled."""
    return (
        X.device.type == "cpu"
        and X.dtype in (torch.float32, torch.float64)
        and X.is_contiguous()
        and X.numel() >= MIN_ELEMENTS
        and not X.requires_grad
        and ready()
    )


def warm_up() -> bool:
    """Compile, or load from numba's cache, the kernels for both dtypes; False without numba.

    ``make`` runs this right after installing, so the first large fit does
    not pause for the compiler.
    """
    if not _kernels():
        return False
    import numpy as np
    import scipy.sparse as sp

    from . import _folds_kernels, _sparse_kernels
    from ._sparse import SparseX
    from .solvers import _cd

    for dtype in (torch.float32, torch.float64):
        X, v = torch.zeros(8, 3, dtype=dtype), torch.zeros(8, dtype=dtype)
        binary_loss_gradient(X, torch.zeros(3, dtype=dtype), 0.0, v, v)
        multinomial_loss_gradient(X, torch.zeros(2, 3, dtype=dtype), torch.zeros(2, dtype=dtype), v.long(), v, False)
        W, S = np.zeros((2, 3), dtype=X.numpy().dtype), np.zeros((2, 8), dtype=X.numpy().dtype)
        _folds_kernels.folds_loss_gradient(X.numpy(), W, W[:, 0].copy(), v.numpy(), S, 8, 1, False, False)  # CV
        shifted_moments(X, v, torch.zeros(3, dtype=dtype))
        if dtype == f64:  # the Hessian of a design held in float64 (torchlogit._compact)
            weighted_gram(X, v)
            design_newton_terms(X, torch.zeros(3, dtype=dtype), v, v)
            _warm_design_solvers()
        for fmt in ("csr", "csc"):  # the sparse kernels, for both layouts and one or several classes
            np_dtype = np.float32 if dtype == torch.float32 else np.float64
            S = SparseX.from_scipy(sp.random(8, 3, density=0.5, format=fmt, dtype=np_dtype))
            for k in (1, 2):
                S.linear(torch.zeros(k, 3, dtype=f64), None)
                S.rmatmul(torch.zeros(8, k, dtype=f64))
            S.column_moments(torch.ones(8, dtype=f64))
            if fmt == "csr":
                S.binary_loss_gradient(torch.zeros(3, dtype=f64), 0.0, v, v)
                for logistic in (True, False):
                    S.working_set_gram(torch.arange(2), torch.zeros(2, dtype=f64), 0.0, v, v, logistic)
            csc = S.matrix.tocsc()  # prox-newton's column model (large sparse working sets)
            z, one = np.zeros(3), np.ones(3)
            _sparse_kernels.working_set_cd(
                csc.indptr, csc.indices, csc.data, z, one, np.ones(8), z, z, z, z, 0.0, True, 1e-6, 2
            )
    _cd.solve(np.eye(2), np.ones(2), np.zeros(2), np.zeros(2))  # prox-newton's inner solver
    return True


def _warm_design_solvers():
    """Compile (or load) the small designs' whole solvers (:mod:`torchlogit._design_kernels`)."""
    import numpy as np

    from . import _design_kernels as dk

    A, v, p = np.eye(8, 3), np.zeros(8), np.zeros(3)
    dk.newton(A, v, v, p, p, 1.0, 1, 1e-15)
    dk.prox_newton(A, v, v, p, p, 2, p, 1.0, 1, 1e-15, 10)
    dk.gap_terms(A, p, v, v, True, 1)
    dk.centre_and_moments(A, 2, v, True)
    dk.scale_columns(A, 2, p, p)


def _chunks(n):
    """(rows, chunks): a function of n only (determinism across thread counts).

    The number of chunks is the power of two (at most 256) that puts 2,048 to
    4,096 rows in each (more rows beyond ~1M), so that threads in any
    power-of-two number up to it get equal shares: 15 chunks of 4,096 rows
    (MNIST's 60,000) left one of two threads 8 chunks and the other 7, and the
    pass waited 9% longer for the first.
    """
    chunks = min(256, 1 << (max(1, math.ceil(n / 4096)) - 1).bit_length())
    rows = max(1, math.ceil(n / chunks))
    return rows, math.ceil(n / rows)


def binary_loss_gradient(X, w, b, y, s):
    """(f, g): f = sum_i s_i [softplus(z_i) - y_i z_i], g = (X^T r, sum_i r_i) with r = s (sigmoid(z) - y).

    X (n, d) C-contiguous; w (d,), y (n,) in {0, 1}, s (n,) tensors of X's
    dtype; b a float. f a Python float, g float64 (d + 1,).
    """
    numba_follows_torch()
    rows, chunks = _chunks(X.shape[0])
    Xn = X.numpy()
    F, G = _kernels().binary_loss_gradient(
        Xn, w.contiguous().numpy(), Xn.dtype.type(b), y.contiguous().numpy(), s.contiguous().numpy(), rows, chunks
    )
    return _chunk_total(F), torch.from_numpy(G.sum(axis=0))


def multinomial_loss_gradient(X, W, b, y, s, touch=None):
    """(f, gW, gb): f = sum_i s_i [logsumexp(z_i) - z_i,y_i] with z_i = W x_i + b, gW = R^T X, gb = sum_i R_i,
    R = s (softmax(z) - onehot(y)), in one read of X.

    X (n, d) C-contiguous; W (K, d), b (K,), s (n,) of X's dtype; y (n,) int64
    class indices. f a Python float, gW (K, d) and gb (K,) float64. ``touch``:
    whether the kernel reads each tile into cache first; None: as measured
    fastest on this machine for this shape (:func:`touch_pays`).
    """
    numba_follows_torch()
    rows, chunks = _chunks(X.shape[0])
    kernel = _kernels().multinomial_loss_gradient
    args = (X.numpy(), *(t.contiguous().numpy() for t in (W, b, y, s)), rows, chunks)
    if touch is None:
        touch = touch_pays(kernel, args, f"multinomial pass, {W.shape[0]} classes")
    F, G = kernel(*args, touch)
    total = torch.from_numpy(G.sum(axis=0))  # (K, d + 1), chunks added in order
    return _chunk_total(F), total[:, :-1], total[:, -1]


def touch_pays(kernel, args, what) -> bool:
    """Whether ``kernel(*args, touch)`` is faster with each tile read into cache first (6 passes, the first
    time: :func:`torchlogit._measured.fastest_flags`)."""
    ways = {"touched first": (True,), "as it comes": (False,)}
    return _measured.fastest_flags(kernel, args, ways, what + ", touched first?")[0]


def _chunk_total(F):
    """The sum of per-chunk values, correctly rounded: the same on every CPU and thread count."""
    return math.fsum(F.tolist())


def shifted_moments(X, s, c):
    """(sum_i s_i (x_i - c), sum_i s_i (x_i - c)^2), float64 (d,) each, in one read of X."""
    numba_follows_torch()
    rows, chunks = _chunks(X.shape[0])
    M1, M2 = _kernels().shifted_moments(X.numpy(), s.contiguous().numpy(), c.contiguous().numpy(), rows, chunks)
    # (chunks, d) -> (d,): numpy adds the rows one after another, in chunk order
    return torch.from_numpy(M1.sum(axis=0)), torch.from_numpy(M2.sum(axis=0))


def weighted_gram(A, h):
    """A^T diag(h) A, float64 (p, p), for A (n, p) float64 C-contiguous and h (n,) float64: one read of A.

    The Hessian of the logistic loss in a design held in memory
    (:class:`torchlogit._compact.Design`), h = s p (1 - p). A BLAS GEMM of
    this shape (p small, n large) is far from its peak on some CPUs
    (measured 0.5 ms for 10,000 x 21 with MKL on a 2-core AMD EPYC, 9 GFLOP/s);
    the kernel keeps 4 x 4 blocks of H in registers over tiles of rows.
    Chunks of rows are fixed by n alone and added in order, so the result
    does not depend on the thread count.
    """
    numba_follows_torch()
    out = _kernels().weighted_gram(A.numpy(), h.contiguous().numpy(), *_gram_chunks(A.shape[0]))
    return _mirrored(out, A.shape[1])


def _gram_chunks(n):
    """(rows, chunks) for the gram kernels: a multiple of their 64-row tile, a function of n only."""
    rows = -(-max(1024, -(-n // 64)) // 64) * 64
    return rows, -(-n // rows)


def _mirrored(out, p):
    """(p, p) from a gram kernel's per-chunk (q, q) blocks on and above the diagonal: chunks added in order."""
    H = torch.from_numpy(out.sum(axis=0)[:p, :p])
    return H.triu() + H.triu(1).T


def design_newton_terms(A, phi, y, s):
    """(f, g, H) of the binary data term at z = A phi, from one read of A: a Newton step's three terms.

    f = sum_i s_i [softplus(z_i) - y_i z_i] (a Python float), g = A^T r with
    r = s (sigmoid(z) - y) (p,), H = A^T diag(s p (1 - p)) A (p, p): float64,
    for A (n, p) float64 C-contiguous, phi (p,), y (n,) in {0, 1} and s (n,)
    float64. The three of :class:`torchlogit._compact.Design`'s ``loss_gradient``
    and ``hessian`` in one kernel (``weighted_gram``'s tiles, the loss
    formulas of ``binary_loss_gradient``); chunks as ``weighted_gram``'s.
    """
    numba_follows_torch()
    arrays = (t.contiguous().numpy() for t in (phi, y, s))
    F, G, out = _kernels().design_newton_terms(A.numpy(), *arrays, *_gram_chunks(A.shape[0]))
    return _chunk_total(F), torch.from_numpy(G.sum(axis=0)), _mirrored(out, A.shape[1])
