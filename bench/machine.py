"""One line naming what the timings ran on: CPU model, cores, BLAS and threads, torch, GPU.

Every bench script prints it first, so a table pasted without it is still
read against the machine it came from.
"""

from __future__ import annotations

import os


def cpu_model():
    """The CPU as torchlogit keys its measurements: model name, family/model/stepping, widest vector extension."""
    from torchlogit._measured import machine

    return machine("cpu")


def blas():
    """The BLAS libraries numpy and scipy loaded, with their thread counts (threadpoolctl comes with scikit-learn)."""
    import numpy  # noqa: F401  (loads its BLAS)
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_info

    seen = []
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            text = f"{pool.get('internal_api')} {pool.get('version') or '?'} ({pool.get('num_threads')} threads)"
            if text not in seen:
                seen.append(text)
    return ", ".join(seen) or "none found"


def describe():
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none available"
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs; BLAS: {blas()}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); GPU: {gpu}"
    )
