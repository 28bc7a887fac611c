"""In-memory tables (torchlogit.data): every bad file is one line naming the file, the column and the row."""

import gzip

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from torchlogit.data import DataError, read_table


def write(path, text):
    path.write_text(text)
    return path


def test_a_repeated_column_name_is_named(tmp_path):
    csv = write(tmp_path / "dup.csv", "a,a,y\n1,2,0\n2,3,1\n")  # pyarrow's CSV reader keeps both columns
    with pytest.raises(DataError, match=r"^.*dup\.csv: column 'a' appears 2 times; rename one of them$"):
        read_table(csv, "y")
    parquet = tmp_path / "dup.parquet"  # pq.read_table fails on selecting either one
    pq.write_table(
        pa.table([pa.array([1.0, 2.0]), pa.array([3.0, 4.0]), pa.array([0, 1])], names=["a", "a", "y"]), parquet
    )
    with pytest.raises(DataError, match=r"dup\.parquet: column 'a' appears 2 times"):
        read_table(parquet, "y")


def test_inf_in_the_target_or_a_feature_names_column_and_row(tmp_path):
    table = read_table(write(tmp_path / "t.csv", "x,y\n1,0\n2,inf\n3,1\n"), "y")
    with pytest.raises(DataError, match=r"t\.csv: target column 'y' holds inf at row 2$"):
        table.target_values()
    pq.write_table(pa.table({"x": [1.0, 2.0, np.nan], "y": [0, 1, 1]}), tmp_path / "n.parquet")
    with pytest.raises(DataError, match=r"n\.parquet: column 'x' holds nan at row 3; features must be finite$"):
        read_table(tmp_path / "n.parquet", "y").features()


def test_a_single_class_target_is_named_in_plain_python(tmp_path):
    table = read_table(write(tmp_path / "one.csv", "x,y\n1,1\n"), "y")
    assert table.target_values().tolist() == [1]  # evaluating on one row is fine
    with pytest.raises(DataError, match=r"one\.csv: target column 'y' has the single class 1 in its 1 row; training"):
        table.target_values(min_classes=2)


def test_gzip_named_csv_is_said_and_csv_gz_is_read(tmp_path):
    (tmp_path / "z.csv").write_bytes(gzip.compress(b"x,y\n1,0\n2,1\n"))
    with pytest.raises(DataError, match=r"z\.csv: is gzip-compressed but named \.csv; rename it to z\.csv\.gz$"):
        read_table(tmp_path / "z.csv", "y")
    (tmp_path / "z.csv").rename(tmp_path / "z.csv.gz")
    X, names = read_table(tmp_path / "z.csv.gz", "y").features()
    assert names == ["x"] and X.ravel().tolist() == [1.0, 2.0]


def test_a_quoted_decimal_comma_is_cited_with_its_row(tmp_path):
    table = read_table(write(tmp_path / "q.csv", 'x,y\n1,0\n"1,5",1\n3,1\n'), "y")
    with pytest.raises(DataError, match=r"q\.csv: column 'x' is not numeric: row 2 holds '1,5'; encode it"):
        table.features()


def test_a_bool_target_keeps_its_labels_and_a_bool_feature_is_0_1(tmp_path):
    table = read_table(write(tmp_path / "b.csv", "x,f,y\n1,true,false\n2,false,true\n"), "y")
    y = table.target_values()
    assert y.dtype == bool and np.unique(y).tolist() == [False, True]  # what scikit-learn's classes_ would be
    X, _ = table.features()
    assert X.tolist() == [[1.0, 1.0], [2.0, 0.0]]


def test_odd_headers_and_empty_tables_found_by_fuzzing(tmp_path):
    """tests/test_fuzz.py found each: a traceback or a message over two lines, now one DataError line."""
    # a column name with a newline is quoted in the list of columns, so the message stays on one line
    csv = write(tmp_path / "nl.csv", '"a\nb",x\n1,2\n')
    with pytest.raises(DataError, match=r"target column 'y' not found; columns are 'a\\nb', x$") as info:
        read_table(csv, "y")
    assert len(str(info.value).splitlines()) == 1
    with pytest.raises(DataError, match=r"column 'q' not found; columns are 'a\\nb', x$"):
        read_table(csv).features(["q"])
    # a header that is not UTF-8 (pyarrow decodes the names only when asked for them)
    (tmp_path / "latin1.csv").write_bytes("caf\xe9,y\n1,0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv: cannot be read: its column names are not UTF-8 text$"):
        read_table(tmp_path / "latin1.csv", "y")
    # a text column without rows
    pq.write_table(pa.table({"s": pa.array([], pa.string()), "y": pa.array([], pa.int64())}), tmp_path / "e.parquet")
    with pytest.raises(DataError, match=r"column 's' is not numeric: a text column \(no rows\); encode it"):
        read_table(tmp_path / "e.parquet", "y").features()
    # --one-hot on a column whose own name holds '=': its indicator columns are found
    table = read_table(write(tmp_path / "eq.csv", "a=b,y\nc,0\nd,1\n"), "y")
    X, names = table.features(one_hot=True)
    assert names == ["a=b=c", "a=b=d"] and X.tolist() == [[1.0, 0.0], [0.0, 1.0]]
