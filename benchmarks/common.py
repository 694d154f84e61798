"""What both benchmarks need: a synthetic dataset and its shards in a scratch folder, timed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sweep.data.manifest import DataManifest
from sweep.data.shard import shard_dataset
from sweep.data.synth import synthesize


@dataclass(frozen=True)
class Prepared:
    manifest: DataManifest
    synth_seconds: float
    shard_seconds: float


def prepare_shards(scratch: Path, images: int, size: int, seed: int = 0) -> Prepared:
    started = time.perf_counter()
    synthesize(scratch / "cxr", images=images, size=size, seed=seed)
    synthesized = time.perf_counter()
    manifest = shard_dataset(scratch / "cxr", scratch / "shards", size=size)
    return Prepared(manifest, synthesized - started, time.perf_counter() - synthesized)
