"""`torchlogit predict`: labels or probabilities as CSV."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import typer

from .. import load
from .._atomic import atomic_write_bytes
from ..data import read_table
from ._common import as_list, features_for_model, load_classifier, out, output_path


def predict(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A model saved by `torchlogit train`."),
    data: str = typer.Argument(
        ...,
        help="CSV/Parquet file (extra columns are ignored), svmlight/libsvm file (.svm, .libsvm) or built-in data set.",
    ),
    out_file: Path = typer.Option(None, "--out", help="CSV file to write (default: standard output)."),
    proba: bool = typer.Option(False, "--proba", help="Write one probability column per class instead of labels."),
):
    """Predict labels (or probabilities) for every row of DATA.

    Example: torchlogit predict bc.safetensors new_patients.csv --proba --out scores.csv
    """
    output_path(out_file)
    model = load_classifier(model_path, "predict --proba") if proba else load(model_path)
    X = features_for_model(model, read_table(data))
    if proba:
        P = model.predict_proba(X)
        table = pa.table({f"proba_{c}": P[:, j] for j, c in enumerate(model.classes_)})
    else:
        table = pa.table({"prediction": as_list(model.predict(X))})
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    if out_file is None:
        print(buf.getvalue().decode(), end="")
    else:
        atomic_write_bytes(out_file, buf.getvalue())
        out.print(f"wrote {len(table)} rows to {out_file}")
