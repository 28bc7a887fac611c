"""The numba kernels behind :mod:`torchlogit._kernels` (formulas there).

Imported only when a large float32 problem on the CPU needs them, so numba's
import and compile time are not paid by small fits or the CLI's start-up.
"""

import numpy as np
from numba import njit, prange

f32 = np.float32
TILE = 64  # rows per tile: 64 x d floats stay in L1/L2 between their two uses
# IEEE semantics except what vectorisation needs: reassociated sums, fused multiply-add
FLAGS = {"reassoc", "contract", "nsz", "arcp"}


@njit(parallel=True, fastmath=FLAGS, nogil=True, cache=True)
def binary_loss_gradient(X, w, b, y, s, rows, chunks):
    """See torchlogit._kernels.binary_loss_gradient; returns (f, g) with g float64 (d + 1,)."""
    n, d = X.shape
    G = np.zeros((chunks, d + 1))  # float64 partial gradients, one row per chunk
    F = np.zeros(chunks)
    for c in prange(chunks):
        g32 = np.zeros(d, dtype=f32)  # X^T r over <= 16 tiles, then flushed to g64
        g64 = np.zeros(d)
        z = np.empty(TILE, dtype=f32)
        bits = np.empty(TILE, dtype=np.int32)  # 2^k built from its IEEE bits ...
        two_k = bits.view(f32)  # ... and read back as floats
        two_f = np.empty(TILE, dtype=f32)
        r = np.empty(TILE, dtype=f32)
        loss = np.empty(TILE, dtype=f32)
        f, gb = 0.0, 0.0
        lo = c * rows
        hi = min(n, lo + rows)
        for t0 in range(lo, hi, TILE):
            m = min(TILE, hi - t0)
            # z = X w + b, four rows at a time (four independent memory streams)
            i = 0
            while i + 4 <= m:
                a0, a1, a2, a3 = f32(0.0), f32(0.0), f32(0.0), f32(0.0)
                for j in range(d):
                    wj = w[j]
                    a0 += X[t0 + i, j] * wj
                    a1 += X[t0 + i + 1, j] * wj
                    a2 += X[t0 + i + 2, j] * wj
                    a3 += X[t0 + i + 3, j] * wj
                z[i], z[i + 1], z[i + 2], z[i + 3] = a0 + b, a1 + b, a2 + b, a3 + b
                i += 4
            while i < m:
                a0 = f32(0.0)
                for j in range(d):
                    a0 += X[t0 + i, j] * w[j]
                z[i] = a0 + b
                i += 1
            # exp(-|z|) = 2^k 2^f (module docstring)
            for i in range(m):
                t = max(-abs(z[i]) * f32(1.4426950408889634), f32(-126.0))  # 2^-126: float32's smallest normal
                k = np.floor(t + f32(0.5))
                x = (t - k) * f32(0.6931471805599453)
                q = f32(1.0 / 5040.0)
                q = q * x + f32(1.0 / 720.0)
                q = q * x + f32(1.0 / 120.0)
                q = q * x + f32(1.0 / 24.0)
                q = q * x + f32(1.0 / 6.0)
                q = q * x + f32(0.5)
                q = q * x + f32(1.0)
                two_f[i] = q * x + f32(1.0)
                bits[i] = (np.int32(k) + np.int32(127)) << np.int32(23)
            # loss and residual per row
            for i in range(m):
                e = two_f[i] * two_k[i]  # exp(-|z|) in (0, 1]
                u = e / (f32(2.0) + e)
                u2 = u * u
                a = f32(2.0 / 15.0)
                a = a * u2 + f32(2.0 / 13.0)
                a = a * u2 + f32(2.0 / 11.0)
                a = a * u2 + f32(2.0 / 9.0)
                a = a * u2 + f32(2.0 / 7.0)
                a = a * u2 + f32(2.0 / 5.0)
                a = a * u2 + f32(2.0 / 3.0)
                a = a * u2 + f32(2.0)  # u a = log1p(e)
                inv = f32(1.0) / (f32(1.0) + e)
                p = inv if z[i] >= 0 else e * inv
                yi, si = y[t0 + i], s[t0 + i]
                loss[i] = si * (max(z[i], f32(0.0)) + u * a - yi * z[i])
                r[i] = si * (p - yi)
            for i in range(m):
                f += np.float64(loss[i])
                gb += np.float64(r[i])
            # X^T r from the same tile, still in cache
            i = 0
            while i + 4 <= m:
                r0, r1, r2, r3 = r[i], r[i + 1], r[i + 2], r[i + 3]
                for j in range(d):
                    g32[j] += r0 * X[t0 + i, j] + r1 * X[t0 + i + 1, j] + r2 * X[t0 + i + 2, j] + r3 * X[t0 + i + 3, j]
                i += 4
            while i < m:
                r0 = r[i]
                for j in range(d):
                    g32[j] += r0 * X[t0 + i, j]
                i += 1
            if (t0 - lo) % (16 * TILE) == 0:
                for j in range(d):
                    g64[j] += g32[j]
                    g32[j] = 0.0
        for j in range(d):
            G[c, j] = g64[j] + g32[j]
        G[c, d] = gb
        F[c] = f
    return F.sum(), G.sum(axis=0)

@njit(parallel=True, fastmath=FLAGS, nogil=True, cache=True)
def shifted_moments(X, s, shift, rows, chunks):
    """See torchlogit._kernels.shifted_moments."""
    n, d = X.shape
    M1 = np.zeros((chunks, d))
    M2 = np.zeros((chunks, d))
    for c in prange(chunks):
        a1 = np.zeros(d, dtype=X.dtype)  # over <= 1,024 rows, then flushed to float64
        a2 = np.zeros(d, dtype=X.dtype)
        lo = c * rows
        hi = min(n, lo + rows)
        for i in range(lo, hi):
            si = s[i]
            for j in range(d):
                v = X[i, j] - shift[j]
                a1[j] += si * v
                a2[j] += si * v * v
            if (i - lo) % 1024 == 1023 or i == hi - 1:
                for j in range(d):
                    M1[c, j] += a1[j]
                    M2[c, j] += a2[j]
                    a1[j] = 0.0
                    a2[j] = 0.0
    return M1.sum(axis=0), M2.sum(axis=0)

