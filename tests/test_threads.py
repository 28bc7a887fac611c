"""Thread counts (torchlogit._threads): never more threads than the cores other processes leave free, one for
a small fit on a busy machine, and torch's count left alone on a quiet one."""

import multiprocessing
import os
import time

import numpy as np
import pytest
import torch

from torchlogit import LogisticRegression, _threads


def _threads_seen_by_the_solver(n, d):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(int)
    seen = []
    LogisticRegression(solver="lbfgs", max_iter=2).fit(X, y, callback=lambda info: seen.append(torch.get_num_threads()))
    return seen


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # the probe stops after 2 iterations
def test_the_count_follows_the_free_cores_and_is_restored(monkeypatch, two_threads):
    monkeypatch.setattr(_threads, "busy_cores", lambda: 0)  # quiet: a small fit still takes one
    assert set(_threads_seen_by_the_solver(569, 30)) == {1}
    assert torch.get_num_threads() == 2  # restored after the fit
    monkeypatch.setattr(_threads, "SINGLE_THREAD_WORK", 1)  # every problem counts as large: the free cores
    assert set(_threads_seen_by_the_solver(569, 30)) == {2}  # quiet: torch's count is left alone
    monkeypatch.setattr(_threads, "busy_cores", lambda: 1)
    monkeypatch.setattr(_threads, "cores", lambda: 4)
    assert set(_threads_seen_by_the_solver(569, 30)) == {2}  # 3 free, but never more than torch's own count
    monkeypatch.setattr(_threads, "cores", lambda: 2)
    assert set(_threads_seen_by_the_solver(569, 30)) == {1}
    monkeypatch.setattr(_threads, "busy_cores", lambda: 5)  # more busy than cores: still one
    assert set(_threads_seen_by_the_solver(569, 30)) == {1}


def test_the_input_check_of_a_small_fit_runs_on_one_thread(monkeypatch, two_threads):
    """The finiteness sum over X is the first parallel region of a fit: on a small X it takes one thread
    (with two and another process busy, 10,000 x 20 measured 2.1 ms against 0.16 ms), on a large one the
    fit's count; and NaN is still found either way."""
    seen = []
    isfinite = torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda t: seen.append(torch.get_num_threads()) or isfinite(t))
    monkeypatch.setattr(_threads, "busy_cores", lambda: 0)
    X = np.random.default_rng(0).normal(size=(10_000, 20))
    y = (X[:, 0] > 0).astype(int)
    LogisticRegression().fit(X, y)
    assert seen[0] == 1 and torch.get_num_threads() == 2
    seen.clear()
    monkeypatch.setattr(_threads, "SINGLE_THREAD_WORK", 1)  # every X counts as large: the quiet machine's two
    LogisticRegression().fit(X, y)
    assert seen[0] == 2
    X[5, 3] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        LogisticRegression().fit(X, y)


def test_the_count_is_restored_when_the_fit_fails(monkeypatch, two_threads):
    monkeypatch.setattr(_threads, "busy_cores", lambda: 1)
    with_nan = np.array([[0.0], [np.nan]])
    with pytest.raises(ValueError):
        with _threads.for_work(10):
            assert torch.get_num_threads() == 1
            LogisticRegression().fit(with_nan, [0, 1])
    assert torch.get_num_threads() == 2


def _spin(stop):
    while not stop.is_set():
        pass


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="no /proc/loadavg (not Linux): busy_cores is 0 there")
def test_busy_cores_sees_another_process_running():
    assert _threads.busy_cores() >= 0 and _threads.cores() >= 1
    stop = multiprocessing.Event()
    worker = multiprocessing.Process(target=_spin, args=(stop,))
    worker.start()
    try:
        time.sleep(0.2)
        # a snapshot: the spinning process is runnable at every instant, so a few readings must see it
        assert max(_threads.busy_cores() for _ in range(20)) >= 1
    finally:
        stop.set()
        worker.join()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_threadpoolctl_limits_hold_inside_a_fit(monkeypatch, two_threads):
    """joblib's workers and users limit threads with threadpoolctl; torch's OpenMP pool follows, and so do we."""
    from threadpoolctl import threadpool_limits

    monkeypatch.setattr(_threads, "busy_cores", lambda: 0)
    monkeypatch.setattr(_threads, "SINGLE_THREAD_WORK", 1)  # a large fit, which would otherwise keep 2
    with threadpool_limits(1):
        assert set(_threads_seen_by_the_solver(569, 30)) == {1}
    assert torch.get_num_threads() == 2
