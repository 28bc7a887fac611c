"""The numba kernels behind :mod:`torchlogit._kernels` (formulas there).

Imported only when a large problem on the CPU needs them, so numba's
import and compile time are not paid by small fits or the CLI's start-up.
"""

import numpy as np
from numba import njit, prange

f32 = np.float32
TILE = 64  # rows per tile: 64 x d floats stay in L1/L2 between their two uses
# IEEE semantics except what vectorisation needs: reassociated sums, fused multiply-add
FLAGS = {"reassoc", "contract", "nsz", "arcp"}


@njit(parallel=True, fastmath=FLAGS, error_model="numpy", nogil=True, cache=True)
def binary_loss_gradient(X, w, b, y, s, rows, chunks):
    """See torchlogit._kernels.binary_loss_gradient; returns per-chunk (F (chunks,), G (chunks, d + 1)), float64.

    X, w, y, s share one dtype (float32 or float64), which is also the dtype
    of every per-row quantity; ``tile_loss_32``/``_64`` hold the transcendentals.
    """
    n, d = X.shape
    G = np.zeros((chunks, d + 1))  # float64 partial gradients, one row per chunk
    F = np.zeros(chunks)
    for c in prange(chunks):
        zero = np.zeros(1, dtype=X.dtype)[0]
        g_acc = np.zeros(d, dtype=X.dtype)  # X^T r over <= 16 tiles, then flushed to g64
        g64 = np.zeros(d)
        z = np.empty(TILE, dtype=X.dtype)
        two_f = np.empty(TILE, dtype=X.dtype)
        bits = np.empty(TILE, dtype=np.int64)  # scratch for 2^k, built from its IEEE bits
        r = np.empty(TILE, dtype=X.dtype)
        loss = np.empty(TILE, dtype=X.dtype)
        f, gb = 0.0, 0.0
        lo = c * rows
        hi = min(n, lo + rows)
        for t0 in range(lo, hi, TILE):
            m = min(TILE, hi - t0)
            tile_logits(X, t0, m, w, b, z, zero)
            if X.itemsize == 4:
                tile_loss_32(z, y[t0 : t0 + m], s[t0 : t0 + m], m, two_f, bits.view(np.int32), loss, r)
            else:
                tile_loss_64(z, y[t0 : t0 + m], s[t0 : t0 + m], m, two_f, bits, loss, r)
            for i in range(m):
                f += np.float64(loss[i])
                gb += np.float64(r[i])
            tile_scatter(X, t0, m, r, g_acc)  # X^T r from the same tile, still in cache
            if (t0 - lo) % (16 * TILE) == 0:
                for j in range(d):
                    g64[j] += g_acc[j]
                    g_acc[j] = 0.0
        for j in range(d):
            G[c, j] = g64[j] + g_acc[j]
        G[c, d] = gb
        F[c] = f
    # The caller adds the chunks: a sum here would become a parallel reduction whose order
    # follows the thread count (measured: f differed in its last bit between 1 and 2 threads).
    return F, G


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_logits(X, t0, m, w, b, z, zero):
    """z[i] = X[t0 + i] . w + b for i < m, four rows at a time (four independent memory streams)."""
    d = X.shape[1]
    i = 0
    while i + 4 <= m:
        a0, a1, a2, a3 = zero, zero, zero, zero
        for j in range(d):
            wj = w[j]
            a0 += X[t0 + i, j] * wj
            a1 += X[t0 + i + 1, j] * wj
            a2 += X[t0 + i + 2, j] * wj
            a3 += X[t0 + i + 3, j] * wj
        z[i], z[i + 1], z[i + 2], z[i + 3] = a0 + b, a1 + b, a2 + b, a3 + b
        i += 4
    while i < m:
        a0 = zero
        for j in range(d):
            a0 += X[t0 + i, j] * w[j]
        z[i] = a0 + b
        i += 1


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_scatter(X, t0, m, r, g_acc):
    """g_acc += X[t0 : t0 + m]^T r[:m], four rows at a time."""
    d = X.shape[1]
    i = 0
    while i + 4 <= m:
        r0, r1, r2, r3 = r[i], r[i + 1], r[i + 2], r[i + 3]
        for j in range(d):
            g_acc[j] += r0 * X[t0 + i, j] + r1 * X[t0 + i + 1, j] + r2 * X[t0 + i + 2, j] + r3 * X[t0 + i + 3, j]
        i += 4
    while i < m:
        r0 = r[i]
        for j in range(d):
            g_acc[j] += r0 * X[t0 + i, j]
        i += 1


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_scatter_pair(X, t0, m, r0, r1, g0, g1):
    """g0 += X[t0 : t0 + m]^T r0 and g1 += X[t0 : t0 + m]^T r1 in one sweep: each row of X loaded once for
    both (four rows at a time), which is what bounds :func:`tile_scatter` when many vectors share a tile."""
    d = X.shape[1]
    i = 0
    while i + 4 <= m:
        p0, p1, p2, p3 = r0[i], r0[i + 1], r0[i + 2], r0[i + 3]
        q0, q1, q2, q3 = r1[i], r1[i + 1], r1[i + 2], r1[i + 3]
        for j in range(d):
            x0, x1, x2, x3 = X[t0 + i, j], X[t0 + i + 1, j], X[t0 + i + 2, j], X[t0 + i + 3, j]
            g0[j] += p0 * x0 + p1 * x1 + p2 * x2 + p3 * x3
            g1[j] += q0 * x0 + q1 * x1 + q2 * x2 + q3 * x3
        i += 4
    while i < m:
        p0, q0 = r0[i], r1[i]
        for j in range(d):
            g0[j] += p0 * X[t0 + i, j]
            g1[j] += q0 * X[t0 + i, j]
        i += 1


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_loss_32(z, y, s, m, two_f, bits, loss, r):
    """loss_i = s_i (softplus(z_i) - y_i z_i), r_i = s_i (sigmoid(z_i) - y_i) for i < m, in float32.

    exp(-|z|) = 2^k 2^f with 2^f to degree 7 and 2^k from its bits (int32
    scratch); log1p(e) = 2 atanh(e / (2 + e)) to u^15 (module docstring of
    torchlogit._kernels for the error bounds).
    """
    two_k = bits.view(f32)
    for i in range(m):
        t = max(-abs(z[i]) * f32(1.4426950408889634), f32(-126.0))  # 2^-126: float32's smallest normal
        k = np.floor(t + f32(0.5))
        x = (t - k) * f32(0.6931471805599453)
        # sum_j x^j / j! for j = 7 .. 0, by Horner
        q = (((x * f32(1.0 / 5040.0) + f32(1.0 / 720.0)) * x + f32(1.0 / 120.0)) * x + f32(1.0 / 24.0)) * x
        two_f[i] = (((q + f32(1.0 / 6.0)) * x + f32(0.5)) * x + f32(1.0)) * x + f32(1.0)
        bits[i] = (np.int32(k) + np.int32(127)) << np.int32(23)
    for i in range(m):
        e = two_f[i] * two_k[i]  # exp(-|z|) in (0, 1]
        u = e / (f32(2.0) + e)
        u2 = u * u
        # sum_j 2 u2^j / (2 j + 1) for j = 7 .. 0, by Horner (u a = log1p(e))
        a = (((u2 * f32(2.0 / 15.0) + f32(2.0 / 13.0)) * u2 + f32(2.0 / 11.0)) * u2 + f32(2.0 / 9.0)) * u2
        a = (((a + f32(2.0 / 7.0)) * u2 + f32(2.0 / 5.0)) * u2 + f32(2.0 / 3.0)) * u2 + f32(2.0)
        inv = f32(1.0) / (f32(1.0) + e)
        p, q = (inv, e * inv) if z[i] >= 0 else (e * inv, inv)  # sigmoid(z), 1 - sigmoid(z)
        # softplus(z) - y z = (1 - y) softplus(z) + y softplus(-z): no cancellation for y in {0, 1}
        loss[i] = s[i] * ((f32(1.0) - y[i]) * max(z[i], f32(0.0)) + y[i] * max(-z[i], f32(0.0)) + u * a)
        r[i] = s[i] * ((f32(1.0) - y[i]) * p - y[i] * q)  # p - y, exact for y in {0, 1}


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_loss_64(z, y, s, m, two_f, bits, loss, r):
    """tile_loss_32 in float64: 2^f to degree 12 (error < 2e-16), log1p's series to u^33 (< 1e-17).

    Both kernels write their polynomials out term by term: as loops over
    their 12 and 16 coefficients (the form this one once had) LLVM left them
    rolled, which kept the whole row loop scalar: 18 ns per row against 2.4 ns
    vectorised (10,000 rows, AVX-512; ``error_model="numpy"`` is needed as
    well, for the divisions to vectorise). tile_loss_32's 7-term loops were
    unrolled either way (same bits, same time).
    """
    two_k = bits.view(np.float64)
    for i in range(m):
        two_f[i] = -abs(z[i]) * 1.4426950408889634  # log2 exp(-|z|), for tile_exp2_64
    tile_exp2_64(two_f, m, bits)
    for i in range(m):
        e = two_f[i] * two_k[i]
        u = e / (2.0 + e)
        u2 = u * u
        # sum_j 2 u2^j / (2 j + 1) for j = 16 .. 0, by Horner (u a = log1p(e))
        a = ((((2.0 / 33.0 * u2 + 2.0 / 31.0) * u2 + 2.0 / 29.0) * u2 + 2.0 / 27.0) * u2 + 2.0 / 25.0) * u2
        a = ((((a + 2.0 / 23.0) * u2 + 2.0 / 21.0) * u2 + 2.0 / 19.0) * u2 + 2.0 / 17.0) * u2
        a = ((((a + 2.0 / 15.0) * u2 + 2.0 / 13.0) * u2 + 2.0 / 11.0) * u2 + 2.0 / 9.0) * u2
        a = (((a + 2.0 / 7.0) * u2 + 2.0 / 5.0) * u2 + 2.0 / 3.0) * u2 + 2.0
        inv = 1.0 / (1.0 + e)
        p, q = (inv, e * inv) if z[i] >= 0 else (e * inv, inv)
        loss[i] = s[i] * ((1.0 - y[i]) * max(z[i], 0.0) + y[i] * max(-z[i], 0.0) + u * a)
        r[i] = s[i] * ((1.0 - y[i]) * p - y[i] * q)


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_exp2_64(t, m, bits):
    """2^t[i] = 2^k 2^f for i < m and t <= 0, in float64: t[i] becomes 2^f and bits[i] the IEEE bits of 2^k.

    t = k + f with k = round(t), |f| <= 1/2; 2^f = exp(f ln 2) by its Taylor
    series to degree 12 (error < 2e-16). t is clamped at -1022 (float64's
    smallest normal power of two): an exponential below it counts as 2^-1022.
    """
    for i in range(m):
        ti = max(t[i], -1022.0)
        k = np.floor(ti + 0.5)
        x = (ti - k) * 0.6931471805599453
        # sum_j x^j / j! for j = 12 .. 0, by Horner
        q = (
            (((x / 479001600.0 + 1.0 / 39916800.0) * x + 1.0 / 3628800.0) * x + 1.0 / 362880.0) * x + 1.0 / 40320.0
        ) * x
        q = ((((q + 1.0 / 5040.0) * x + 1.0 / 720.0) * x + 1.0 / 120.0) * x + 1.0 / 24.0) * x
        t[i] = (((q + 1.0 / 6.0) * x + 0.5) * x + 1.0) * x + 1.0
        bits[i] = (np.int64(k) + np.int64(1023)) << np.int64(52)


