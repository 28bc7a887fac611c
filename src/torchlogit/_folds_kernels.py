"""The numba kernel behind :class:`torchlogit._folds.FoldPasses`: m folds' binary loss and gradient in one read of X.

Imported only when a fold pass runs on the CPU (numba's compile time is not
paid otherwise). The per-row formulas are :mod:`torchlogit._numba_kernels`'
(``tile_loss_32``/``_64``): each tile of 64 rows is read from memory once and
stays in cache while every fold computes its logits, losses and X^T r on it.
"""

import numpy as np
from numba import njit, prange

from ._numba_kernels import (
    FLAGS,
    TILE,
    tile_logits,
    tile_logits_many,
    tile_loss_32,
    tile_loss_64,
    tile_scatter_many,
    tile_touch,
)


@njit(parallel=True, fastmath=FLAGS, error_model="numpy", nogil=True, cache=True)
def folds_loss_gradient(X, W, b, y, S, rows, chunks, five, touch):
    """Per chunk: F (chunks, m) the folds' sum_i s_if loss_if, G (chunks, m, d + 1) their (X^T r_f, sum_i r_if)
    and H (chunks, m) their sum_i s_if p_if (1 - p_if), the curvature in the intercept.

    X (n, d) C-contiguous; W (m, d), b (m,), y (n,) and S (m, n) (one
    contiguous row of weights per fold) in X's dtype. Partial sums are
    float64 per chunk; the caller adds the chunks in order (deterministic).
    ``tile_loss_32``/``_64`` leave e = exp(-|z|) in their scratch (two_f
    times the 2^k held in ``bits``), so p (1 - p) = e / (1 + e)^2 needs no
    second exponential. The folds' residuals on a tile are kept (R, (m, TILE)) and
    scattered five folds per sweep over the tile, then two (``tile_scatter_many``),
    each fold's sum in the same order as alone: the same bits as one fold at a
    time. Five per sweep took a pass on 200,000 x 100 (5 folds, Zen 5) from 6.0 to
    5.7 ms in float32, 12.4 to 10.8 in float64. ``five``: the logits five folds at
    a time (:func:`tile_logits_many`), else one at a time (:func:`tile_logits`, the
    same bits as one fold alone). ``touch``: each tile is first read one value per
    cache line (:func:`tile_touch`; the results are the same bits). Which is
    fastest depends on d, the dtype and whether X fits in cache (the same Zen 5,
    float32, 5 folds, 200,000 rows: at d = 100, one at a time 5.6 ms, five 6.0,
    five and touch 4.5; at d = 300, 12.1, 11.8 and 14.4), so the caller measures
    (``_folds.FoldPasses._layout``).
    """
    n, d = X.shape
    m = W.shape[0]
    G = np.zeros((chunks, m, d + 1))
    F = np.zeros((chunks, m))
    H = np.zeros((chunks, m))
    for c in prange(chunks):
        zero = np.zeros(1, dtype=X.dtype)[0]
        one = np.ones(1, dtype=X.dtype)[0]
        g_acc = np.zeros((m, d), dtype=X.dtype)  # X^T r over <= 16 tiles, then flushed to float64
        Z = np.empty((m, TILE), dtype=X.dtype)  # the folds' logits on this tile
        two_f = np.empty(TILE, dtype=X.dtype)
        bits = np.empty(TILE, dtype=np.int64)
        two_k = bits.view(X.dtype)  # 2^k as tile_loss_32/_64 leave it (float32: the first TILE entries)
        R = np.empty((m, TILE), dtype=X.dtype)  # the folds' residuals on this tile, scattered after all are known
        loss = np.empty(TILE, dtype=X.dtype)
        lo = c * rows
        hi = min(n, lo + rows)
        for t0 in range(lo, hi, TILE):
            t = min(TILE, hi - t0)
            if touch:
                F[c, 0] += tile_touch(X, t0, t)  # + 0.0: the loads kept
            if five:
                tile_logits_many(X, t0, t, W, b, Z, zero)
            else:
                for k in range(m):
                    tile_logits(X, t0, t, W[k], b[k], Z[k], zero)
            for k in range(m):
                z = Z[k]
                r = R[k]
                s = S[k][t0 : t0 + t]  # (a contiguous slice, unlike S[k, t0 : t0 + t]: the loops below vectorise)
                if X.itemsize == 4:
                    tile_loss_32(z, y[t0 : t0 + t], s, t, two_f, bits.view(np.int32), loss, r)
                else:
                    tile_loss_64(z, y[t0 : t0 + t], s, t, two_f, bits, loss, r)
                f, gb, hb = 0.0, 0.0, 0.0
                for i in range(t):
                    f += np.float64(loss[i])
                    gb += np.float64(r[i])
                    e = two_f[i] * two_k[i]
                    hb += np.float64(s[i] * e / ((one + e) * (one + e)))
                F[c, k] += f
                G[c, k, d] += gb
                H[c, k] += hb
            tile_scatter_many(X, t0, t, R, g_acc)
            if (t0 - lo) % (16 * TILE) == 0:
                for k in range(m):
                    for j in range(d):
                        G[c, k, j] += g_acc[k, j]
                        g_acc[k, j] = 0.0
        for k in range(m):
            for j in range(d):
                G[c, k, j] += g_acc[k, j]
    return F, G, H
