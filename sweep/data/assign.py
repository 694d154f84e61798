"""Which image goes into which shard: the train/validation split and the shard groups.

Training patients are dealt into shards by a fixed random permutation, so every shard is a random
group of patients. A job's subset (sweep.job.subset) then takes whole shards in a per-replica
order: a 10 % job downloads about 10 % of the training bytes, and its patients are still a random
sample. Validation and test are always read whole, so they are simply cut into pieces.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sweep import names
from sweep.data.split import stratified_patient_split
from sweep.data.validate import SourceDataset, SourceImage
from sweep.errors import DataError

VALIDATION_SHARE = 0.1  # of the train_val images, by patient; used for thresholds and per-epoch checks
VALIDATION_SEED = 0
SHARD_SEED = 0
MIN_TRAIN_SHARDS = 20  # so that a 10 % subset can stop after ~2 of 20 shards
MAX_RECORDS_PER_SHARD = 2048  # ~8 MB at 64 px: few files even for the full 112,120 images


@dataclass(frozen=True)
class ShardTask:
    file: str
    split: str
    images: tuple[SourceImage, ...]  # in record order


@dataclass(frozen=True)
class ShardAssignment:
    tasks: tuple[ShardTask, ...]
    records_per_shard: int

    def rule(self) -> dict[str, object]:
        return {
            "validation_share": VALIDATION_SHARE,
            "validation_seed": VALIDATION_SEED,
            "shard_seed": SHARD_SEED,
            "records_per_shard": self.records_per_shard,
            "train_shards": "random patient groups (a fixed permutation of the training patients)",
        }


def assign_shards(source: SourceDataset) -> ShardAssignment:
    by_split = _split_images(source)
    records_per_shard = min(
        MAX_RECORDS_PER_SHARD, max(1, math.ceil(len(by_split["train"]) / MIN_TRAIN_SHARDS))
    )
    groups = {
        "train": _patient_groups(by_split["train"], records_per_shard),
        "validation": _pieces(by_split["validation"], records_per_shard),
        "test": _pieces(by_split["test"], records_per_shard),
    }
    tasks = tuple(
        ShardTask(
            file=f"{split}-{index:05d}-of-{len(shards):05d}{names.SHARD_SUFFIX}", split=split, images=group
        )
        for split, shards in groups.items()
        for index, group in enumerate(shards)
    )
    return ShardAssignment(tasks=tasks, records_per_shard=records_per_shard)


def _split_images(source: SourceDataset) -> dict[str, list[SourceImage]]:
    train_val = [image for image in source.images if not image.test]
    images: dict[int, int] = defaultdict(int)
    positives: dict[int, list[int]] = {}
    for image in train_val:
        images[image.patient_id] += 1
        counts = positives.setdefault(image.patient_id, [0] * len(image.labels))
        for index, value in enumerate(image.labels):
            counts[index] += value
    validation = stratified_patient_split(positives, images, VALIDATION_SHARE, VALIDATION_SEED)
    by_split = {
        "train": [image for image in train_val if image.patient_id not in validation],
        "validation": [image for image in train_val if image.patient_id in validation],
        "test": [image for image in source.images if image.test],
    }
    empty = [split for split, members in by_split.items() if not members]
    if empty:
        sizes = ", ".join(f"{split} {len(members)}" for split, members in by_split.items())
        raise DataError(
            f"{source.folder} is too small to split by patient ({sizes} images); expected enough patients "
            f"for train, validation ({VALIDATION_SHARE:.0%} of {names.CXR_TRAIN_VAL_LIST}) and test"
        )
    return by_split


def _patient_groups(images: Sequence[SourceImage], records_per_shard: int) -> list[tuple[SourceImage, ...]]:
    """Whole patients, in a fixed random order, cut into ceil(images / records_per_shard) shards."""
    by_patient: dict[int, list[SourceImage]] = defaultdict(list)
    for image in sorted(images, key=lambda i: i.name):
        by_patient[image.patient_id].append(image)
    order = sorted(by_patient)
    random.Random(SHARD_SEED).shuffle(order)
    count = math.ceil(len(images) / records_per_shard)
    groups: list[tuple[SourceImage, ...]] = []
    current: list[SourceImage] = []
    done = 0
    for patient in order:
        current.extend(by_patient[patient])
        done += len(by_patient[patient])
        # Cut at the k-th of `count` equal parts of the images, so shards come out even and as many as planned.
        if done >= (len(groups) + 1) * len(images) / count:
            groups.append(tuple(current))
            current = []
    if current:
        groups.append(tuple(current))
    return groups


def _pieces(images: Sequence[SourceImage], records_per_shard: int) -> list[tuple[SourceImage, ...]]:
    ordered = sorted(images, key=lambda i: i.name)
    count = math.ceil(len(ordered) / records_per_shard)
    return [tuple(ordered[i * len(ordered) // count : (i + 1) * len(ordered) // count]) for i in range(count)]