@njit(parallel=True, fastmath=FLAGS, error_model="numpy", nogil=True, cache=True)
def multinomial_loss_gradient(X, W, b, y, s, rows, chunks, touch):
    """See torchlogit._kernels.multinomial_loss_gradient; per-chunk (F (chunks,), G (chunks, K, d + 1)), float64.

    Per tile of 64 rows: Z = W X_t^T + b ((K, 64), :func:`tile_logits_many`: the
    tile stays in cache across the K dot products), the softmax loss and
    R = s (softmax(Z) - Y) in float64 (:func:`tile_softmax`), then X_t^T R
    (:func:`tile_scatter_many`) accumulated in X's dtype over <= 16 tiles and
    flushed to float64. ``touch``: each tile is first read one value per cache
    line (:func:`tile_touch`, the same bits), which pays on some shapes only
    (Zen 5, float32, a pass: 581,012 x 54 with 7 classes 20.8 -> 18.0 ms,
    200,000 x 100 with 10 classes 11.0 -> 8.7 ms; 100,000 x 300 9.2 -> 10.6 ms,
    MNIST 10.7 -> 12.6 ms): the caller measures.
    """
    n, d = X.shape
    K = W.shape[0]
    G = np.zeros((chunks, K, d + 1))
    F = np.zeros(chunks)
    for c in prange(chunks):
        zero = np.zeros(1, dtype=X.dtype)[0]
        Z = np.empty((K, TILE), dtype=X.dtype)  # the tile's logits, then its residuals
        E = np.empty((K, TILE))  # scratch of tile_softmax
        mx, se = np.empty(TILE), np.empty(TILE)
        bits = np.empty(TILE, dtype=np.int64)
        g_acc = np.zeros((K, d), dtype=X.dtype)
        g64 = np.zeros((K, d))
        gb = np.zeros(K)
        f = 0.0
        lo = c * rows
        hi = min(n, lo + rows)
        for t0 in range(lo, hi, TILE):
            m = min(TILE, hi - t0)
            if touch:
                f += tile_touch(X, t0, m)  # + 0.0: the loads kept
            tile_logits_many(X, t0, m, W, b, Z, zero)
            f += tile_softmax(Z, y[t0 : t0 + m], s[t0 : t0 + m], m, E, mx, se, bits, gb)
            tile_scatter_many(X, t0, m, Z, g_acc)
            if (t0 - lo) % (16 * TILE) == 0:
                for k in range(K):
                    for j in range(d):
                        g64[k, j] += g_acc[k, j]
                        g_acc[k, j] = 0.0
        for k in range(K):
            for j in range(d):
                G[c, k, j] = g64[k, j] + g_acc[k, j]
            G[c, k, d] = gb[k]
        F[c] = f
    return F, G


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_softmax(Z, y, s, m, E, mx, se, bits, gb):
    """The tile's softmax loss sum_i s_i (logsumexp(Z[:, i]) - Z[y_i, i]) (returned, float64); Z becomes the
    residuals R[k, i] = s_i (softmax(Z[:, i])_k - [k = y_i]) (in Z's dtype, their float64 values added to gb).

    Z (K, TILE) in X's dtype; E (K, TILE), mx, se (TILE,) float64 and bits
    (TILE,) int64 scratch. Every loop runs along the tile's rows, so that it
    vectorises: exp(Z - max) by :func:`tile_exp2_64` (libm's scalar exp took
    1.7 ms of MNIST's 12 ms per pass), one libm log per row.
    """
    K = Z.shape[0]
    two_k = bits.view(np.float64)
    for i in range(m):
        mx[i] = Z[0, i]
        se[i] = 0.0
    for k in range(1, K):
        for i in range(m):
            mx[i] = max(mx[i], np.float64(Z[k, i]))
    for k in range(K):
        e = E[k]
        for i in range(m):
            e[i] = (np.float64(Z[k, i]) - mx[i]) * 1.4426950408889634  # log2 of exp(z - max) <= 0
        tile_exp2_64(e, m, bits)
        for i in range(m):
            e[i] *= two_k[i]
            se[i] += e[i]
    f = 0.0
    for i in range(m):
        f += s[i] * (mx[i] + np.log(se[i]) - Z[y[i], i])
        se[i] = s[i] / se[i]  # now s_i / sum_k exp(z_ik - max)
    for k in range(K):
        e = E[k]
        for i in range(m):
            r = e[i] * se[i] - (s[i] if y[i] == k else 0.0)
            Z[k, i] = r  # the residual, in X's dtype for the scatter
            gb[k] += r
    return f


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_logits_many(X, t0, m, W, b, Z, zero):
    """Z[k, :m] = X[t0 : t0 + m] W[k] + b[k] for every row k of W (classes, or folds): five at a time, then singly."""
    K = W.shape[0]
    k = 0
    while k + 5 <= K:
        tile_logits_five(X, t0, m, W, b, k, Z, zero)
        k += 5
    while k < K:
        tile_logits(X, t0, m, W[k], b[k], Z[k], zero)
        k += 1


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_logits_five(X, t0, m, W, b, k, Z, zero):
    """Z[k + c, i] = X[t0 + i] . W[k + c] + b[k + c] for c < 5, in register blocks of 4 rows x 5 weight vectors.

    Each step along j loads 9 vectors for 20 multiply-adds into 20 accumulators
    (``a<row><vector>``), where :func:`tile_logits` loads 5 for 4. Measured on
    MNIST's logits (60,000 x 784 x 10 float32, 2 cores, Zen 5): 10.7 ms one
    weight vector at a time, 7.7 ms in these blocks.
    """
    w0, w1, w2, w3, w4 = W[k], W[k + 1], W[k + 2], W[k + 3], W[k + 4]
    d = X.shape[1]
    i = 0
    while i + 4 <= m:
        x0, x1, x2, x3 = X[t0 + i], X[t0 + i + 1], X[t0 + i + 2], X[t0 + i + 3]
        a00 = a01 = a02 = a03 = a04 = zero
        a10 = a11 = a12 = a13 = a14 = zero
        a20 = a21 = a22 = a23 = a24 = zero
        a30 = a31 = a32 = a33 = a34 = zero
        for j in range(d):
            u0, u1, u2, u3 = x0[j], x1[j], x2[j], x3[j]
            v = w0[j]
            a00, a10, a20, a30 = a00 + u0 * v, a10 + u1 * v, a20 + u2 * v, a30 + u3 * v
            v = w1[j]
            a01, a11, a21, a31 = a01 + u0 * v, a11 + u1 * v, a21 + u2 * v, a31 + u3 * v
            v = w2[j]
            a02, a12, a22, a32 = a02 + u0 * v, a12 + u1 * v, a22 + u2 * v, a32 + u3 * v
            v = w3[j]
            a03, a13, a23, a33 = a03 + u0 * v, a13 + u1 * v, a23 + u2 * v, a33 + u3 * v
            v = w4[j]
            a04, a14, a24, a34 = a04 + u0 * v, a14 + u1 * v, a24 + u2 * v, a34 + u3 * v
        Z[k, i], Z[k, i + 1], Z[k, i + 2], Z[k, i + 3] = a00 + b[k], a10 + b[k], a20 + b[k], a30 + b[k]
        c = k + 1
        Z[c, i], Z[c, i + 1], Z[c, i + 2], Z[c, i + 3] = a01 + b[c], a11 + b[c], a21 + b[c], a31 + b[c]
        c = k + 2
        Z[c, i], Z[c, i + 1], Z[c, i + 2], Z[c, i + 3] = a02 + b[c], a12 + b[c], a22 + b[c], a32 + b[c]
        c = k + 3
        Z[c, i], Z[c, i + 1], Z[c, i + 2], Z[c, i + 3] = a03 + b[c], a13 + b[c], a23 + b[c], a33 + b[c]
        c = k + 4
        Z[c, i], Z[c, i + 1], Z[c, i + 2], Z[c, i + 3] = a04 + b[c], a14 + b[c], a24 + b[c], a34 + b[c]
        i += 4
    while i < m:
        for c in range(k, k + 5):
            acc = zero
            for j in range(d):
                acc += X[t0 + i, j] * W[c, j]
            Z[c, i] = acc + b[c]
        i += 1


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_touch(X, t0, m):
    """Read one value per 64-byte line of X[t0 : t0 + m], so that the tile comes into cache by independent
    loads before any arithmetic waits on it. Returns 0.0 (nan where X holds inf or nan): the sum of the values
    times 0, which the compiler cannot drop (IEEE: inf * 0 is nan), so the caller adds it to a result."""
    d = X.shape[1]
    step = 64 // X.itemsize
    acc = 0.0
    for i in range(t0, t0 + m):
        for j in range(0, d, step):
            acc += X[i, j] * 0.0
    return acc


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_scatter_many(X, t0, m, R, G):
    """G[k] += X[t0 : t0 + m]^T R[k, :m] for every row k of R: five at a time, then in pairs, then singly."""
    K = R.shape[0]
    k = 0
    while k + 5 <= K:
        tile_scatter_five(X, t0, m, R, k, G)
        k += 5
    while k + 2 <= K:
        tile_scatter_pair(X, t0, m, R[k], R[k + 1], G[k], G[k + 1])
        k += 2
    if k < K:
        tile_scatter(X, t0, m, R[k], G[k])


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_scatter_five(X, t0, m, R, k, G):
    """G[k + c] += X[t0 : t0 + m]^T R[k + c, :m] for c < 5, four rows of X at a time: each step along j loads
    4 vectors of X once for 5 accumulations (20 multiply-adds), where :func:`tile_scatter` loads them for 1."""
    g0, g1, g2, g3, g4 = G[k], G[k + 1], G[k + 2], G[k + 3], G[k + 4]
    r0, r1, r2, r3, r4 = R[k], R[k + 1], R[k + 2], R[k + 3], R[k + 4]
    d = X.shape[1]
    i = 0
    while i + 4 <= m:
        x0, x1, x2, x3 = X[t0 + i], X[t0 + i + 1], X[t0 + i + 2], X[t0 + i + 3]
        p00, p01, p02, p03 = r0[i], r0[i + 1], r0[i + 2], r0[i + 3]  # p<vector><row>: the tile's residuals
        p10, p11, p12, p13 = r1[i], r1[i + 1], r1[i + 2], r1[i + 3]
        p20, p21, p22, p23 = r2[i], r2[i + 1], r2[i + 2], r2[i + 3]
        p30, p31, p32, p33 = r3[i], r3[i + 1], r3[i + 2], r3[i + 3]
        p40, p41, p42, p43 = r4[i], r4[i + 1], r4[i + 2], r4[i + 3]
        for j in range(d):
            u0, u1, u2, u3 = x0[j], x1[j], x2[j], x3[j]
            g0[j] += p00 * u0 + p01 * u1 + p02 * u2 + p03 * u3
            g1[j] += p10 * u0 + p11 * u1 + p12 * u2 + p13 * u3
            g2[j] += p20 * u0 + p21 * u1 + p22 * u2 + p23 * u3
            g3[j] += p30 * u0 + p31 * u1 + p32 * u2 + p33 * u3
            g4[j] += p40 * u0 + p41 * u1 + p42 * u2 + p43 * u3
        i += 4
    while i < m:
        for c in range(k, k + 5):
            r = R[c, i]
            for j in range(d):
                G[c, j] += r * X[t0 + i, j]
        i += 1


