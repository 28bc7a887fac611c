"""svmlight / libsvm text files: ``label [qid:Q] index:value index:value ...  # comment``.

scikit-learn's compiled reader parses the file (fast, straight into a CSR
matrix). When it fails, or a value is not finite, the file is read again here,
line by line, to say where and why: every problem is a :class:`SvmlightError`
whose message starts with the line number (counted from 1, comment and blank
lines included) but not the file name, which the caller adds
(:func:`torchlogit.data.read_svmlight`). No other module is imported, so that
``data`` can use this one without a circle.

Indices are one-based, as libsvm defines them, unless a comment line before
the first example says "Column indices are zero-based" (scikit-learn's
``dump_svmlight_file`` writes that line when given a comment). Guessing per
file, as scikit-learn's ``zero_based='auto'`` does (zero-based when some index
is 0), could read a training file as zero-based and a prediction file without
an index 0 as one-based, every column shifted by one; here an index 0 in a
one-based file is refused, naming its line.
"""

from __future__ import annotations

import bz2
import gzip
import re

import numpy as np

SUFFIXES = tuple(kind + packed for kind in (".svm", ".svmlight", ".libsvm") for packed in ("", ".gz", ".bz2"))
MAX_FEATURES = 2**31 - 1  # a larger index would ask for a dense coefficient vector of over 16 GB
_BASE_COMMENT = re.compile(rb"column indices are (zero|one)-based", re.IGNORECASE)
_HEADER_LINE = 1 << 16  # bytes read of a line while looking for the header: a binary file may have no newline


class SvmlightError(ValueError):
    """Not svmlight/libsvm text: the message says where ("line 3: ...") and why, without the file name."""


def is_svmlight(name) -> bool:
    """Whether a file name ends in .svm, .svmlight or .libsvm (each also with .gz or .bz2)."""
    return str(name).lower().endswith(SUFFIXES)


def _open(path):
    """The file as bytes, decompressed as its name says (as scikit-learn's reader decides)."""
    name = str(path).lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def zero_based(path) -> bool:
    """True when a comment line before the first example says 'Column indices are zero-based'."""
    with _open(path) as fh:
        while line := fh.readline(_HEADER_LINE):
            text = line.strip()
            if text and not text.startswith(b"#"):
                return False  # the first example: no header
            found = _BASE_COMMENT.search(text)
            if found:
                return found[1].lower() == b"zero"
    return False


def _examples(path):
    """(line number, tokens) of every line that holds an example (scikit-learn's rule: the text
    before '#', stripped, not empty)."""
    with _open(path) as fh:
        for number, line in enumerate(fh, 1):
            tokens = line.split(b"#", 1)[0].split()
            if tokens:
                yield number, tokens


def line_of_row(path, row) -> int | None:
    """The line number of example ``row`` (counted from 0), or None past the end."""
    for i, (number, _) in enumerate(_examples(path)):
        if i == row:
            return number
    return None


def read(path, dtype=np.float64):
    """(X, y, zero_based): X a scipy CSR matrix (n, d) of ``dtype``, y the float64 labels (n,).

    d is the largest index seen (plus one if zero-based); SvmlightError for anything unreadable,
    an empty file, a non-finite label or value, or an index beyond ``MAX_FEATURES``.
    """
    from sklearn.datasets import load_svmlight_file

    base0 = zero_based(path)
    try:
        X, y = load_svmlight_file(str(path), dtype=dtype, zero_based=base0)
    except (ValueError, OverflowError) as exc:  # scikit-learn does not say where: find the line
        found = _first_bad_line(path, 0 if base0 else 1)
        raise SvmlightError(found or f"cannot be read: {_first_line(exc)}") from None
    if X.shape[0] == 0:
        raise SvmlightError("holds no examples (empty, or only comments and blank lines)")
    X = X.tocsr()
    _check_values(path, X, y, 0 if base0 else 1)
    return X, y, base0


def _check_values(path, X, y, first):
    """Labels and values must be finite (float32 overflows to inf), indices at most MAX_FEATURES."""
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise SvmlightError(f"line {line_of_row(path, int(bad[0]))}: label {y[bad[0]]} is not a finite number")
    bad = np.flatnonzero(~np.isfinite(X.data))
    if len(bad):
        row = int(np.searchsorted(X.indptr, bad[0], side="right")) - 1
        feature = int(X.indices[bad[0]]) + first
        raise SvmlightError(
            f"line {line_of_row(path, row)}: feature {feature} holds {X.data[bad[0]]}; "
            f"features must be finite{' float32 numbers' if X.dtype == np.float32 else ''}"
        )
    if X.shape[1] > MAX_FEATURES:
        row, _ = where_column(X, X.shape[1] - 1)
        raise SvmlightError(
            f"line {line_of_row(path, row)}: feature index {X.shape[1] - 1 + first} is too large "
            f"(at most {MAX_FEATURES - 1 + first} features)"
        )


def where_column(X, column):
    """(row, position in X.data) of the first stored entry of ``column`` in a CSR matrix."""
    at = int(np.flatnonzero(X.indices == column)[0])
    return int(np.searchsorted(X.indptr, at, side="right")) - 1, at


def _first_bad_line(path, first):
    """'line N: why' for the first line that is not 'label [qid:Q] index:value ...', or None."""
    for number, tokens in _examples(path):
        problem = _line_problem(tokens, first)
        if problem:
            return f"line {number}: {problem}"
    return None


def _line_problem(tokens, first):
    label, *pairs = tokens
    if not _is_number(label):
        multi = " (multi-label files are not supported)" if b"," in label else ""
        return f"the label {_show(label)} is not a number{multi}"
    if pairs and pairs[0].startswith(b"qid:"):
        pairs = pairs[1:]
    previous = None
    for token in pairs:
        index, colon, value = token.partition(b":")
        if not colon:
            return f"{_show(token)} is not index:value"
        try:
            i = int(index)
        except ValueError:
            return f"the index {_show(index)} of {_show(token)} is not a whole number"
        if i < first:
            if i == 0:
                return (
                    "feature index 0, but indices start at 1 (one-based, as libsvm writes them); "
                    "a zero-based file says so in a comment line before the first example: "
                    "'# Column indices are zero-based'"
                )
            return f"feature index {i} is negative"
        if i > MAX_FEATURES:
            return f"feature index {i} is too large (at most {MAX_FEATURES - 1 + first} features)"
        if not _is_number(value):
            return f"the value {_show(value)} of feature {i} is not a number"
        if previous is not None and i <= previous:
            return f"feature indices must increase along a line: {i} comes after {previous}"
        previous = i
    return None


def _is_number(text) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _show(text: bytes, width=40) -> str:
    shown = text.decode("utf-8", "backslashreplace")
    return repr(shown if len(shown) <= width else shown[:width] + "...")


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
