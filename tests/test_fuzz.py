"""Property-based fuzzing of every reader of outside input, and of the command line (issue 12, item 9).

Hypothesis builds IDX files, CIFAR-10 batches (binary records, pickles, random opcode
streams, .tar.gz archives), CSV and Parquet tables, model files (damaged, and forged: edited
with their digest recomputed, so that the field checks behind the checksum are reached) and
command lines of the real verbs. The property is the same everywhere: the call succeeds, or
it raises the documented typed error whose message is one line naming the file; the command
line exits with a documented code (never 5, an internal error) and prints exactly one
`error:` line. No example may allocate more than MEMORY_CAP.

Budgets: `make test` runs the derandomized profile "quick" (25 command lines, 50 to 200 examples
of each reader; about 30 s on 2 cores); `make fuzz` sets HYPOTHESIS_PROFILE=fuzz for FUZZ_SCALE
(default 40) times as many, drawn afresh each run. No example database is kept: a failure prints
the example and a reproduction blob instead.

Failures found in code this suite does not own are strict expected failures at the end of the file;
the command-line property lets those (and only those) internal errors pass, as a counted event.
"""

from __future__ import annotations

import contextlib
import csv
import decimal
import gzip
import io
import json
import math
import os
import pickle
import pickletools
import re
import resource
import struct
import tarfile
import tempfile
import tracemalloc
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataset_files import cifar_batches, cifar_files, py2_pickle, tar_end, tar_entry, write_mnist
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from torchlogit import LinearRegression, LogisticRegression, Ridge
from torchlogit._io import ModelFileError, read_metadata
from torchlogit._models import load as load_model
from torchlogit.data import DataError, read_table
from torchlogit.datasets import DatasetError, load, read_idx
from torchlogit.datasets._cifar import _python_batch, _python_names, load_pickle
from torchlogit.stream import fit_stream

# ---------------------------------------------------------------- budgets
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "quick")
FUZZ_SCALE = int(os.environ.get("FUZZ_SCALE", "40"))  # `make fuzz`: this many times the quick budget
_COMMON = dict(
    deadline=None,  # a CLI example trains a model: timing varies, and slowness is not what is tested
    database=None,  # nothing written into the repository; failures print their example instead
    print_blob=True,
    # no explain phase: it re-runs a failure under sys.settrace, and a traced CLI example takes minutes
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
settings.register_profile("quick", derandomize=True, **_COMMON)  # `make test`: the same examples every run
settings.register_profile("fuzz", derandomize=False, **_COMMON)
_SCALE = FUZZ_SCALE if PROFILE == "fuzz" else 1


def budget(examples):
    """Settings of a property: ``examples`` in `make test`, FUZZ_SCALE times more in `make fuzz`."""
    return settings(settings.get_profile(PROFILE), max_examples=examples * _SCALE)


# ---------------------------------------------------------------- the property
MEMORY_CAP = 200 << 20


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def one_line(message: str) -> bool:
    # splitlines, not "\n": the CLI prints the first of these lines only, so any separator counts
    return bool(message.strip()) and len(message.splitlines()) == 1


@pytest.fixture(scope="module", autouse=True)
def traced():
    """tracemalloc on from the first example to the last, not started and stopped around each.

    On CPython 3.11, stopping it while a pyarrow thread takes the GIL (to release a Python object
    it held) crashes in tracemalloc's traceback_new; once per module leaves no thread running.
    """
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    yield
    if started:
        tracemalloc.stop()


@contextlib.contextmanager
def memory_watch():
    """Fail when the block allocates over MEMORY_CAP.

    tracemalloc counts Python objects and numpy arrays (numpy reports its buffers to it, even
    ones never touched); pyarrow's and torch's own pools show only as growth of the process's
    peak resident size, the backstop.
    """
    if not tracemalloc.is_tracing():  # outside this module's tests (see traced)
        tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    rss = _peak_rss()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
    assert peak - before <= MEMORY_CAP, f"allocated {(peak - before) >> 20} MiB (cap {MEMORY_CAP >> 20} MiB)"
    assert _peak_rss() - rss <= MEMORY_CAP, f"peak RSS grew by {(_peak_rss() - rss) >> 20} MiB"


def outcome(call, error, where):
    """``call()``'s result, or the ``error`` it raised: one line that names ``where``.

    Any other exception fails the property, and so does an allocation over MEMORY_CAP.
    """
    with memory_watch(), warnings.catch_warnings():
        # ConvergenceWarning and friends are no failure; a RuntimeWarning from torchlogit is, as
        # pyproject.toml's filterwarnings makes it: in the CLI it would be a second line on stderr
        warnings.simplefilter("ignore", UserWarning)
        try:
            result = call()
            event("ok")
            return result
        except error as exc:
            event(type(exc).__name__)
            message = str(exc)
            assert one_line(message), f"{type(exc).__name__} is not one line: {message!r}"
            assert str(where) in message, f"{type(exc).__name__} does not name {where}: {message!r}"
            return exc


def mostly(valid, odd):
    """A value from ``valid`` three times in four, else one from ``odd``: most inputs get past the
    first check to the code behind it, and every check still meets odd values."""
    valid = st.sampled_from(valid) if isinstance(valid, (tuple, list)) else valid
    odd = st.sampled_from(odd) if isinstance(odd, (tuple, list)) else odd
    # sampled_from, not integers(0, 3): hypothesis draws integers' bounds far more often than 1 in 4
    return st.sampled_from((valid, valid, valid, odd)).flatmap(lambda chosen: chosen)


# ---------------------------------------------------------------- byte-level damage
EDITS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "truncate", "insert", "delete", "append"]),
        st.floats(0, 1, exclude_max=True),  # where, as a fraction of the length
        st.binary(min_size=1, max_size=8),
    ),
    max_size=3,
)


def damage(raw: bytes, edits) -> bytes:
    """``raw`` with each (kind, where, payload) edit applied in turn."""
    data = bytearray(raw)
    for kind, where, payload in edits:
        at = int(where * len(data))
        if kind == "flip" and data:
            data[at] ^= payload[0] | 1  # never 0: a flip changes the byte
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = payload
        elif kind == "delete":
            del data[at : at + len(payload)]
        elif kind == "append":
            data += payload
    return bytes(data)


def random_bytes(seed: int, n: int) -> bytes:
    # bulk content from a drawn seed: hypothesis draws (and shrinks) the seed and the length only
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


SEEDS = st.integers(0, 2**32 - 1)
SOMETIMES = st.sampled_from([False, False, False, True])  # one time in four (st.booleans(): one in two)


@contextlib.contextmanager
def folder():
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        yield Path(tmp)


