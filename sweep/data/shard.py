"""`sweep data shard`: a ChestX-ray14-layout folder -> patient-split TFRecord shards + manifest.json.

Order of work: refuse a used OUT, validate the source (nothing is written until it passes),
assign images to shards, write the shards on every core into a temporary folder beside OUT,
refuse if any image did not decode, write manifest.json, rename the folder to OUT.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from multiprocessing.pool import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from sweep import __version__, names
from sweep.data import layout
from sweep.data.assign import ShardAssignment, ShardTask, assign_shards
from sweep.data.manifest import (
    IMAGE_ENCODING,
    SPLITS,
    DataManifest,
    ShardInfo,
    SplitInfo,
    content_hash,
    load_data_manifest,
    write_data_manifest,
)
from sweep.data.problems import Problems
from sweep.data.staging import refuse_existing_output, staged_folder
from sweep.data.tfrecord import encode_example, frame_record
from sweep.data.validate import SourceDataset, validate_source
from sweep.errors import DataError

Progress = Callable[[int, int], None]
MIN_SIZE, MAX_SIZE = layout.SHARD_SIZES
READABLE_HINT = "PNG (or other Pillow-readable) images, grayscale or RGB, 8 or 16 bit"


@dataclass(frozen=True)
class ShardWork:
    task: ShardTask
    images_dir: Path
    out_dir: Path
    size: int


@dataclass(frozen=True)
class ShardWritten:
    file: str
    bytes: int
    sha256: str
    unreadable: tuple[str, ...]  # one line per image that did not decode


def shard_dataset(src: Path, out: Path, size: int = 64, progress: Progress | None = None) -> DataManifest:
    """Validate SRC, then write OUT as a whole (or nothing); returns OUT's manifest, read back."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise DataError(f"--size {size} is out of range; accepted: {MIN_SIZE} to {MAX_SIZE} pixels")
    refuse_existing_output(out)
    source = validate_source(src)
    assignment = assign_shards(source)
    with staged_folder(out) as staging:
        work = [ShardWork(task, src / names.CXR_IMAGES_DIR, staging, size) for task in assignment.tasks]
        written = _write_all(work, progress or _ignore)
        _refuse_unreadable(src, written)
        write_data_manifest(_manifest(staging, source, assignment, written, size))
    return load_data_manifest(out)


def _ignore(done: int, total: int) -> None:
    pass


def _worker_count(tasks: int) -> int:
    return max(1, min(len(os.sched_getaffinity(0)), tasks))


def _write_all(work: Sequence[ShardWork], progress: Progress) -> dict[str, ShardWritten]:
    sizes = {w.task.file: len(w.task.images) for w in work}
    total, done, written = sum(sizes.values()), 0, {}
    progress(0, total)
    # Largest shards first, so no core idles at the end waiting for one big shard.
    ordered = sorted(work, key=lambda w: -len(w.task.images))
    with _pool(_worker_count(len(ordered))) as pool:
        results = pool.imap_unordered(_write_shard, ordered) if pool else map(_write_shard, ordered)
        for result in results:
            written[result.file] = result
            done += sizes[result.file]
            progress(done, total)
    return written


def _pool(workers: int) -> AbstractContextManager[Pool | None]:
    if workers == 1:
        return nullcontext(None)
    # spawn, not fork: the caller may have started threads (TensorFlow in tests, rich's progress).
    return multiprocessing.get_context("spawn").Pool(workers)


def _write_shard(work: ShardWork) -> ShardWritten:
    digest, written, unreadable = hashlib.sha256(), 0, []
    with (work.out_dir / work.task.file).open("wb") as handle:
        for image in work.task.images:
            try:
                pixels = load_pixels(work.images_dir / image.name, work.size)
            except (OSError, ValueError, Image.DecompressionBombError) as error:
                unreadable.append(f"{names.CXR_IMAGES_DIR}/{image.name} cannot be read as an image ({error})")
                continue
            record = frame_record(
                encode_example(
                    {
                        "image": encode_png(pixels),
                        "labels": image.labels,
                        "patient_id": image.patient_id,
                        "image_index": image.name.encode(),
                    }
                )
            )
            handle.write(record)
            digest.update(record)
            written += len(record)
    return ShardWritten(work.task.file, written, digest.hexdigest(), tuple(unreadable))


def load_pixels(path: Path, size: int) -> np.ndarray:
    """A size x size uint8 grayscale array of any Pillow-readable image."""
    with Image.open(path) as image:
        image.load()
        if image.mode in ("I;16", "I;16B", "I"):  # 16-bit X-rays: keep the top 8 bits, not a clipped 0..255
            gray = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8))
        else:
            gray = image.convert("L")
    if gray.size != (size, size):
        # reducing_gap: an integer box reduction first makes 1024 -> 64 fast without aliasing.
        gray = gray.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(gray, dtype=np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _refuse_unreadable(src: Path, written: dict[str, ShardWritten]) -> None:
    problems = Problems()
    for line in sorted(line for result in written.values() for line in result.unreadable):
        problems.add(line, READABLE_HINT)
    problems.raise_if_any(f"{src} has images that do not decode")


def _manifest(
    folder: Path,
    source: SourceDataset,
    assignment: ShardAssignment,
    written: dict[str, ShardWritten],
    size: int,
) -> DataManifest:
    shards: dict[str, list[ShardInfo]] = {name: [] for name in SPLITS}
    for task in assignment.tasks:
        result = written[task.file]
        shards[task.split].append(
            ShardInfo(
                file=task.file,
                records=len(task.images),
                bytes=result.bytes,
                sha256=result.sha256,
                patients=_patient_runs(task) if task.split == "train" else (),
            )
        )
    splits = {name: _split_info(assignment, name, tuple(shards[name])) for name in SPLITS}
    return DataManifest(
        folder=folder,
        content_hash=content_hash(s for name in SPLITS for s in shards[name]),
        image_size=size,
        labels=layout.LABELS,
        splits=splits,
        image_encoding=IMAGE_ENCODING,
        split_rule=assignment.rule(),
        source={
            "folder": str(source.folder.resolve()),
            "images": len(source.images),
            "csv_sha256": source.csv_sha256,
            "written_by": f"sweep {__version__}",
        },
    )


def _patient_runs(task: ShardTask) -> tuple[tuple[int, int], ...]:
    """(patient id, images) in record order; a shard holds each patient's images together."""
    runs: dict[int, int] = {}
    for image in task.images:
        runs[image.patient_id] = runs.get(image.patient_id, 0) + 1
    return tuple(runs.items())


def _split_info(assignment: ShardAssignment, split: str, shards: tuple[ShardInfo, ...]) -> SplitInfo:
    images = [image for task in assignment.tasks if task.split == split for image in task.images]
    return SplitInfo(
        images=len(images),
        patients=len({image.patient_id for image in images}),
        label_counts={
            label: sum(image.labels[i] for image in images) for i, label in enumerate(layout.LABELS)
        },
        shards=shards,
    )
