"""Measurements kept per machine: where they are stored, what they are keyed by, how they are timed.

torchlogit chooses a few things by timing them on the machine it runs on
rather than by constants tuned on one CPU: the solver of ``solver='auto'``
(:mod:`torchlogit._costs`), the ways of the fused kernels (:func:`fastest_flags`:
whether a tile is read into cache first, the fold kernel's logits) and,
here, the layout of the torch pass's forward product. Each measurement is taken once per machine and kept in a
small JSON file (``$TORCHLOGIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/torchlogit``
or ``~/.cache/torchlogit``) under the GPU's name or the CPU (its model name,
family/model/stepping numbers and widest vector extension), torch's version and
the thread count, so that the same fit in another process makes the same
choices (the same coefficients, bit for bit); an unwritable folder only
means measuring again in the next process. A leaf module: it imports no
other part of torchlogit but the atomic writer, so the loss can use it.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import time
from pathlib import Path

import torch

from ._atomic import atomic_write_bytes


def cache_file() -> Path:
    """Where measured rates are kept (see the module docstring)."""
    folder = os.environ.get("TORCHLOGIT_CACHE_DIR")
    if not folder:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torchlogit"
    return Path(folder) / "costs.json"


def machine(device: str) -> str:
    """The processor a measurement belongs to: the GPU's name, or the CPU as the kernel reports it.

    The CPU's model name alone does not tell processors apart: a cloud VM
    may report "AMD EPYC" for a Zen 2 with AVX2 and for a Zen 5 with
    AVX-512, whose kernels and BLAS run at different speeds. So the key adds
    the family, model and stepping numbers and the widest vector extension.
    """
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as f:
            return _describe_cpu(f.read())
    except (OSError, ValueError):
        return platform.processor() or platform.machine()


def _describe_cpu(cpuinfo: str) -> str:
    """'<model name> (cpu family F model M stepping S, <isa>)' from /proc/cpuinfo's first processor, <isa> the
    widest of avx512f, avx2, avx, sse4_2 among its flags."""
    fields = {}
    for line in cpuinfo.split("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    if "model name" not in fields:
        raise ValueError("no model name in /proc/cpuinfo")
    flags = set(fields.get("flags", "").split())
    isa = next((f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in flags), "no simd flags")
    ids = " ".join(f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields)
    return f"{fields['model name']} ({ids}, {isa})" if ids else f"{fields['model name']} ({isa})"


def where(device: str) -> str:
    """What a measurement depends on besides the problem: the processor, torch's version, threads, device."""
    return f"{machine(device)} | torch {torch.__version__} | {torch.get_num_threads()} threads | {device}"


def stored(key: str, make, replace: bool = False):
    """The cache file's entry ``key``, else (or with ``replace``) ``make()``, written there for the next process."""
    path = cache_file()
    table = _read(path)
    if key in table and not replace:
        return table[key]
    table[key] = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(table, indent=1, sort_keys=True).encode())
    except OSError:
        pass  # measured again by the next process
    return table[key]


def _read(path: Path) -> dict:
    """The cache file's entries; {} when it is missing, unreadable or not a JSON object (never an error)."""
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def seconds(fn, device, repeats=3):
    """The fastest of ``repeats`` timed calls (after one untimed call): the probe's estimate of fn's cost."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


# --- the layout of the torch pass's forward product, measured per shape

# Z = X W^T + b for a row block X (m, d) and W (k, d): the same product, three ways to hand it to the BLAS.
# Which is fastest depends on the BLAS's dispatch for this CPU (measured on MNIST blocks, 5,349 x 784 float32,
# k = 10, 2-core AMD EPYC: addmm with W^T stored 23.6 ms a pass, F.linear 17.3 ms, (W X^T)^T 17.1 ms; on the
# Intel machine the pass was first tuned on, addmm won).
LOGITS = {
    "addmm": lambda X, W, Wt, b: X @ Wt if b is None else torch.addmm(b, X, Wt),
    "linear": lambda X, W, Wt, b: torch.nn.functional.linear(X, W, b),
    "transposed": lambda X, W, Wt, b: (W @ X.T).T if b is None else (W @ X.T).T + b,
}
MEASURE_LOGITS_FROM = 1 << 20  # entries of a block: below, a product takes well under a millisecond either way


def fixed_choices() -> bool:
    """Whether measured choices are replaced by fixed ones (``TORCHLOGIT_SOLVER_COSTS`` set: the test suite)."""
    return bool(os.environ.get("TORCHLOGIT_SOLVER_COSTS"))


_fastest = {}  # what -> name, this process's memory of the cache file's answers


def fastest(what: str, time_each) -> str:
    """The name of the fastest of ``time_each()`` -> {name: seconds}, measured once per machine and kept."""
    if what not in _fastest:
        timed = stored(f"{where('cpu')} | {what}", time_each)
        try:
            _fastest[what] = min(timed, key=lambda name: float(timed[name]))
        except (TypeError, ValueError, AttributeError):  # an entry of another shape: measure again
            timed = stored(f"{where('cpu')} | {what}", time_each, replace=True)
            _fastest[what] = min(timed, key=timed.get)
    return _fastest[what]


def fastest_flags(fn, args, ways, what):
    """The flags of the fastest ``fn(*args, *flags)`` among ``ways`` ({name: flags}), timed on these very
    arguments (three calls each, the first time) once per machine, d, dtype and size of X (``args[0]``, an
    array) to a power of two, and kept. Under the test suite's fixed choices: the last way."""
    if fixed_choices():
        return list(ways.values())[-1]
    X = args[0]
    cpu = torch.device("cpu")

    def time_each():
        return {name: seconds(lambda f=f: fn(*args, *f), cpu, repeats=2) for name, f in ways.items()}

    key = f"{what}, {X.shape[1]} columns, {X.dtype}, X ~2^{round(math.log2(max(1, X.nbytes)))} bytes"
    return ways[fastest(key, time_each)]


def logits_layout(rows: int, d: int, k: int, dtype: torch.dtype, device: str) -> str:
    """The key of ``LOGITS`` that is fastest here for (rows, d) blocks and k outputs (see above).

    Timed once per machine and shape on random data of the block's shape
    (the user's data is not touched), kept in the cache file with the
    solver costs; small blocks take 'addmm' unmeasured.
    """
    if rows * d < MEASURE_LOGITS_FROM or fixed_choices():
        return "addmm"  # small, or the fixed table of a test run: no timing-dependent choice
    return _logits_layout(rows, d, k, dtype, device)


@functools.cache
def _logits_layout(rows, d, k, dtype, device):
    key = f"{where(device)} | {dtype} | logits {rows} x {d}, k {k}"
    choice = stored(key, lambda: _fastest_layout(rows, d, k, dtype, torch.device(device)))
    return choice if choice in LOGITS else "addmm"


def _fastest_layout(rows, d, k, dtype, device):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(rows, d, generator=g, dtype=dtype).to(device)
    W = torch.randn(k, d, generator=g, dtype=dtype).to(device)
    Wt, b = W.T.contiguous(), torch.zeros(k, dtype=dtype, device=device)
    timed = {name: seconds(lambda f=f: f(X, W, Wt, b), device) for name, f in LOGITS.items()}
    return min(timed, key=timed.get)