# ================================================================ (a) IDX files
IDX_TYPES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}  # type code: bytes per value
IDX_NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
    "data.idx",
]
DIMS = st.one_of(
    st.integers(0, 6),
    st.sampled_from([28, 10000, 60000, 1 << 16, 1 << 24, 2**31, 2**32 - 1]),
    st.integers(0, 2**32 - 1),
)


@st.composite
def idx_files(draw, names=IDX_NAMES):
    """(file name, bytes): an IDX header of random type and dimensions, data of the declared
    length or of another, byte damage, gzipped or not (and damaged again)."""
    code = draw(mostly(sorted(IDX_TYPES), st.integers(0, 255)))
    shape = draw(st.lists(mostly(st.integers(0, 6), DIMS), max_size=4))
    declared = math.prod(shape) * IDX_TYPES.get(code, 1)
    n = draw(mostly([min(declared, 1 << 14)], st.integers(0, 64)))  # as declared (when small), or not
    raw = b"\0\0" + bytes([code, draw(mostly([len(shape)], st.integers(0, 255)))])
    raw += struct.pack(f">{len(shape)}I", *shape) + random_bytes(draw(SEEDS), n)
    raw = damage(raw, draw(EDITS)) if draw(SOMETIMES) else raw
    gz = draw(st.booleans())
    if gz:
        raw = gzip.compress(raw, compresslevel=1)
        raw = damage(raw, draw(EDITS)) if draw(SOMETIMES) else raw
    return draw(st.sampled_from(names)) + (".gz" if gz and draw(st.booleans()) else ""), raw


