"""Patient-level splits that keep every label on both sides.

A plain random patient split of a small, imbalanced dataset easily puts all five Hernia images on
one side: then the label cannot be evaluated (no test positives) or thresholded (no validation
positives). So patients are drawn label by label, rarest first (iterative stratification), and the
rest are drawn at random until the held-out side has its share of images.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence


def stratified_patient_split(
    positives: Mapping[int, Sequence[int]],
    images: Mapping[int, int],
    share: float,
    seed: int,
) -> frozenset[int]:
    """The patients of the held-out side: about `share` of the images and of every label's positives.

    positives: per patient, the number of positive images for each label (same label order for all).
    images: per patient, the number of images. Every label carried by two or more patients ends up
    with at least one positive patient on each side.
    """
    rng = random.Random(seed)
    patients = sorted(images)
    held: set[int] = set()
    kept: set[int] = set()
    label_count = len(next(iter(positives.values()), ()))
    totals = [sum(positives[p][label] for p in patients) for label in range(label_count)]
    for label in sorted(range(label_count), key=lambda index: (totals[index], index)):
        _draw_carriers(label, patients, positives, held, kept, share, rng)
    _fill_to_share(patients, images, held, kept, share, rng)
    return frozenset(held)


def _draw_carriers(
    label: int,
    patients: list[int],
    positives: Mapping[int, Sequence[int]],
    held: set[int],
    kept: set[int],
    share: float,
    rng: random.Random,
) -> None:
    carriers = [p for p in patients if positives[p][label] > 0]
    if len(carriers) < 2:
        return
    wanted = max(1, round(share * sum(positives[p][label] for p in carriers)))
    have = sum(positives[p][label] for p in carriers if p in held)
    outside = sum(1 for p in carriers if p not in held)
    free = [p for p in carriers if p not in held and p not in kept]
    rng.shuffle(free)
    for patient in free:
        if have >= wanted or outside <= 1:  # keep at least one carrier on the other side
            break
        held.add(patient)
        have += positives[patient][label]
        outside -= 1
    # The carriers not drawn stay out, so later (commoner) labels cannot upset this label's balance.
    kept.update(p for p in free if p not in held)


def _fill_to_share(
    patients: list[int],
    images: Mapping[int, int],
    held: set[int],
    kept: set[int],
    share: float,
    rng: random.Random,
) -> None:
    target = share * sum(images.values())
    have = sum(images[p] for p in held)
    free = [p for p in patients if p not in held and p not in kept]
    rng.shuffle(free)
    for patient in free:
        if have >= target:
            break
        held.add(patient)
        have += images[patient]
