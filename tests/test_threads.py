"""Small fits run single-threaded (torchlogit._threads); large ones keep torch's thread count."""

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


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # the probe stops after 2 iterations
def test_a_small_fit_runs_on_one_thread_and_restores_the_count(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert set(_threads_seen_by_the_solver(569, 30)) == {1}
        assert torch.get_num_threads() == 2  # restored after the fit
        monkeypatch.setattr(_threads, "SINGLE_THREAD_WORK", 1)  # every problem counts as large
        assert set(_threads_seen_by_the_solver(569, 30)) == {2}
    finally:
        torch.set_num_threads(before)


def test_the_count_is_restored_when_the_fit_fails():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with_nan = np.array([[0.0], [np.nan]])
        try:
            with _threads.for_work(10):
                assert torch.get_num_threads() == 1
                LogisticRegression().fit(with_nan, [0, 1])
        except ValueError:
            pass
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
