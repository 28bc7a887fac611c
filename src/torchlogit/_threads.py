"""How many threads a fit uses: one for small problems, so that a loaded machine cannot slow them down 60x.

torch runs each operation of a fit on its thread pool. When the cores are
busy (a GridSearchCV with n_jobs, a shared CI box), a worker that is
descheduled holds up every parallel region until the operating system runs
it again: a scheduler quantum, 1 to 4 ms. Measured on a 2-core machine
under load: a breast-cancer L1 fit (569 x 30) took 310 ms with torch's two
threads against 5 ms with one.

The rule rests on that arithmetic, not on a constant tuned on one CPU: a
pass over the data costs about n p multiply-adds (p = k (d + 1) parameters);
below ``SINGLE_THREAD_WORK`` = 2^22 a pass takes at most ~2 ms on one core of
any x86-64 CPU, so a second thread could save under a millisecond a pass
while one preemption costs more than that. Larger problems keep torch's
thread count (which already follows OMP_NUM_THREADS, set by joblib's workers).
"""

from __future__ import annotations

import contextlib

import torch

SINGLE_THREAD_WORK = 1 << 22  # multiply-adds per pass over the data


@contextlib.contextmanager
def for_work(work: float):
    """Within the block torch (and the numba kernels, which follow it) use one thread if ``work`` is small."""
    before = torch.get_num_threads()
    if work >= SINGLE_THREAD_WORK or before == 1:
        yield before
        return
    with single():
        yield 1


@contextlib.contextmanager
def single():
    """Within the block torch uses one thread (a timing probe that must not wait on descheduled threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def numba_follows_torch():
    """Set numba's thread count for the next kernel to torch's (so ``for_work`` governs both)."""
    import numba

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
