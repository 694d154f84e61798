"""Which training patients one job uses: deterministic, nested across fractions, few shards.

The job and the submit-side planner both call select_training_subset, so the files a job is sent
are exactly the files it reads. Orders come from SHA-256 of (subset_seed, name), not from numpy's
generators: the planner and the execute node may run different numpy versions, and the two must
agree to the last patient.

The rule: order the training shards by subset_seed, and the patients inside each shard by
subset_seed; walk that order and stop as soon as the images reach ceil(fraction x all training
images). A larger fraction walks further along the same order, so subsets of one subset_seed nest,
and a small fraction stops after a few whole shards. Shards are random patient groups (see
sweep.data.assign), so each replica's subset is still a random sample of patients.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True)
class TrainingSubset:
    fraction: float
    subset_seed: int
    patients: tuple[int, ...]  # sorted patient ids
    images: int
    shards: tuple[str, ...]  # the train shard files holding them, in manifest order


@dataclass(frozen=True)
class _Shard:
    file: str
    patients: tuple[tuple[int, int], ...]  # (patient id, images)


def select_training_subset(
    manifest: dict[str, Any], fraction: float | Decimal, subset_seed: int
) -> TrainingSubset:
    """The patients (and their shards) of the training subset; ValueError on a bad fraction or manifest."""
    shards = _train_shards(manifest)
    total = sum(count for shard in shards for _, count in shard.patients)
    target = _target_images(fraction, total)
    chosen, images, used = [], 0, set()
    for shard, patient, count in _walk(shards, subset_seed):
        if images >= target:
            break
        chosen.append(patient)
        images += count
        used.add(shard)
    return TrainingSubset(
        fraction=float(fraction),
        subset_seed=subset_seed,
        patients=tuple(sorted(chosen)),
        images=images,
        shards=tuple(shard.file for shard in shards if shard.file in used),
    )


def _walk(shards: list[_Shard], subset_seed: int) -> Iterator[tuple[str, int, int]]:
    """(shard file, patient id, images) in this subset_seed's order: shard by shard."""
    for shard in sorted(shards, key=lambda s: _rank(subset_seed, "shard", s.file)):
        for patient, count in sorted(shard.patients, key=lambda p: _rank(subset_seed, "patient", p[0])):
            yield shard.file, patient, count


def _rank(seed: int, kind: str, name: object) -> bytes:
    return hashlib.sha256(f"{seed}:{kind}:{name}".encode()).digest()


def _target_images(fraction: float | Decimal, total: int) -> int:
    """ceil(fraction x total), computed exactly: 0.1 x 1300 must be 130, not 131 (float 0.1 is 0.1000...0055)."""
    try:
        exact = Decimal(str(fraction))
    except InvalidOperation:
        raise ValueError(f"fraction {fraction!r} is not a number; accepted: a number in (0, 1]") from None
    if not (exact.is_finite() and 0 < exact <= 1):
        raise ValueError(f"fraction {fraction} is outside (0, 1]")
    return max(1, math.ceil(exact * total))


def _train_shards(manifest: dict[str, Any]) -> list[_Shard]:
    try:
        entries = manifest["splits"]["train"]["shards"]
        shards = [_Shard(str(e["file"]), tuple((int(p), int(n)) for p, n in e["patients"])) for e in entries]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"the manifest has no usable train shard list ({error!r}); rewrite it with `sweep data shard`"
        ) from None
    if not any(shard.patients for shard in shards):
        raise ValueError("the manifest lists no training patients")
    return shards
