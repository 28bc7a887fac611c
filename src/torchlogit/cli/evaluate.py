"""`torchlogit evaluate`: metrics of a saved model on a table."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from ..metrics import evaluate as evaluate_model
from ._common import features_for_model, load_classifier, out


def evaluate(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A model saved by `torchlogit train`."),
    data: str = typer.Argument(
        ...,
        help="CSV/Parquet file, svmlight/libsvm file (.svm, .libsvm: its labels are the target), or built-in data set.",
    ),
    target: str = typer.Option(None, help="Target column."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Accuracy, log-loss, ROC AUC, confusion matrix and per-class precision/recall.

    Example: torchlogit evaluate bc.safetensors breast-cancer --json
    """
    from ..data import read_table

    model = load_classifier(model_path, "evaluate")
    table = read_table(data, target)
    y = table.target_values()
    result = evaluate_model(model, features_for_model(model, table), y)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    auc = "n/a" if result["roc_auc"] is None else f"{result['roc_auc']:.4f}"
    out.print(
        f"n = {result['n_samples']}  accuracy {result['accuracy']:.4f}  "
        f"log-loss {result['log_loss']:.4f}  ROC AUC {auc}"
    )
    per_class = Table("class", "precision", "recall", "f1", "support")
    for row in result["per_class"]:
        per_class.add_row(
            str(row["class"]),
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
        )
    out.print(per_class)
    cm = Table("true \\ predicted", *[str(c) for c in result["classes"]])
    for c, counts in zip(result["classes"], result["confusion_matrix"]):
        cm.add_row(str(c), *[str(v) for v in counts])
    out.print(cm)
