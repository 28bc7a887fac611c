"""Tables for the command line: CSV or Parquet files (read by pyarrow) and the
built-in data sets, turned into a float feature matrix and a target column;
svmlight/libsvm text files (:mod:`torchlogit._svmlight`), read into a scipy
CSR matrix and their labels (:class:`SparseTable`), never densified.

Every problem is reported as a :class:`DataError` of one line that names the
file, the column and, where known, the row. Rows are counted from 1, the
first row under the header.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _svmlight

BUILTIN = ("hours", "breast-cancer", "digits", "iris")
GZIP_MAGIC, PARQUET_MAGIC = b"\x1f\x8b", b"PAR1"


class DataError(ValueError):
    """Unreadable data: missing file or column, non-numeric or missing values."""


@dataclass
class Table:
    """Named numeric columns plus the raw categorical ones, from one source."""

    source: str
    columns: dict  # name -> 1-D numpy array (numeric, bool, or object for strings)
    target: str | None = None
    order: list = field(default_factory=list)

    def names(self):
        return list(self.order)

    def target_values(self, min_classes=1):
        """The target column; ``min_classes=2`` also refuses a single label (training needs two)."""
        if self.target is None:
            raise DataError(f"{self.source}: no target column given (use --target COLUMN)")
        values = self.columns[self.target]
        bad = first_non_finite(values)
        if bad is not None:
            raise DataError(f"{self.source}: target column {self.target!r} holds {bad[1]} at row {bad[0] + 1}")
        if min_classes > 1 and len(values):
            labels = np.unique(values)
            if len(labels) < min_classes:
                raise DataError(
                    f"{self.source}: target column {self.target!r} has the single class {labels.tolist()[0]!r} "
                    f"in its {len(values)} row{'s' if len(values) > 1 else ''}; training needs at least two classes"
                )
        return values

    def features(self, names=None, one_hot=False):
        """(X, names): the float64 matrix of the named columns (default: all but the target).

        A 'column=value' name that is not a column is the indicator of that
        value in a string column (one-hot encoding, as produced by one_hot=True).
        """
        if names is None:
            names = [c for c in self.order if c != self.target]
            if one_hot:
                names = [n for c in names for n in self._expand(c)]
        cols = [self._numeric(name) for name in names]
        if not cols:
            raise DataError(f"{self.source}: no feature columns left after removing the target")
        return np.column_stack(cols).astype(np.float64, copy=False), list(names)

    def _expand(self, col):
        values = self.columns[col]
        if values.dtype != object:
            return [col]
        return [f"{col}={v}" for v in sorted(set(values.tolist()))]

    def _numeric(self, name):
        if name not in self.columns:
            # 'column=value' splits at any '=': the column's own name may hold one ('a=b' -> 'a=b=c')
            for at in (i for i, char in enumerate(name) if char == "="):
                col, value = name[:at], name[at + 1 :]
                if col in self.columns and self.columns[col].dtype == object:
                    return (self.columns[col] == value).astype(np.float64)
            raise DataError(f"{self.source}: column {name!r} not found; columns are {column_list(self.order)}")
        values = self.columns[name]
        if values.dtype == object:
            found = first_non_number(values) or ((0, values[0]) if len(values) else None)
            holds = f"row {found[0] + 1} holds {found[1]!r}" if found else "a text column (no rows)"
            raise DataError(
                f"{self.source}: column {name!r} is not numeric: {holds}; "
                "encode it as numbers, or pass --one-hot to expand it into 0/1 columns"
            )
        bad = first_non_finite(values)
        if bad is not None:  # scikit-learn would only say "Input X contains infinity"
            raise DataError(
                f"{self.source}: column {name!r} holds {bad[1]} at row {bad[0] + 1}; features must be finite"
            )
        return values.astype(np.float64) if values.dtype == bool else values


@dataclass
class SparseTable:
    """An svmlight/libsvm file: the labels and a scipy CSR matrix (n, d), d from the largest index."""

    source: str
    X: object  # scipy.sparse.csr_matrix (n, d)
    labels: np.ndarray  # (n,): integers when every label is a whole number, else float64
    zero_based: bool = False

    def target_values(self, min_classes=1):
        """The labels; ``min_classes=2`` also refuses a single label (training needs two)."""
        if min_classes > 1:
            classes = np.unique(self.labels)
            if len(classes) < min_classes:
                n = len(self.labels)
                which = "its one example has" if n == 1 else f"all {n} of its examples have"
                raise DataError(
                    f"{self.source}: {which} the label {classes.tolist()[0]!r}; training needs at least two classes"
                )
        return self.labels

    def matrix(self, n_features=None):
        """X with ``n_features`` columns (a model's): a file whose largest index is lower is padded
        with empty columns (the same arrays, no copy); a higher index is a DataError naming it."""
        n, d = self.X.shape
        if n_features is None or n_features == d:
            return self.X
        first = 0 if self.zero_based else 1
        if d > n_features:
            row, _ = _svmlight.where_column(self.X, d - 1)
            raise DataError(
                f"{self.source}: line {_svmlight.line_of_row(self.source, row)} has feature index {d - 1 + first}, "
                f"but the model has {n_features} features (indices {first} to {n_features - 1 + first})"
            )
        import scipy.sparse as sp

        return sp.csr_matrix((self.X.data, self.X.indices, self.X.indptr), shape=(n, n_features))


def read_svmlight(source, dtype=np.float64) -> SparseTable:
    """Read an svmlight/libsvm file (.svm, .svmlight, .libsvm, each also .gz or .bz2).

    Every problem is a one-line DataError naming the file and, where known, the line.
    """
    source = str(source)
    path = Path(source)
    if not path.exists():
        raise DataError(f"{source}: no such file")
    if path.is_dir():
        raise DataError(f"{source}: is a folder; an svmlight/libsvm file is one text file")
    try:
        X, y, base0 = _svmlight.read(path, dtype=dtype)
    except _svmlight.SvmlightError as exc:
        raise DataError(f"{source}: {exc}") from None
    except (OSError, EOFError, zlib.error) as exc:  # unreadable, or a damaged .gz/.bz2
        raise DataError(f"{source}: cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    if np.all(y == np.round(y)) and np.abs(y).max() < 2**53:  # 1.0/-1.0 are the classes 1/-1, as written
        y = y.astype(np.int64)
    return SparseTable(source, X, y, base0)


def column_list(names) -> str:
    """Column names for a message, comma-separated: as they are when that is unambiguous, else
    quoted with escapes (a CSV header may name a column '', ' x' or 'a<newline>b')."""

    def shown(name):
        plain = name and name.isprintable() and name == name.strip() and "," not in name
        return name if plain else repr(name)

    return ", ".join(shown(name) for name in names)


def first_non_number(values):
    """(index, value) of the first value that does not read as a number, or None."""
    for i, value in enumerate(values):
        if value is None:  # a missing value has its own message
            continue
        try:
            float(value)
        except (TypeError, ValueError):
            return i, value
    return None


def first_non_finite(values):
    """(index, value as a plain float) of the first inf or nan in a float array, or None."""
    values = np.asarray(values)
    if values.dtype.kind != "f":
        return None
    bad = np.flatnonzero(~np.isfinite(values))
    return (int(bad[0]), float(values[bad[0]])) if len(bad) else None


def check_unique(names, source):
    """Refuse a header that names a column twice: pyarrow would keep both or fail on selecting one."""
    twice = [name for name, count in Counter(names).items() if count > 1]
    if twice:
        raise DataError(f"{source}: column {twice[0]!r} appears {names.count(twice[0])} times; rename one of them")


def column_kind(arrow_type):
    """'number', 'bool' or 'string' for a pyarrow type; None for any other type."""
    import pyarrow as pa

    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "number"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_dictionary(arrow_type):
        return "string"
    return None


def _starts_with(path, magic):
    try:
        with open(path, "rb") as fh:
            return fh.read(len(magic)) == magic
    except OSError:  # a folder, or unreadable: pyarrow will say why
        return False


def file_format(path):
    """'csv' (.csv, .csv.gz) or 'parquet' (.parquet, .pq, or Parquet's magic bytes), else None."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".csv") and _starts_with(path, GZIP_MAGIC):
        raise DataError(f"{path}: is gzip-compressed but named .csv; rename it to {path.name}.gz")
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")) or _starts_with(path, PARQUET_MAGIC):  # Hive's part files have no suffix
        return "parquet"
    return None


def csv_header(path):
    """A CSV file's column names, read by Python's csv module; None if the header cannot be read."""
    import csv
    import gzip

    try:
        opener = gzip.open if str(path).lower().endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            return next(csv.reader(fh), None)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error):
        return None


_CSV_CELL = re.compile(r"In CSV column #(\d+): Row #(-?\d+): (.*)")


def arrow_message(exc, names=None):
    """pyarrow's first line, shorter: no repeated file name, a CSV cell named by column and row."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^.*input source '[^']*': ", "", text)  # the file name is already in our message
    cell = _CSV_CELL.search(text)
    if cell and names is not None and int(cell[1]) < len(names):
        row = int(cell[2]) - 1  # pyarrow counts the header as row 1
        where = f"column {names[int(cell[1])]!r}" + (f", row {row}" if row >= 1 else "")
        return f"{where}: {cell[3]}"
    return text


def _from_arrow(table, source) -> Table:
    check_unique(table.column_names, source)
    columns = {}
    for name in table.column_names:
        col = table.column(name)
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{source}: column {name!r} has a missing value at row {row + 1}")
        kind = column_kind(col.type)
        if kind in ("number", "bool"):  # booleans stay bool: a bool target has classes False/True, as in scikit-learn
            columns[name] = col.to_numpy(zero_copy_only=False)
        elif kind == "string":
            columns[name] = np.asarray(col.to_pylist(), dtype=object)
        else:
            raise DataError(f"{source}: column {name!r} has unsupported type {col.type}")
    return Table(source, columns, order=list(table.column_names))


def _builtin(name) -> Table:
    if name == "hours":
        cols = {"hours": np.array([1.0, 2.0, 3.0]), "pass": np.array([0, 0, 1])}
        return Table(name, cols, order=["hours", "pass"])
    from sklearn import datasets

    loader = {"breast-cancer": datasets.load_breast_cancer, "digits": datasets.load_digits, "iris": datasets.load_iris}
    bunch = loader[name]()
    names = [str(f) for f in bunch.feature_names]
    cols = {f: bunch.data[:, j] for j, f in enumerate(names)}
    cols["target"] = bunch.target
    return Table(name, cols, order=names + ["target"])


def default_target(source) -> str | None:
    """The target column of a built-in data set; None for files."""
    return {"hours": "pass"}.get(source, "target" if source in BUILTIN else None)


def _read_arrow(path, source):
    """A pyarrow Table from a CSV or Parquet file (or a Parquet folder named *.parquet)."""
    fmt = file_format(path)
    names = None
    try:
        if fmt == "csv":
            from pyarrow import csv

            names = csv_header(path)  # to name the column of a cell pyarrow cannot convert
            table = csv.read_csv(path)
            check_unique(table.column_names, source)  # also decodes the names: pyarrow reads them lazily
            return table
        if fmt == "parquet":
            import pyarrow.parquet as pq

            if path.is_file():  # pq.read_table fails on a repeated name without saying which
                check_unique(pq.read_schema(path).names, source)
            return pq.read_table(path)
    except DataError:
        raise
    except UnicodeDecodeError:  # column names that are not UTF-8, e.g. a Latin-1 header
        raise DataError(f"{source}: cannot be read: its column names are not UTF-8 text") from None
    except Exception as exc:  # pyarrow raises several types; keep its first line
        raise DataError(f"{source}: cannot be read: {arrow_message(exc, names)}") from None
    suffix = path.suffix.lower() or path.name
    raise DataError(
        f"{source}: unsupported file type {suffix!r}; use .csv, .csv.gz, .parquet or an svmlight file (.svm, .libsvm)"
    )


def read_table(source, target=None) -> Table | SparseTable:
    """Read a CSV/Parquet file or a built-in data set ("hours", "breast-cancer", "digits", "iris");
    an svmlight/libsvm file (by its name) is a :class:`SparseTable`, whose target is its labels."""
    source = str(source)
    if _svmlight.is_svmlight(source) and source not in BUILTIN:
        if target is not None:
            raise DataError(
                f"{source}: an svmlight/libsvm file has no named columns; its target is the label "
                f"that starts each line (drop --target {target})"
            )
        return read_svmlight(source)
    if source in BUILTIN:
        table = _builtin(source)
        target = target or default_target(source)
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(f"{source}: no such file (and not a built-in data set: {', '.join(BUILTIN)})")
        table = _from_arrow(_read_arrow(path, source), source)
    if target is not None and target not in table.columns:
        raise DataError(f"{source}: target column {target!r} not found; columns are {column_list(table.order)}")
    table.target = target
    return table