def _inflated(raw: bytes):
    """What a reader should see: the gunzipped bytes, or ``raw``; None when gzip cannot read it."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, ValueError):
        return None


@budget(150)
@given(idx_files())
def test_idx_files(file):
    name, raw = file
    with folder() as tmp:
        path = tmp / name
        path.write_bytes(raw)
        got = outcome(lambda: read_idx(path), DatasetError, path)
    if isinstance(got, np.ndarray):  # read: then it is exactly what the bytes hold
        data = _inflated(raw)
        assert data is not None and len(data) == 4 + 4 * got.ndim + got.nbytes
        assert data[4 + 4 * got.ndim :] == got.astype(got.dtype.newbyteorder(">")).tobytes()


@budget(50)
@given(st.data())
def test_mnist_folders(data):
    """The four files of a small valid MNIST, one of them replaced by a fuzzed one, or missing."""
    with folder() as tmp:
        gz = data.draw(st.booleans())
        write_mnist(tmp, n_train=3, n_test=2, seed=data.draw(st.integers(0, 9)), gz=gz)
        stem = data.draw(st.sampled_from(IDX_NAMES[:4]))
        change = data.draw(st.sampled_from(["keep", "replace", "replace", "drop"]))
        if change != "keep":
            (tmp / (stem + (".gz" if gz else ""))).unlink()
        if change == "replace":
            name, raw = data.draw(idx_files(names=[stem]))
            (tmp / name).write_bytes(raw)
        got = outcome(lambda: load("mnist", tmp), DatasetError, tmp)
        if not isinstance(got, Exception):
            assert got.X_train.shape[1:] == (784,) and len(got.X_train) == len(got.y_train)
            assert got.y_train.max(initial=0) <= 9 and got.y_test.max(initial=0) <= 9


# ================================================================ (b) CIFAR-10
# -- pickles of random objects, batches in particular, at every protocol
def _array(dtype, shape, seed):
    a = np.random.default_rng(seed).integers(0, 256, size=math.prod(shape), dtype=np.uint8)
    return a.astype(dtype).reshape(shape)


ARRAYS = st.builds(
    _array,
    st.sampled_from(["u1", "i1", "<u2", ">i4", "<i8", "<f4", ">f8", "?", "<c8", "O", "U2", "S2"]),
    st.one_of(st.lists(st.integers(0, 4), max_size=3).map(tuple), st.sampled_from([(2, 3072), (1, 3072), (3,)])),
    SEEDS,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-300, 300),
    st.integers(),
    st.floats(),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.sampled_from([b"\xff\xfe", "airplane", b"airplane", 2**70, -1, 10]),
)
OBJECTS = st.recursive(
    st.one_of(SCALARS, ARRAYS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=3), st.binary(max_size=3)), inner, max_size=3),
    ),
    max_leaves=8,
)
KEYS = st.sampled_from(["data", b"data", "labels", b"labels", "label_names", b"label_names", "filenames"])


@st.composite
def labels(draw, n):
    good = [draw(st.integers(0, 9)) for _ in range(n)]
    as_array = np.array(good, dtype=draw(st.sampled_from(["u1", "<i8", ">i2", "<u8", "f4"])))
    odd_values = st.one_of(st.integers(-2, 12), st.sampled_from([True, 2**64, 1.0, "3", None]))
    return draw(mostly([good, as_array], st.one_of(st.lists(odd_values, max_size=n + 1), OBJECTS)))


@st.composite
def batch_objects(draw):
    """A CIFAR python batch or meta dict, often almost right, with random parts."""
    n = draw(st.integers(0, 3))
    fields = {
        "data": draw(mostly([_array("u1", (n, 3072), draw(SEEDS))], st.one_of(ARRAYS, OBJECTS))),
        "labels": draw(labels(n)),
        "label_names": draw(
            st.one_of(
                st.just(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]),
                st.lists(
                    st.one_of(st.text(max_size=3), st.binary(max_size=3), st.just(b"\xff")), min_size=9, max_size=11
                ),
                OBJECTS,
            )
        ),
    }
    kept = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, min_size=1))
    obj = {draw(st.sampled_from([k, k.encode()])): fields[k] for k in kept}
    obj.update(draw(st.dictionaries(KEYS, OBJECTS, max_size=2)))
    return draw(mostly([obj], OBJECTS))


def _dumps(obj, protocol):
    try:
        return py2_pickle(obj) if protocol == "py2" else pickle.dumps(obj, protocol=protocol)
    except (pickle.PicklingError, TypeError, ValueError, RecursionError):
        return b"\x80\x02N."  # an object the pickler itself refuses: None


@st.composite
def object_pickles(draw):
    raw = _dumps(draw(batch_objects()), draw(st.sampled_from(["py2", 0, 1, 2, 3, 4, 5])))
    return damage(raw, draw(EDITS)) if draw(SOMETIMES) else raw


# -- random opcode streams: every opcode Python's unpickler dispatches, with arguments that
# may lie about their length; globals from those the reader admits and some it must refuse
ALLOWED_GLOBALS = [
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
]
REFUSED_GLOBALS = [
    ("os", "system"),
    ("builtins", "eval"),
    ("numpy", "frombuffer"),
    ("builtins", "getattr"),
    ("numpy._core.multiarray", "scalar"),
    ("copyreg", "_reconstructor"),
]
OPCODES = [op for op in pickletools.opcodes if op.code.encode("latin1")[0] in pickle._Unpickler.dispatch]
LENGTHS = {
    "string1": "<B",
    "bytes1": "<B",
    "unicodestring1": "<B",
    "long1": "<B",
    "string4": "<i",
    "bytes4": "<I",
    "unicodestring4": "<I",
    "long4": "<i",
    "bytes8": "<Q",
    "bytearray8": "<Q",
    "unicodestring8": "<Q",
}
FIXED = {"uint1": "<B", "uint2": "<H", "int4": "<i", "uint4": "<I", "uint8": "<Q", "float8": ">d"}


@st.composite
def opcode_argument(draw, op):
    kind = op.arg.name if op.arg is not None else None
    if kind is None:
        return b""
    if kind in FIXED:
        fmt = FIXED[kind]
        if fmt == ">d":
            return struct.pack(fmt, draw(st.floats()))
        bits = struct.calcsize(fmt) * 8
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if fmt[1].islower() else (0, 2**bits - 1)
        return struct.pack(fmt, draw(st.one_of(st.integers(0, 8), st.integers(lo, hi))))
    if kind in LENGTHS:
        payload = draw(st.one_of(st.binary(max_size=12), st.sampled_from([b"data", b"labels", b"B", b"<f4", b"\xff"])))
        bits = struct.calcsize(LENGTHS[kind]) * 8
        lie = draw(st.one_of(st.just(len(payload)), st.integers(0, 2 ** (bits - 1) - 1)))  # a length that lies
        return struct.pack(LENGTHS[kind], lie) + payload
    if kind == "stringnl_noescape_pair":
        module, name = draw(st.sampled_from(ALLOWED_GLOBALS + REFUSED_GLOBALS))
        return f"{module}\n{name}\n".encode()
    line = draw(
        st.one_of(
            st.integers().map(str),
            st.sampled_from(["00", "01", "1L", "nan", "1e400", "9" * 5000, "'x'", '"y"', "S'z'"]),
            st.text(max_size=6),
        )
    )
    return line.encode("utf-8", "surrogatepass").replace(b"\n", b"") + b"\n"


@st.composite
def opcode_streams(draw):
    out = bytearray(b"\x80" + bytes([draw(st.integers(0, 6))]) if draw(st.booleans()) else b"")
    for _ in range(draw(st.integers(0, 24))):
        if draw(st.integers(0, 5)) == 0:  # a global by STACK_GLOBAL: two strings first
            module, name = draw(st.sampled_from(ALLOWED_GLOBALS + REFUSED_GLOBALS))
            for text in (module, name):
                out += pickle.SHORT_BINUNICODE + bytes([len(text)]) + text.encode()
            out += pickle.STACK_GLOBAL
            continue
        op = draw(st.sampled_from(OPCODES))
        out += op.code.encode("latin1") + draw(opcode_argument(op))
    return bytes(out + (pickle.STOP if draw(st.booleans()) else b""))


PICKLES = mostly(object_pickles(), opcode_streams())


@budget(200)
@given(PICKLES)
@example(pickle.dumps({"label_names": [b"\xff\xfe"] + [b"a"] * 9}, protocol=3))  # names that are not UTF-8
@example(b"\x80\x02cos\r\nsystem\n.")  # a refused global whose name holds a line break
def test_cifar_pickles(raw):
    """Random pickles through the batch and the meta readers: read, or refused with DatasetError."""
    where = "/data/cifar-10-batches-py/data_batch_1"
    outcome(lambda: load_pickle(raw, where), DatasetError, where)
    batch = outcome(lambda: _python_batch(raw, where), DatasetError, where)
    if not isinstance(batch, Exception):
        data, labels_ = batch
        assert data.dtype == np.uint8 and data.shape[1:] == (3072,) and labels_.dtype == np.int64
        assert labels_.shape == (len(data),) and ((labels_ >= 0) & (labels_ <= 9)).all()
    names = outcome(lambda: _python_names(raw, where), DatasetError, where)
    if not isinstance(names, Exception):
        assert len(names) == 10 and all(isinstance(n, str) for n in names)


# -- whole layouts: folders, flat files, and archives with hostile entries
TAR_KINDS = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE]


@st.composite
def tar_archives(draw, files):
    """Raw tar entries for ``files`` ({name: bytes}), some lying about size or type, plus junk entries."""
    entries = []
    for name, raw in files.items():
        declared = len(raw) if draw(st.integers(0, 3)) else draw(st.integers(0, 2 * len(raw) + 600))
        kind = tarfile.REGTYPE if draw(st.integers(0, 5)) else draw(st.sampled_from(TAR_KINDS))
        entries.append(b"".join(tar_entry(name, declared, [raw[:declared]], kind)))
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.one_of(st.sampled_from(sorted(files) or ["x"]), st.text(max_size=120), st.just("a" * 200)))
        junk = random_bytes(draw(SEEDS), draw(st.integers(0, 700)))
        try:
            entries.insert(
                draw(st.integers(0, len(entries))),
                b"".join(tar_entry(name, len(junk), [junk], draw(st.sampled_from(TAR_KINDS)))),
            )
        except (ValueError, UnicodeError):  # a name tarfile cannot write: no such entry
            pass
    raw = b"".join(entries) + (b"".join(tar_end()) if draw(st.booleans()) else b"")
    return damage(gzip.compress(raw, compresslevel=1), draw(EDITS))


@st.composite
def cifar_layouts(draw):
    """{relative path: bytes} of a CIFAR-10 copy: published layout, flat, or archive; some files damaged."""
    version = draw(st.sampled_from(["binary", "python"]))
    files = cifar_files(version, cifar_batches(n_per_batch=1, n_test=1, seed=draw(st.integers(0, 9))))
    for name in draw(st.lists(st.sampled_from(sorted(files)), unique=True, max_size=2)):
        action = draw(st.sampled_from(["damage", "drop", "replace"]))
        if action == "drop":
            del files[name]
        elif action == "damage":
            files[name] = damage(files[name], draw(EDITS))
        elif version == "python":
            files[name] = draw(PICKLES)
        else:
            files[name] = random_bytes(draw(SEEDS), draw(st.sampled_from([0, 1, 3073, 3074, 6146, 40])))
    layout = draw(st.sampled_from(["folder", "flat", "archive"]))
    if layout == "flat":
        return {name.partition("/")[2]: raw for name, raw in files.items()}
    if layout == "archive":
        archive = "cifar-10-binary.tar.gz" if version == "binary" else "cifar-10-python.tar.gz"
        return {archive: draw(tar_archives(files))}
    return files


@budget(100)
@given(cifar_layouts())
def test_cifar_layouts(files):
    with folder() as tmp:
        for name, raw in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(raw)
        got = outcome(lambda: load("cifar10", tmp), DatasetError, tmp)
    if not isinstance(got, Exception):
        assert got.X_train.shape[1:] == (3072,) and len(got.class_names) == 10
        assert len(got.X_train) == len(got.y_train) and len(got.X_test) == len(got.y_test)


# ================================================================ (c) tables
COLUMN_NAMES = st.one_of(
    st.sampled_from(["x", "y", "x", "", " ", "é", "列", "a,b", 'q"t', "a\nb", "a=b", "=", "t\x1c", "#"]),
    st.text(max_size=4),
)
CELL_TEXT = st.one_of(
    st.sampled_from(
        [
            "",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e400",
            "null",
            "NA",
            "0x10",
            "1,5",
            "true",
            "True",
            "a=b",
            " 1",
            "+3",
            "1_0",
        ]
    ),
    st.text(max_size=5),
)
KIND_CELLS = {
    "int": st.integers(-(2**70), 2**70),
    "small": st.integers(0, 2),  # the usual target
    "float": mostly(st.floats(-1e6, 1e6), st.floats(width=64)),  # nan, inf, 1e308 now and then
    "bool": st.booleans(),
    "text": CELL_TEXT,
    "mixed": st.one_of(st.integers(-5, 5), st.floats(), st.booleans(), CELL_TEXT),
}


# mostly readable columns (numbers, or text without holes), so that the code past the reader is reached
TABLE_KINDS = ["small", "float", "int", "text", "text", "bool", "mixed"]
NUMERIC_KINDS = ["small", "small", "float", "int", "bool"] * 3 + ["text", "mixed"]  # what a stream can train on


@st.composite
def tables(draw, kinds=TABLE_KINDS, max_rows=6, min_columns=1):
    """(column names, columns of Python values or None (a missing cell))."""
    n_rows = draw(st.integers(0, max_rows))
    unique = draw(st.sampled_from([True, True, True, False]))
    names = draw(st.lists(COLUMN_NAMES, min_size=min_columns, max_size=4, unique=unique))
    columns = []
    for _ in names:
        cell = KIND_CELLS[draw(st.sampled_from(kinds))]
        nulls = draw(SOMETIMES)
        columns.append([draw(st.none() | cell) if nulls else draw(cell) for _ in range(n_rows)])
    return names, columns


def _csv_text(names, columns, quoting, terminator):
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=quoting, lineterminator=terminator)
    writer.writerow(names)
    for row in zip(*columns):
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


@st.composite
def csv_files(draw):
    names, columns = draw(tables())
    text = _csv_text(
        names,
        columns,
        draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])),
        draw(st.sampled_from(["\n", "\r\n"])),
    )
    raw = (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + text.encode("utf-8", "surrogatepass")
    raw = damage(raw, draw(EDITS)) if draw(SOMETIMES) else raw
    if draw(SOMETIMES):
        return "t.csv.gz", damage(gzip.compress(raw), draw(EDITS)) if draw(SOMETIMES) else gzip.compress(raw), names
    return draw(st.sampled_from(["t.csv", "t.csv", "t.txt"])), raw, names


PARQUET_KINDS = [
    "int",
    "small",
    "float",
    "bool",
    "text",
    "null",
    "date",
    "binary",
    "list",
    "dictionary",
    "uint64",
    "float16",
    "decimal",
    "timestamp",
    "struct",
]


# pyarrow gets native buffers and reads without threads here: a pyarrow thread that releases a Python
# object takes the GIL, which on CPython 3.11 races with tracemalloc.stop() (see traced)
def pq_bytes(table, **kwargs) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **kwargs)
    return sink.getvalue().to_pybytes()


@st.composite
def parquet_files(draw):
    names, columns = draw(tables())
    n = len(columns[0])
    arrays = []
    for _ in columns:
        kind = draw(mostly(PARQUET_KINDS[:5], PARQUET_KINDS))  # mostly the types a table may hold
        valid = [draw(st.booleans()) for _ in range(n)] if draw(st.booleans()) else [True] * n
        mask = None if all(valid) else np.array([not v for v in valid])
        ints = np.array([draw(st.integers(-3, 3)) for _ in range(n)], dtype=np.int64)
        if kind in ("int", "small"):
            arrays.append(pa.array(ints if kind == "int" else np.abs(ints) % 2, mask=mask))
        elif kind == "float":
            arrays.append(pa.array(np.array([draw(st.floats(width=64)) for _ in range(n)]), mask=mask))
        elif kind == "bool":
            arrays.append(pa.array(ints > 0, mask=mask))
        elif kind == "text":
            arrays.append(pa.array([draw(CELL_TEXT) if ok else None for ok in valid], pa.string()))
        elif kind == "null":
            arrays.append(pa.nulls(n))
        elif kind == "date":
            arrays.append(pa.array(ints.astype(np.int32), pa.int32()).cast(pa.date32()))
        elif kind == "binary":
            arrays.append(pa.array([bytes([int(v) % 256]) for v in ints], pa.binary()))
        elif kind == "list":
            arrays.append(pa.array([[int(v)] for v in ints], pa.list_(pa.int64())))
        elif kind == "dictionary":
            arrays.append(pa.array([str(v) for v in ints]).dictionary_encode())
        elif kind == "uint64":
            arrays.append(pa.array(ints.astype(np.uint64) * np.uint64(2**62), mask=mask))
        elif kind == "float16":
            arrays.append(pa.array(ints.astype(np.float16) * np.float16(1e4)))
        elif kind == "decimal":
            arrays.append(pa.array([decimal.Decimal(int(v)) / 4 for v in ints], pa.decimal128(10, 2)))
        elif kind == "timestamp":
            arrays.append(pa.array(ints, pa.int64()).cast(pa.timestamp("s")))
        else:
            arrays.append(pa.StructArray.from_arrays([pa.array(ints)], ["f"]))
    raw = pq_bytes(pa.Table.from_arrays(arrays, names=names), row_group_size=draw(st.integers(1, 4)))
    raw = damage(raw, draw(EDITS)) if draw(SOMETIMES) else raw
    return draw(st.sampled_from(["t.parquet", "t.pq", "part-0"])), raw, names


@st.composite
def table_reads(draw):
    """(file name, bytes, target, min_classes, one_hot, picked feature names): read_table's input and the CLI's asks."""
    name, raw, columns = draw(st.one_of(csv_files(), parquet_files()))
    target = draw(mostly(columns, st.one_of(st.none(), COLUMN_NAMES)))
    picked = draw(st.lists(mostly(columns, COLUMN_NAMES), max_size=3))
    return name, raw, target, draw(st.sampled_from([1, 2])), draw(st.booleans()), picked


@budget(150)
@given(table_reads())
@example(("t.csv", b"a=b,y\nc,0\nd,1\n", "y", 2, True, ["a=b=c"]))  # a one-hot name of a column holding '='
@example(("t.parquet", pq_bytes(pa.table({"s": pa.array([], pa.string())})), None, 1, False, ["s"]))  # no rows
@example(("t.csv", b"\xf9\n", None, 1, False, []))  # a header that is not UTF-8
@example(("t.csv", b'"a\nb",x\n1,2\n', "y", 1, False, ["q"]))  # a column name holding a newline
def test_tables(read):
    """read_table on random CSV and Parquet files, then the target and the features as the CLI asks for them."""
    name, raw, target, min_classes, one_hot, picked = read
    with folder() as tmp:
        path = tmp / name
        path.write_bytes(raw)
        table = outcome(lambda: read_table(path, target), DataError, path)
        if isinstance(table, Exception):
            return
        rows = {len(values) for values in table.columns.values()}
        assert table.target == target and len(rows) == 1
        outcome(lambda: table.target_values(min_classes=min_classes), DataError, path)
        got = outcome(lambda: table.features(one_hot=one_hot), DataError, path)
        if isinstance(got, Exception):
            # every name features() makes up itself (a one-hot 'column=value') is one it can find
            assert "not found" not in str(got), str(got)
        else:
            X, names = got
            assert X.dtype == np.float64 and X.shape[1] == len(names) and np.isfinite(X).all()
        outcome(lambda: table.features(picked), DataError, path)


def _as_parquet(raw_csv: bytes) -> bytes:
    """A CSV file's table as Parquet, with the types pyarrow infers; the CSV bytes themselves if it cannot read them."""
    from pyarrow import csv as pacsv

    try:
        serial = pacsv.ReadOptions(use_threads=False)
        return pq_bytes(pacsv.read_csv(pa.BufferReader(raw_csv), read_options=serial), row_group_size=2)
    except (pa.ArrowException, ValueError):
        return raw_csv