@njit(parallel=True, fastmath=FLAGS, error_model="numpy", nogil=True, cache=True)
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
    return M1, M2  # per chunk; summed by the caller (see binary_loss_gradient)


@njit(parallel=True, fastmath=FLAGS, error_model="numpy", nogil=True, cache=True)
def weighted_gram(A, h, rows, chunks):
    """See torchlogit._kernels.weighted_gram; returns per-chunk partial sums (chunks, q, q), q = p rounded up to 4.

    Only blocks on or above the diagonal are formed (``tile_gram``); the
    caller mirrors them. Padding rows and columns are zero.
    """
    n, p = A.shape
    q = (p + 3) // 4 * 4
    out = np.zeros((chunks, q, q))
    for c in prange(chunks):
        At = np.zeros((q, TILE))
        Bt = np.zeros((q, TILE))
        lo = c * rows
        hi = min(n, lo + rows)
        for t0 in range(lo, hi, TILE):
            tile_gram(A, t0, min(TILE, hi - t0), h[t0:], At, Bt, out[c])
    return out


@njit(parallel=True, fastmath=FLAGS, error_model="numpy", nogil=True, cache=True)
def design_newton_terms(A, phi, y, s, rows, chunks):
    """Per chunk: F (chunks,) sum_i s_i loss_i, G (chunks, p) A^T r and H (chunks, q, q) the upper blocks of
    A^T diag(s p (1 - p)) A, at z = A phi: a Newton step's f, g and H from one read of A (float64, (n, p)).

    Per tile: the logits, loss, r and curvature (``tile_newton_terms``),
    A^T r (``tile_scatter``) and the Hessian's blocks (``tile_gram``), all from
    the tile while it is in cache. The caller adds the chunks in order and mirrors H.
    """
    n, p = A.shape
    q = (p + 3) // 4 * 4
    F = np.zeros(chunks)
    G = np.zeros((chunks, p))
    H = np.zeros((chunks, q, q))
    for c in prange(chunks):
        At = np.zeros((q, TILE))
        Bt = np.zeros((q, TILE))
        z = np.empty(TILE)
        two_f = np.empty(TILE)
        bits = np.empty(TILE, dtype=np.int64)
        r = np.empty(TILE)
        loss = np.empty(TILE)
        h = np.empty(TILE)
        f = 0.0
        lo = c * rows
        hi = min(n, lo + rows)
        for t0 in range(lo, hi, TILE):
            m = min(TILE, hi - t0)
            f = tile_newton_terms(A, t0, m, phi, y, s, z, two_f, bits, loss, r, h, f)
            tile_scatter(A, t0, m, r, G[c])
            tile_gram(A, t0, m, h, At, Bt, H[c])
        F[c] = f
    return F, G, H


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_newton_terms(A, t0, m, x, y, s, z, two_f, bits, loss, r, h, f):
    """Rows t0 .. t0 + m of a float64 design A at x: f plus their sum_i s_i loss_i (returned, added row by
    row in order), r[:m] the residuals s (p - y) for the caller's A^T r, and h[:m] = s p (1 - p), the rows'
    curvature. The logits are ``tile_logits``'; the loss is ``tile_loss_64``'s, which leaves
    e = exp(-|z|) in its scratch (``two_f`` times the 2^k in ``bits``), so p (1 - p) = e / (1 + e)^2."""
    tile_logits(A, t0, m, x, 0.0, z, 0.0)
    tile_loss_64(z, y[t0 : t0 + m], s[t0 : t0 + m], m, two_f, bits, loss, r)
    two_k = bits.view(np.float64)
    for i in range(m):
        f += loss[i]
        e = two_f[i] * two_k[i]
        h[i] = s[t0 + i] * e / ((1.0 + e) * (1.0 + e))
    return f


