"""Test-split AUC per label and macro, and per-label thresholds chosen on validation.

Pure numpy + scikit-learn (no TensorFlow), so the arithmetic is tested fast and the numbers can be
recomputed from predictions.npz. roc_auc_score is the reference definition of AUC here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

Thresholds = dict[str, dict[str, float | int | str | None]]

# The reference report's rule was "lowest probability among the positives"; the fixed 0.5 is
# what made its model say "no" to everything, kept so a report can show the difference.
FIXED_THRESHOLD = 0.5


def not_evaluable_reason(truth: np.ndarray, split: str) -> str | None:
    """Why one label's AUC cannot be computed on a split, or None if it can."""
    positives = int(truth.sum())
    if positives == 0:
        return f"no positives in the {split} split"
    if positives == len(truth):
        return f"no negatives in the {split} split"
    return None


def auc_report(labels: Sequence[str], truth: np.ndarray, scores: np.ndarray) -> dict[str, object]:
    """Per-label ROC AUC on test; labels without both classes are left out of the macro mean."""
    per_label: dict[str, float | None] = {}
    not_evaluable: dict[str, str] = {}
    for column, label in enumerate(labels):
        reason = not_evaluable_reason(truth[:, column], "test")
        if reason:
            per_label[label], not_evaluable[label] = None, reason
        else:
            per_label[label] = float(roc_auc_score(truth[:, column], scores[:, column]))
    evaluated = [value for value in per_label.values() if value is not None]
    return {
        "auc_macro": float(np.mean(evaluated)) if evaluated else None,
        "auc_labels_evaluated": len(evaluated),
        "auc_per_label": per_label,
        "not_evaluable": not_evaluable,
    }


def lowest_positive_threshold(truth: np.ndarray, scores: np.ndarray) -> float:
    """The reference report's rule: the lowest score any positive got, so every positive is caught."""
    return float(scores[truth == 1].min())


def youden_threshold(truth: np.ndarray, scores: np.ndarray) -> float:
    """The score that maximises sensitivity + specificity - 1 on the ROC curve."""
    fpr, tpr, thresholds = roc_curve(truth, scores)
    finite = np.isfinite(thresholds)  # the first point (predict nothing) has threshold +inf
    best = int(np.argmax(np.where(finite, tpr - fpr, -np.inf)))
    return float(thresholds[best])


def rates_at(truth: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float | int | str | None]:
    """Precision, recall, specificity and how often positive is predicted, at score >= threshold."""
    predicted = scores >= threshold
    positives, negatives = truth == 1, truth == 0
    true_positives = int((predicted & positives).sum())
    return {
        "threshold": float(threshold),
        "precision": _ratio(true_positives, int(predicted.sum())),
        "recall": _ratio(true_positives, int(positives.sum())),
        "specificity": _ratio(int((~predicted & negatives).sum()), int(negatives.sum())),
        "predicted_positive_rate": float(predicted.mean()),
        "predicted_positives": int(predicted.sum()),
    }


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


RULES: dict[str, Callable[[np.ndarray, np.ndarray], float] | None] = {
    "lowest_positive": lowest_positive_threshold,
    "youden": youden_threshold,
    "fixed_0.5": None,
}


def threshold_report(
    labels: Sequence[str],
    validation_truth: np.ndarray,
    validation_scores: np.ndarray,
    test_truth: np.ndarray,
    test_scores: np.ndarray,
) -> dict[str, Thresholds]:
    """For each rule and label: the threshold chosen on validation, and the rates it gives on test."""
    report: dict[str, Thresholds] = {}
    for rule, choose in RULES.items():
        report[rule] = {}
        for column, label in enumerate(labels):
            truth_v, scores_v = validation_truth[:, column], validation_scores[:, column]
            reason = not_evaluable_reason(truth_v, "validation") if choose else None
            if reason:
                report[rule][label] = {"threshold": None, "reason": reason}
                continue
            threshold = choose(truth_v, scores_v) if choose else FIXED_THRESHOLD
            report[rule][label] = rates_at(test_truth[:, column], test_scores[:, column], threshold)
    return report


def _positive_count(value: object) -> bool:
    return isinstance(value, (int, float)) and value > 0


def labels_predicting_positives(report: dict[str, Thresholds]) -> dict[str, int]:
    """Per rule, how many labels get any positive prediction on test: 0 is the all-negative collapse."""
    return {
        rule: sum(1 for entry in per_label.values() if _positive_count(entry.get("predicted_positives")))
        for rule, per_label in report.items()
    }