@st.composite
def stream_inputs(draw):
    """({file name: bytes}, read the first file alone?, column names): one table's rows split over 1-3
    files of one format; now and then a file replaced by a random table, damaged, or of the other format."""
    names, columns = draw(tables(kinds=NUMERIC_KINDS, max_rows=12, min_columns=2))
    fmt = draw(st.sampled_from(["csv", "parquet"]))
    n_files = draw(st.integers(1, 3))
    files = {}
    for i in range(n_files):
        part = [column[i::n_files] for column in columns]  # file i holds every n_files-th row
        raw = _csv_text(names, part, csv.QUOTE_MINIMAL, "\n").encode("utf-8", "surrogatepass")
        files[f"part-{i}.{fmt}"] = raw if fmt == "csv" else _as_parquet(raw)
    for name in draw(st.lists(st.sampled_from(sorted(files)), unique=True, max_size=1)):
        change = draw(st.sampled_from(["random", "damage", "other format"]))
        if change == "random":
            name_, files[name], more = draw(csv_files() if fmt == "csv" else parquet_files())
            names = names + more
        elif change == "damage":
            files[name] = damage(files[name], draw(EDITS))
        else:
            del files[name]
            files[name.rsplit(".", 1)[0] + (".csv" if fmt == "parquet" else ".parquet")] = _as_parquet(b"a,b\n1,2\n")
    if draw(st.booleans()):
        files["_SUCCESS"] = b""  # skipped, as Spark's marker is
    return files, draw(SOMETIMES), names


