"""Per-label loss weights that keep the model from saying "no" to everything.

Every ChestX-ray14 label is rare (0.2 %-18 % of images), so plain binary cross-entropy is
minimised by predicting "no finding" everywhere: that is how the reference project ended with a
flat AUC. Here each label's positives and negatives carry equal total weight (as scikit-learn's
class_weight="balanced", per label), computed from the job's own training subset.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_POSITIVE_WEIGHT = 50.0  # one positive among 500 images must not dominate every batch it is in


def balanced_weights(positives: Sequence[int], images: int) -> tuple[list[float], list[float]]:
    """(positive weights, negative weights) per label: each class gets half of the label's total weight.

    A label without positives (or negatives) in the subset keeps weight 1: there is nothing to balance.
    """
    pos_weights, neg_weights = [], []
    for count in positives:
        if 0 < count < images:
            pos_weights.append(min(images / (2 * count), MAX_POSITIVE_WEIGHT))
            neg_weights.append(images / (2 * (images - count)))
        else:
            pos_weights.append(1.0)
            neg_weights.append(1.0)
    return pos_weights, neg_weights
