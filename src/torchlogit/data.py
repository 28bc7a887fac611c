"""Tables for the command line: CSV or Parquet files (read by pyarrow) and the
built-in data sets, turned into a float feature matrix and a target column.

Every problem is reported as a :class:`DataError` of one line that names the
file, the column and, where known, the row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BUILTIN = ("hours", "breast-cancer", "digits", "iris")


class DataError(ValueError):
    """Unreadable data: missing file or column, non-numeric or missing values."""


@dataclass
class Table:
    """Named numeric columns plus the raw categorical ones, from one source."""

    source: str
    columns: dict  # name -> 1-D numpy array (numeric, or object for strings)
    target: str | None = None
    order: list = field(default_factory=list)

    def names(self):
        return list(self.order)

    def target_values(self):
        if self.target is None:
            raise DataError(f"{self.source}: no target column given (use --target COLUMN)")
        return self.columns[self.target]

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
            col, sep, value = name.partition("=")
            if sep and col in self.columns and self.columns[col].dtype == object:
                return (self.columns[col] == value).astype(np.float64)
            raise DataError(f"{self.source}: column {name!r} not found; columns are {', '.join(self.order)}")
        values = self.columns[name]
        if values.dtype == object:
            raise DataError(
                f"{self.source}: column {name!r} is not numeric (first value {values[0]!r}); "
                "encode it as numbers, or pass --one-hot to expand it into 0/1 columns"
            )
        return values


def _from_arrow(table, source) -> Table:
    import pyarrow as pa

    columns = {}
    for name in table.column_names:
        col = table.column(name)
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{source}: column {name!r} has a missing value at row {row + 1}")
        if pa.types.is_boolean(col.type):
            columns[name] = col.to_numpy(zero_copy_only=False).astype(np.float64)
        elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            columns[name] = col.to_numpy(zero_copy_only=False)
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_dictionary(col.type):
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


def read_table(source, target=None) -> Table:
    """Read a CSV/Parquet file or a built-in data set ("hours", "breast-cancer", "digits", "iris")."""
    source = str(source)
    if source in BUILTIN:
        table = _builtin(source)
        target = target or default_target(source)
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(f"{source}: no such file (and not a built-in data set: {', '.join(BUILTIN)})")
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                from pyarrow import csv

                arrow = csv.read_csv(path)
            elif suffix in (".parquet", ".pq"):
                import pyarrow.parquet as pq

                arrow = pq.read_table(path)
            else:
                raise DataError(f"{source}: unsupported file type {suffix!r}; use .csv or .parquet")
        except DataError:
            raise
        except Exception as exc:  # pyarrow's parse errors carry the row; keep its first line
            raise DataError(f"{source}: cannot be read: {str(exc).splitlines()[0]}") from None
        table = _from_arrow(arrow, source)
    if target is not None and target not in table.columns:
        raise DataError(f"{source}: target column {target!r} not found; columns are {', '.join(table.order)}")
    table.target = target
    return table
