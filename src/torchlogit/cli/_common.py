"""What every command shares: the consoles, exit codes, data loading, progress."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .._svmlight import is_svmlight
from ..data import DataError, SparseTable, read_table

out = Console(soft_wrap=True)  # no hard line breaks: output stays greppable
err = Console(stderr=True)

# Exit codes (documented in docs/user_guide/cli.md and in `torchlogit --help`).
EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_DATA, EXIT_MODEL, EXIT_INTERNAL, EXIT_NETWORK, EXIT_DISTRIBUTED, EXIT_OUTPUT = (
    range(9)
)
EXIT_INTERRUPTED = 130  # Ctrl-C, at any moment: nothing printed
EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 invalid value or parameter; 2 usage error; "
    "3 data error (file, column, row); 4 model or checkpoint file error; 5 internal error; 6 download failed; "
    "7 distributed job failed (a rank stopped or timed out); 8 cannot write the output (checked before any "
    "work starts); 130 interrupted (Ctrl-C)."
)
DATA_DIR_HELP = "Image data sets: the folder holding NAME/ (as written by `torchlogit datasets download`) or the files."


def report_error(message: str) -> None:
    """The one line every failure prints on stderr."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # text, not markup


def fail(message: str, code: int = EXIT_INVALID):
    """One line on stderr and a non-zero exit; no traceback."""
    report_error(message)
    raise typer.Exit(code)


def output_path(path, folder=False):
    """Check, before any work starts, that the output can be written (OutputError: exit 8).

    ``folder=True``: ``path`` is a folder to write into, created if missing.
    Returns ``path``; None passes through (no output asked for).
    """
    if path is None:
        return None
    from .._atomic import OutputError, check_writable

    if folder:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(exc.errno, f"{path}: cannot create the folder: {exc.strerror}") from None
        check_writable(path / ".torchlogit-probe")
    else:
        check_writable(path)
    return path


def load_classifier(path, verb: str):
    """A saved classifier; a regression model (which the library can save) is refused in one line (exit 4)."""
    from .. import load

    model = load(path)
    if not hasattr(model, "classes_"):
        fail(f"{path}: a {type(model).__name__} model has no classes; `{verb}` needs a classifier", EXIT_MODEL)
    return model


def frame(X, names):
    """A pandas DataFrame, so that estimators record and check feature names."""
    import pandas as pd

    return pd.DataFrame(X, columns=names)


def load_xy(data, target, features=None, one_hot=False):
    """(X, y, table) from a file or a built-in data set; the target is required.

    X is a DataFrame (named columns) for a table, the CSR matrix of an svmlight file.
    """
    given = "--features" if features is not None else "--one-hot" if one_hot else None
    if given and is_svmlight(data):  # refused before a long read
        raise DataError(f"{data}: an svmlight/libsvm file has numbered features only; drop {given}")
    table = read_table(data, target)
    if isinstance(table, SparseTable):
        return table.X, table.target_values(min_classes=2), table
    y = table.target_values(min_classes=2)  # DataError: no target column, or a single class
    X, names = table.features(features, one_hot=one_hot)
    return frame(X, names), y, table


def image_set(data: str, data_dir):
    """The ImageDataset named ``data`` (mnist, fashion-mnist, cifar10) read from ``data_dir``, or None."""
    from .. import datasets

    try:
        spec = datasets.get_spec(data)
    except ValueError:
        return None  # a table, not an image data set
    if data_dir is None:
        raise DataError(
            f"{spec.name} is an image data set: give --data-dir DIR (get it with "
            f"`torchlogit datasets download {spec.name} --dir DIR`)"
        )
    return datasets.load(spec.name, data_dir)


def features_for_model(model, table):
    """The columns a fitted model expects, taken from ``table`` by name (an svmlight file: by
    index, padded to the model's feature count)."""
    if isinstance(table, SparseTable):
        return table.matrix(model.n_features_in_)
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        X, names = table.features(list(names))
        return frame(X, names)
    X, names = table.features()
    if X.shape[1] != model.n_features_in_:
        raise DataError(f"{table.source}: {X.shape[1]} feature columns, but the model expects {model.n_features_in_}")
    return X


@contextlib.contextmanager
def progress(total: int, description: str, enabled: bool = True):
    """A rich progress bar on stderr; yields callback(info) for ``fit(callback=...)``."""
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err, transient=False, disable=not (enabled and err.is_terminal)) as bar:
        task = bar.add_task(description, total=total, loss="-")

        def callback(info):
            rate = f", {info.rows_per_s:,.0f} rows/s" if getattr(info, "rows_per_s", None) else ""
            bar.update(task, completed=info.iteration, loss=f"{info.fun:.6g}{rate}")

        yield callback


@contextlib.contextmanager
def convergence_record():
    """Collect ConvergenceWarnings instead of printing them; yields the list of messages."""
    from sklearn.exceptions import ConvergenceWarning

    messages = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        yield messages
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            messages.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def as_list(values):
    return [v.item() if isinstance(v, np.generic) else v for v in values]