@budget(60)
@given(stream_inputs(), st.data())
def test_stream_sources(inputs, data):
    files, single, columns = inputs
    with folder() as tmp:
        for name, raw in files.items():
            (tmp / name).write_bytes(raw)
        source = tmp / min(name for name in files if name != "_SUCCESS") if single else tmp
        target = data.draw(mostly(columns, COLUMN_NAMES))
        features = data.draw(st.one_of(st.none(), st.lists(mostly(columns, COLUMN_NAMES), max_size=3)))
        solver = data.draw(st.sampled_from(["lbfgs", "sgd"]))
        model = outcome(
            lambda: fit_stream(
                source,
                target,
                features=features,
                solver=solver,
                max_iter=5,
                epochs=2,
                batch_rows=data.draw(st.integers(1, 8)),
                buffer_rows=data.draw(st.integers(1, 8)),
                random_state=0,
            ),
            DataError,
            tmp,
        )
        if not isinstance(model, Exception):
            assert model.coef_.shape[1] == len(model.feature_names_in_)
            # (sgd may still return nan coefficients: test_streamed_sgd_that_diverges_is_refused)
            assert solver == "sgd" or np.isfinite(model.coef_).all()


# ================================================================ (d) model files
# The layout documented in torchlogit._io: the digest right after this prefix, computed with its
# own 64 digits read as '0's. Forging a file means recomputing it after the edit.
DIGEST_PREFIX = b'{"__metadata__":{"torchlogit_sha256":"'


def _resign(data: bytes) -> bytes:
    import hashlib

    at = 8 + len(DIGEST_PREFIX)
    if data[8:at] != DIGEST_PREFIX or len(data) < at + 64:
        return data
    digest = hashlib.sha256(data[:at] + b"0" * 64 + data[at + 64 :]).hexdigest().encode()
    return data[:at] + digest + data[at + 64 :]


@cache
def saved_models() -> dict:
    """{name: bytes} of small fitted models, one of each kind a file holds."""
    import pandas as pd

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y3 = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    frame = pd.DataFrame(X, columns=["hours", "sleep", "age"])
    models = {
        "binary-str": LogisticRegression().fit(frame, np.array(["no", "yes"])[(X[:, 0] > 0).astype(int)]),
        "multi-int": LogisticRegression(C=0.5).fit(X, y3 * 10),
        "multi-f32": LogisticRegression(dtype="float32").fit(X.astype(np.float32), y3),
        "ridge": Ridge(alpha=2.0).fit(frame, X[:, 0] * 2.0),
        "linear": LinearRegression().fit(X, X[:, 1]),
    }
    out = {}
    with folder() as tmp:
        for name, model in models.items():
            model.save(tmp / name)
            out[name] = (tmp / name).read_bytes()
    return out


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 3),
        st.integers(),
        st.floats(),
        st.text(max_size=4),
        st.sampled_from(
            [
                "F32",
                "F64",
                "auto",
                "cpu",
                "meta",
                "cuda:3",
                "cpu:1",
                "mps",
                "float16",
                "lbfgs",
                "LogisticRegression",
                "Ridge",
                "str",
                "int",
                "float",
                "bool",
                2**63,
                2**31,
                0.0,
            ]
        ),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6,
)
# JSON that Python's json module reads into something odd, or refuses with an unusual error
# ("1" * 5000, an integer Python's int() refuses to parse, is left to test_json_integer_too_long_to_parse)
HOSTILE_JSON = [
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "[" * 3000 + "]" * 3000,
    '"\\ud800"',
    "123456789012345678901234567890",
    "-0",
    "1.0e-400",
    "4300" + "0" * 4296,
]
HOSTILE = "__hostile__"


