"""Classification metrics as plain dicts of numbers (JSON-ready)."""
import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support


def classification_report(y_true, y_pred, num_classes):
    labels = list(range(num_classes))
    precision, recall, _, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "precision": [float(v) for v in precision],
        "recall": [float(v) for v in recall],
        "support": [int(v) for v in support],
        # rows: true class, columns: predicted class
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