@njit(fastmath=FLAGS, error_model="numpy", inline="always", cache=True)
def tile_gram(A, t0, m, h, At, Bt, H):
    """H += A[t0 : t0 + m]^T diag(h[:m]) A[t0 : t0 + m], the blocks on or above the diagonal of H (q, q).

    The tile is copied transposed into At (q, TILE) and Bt = At diag(h), so
    that every 4 x 4 block of H is 16 dot products over contiguous rows of
    the tile, accumulated in registers (the compiler vectorises them across
    the tile). Rows m.. of a short last tile and columns p.. are zero.
    """
    p = A.shape[1]
    q = At.shape[0]
    for i in range(m):
        hi_ = h[i]
        for j in range(p):
            a = A[t0 + i, j]
            At[j, i] = a
            Bt[j, i] = hi_ * a
    for i in range(m, TILE):  # a short last tile: its unused rows contribute zero
        for j in range(p):
            At[j, i] = 0.0
            Bt[j, i] = 0.0
    for j0 in range(0, q, 4):
        for k0 in range(j0, q, 4):
            a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = 0.0
            a20 = a21 = a22 = a23 = a30 = a31 = a32 = a33 = 0.0
            for i in range(TILE):
                b0, b1, b2, b3 = Bt[j0, i], Bt[j0 + 1, i], Bt[j0 + 2, i], Bt[j0 + 3, i]
                x0, x1, x2, x3 = At[k0, i], At[k0 + 1, i], At[k0 + 2, i], At[k0 + 3, i]
                a00 += b0 * x0
                a01 += b0 * x1
                a02 += b0 * x2
                a03 += b0 * x3
                a10 += b1 * x0
                a11 += b1 * x1
                a12 += b1 * x2
                a13 += b1 * x3
                a20 += b2 * x0
                a21 += b2 * x1
                a22 += b2 * x2
                a23 += b2 * x3
                a30 += b3 * x0
                a31 += b3 * x1
                a32 += b3 * x2
                a33 += b3 * x3
            H[j0, k0] += a00
            H[j0, k0 + 1] += a01
            H[j0, k0 + 2] += a02
            H[j0, k0 + 3] += a03
            H[j0 + 1, k0] += a10
            H[j0 + 1, k0 + 1] += a11
            H[j0 + 1, k0 + 2] += a12
            H[j0 + 1, k0 + 3] += a13
            H[j0 + 2, k0] += a20
            H[j0 + 2, k0 + 1] += a21
            H[j0 + 2, k0 + 2] += a22
            H[j0 + 2, k0 + 3] += a23
            H[j0 + 3, k0] += a30
            H[j0 + 3, k0 + 1] += a31
            H[j0 + 3, k0 + 2] += a32
            H[j0 + 3, k0 + 3] += a33