def _paths(obj, at=()):
    """Every (key path) inside nested dicts and lists."""
    yield at
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, at + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, at + (i,))


def _edit(obj, path, draw):
    """Replace, delete or add at ``path`` in ``obj`` (nested dicts and lists), as drawn."""
    *parent_path, key = path
    parent = obj
    for k in parent_path:
        parent = parent[k]
    action = draw(st.sampled_from(["replace", "replace", "delete", "add", "hostile"]))
    if action == "delete":
        del parent[key]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=5))] = draw(JSON_VALUES)
    elif action == "hostile":
        parent[key] = HOSTILE
    else:
        parent[key] = draw(JSON_VALUES)


def _device(meta, header, body, draw):
    meta["params"]["device"] = draw(
        st.sampled_from(
            ["cpu", "cuda", "cuda:7", "mps", "xpu", "meta", "hpu", "cpu:1", "vulkan", "CPU", "cuda:-1", "auto"]
        )
    )
    return body


def _feature_names(meta, header, body, draw):
    d = meta["n_features_in"]
    pool = (meta["feature_names"] or []) + ["x", "", "x=1", "hours"]
    meta["feature_names"] = draw(st.one_of(st.none(), st.lists(st.sampled_from(pool), min_size=d, max_size=d)))
    return body


def _classes(meta, header, body, draw):
    if "classes" in meta:
        values = meta["classes"]["values"]
        extra = draw(st.sampled_from([values[0], True, 1.5, "1", 2**63, -(2**63) - 1, float("nan")]))
        meta["classes"]["values"] = draw(st.permutations(values + [extra]))[: len(values)]
    return body


def _other_fields(meta, header, body, draw):
    key, value = draw(
        st.sampled_from(
            [
                ("n_features_in", meta["n_features_in"] + 1),
                ("n_features_in", 0),
                ("estimator", "Ridge"),
                ("estimator", "LinearRegression"),
                ("estimator", "LogisticRegression"),
                ("intercept_scalar", not meta["intercept_scalar"]),
                ("n_iter", [2**31 - 1]),
                ("objective", float("inf")),
            ]
        )
    )
    meta[key] = value
    params = meta["params"]
    odd = draw(st.sampled_from([None, 0, -1, 1.5, "float16", "float32", True]))
    params[draw(st.sampled_from(sorted(params)))] = odd
    return body


def _retyped(meta, header, body, draw):
    """The tensors re-encoded consistently in F32 or F64 (offsets and bytes agree): only the fields can tell."""
    arrays = {}
    for name in ("coef", "intercept"):
        entry = header[name]
        dtype = {"F32": "<f4", "F64": "<f8"}[entry["dtype"]]
        arrays[name] = np.frombuffer(
            body, dtype, offset=entry["data_offsets"][0], count=math.prod(entry["shape"])
        ).reshape(entry["shape"])
    parts, offset = [], 0
    for name in ("coef", "intercept"):
        code = draw(st.sampled_from(["F32", "F64"]))
        raw = arrays[name].astype({"F32": "<f4", "F64": "<f8"}[code]).tobytes()
        header[name] = {"dtype": code, "shape": list(arrays[name].shape), "data_offsets": [offset, offset + len(raw)]}
        parts.append(raw)
        offset += len(raw)
    return b"".join(parts)


# edits that keep a file plausible: the checks behind the digest and the JSON parser are what they meet
PLAUSIBLE = [_device, _feature_names, _classes, _other_fields, _retyped]


@st.composite
def forged_models(draw):
    """A saved model's bytes edited on purpose (metadata, tensor headers, tensor bytes), digest recomputed."""
    data = saved_models()[draw(st.sampled_from(sorted(saved_models())))]
    (n,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8 : 8 + n]), data[8 + n :]
    meta = json.loads(header["__metadata__"]["torchlogit"])
    hostile = draw(st.sampled_from(HOSTILE_JSON))
    for plausible in draw(st.lists(st.sampled_from(PLAUSIBLE), max_size=2)):  # first: they expect the fields intact
        body = plausible(meta, header, body, draw)
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["meta", "meta", "tensors", "body"]))
        if where in ("meta", "tensors"):  # a random place in the metadata, or in the tensors' entries
            tree = meta if where == "meta" else {k: v for k, v in header.items() if k != "__metadata__"}
            paths = [p for p in _paths(tree) if p]
            if paths:  # (earlier edits may have emptied it)
                _edit(meta if where == "meta" else header, draw(st.sampled_from(paths)), draw)
        else:
            body = damage(body, draw(EDITS)) if draw(st.booleans()) else random_bytes(draw(SEEDS), len(body))
    meta_text = json.dumps(meta).replace(json.dumps(HOSTILE), hostile)
    header["__metadata__"]["torchlogit"] = meta_text
    text = json.dumps(header, separators=(",", ":")).replace(json.dumps(HOSTILE), hostile).encode()
    text += b" " * (-len(text) % 8)
    return _resign(struct.pack("<Q", len(text)) + text + body)


@st.composite
def damaged_models(draw):
    data = saved_models()[draw(st.sampled_from(sorted(saved_models())))]
    return damage(data, draw(EDITS.filter(bool)))


def _use(model):
    """What the CLI does with a loaded model: predict on rows of its width."""
    import pandas as pd

    d = model.n_features_in_
    X = np.linspace(-1, 1, 2 * d).reshape(2, d)
    names = getattr(model, "feature_names_in_", None)
    if names is not None:  # as the CLI does: the columns by name
        X = pd.DataFrame(X, columns=list(names))
    model.predict(X)
    if hasattr(model, "classes_"):
        model.predict_proba(X)


@budget(120)
@given(st.one_of(forged_models(), damaged_models()))
def test_model_files(data):
    with folder() as tmp:
        path = tmp / "m.safetensors"
        path.write_bytes(data)
        outcome(lambda: read_metadata(path), ModelFileError, path)
        model = outcome(lambda: load_model(path), ModelFileError, path)
        if not isinstance(model, Exception):  # whatever load accepts, predict must run on
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                _use(model)


