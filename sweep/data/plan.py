"""Which shard files one training job needs, and how many bytes that moves.

The job reads the manifest, the train shards of its subset and all of validation and test (every
job is evaluated on the same whole test split). The subset comes from the very function the job
calls, so the plan and the job cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sweep import names
from sweep.data.manifest import DataManifest
from sweep.errors import DataError
from sweep.job.subset import select_training_subset


@dataclass(frozen=True)
class ItemDataPlan:
    files: tuple[str, ...]  # names relative to the shard folder; the job finds them flat in its sandbox
    bytes: int
    train_images: int
    train_patients: int
    train_shards: int


def plan_item_inputs(manifest: DataManifest, fraction: float | Decimal, subset_seed: int) -> ItemDataPlan:
    try:
        subset = select_training_subset(manifest.to_dict(), fraction, subset_seed)
    except ValueError as error:
        raise DataError(f"{manifest.folder}: cannot select a training subset: {error}") from None
    sizes = {shard.file: shard.bytes for shard in manifest.shards()}
    evaluation = [shard.file for split in ("validation", "test") for shard in manifest.splits[split].shards]
    shard_files = (*subset.shards, *evaluation)
    manifest_bytes = (manifest.folder / names.DATA_MANIFEST).stat().st_size
    return ItemDataPlan(
        files=(names.DATA_MANIFEST, *shard_files),
        bytes=manifest_bytes + sum(sizes[file] for file in shard_files),
        train_images=subset.images,
        train_patients=len(subset.patients),
        train_shards=len(subset.shards),
    )
