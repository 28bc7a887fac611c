"""How many threads a fit uses: never more than the cores no other process is running on.

torch runs each operation of a fit on its thread pool. When the cores are
busy (a GridSearchCV with n_jobs, a shared CI box), a worker that is
descheduled holds up every parallel region until the operating system runs
it again: a scheduler quantum, 1 to 4 ms. Measured on a 2-core machine
under load: a breast-cancer L1 fit (569 x 30) took 310 ms with torch's two
threads against 5 ms with one.

So a small fit (below) always runs on one thread, and a larger one looks,
when it starts, at how many other processes are running (``busy_cores``:
the kernel's count of runnable tasks, less this process's own running
threads) and runs on at most the cores left free; on a quiet machine a
large fit leaves torch's thread count alone. Measured on a 2-core AMD EPYC
(A/B in blocks of 15 fits, medians), one thread for small fits
against torch's two: 1,000 x 10 alone 1.8 vs 2.1 ms; right after a
scikit-learn fit (whose OpenBLAS threads still spin on the other core)
1.9 vs 5.2 ms, 10,000 x 20 10.6 vs 13.0 ms; a 200,000 x 100 fit right after
a small one is not slowed by the change of count (101 vs 99 ms). (An earlier
note here said a change of count around every fit cost 9 ms; that did not
reproduce: it was this VM's minute-to-minute drift.) Small fits skip the
/proc reads too (~0.15 ms).

Small is arithmetic, not a constant tuned on one CPU: a pass over the data
costs about n p multiply-adds (p = k (d + 1) parameters); below
``SINGLE_THREAD_WORK`` = 2^22 a pass takes at most ~2 ms on one core of any
x86-64 CPU, so a second thread could save under a millisecond a pass while
one preemption costs more than that. torch's own count already follows
OMP_NUM_THREADS, which joblib's workers set.
"""

from __future__ import annotations

import contextlib
import os

import torch

SINGLE_THREAD_WORK = 1 << 22  # multiply-adds per pass over the data


def cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container or taskset limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def busy_cores() -> int:
    """How many tasks of other processes are running or ready to run right now (0 where unknown).

    /proc/loadavg's fourth field counts the runnable tasks of the whole
    machine; this process's own running threads (one reading this, and any
    of its thread pools still spinning) are taken off. A snapshot, cheap
    enough (~50 us) to take at the start of every fit.
    """
    try:
        with open("/proc/loadavg") as f:
            runnable = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    if runnable <= 1:  # this reading thread alone
        return 0
    return max(0, runnable - _own_running_threads())


def _own_running_threads() -> int:
    count = 0
    try:
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat") as f:
                    count += f.read().rsplit(")", 1)[1].split()[0] == "R"
            except (OSError, IndexError):
                continue
    except OSError:
        return 1
    return max(count, 1)


def threads_for(work: float, current: int) -> int:
    """The thread count for a fit of ``work`` multiply-adds per pass, given torch's ``current`` count."""
    if work < SINGLE_THREAD_WORK:
        return 1
    busy = busy_cores()
    if busy == 0:
        return current  # a quiet machine: leave torch as the user set it
    return max(1, min(current, cores() - busy))


@contextlib.contextmanager
def count(n: int):
    """Within the block torch (and the numba kernels, which follow it) use ``n`` threads; restored after."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def for_work(work: float):
    """The block of a fit doing ``work`` multiply-adds per pass: ``threads_for(work)`` threads."""
    return count(threads_for(work, torch.get_num_threads()))


def single():
    """One thread within the block (a timing probe that must not wait on descheduled threads)."""
    return count(1)


def numba_follows_torch():
    """Set numba's thread count for the next kernel to torch's (so ``for_work`` governs both)."""
    import numba

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