# ================================================================ (e) the command line
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Files the command lines name: tables, models (good, damaged, of each kind), image data sets,
    a folder, garbage; outputs go to out/ (and to a folder that does not exist)."""
    import pandas as pd
    from dataset_files import write_cifar

    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 2))
    frame = pd.DataFrame(
        {
            "x1": x[:, 0],
            "x2": x[:, 1],
            "label": np.where(x[:, 0] > 0, "b", "a"),
            "y": (x[:, 0] + x[:, 1] > 0).astype(int),
        }
    )
    frame.to_csv(root / "t.csv", index=False)
    frame[["x1", "x2", "y"]].to_csv(root / "xy.csv", index=False)
    frame.to_parquet(root / "t.parquet")
    (root / "parts").mkdir()
    frame[:20].to_parquet(root / "parts" / "part-0.parquet")
    frame[20:].to_parquet(root / "parts" / "part-1.parquet")
    (root / "odd.csv").write_text("x1,x1,y\n1,2,0\n2,1,1\n")
    (root / "empty.csv").write_bytes(b"")
    (root / "garbage.bin").write_bytes(random_bytes(0, 300))
    write_mnist(root / "data" / "mnist", n_train=12, n_test=5)
    write_cifar(root / "data" / "cifar10", "binary", cifar_batches(n_per_batch=2, n_test=2))
    write_mnist(root / "badimg", n_train=3, n_test=2)
    (root / "badimg" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\0junk")
    (root / "out").mkdir()

    X = frame[["x1", "x2"]]
    LogisticRegression().fit(X, frame["y"]).save(root / "good.st")
    LogisticRegression().fit(X, frame["label"]).save(root / "labels.st")
    LogisticRegression().fit(x, frame["y"]).save(root / "nameless.st")
    Ridge().fit(X, frame["x1"] * 2).save(root / "ridge.st")
    iris = read_table("iris")
    LogisticRegression(max_iter=200).fit(iris.features()[0], iris.target_values()).save(root / "iris.st")
    images = load("mnist", root / "data")
    LogisticRegression(max_iter=20).fit(images.X_train, images.y_train).save(root / "mnist.st")
    tampered = bytearray((root / "good.st").read_bytes())
    tampered[-1] ^= 1
    (root / "tampered.st").write_bytes(bytes(tampered))
    (root / "not-a-model.st").write_bytes((root / "t.csv").read_bytes())
    return root


TEXT = st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]), max_size=6)
ODD_NUMBERS = st.one_of(
    st.sampled_from(["0", "-1", "1e-300", "1e309", "nan", "inf", "-inf", "abc", "", "1_000", "0x10"]),
    st.floats().map(repr),
    TEXT,
)


def _not_an_int(text):
    try:
        int(text)
    except ValueError:
        return True
    return False


# no huge counts: `demo --epochs 99999999999999999999` runs as long as it is asked to (so does '٩٩٩٩٩٩')
ODD_COUNTS = st.one_of(
    st.sampled_from(["0", "-1", "x", "", "2.5", "1e3", "-99999999999999999999"]),
    st.integers(-2, 50).map(str),
    TEXT.filter(_not_an_int),
)


def number(*valid):
    return mostly(valid, ODD_NUMBERS)


def count(*valid):
    return mostly(valid, ODD_COUNTS)


TABLES = mostly(
    ("t.csv", "t.parquet", "hours", "iris", "breast-cancer", "mnist", "cifar10"),
    st.one_of(
        st.sampled_from(
            ("parts", "odd.csv", "empty.csv", "garbage.bin", "missing.csv", "out", "fashion-mnist", "digits")
        ),
        TEXT,
    ),
)
MODELS = mostly(
    ("good.st", "labels.st", "nameless.st", "ridge.st", "iris.st", "mnist.st"),
    st.one_of(st.sampled_from(("tampered.st", "not-a-model.st", "missing.st", "out", "t.csv")), TEXT),
)
DATA_DIRS = mostly(("data",), ("badimg", "missing", "t.csv", "out", "data/mnist"))
TARGETS = mostly(("y", "label", "x1", "target", "pass"), st.one_of(st.sampled_from(("nosuch", "")), TEXT))
# Options of each verb: flag -> strategy of its value (None: a flag without value). Values that
# are paths are relative to the world's folder; TEXT and odd numbers reach every option.
VERBS = {
    "train": (
        (TABLES,),
        {
            "--target": TARGETS,
            "--features": mostly(("x1", "x1,x2", "x2,x1", "label"), ("x1,x1", "label=a", ",", "", "nosuch", "x1,,x2")),
            "--data-dir": DATA_DIRS,
            "--model-out": mostly(("out/m.st",), ("nofolder/m.st", "out")),
            "--penalty": mostly(("l2", "none"), ("l1", "elasticnet", "L2", "")),
            "--C": number("1", "0.5", "10", "1e-3"),
            "--solver": mostly(("auto", "newton", "lbfgs", "sgd"), TEXT),
            "--max-iter": count("1", "5", "50", "200"),
            "--tol": number("1e-6", "1e-3", "0.1"),
            "--device": mostly(("auto", "cpu"), ("cuda", "cuda:1", "meta", "")),
            "--batch-size": count("1", "8", "32"),
            "--epochs": count("1", "2", "3"),
            "--learning-rate": number("0.01", "0.1"),
            "--optimizer": mostly(("sgd", "adam", "adamw"), ("lbfgs", "")),
            "--random-state": count("0", "1", "42"),
            "--one-hot": None,
            "--stream": None,
            "--distributed": None,
        },
    ),
    "predict": ((MODELS, TABLES), {"--out": mostly(("out/p.csv",), ("nofolder/p.csv", "out")), "--proba": None}),
    "evaluate": ((MODELS, TABLES), {"--target": TARGETS, "--json": None}),
    "summary": (
        (MODELS, TABLES),
        {
            "--target": TARGETS,
            "--cov-type": mostly(("nonrobust", "HC0", "HC1"), ("hc0", "")),
            "--baseline": mostly(("first", "none", "a", "b", "0", "1", "2"), TEXT),
            "--alpha": number("0.05", "0.1", "0.5"),
            "--json": None,
        },
    ),
    "plot": (
        (MODELS, TABLES),
        {
            "--target": TARGETS,
            "--data-dir": DATA_DIRS,
            "--kind": mostly(("probability", "roc", "calibration", "confusion", "loss", "weights", "samples"), TEXT),
            "--out": mostly(("out/p.png", "out/p.svg"), ("out/p.unknown", "nofolder/p.png", "out")),
        },
    ),
    "datasets info": ((mostly(("data", "data/mnist", "data/cifar10"), ("badimg", "missing", "t.csv", "out")),), {}),
    "demo": (
        (),
        {
            "--out": mostly(("out/demo",), ("t.csv/demo",)),
            "--epochs": count("1", "5"),
            "--learning-rate": number("0.01", "0.5"),
        },
    ),
}
# (MODEL, DATA, options) of the world that go together, so that verbs get past the mismatch to their work
MATCHING = [
    ("good.st", "t.csv", "--target", "y"),
    ("labels.st", "t.parquet", "--target", "label"),
    ("nameless.st", "xy.csv", "--target", "y"),
    ("ridge.st", "t.csv", "--target", "y"),
    ("iris.st", "iris"),
    ("mnist.st", "mnist", "--data-dir", "data"),
]
# names that stand for files of the world (the others, built-in data sets and TEXT, are passed as they are)
WORLD_FILES = {
    "t.csv",
    "xy.csv",
    "t.parquet",
    "parts",
    "odd.csv",
    "empty.csv",
    "garbage.bin",
    "missing.csv",
    "out",
    "good.st",
    "labels.st",
    "nameless.st",
    "ridge.st",
    "iris.st",
    "mnist.st",
    "tampered.st",
    "not-a-model.st",
    "missing.st",
    "data",
    "badimg",
    "missing",
    "data/mnist",
    "data/cifar10",
    "out/m.st",
    "nofolder/m.st",
    "out/p.csv",
    "nofolder/p.csv",
    "out/p.png",
    "out/p.svg",
    "out/p.unknown",
    "nofolder/p.png",
    "out/demo",
    "t.csv/demo",
}


@st.composite
def command_lines(draw, root):
    """An argument list of a real verb: its positionals (sometimes one missing, or random text),
    a random subset of its options with random values, sometimes an unknown option or --help."""

    def where(value):  # a path of the world, or the text itself
        return str(root / value) if value in WORLD_FILES else value

    verb = draw(st.sampled_from(sorted(VERBS)))
    positionals, options = VERBS[verb]
    args = verb.split()
    if len(positionals) == 2 and draw(st.booleans()):  # a model and the data it was trained on
        args += [where(value) for value in draw(st.sampled_from(MATCHING))]
    else:
        for choices in positionals:
            if draw(st.sampled_from([True] * 15 + [False])):  # now and then a required argument is left out
                args.append(where(draw(choices)))
    for flag in draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=6)) if options else []:
        args.append(flag)
        if options[flag] is not None:
            args.append(where(draw(options[flag])))
    # bounded run time: sgd on a table runs --max-iter epochs (default 1000), demo its 1000 epochs in
    # some seconds; the --epochs put first here yields to one drawn (the last of an option counts)
    if (verb == "train" and "sgd" in args[2:]) or verb == "demo":
        args[1:1] = ["--epochs", "2" if verb == "train" else "20"]
    extra = draw(st.sampled_from([None] * 12 + ["--help", "--bogus", "extra-argument"]))
    if extra is not None:
        args.insert(draw(st.integers(1, len(args))), extra)
    return args


def run_cli(args):
    """main(args) -> (exit code, stdout, stderr), the output captured here rather than by pytest."""
    from torchlogit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def documented_failures():
    """The exit codes `torchlogit --help` documents for failures: all but 0, 5 (an internal error, a bug)
    and 130 (Ctrl-C, which no example sends)."""
    from torchlogit.cli import _common

    codes = {v for k, v in vars(_common).items() if k.startswith("EXIT_") and type(v) is int}
    codes -= {_common.EXIT_OK, _common.EXIT_INTERNAL, _common.EXIT_INTERRUPTED}
    assert {1, 2, 3, 4, 6, 7} <= codes
    return codes


@contextlib.contextmanager
def working_folder(path):
    """Run in ``path``: outputs with a default place (demo's picture) land there, not in the repository."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


# Internal errors (exit 5) already found, in files this suite does not own: each has a strict expected
# failure below that replays it. The property lets them pass, counted as a hypothesis event.
KNOWN_INTERNAL_ERRORS = {
    r"'(Ridge|LinearRegression)' object has no attribute '(classes_|predict_proba)'": "test_regressor_models_in_cli",
    r"module 'torchlogit.plotting' has no attribute 'probability'": "test_plot_of_an_image_set_by_default",
    r"cannot be called on meta tensors": "test_train_on_the_meta_device",
}


def check_command_line(args):
    with memory_watch(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        code, out, err = run_cli(args)
    event(f"{args[0]}: exit {code}")
    assert "Traceback" not in err + out, err
    known = [test for pattern, test in KNOWN_INTERNAL_ERRORS.items() if re.search(pattern, err)]
    if code == 5 and known:
        event(f"known internal error, see {known[0]}")
        return code, err
    assert as_documented(code, err), f"exit {code} with stderr {err!r}"
    return code, err


def as_documented(code, err) -> bool:
    """Success without an error line, or a documented failure: one `error:` line (2, a usage error: click's message)."""
    failures = documented_failures()
    if code == 0:
        return "error:" not in err
    if code == 2:
        return bool(err.strip())
    return code in failures and err.startswith("error: ") and one_line(err)


@budget(25)
@given(st.data())
def test_command_lines(world, data):
    args = data.draw(command_lines(world), label="args")
    with working_folder(world / "out"):
        check_command_line(args)


# ================================================================ found by fuzzing, in files this suite does not own
# Each failed once (strict expected failures until fixed); kept as regression tests.
def test_streamed_sgd_that_diverges_is_refused(tmp_path):
    (tmp_path / "big.csv").write_text("x,y\n" + "0,0\n" * 10 + "0,1\n224928492272926867457,-1\n")
    with pytest.raises(ValueError, match="non-finite coefficients"):
        fit_stream(tmp_path / "big.csv", "y", solver="sgd", epochs=2, batch_rows=1, buffer_rows=1, random_state=0)


def test_json_integer_too_long_to_parse(tmp_path):
    data = saved_models()["binary-str"]
    (n,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8 : 8 + n]), data[8 + n :]
    meta = json.loads(header["__metadata__"]["torchlogit"])
    meta["n_features_in"] = HOSTILE
    header["__metadata__"]["torchlogit"] = json.dumps(meta).replace(json.dumps(HOSTILE), "1" * 5000)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    (tmp_path / "m.st").write_bytes(_resign(struct.pack("<Q", len(text)) + text + body))
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "m.st")


@pytest.mark.parametrize("verb", [["evaluate"], ["summary"], ["plot", "--kind", "roc", "--out", "p.png"]])
def test_regressor_models_in_cli(world, verb):
    args = [verb[0], str(world / "ridge.st"), str(world / "t.csv"), "--target", "y", *verb[1:]]
    with working_folder(world / "out"):
        code, _, err = run_cli(args)
    assert as_documented(code, err), (code, err)


def test_regressor_model_probabilities_in_cli(world):
    with working_folder(world / "out"):
        code, _, err = run_cli(["predict", str(world / "ridge.st"), str(world / "t.csv"), "--proba"])
    assert code == 4 and "needs a classifier" in err, (code, err)


def test_plot_of_an_image_set_by_default(world):
    args = ["plot", str(world / "mnist.st"), "mnist", "--data-dir", str(world / "data"), "--out", "p.png"]
    with working_folder(world / "out"):
        code, _, err = run_cli(args)
    assert as_documented(code, err), (code, err)


def test_train_on_the_meta_device(world):
    with working_folder(world / "out"):
        code, _, err = run_cli(["train", "hours", "--device", "meta"])
    assert as_documented(code, err), (code, err)
