"""Evaluation of a fitted classifier: one call, a plain dict (JSON-ready)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics


def evaluate(model, X, y) -> dict:
    """Accuracy, log-loss, ROC AUC (binary; macro one-vs-rest for K >= 3; None when undefined),
    confusion matrix and per-class precision/recall/F1/support."""
    classes = model.classes_
    unknown = sorted(set(np.unique(y).tolist()) - set(classes.tolist()), key=str)
    if unknown:
        raise ValueError(f"labels {unknown} in the data were not seen in training (classes: {classes.tolist()})")
    proba = model.predict_proba(X)
    pred = classes[proba.argmax(1)]
    present = np.unique(y)
    if len(present) < 2 or (len(classes) > 2 and len(present) < len(classes)):
        auc = None  # undefined: one-vs-rest AUC needs every class among the labels
    elif len(classes) == 2:
        auc = float(metrics.roc_auc_score(y == classes[1], proba[:, 1]))
    else:
        auc = float(metrics.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(y, pred, labels=classes, zero_division=0)
    return {
        "n_samples": int(len(y)),
        "accuracy": float(metrics.accuracy_score(y, pred)),
        "log_loss": float(metrics.log_loss(y, proba, labels=classes)),
        "roc_auc": auc,
        "classes": [c.item() if hasattr(c, "item") else c for c in classes],
        "confusion_matrix": metrics.confusion_matrix(y, pred, labels=classes).tolist(),
        "per_class": [
            {
                "class": c.item() if hasattr(c, "item") else c,
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s),
            }
            for c, p, r, f, s in zip(classes, precision, recall, f1, support)
        ],
    }
