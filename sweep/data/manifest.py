"""manifest.json of a shard folder: what `sweep data shard` wrote, read back and checked.

The submit side reads it through DataManifest; the job reads the same JSON as a plain dict
(sweep.job imports nothing from here), so to_dict() is exactly the file's content.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweep import names
from sweep.data.problems import Problems
from sweep.errors import DataError
from sweep.fs import sha256_file

SPLITS = ("train", "validation", "test")
# PNG, not raw pixels: 20-40 % fewer bytes to send to every job, and decoding it (5,000-16,000
# images/s on one thread, measured by benchmarks/input_pipeline.py) is far faster than training.
IMAGE_ENCODING = names.DATA_IMAGE_ENCODING
RECORD_FEATURES = {
    "image": "bytes: an 8-bit grayscale PNG of image_size x image_size",
    "labels": "int64 x len(labels): multi-hot, in the order of `labels`",
    "patient_id": "int64",
    "image_index": "bytes: the source image name, e.g. 00000001_000.png",
}


@dataclass(frozen=True)
class ShardInfo:
    file: str  # a name in the shard folder (flat: jobs get the files side by side)
    records: int
    bytes: int
    sha256: str
    patients: tuple[tuple[int, int], ...] = ()  # (patient id, images) in record order; train shards only

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "file": self.file,
            "records": self.records,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }
        if self.patients:
            data["patients"] = [list(pair) for pair in self.patients]
        return data


@dataclass(frozen=True)
class SplitInfo:
    images: int
    patients: int
    label_counts: dict[str, int]
    shards: tuple[ShardInfo, ...]

    @property
    def bytes(self) -> int:
        return sum(shard.bytes for shard in self.shards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "patients": self.patients,
            "bytes": self.bytes,
            "label_counts": dict(self.label_counts),
            "shards": [shard.to_dict() for shard in self.shards],
        }


@dataclass(frozen=True)
class DataManifest:
    folder: Path
    content_hash: str
    image_size: int
    labels: tuple[str, ...]
    splits: dict[str, SplitInfo]
    image_encoding: str = IMAGE_ENCODING
    split_rule: dict[str, Any] = field(default_factory=dict)  # how train/validation were drawn
    source: dict[str, Any] = field(default_factory=dict)  # where the images came from (informational)

    @property
    def bytes(self) -> int:
        return sum(split.bytes for split in self.splits.values())

    def shards(self) -> tuple[ShardInfo, ...]:
        return tuple(shard for name in SPLITS for shard in self.splits[name].shards)

    def label_prevalence(self, split: str) -> dict[str, float]:
        """Share of the split's images that carry each label (0.0 for an empty split)."""
        if split not in self.splits:
            raise DataError(f"split {split!r} is unknown; accepted: {', '.join(SPLITS)}")
        info = self.splits[split]
        return {
            label: info.label_counts[label] / info.images if info.images else 0.0 for label in self.labels
        }

    def sweep_record(self) -> dict[str, object]:
        """What a sweep's manifest and its report keep of the dataset (so they need not open the shards)."""
        return {
            "folder": str(self.folder),
            "content_hash": self.content_hash,
            "image_size": self.image_size,
            "labels": list(self.labels),
            "label_prevalence": self.label_prevalence("test"),
            "train_images_total": self.splits["train"].images,
            "test_images": self.splits["test"].images,
        }

    def summary(self) -> str:
        counts = ", ".join(f"{name} {self.splits[name].images}" for name in SPLITS)
        return (
            f"{len(self.shards())} shards ({self.bytes / 1e6:.1f} MB, {self.image_size}x{self.image_size} px: "
            f"{counts} images) to {self.folder}, content {self.content_hash[:19]}…"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": names.DATA_MANIFEST_SCHEMA,
            "content_hash": self.content_hash,
            "image_size": self.image_size,
            "image_channels": 1,
            "image_encoding": self.image_encoding,
            "record_features": RECORD_FEATURES,
            "labels": list(self.labels),
            "split_rule": self.split_rule,
            "source": self.source,
            "splits": {name: self.splits[name].to_dict() for name in SPLITS},
        }


def content_hash(shards: Iterable[ShardInfo]) -> str:
    """One hash for the shard set: each shard's name and sha256, in name order."""
    listing = "".join(f"{shard.file} {shard.sha256}\n" for shard in sorted(shards, key=lambda s: s.file))
    return "sha256:" + hashlib.sha256(listing.encode()).hexdigest()


# [patient id, images] pairs on one line each: the full dataset lists ~20,000 of them.
_NUMBER_PAIR = re.compile(r"\[\s+(\d+),\s+(\d+)\s+\]")


def write_data_manifest(manifest: DataManifest) -> Path:
    path = manifest.folder / names.DATA_MANIFEST
    text = _NUMBER_PAIR.sub(r"[\1, \2]", json.dumps(manifest.to_dict(), indent=1))
    path.write_text(text + "\n", encoding="utf-8")
    return path


def load_data_manifest(folder: Path, verify: bool = False) -> DataManifest:
    """Read and check FOLDER/manifest.json; with verify, also hash every shard file against it."""
    path = folder / names.DATA_MANIFEST
    if not path.is_file():
        raise DataError(
            f"{folder} has no {names.DATA_MANIFEST}; make a shard folder with `sweep data shard SRC OUT`"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({error}); rewrite it with `sweep data shard`") from None
    manifest = manifest_from_dict(data, folder, where=str(path))
    if verify:
        verify_shards(manifest)
    return manifest


def manifest_from_dict(data: Any, folder: Path, where: str) -> DataManifest:
    reader = _Reader(where)
    schema = reader.get(data, "schema", str)
    if schema != names.DATA_MANIFEST_SCHEMA:
        raise DataError(
            f"{where}: schema {schema!r} is not understood; expected {names.DATA_MANIFEST_SCHEMA!r}"
        )
    labels = tuple(reader.get(data, "labels", list))
    splits_data = reader.get(data, "splits", dict)
    manifest = DataManifest(
        folder=folder,
        content_hash=reader.get(data, "content_hash", str),
        image_size=reader.get(data, "image_size", int),
        labels=labels,
        splits={
            name: _split_from_dict(reader, reader.get(splits_data, name, dict), labels, f"splits.{name}")
            for name in SPLITS
        },
        image_encoding=reader.get(data, "image_encoding", str),
        split_rule=dict(data.get("split_rule", {})),
        source=dict(data.get("source", {})),
    )
    _check_consistency(manifest, where)
    return manifest


class _Reader:
    """Typed field access that names the file and the field path in its error."""

    def __init__(self, where: str) -> None:
        self.where = where

    def get(self, data: Any, key: str, kind: type, path: str = "") -> Any:
        label = f"{path}.{key}" if path else key
        if not isinstance(data, dict) or key not in data:
            raise DataError(f"{self.where}: field {label!r} is missing; rewrite it with `sweep data shard`")
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise DataError(f"{self.where}: field {label!r} is {value!r}; expected a {kind.__name__}")
        return value


def _split_from_dict(reader: _Reader, data: dict, labels: tuple[str, ...], path: str) -> SplitInfo:
    counts = reader.get(data, "label_counts", dict, path)
    missing = [label for label in labels if label not in counts]
    if missing:
        raise DataError(f"{reader.where}: {path}.label_counts lacks {', '.join(missing)}")
    return SplitInfo(
        images=reader.get(data, "images", int, path),
        patients=reader.get(data, "patients", int, path),
        label_counts={label: int(counts[label]) for label in labels},
        shards=tuple(
            _shard_from_dict(reader, shard, f"{path}.shards[{i}]")
            for i, shard in enumerate(reader.get(data, "shards", list, path))
        ),
    )


def _shard_from_dict(reader: _Reader, data: dict, path: str) -> ShardInfo:
    return ShardInfo(
        file=reader.get(data, "file", str, path),
        records=reader.get(data, "records", int, path),
        bytes=reader.get(data, "bytes", int, path),
        sha256=reader.get(data, "sha256", str, path),
        patients=tuple((int(p), int(n)) for p, n in data.get("patients", [])),
    )


def _check_consistency(manifest: DataManifest, where: str) -> None:
    for name, split in manifest.splits.items():
        records = sum(shard.records for shard in split.shards)
        if records != split.images:
            raise DataError(
                f"{where}: splits.{name} says {split.images} images but its shards hold {records}"
            )
    for shard in manifest.splits["train"].shards:
        listed = sum(count for _, count in shard.patients)
        if listed != shard.records:
            raise DataError(
                f"{where}: train shard {shard.file} lists patients with {listed} images, not {shard.records}"
            )
    if any("/" in shard.file or shard.file.startswith(".") for shard in manifest.shards()):
        raise DataError(f"{where}: shard names must be plain file names in the folder")
    if content_hash(manifest.shards()) != manifest.content_hash:
        raise DataError(f"{where}: content_hash does not match the shards it lists; the manifest was edited")


def verify_shards(manifest: DataManifest, *, contents: bool = True) -> None:
    """Every shard present with the size and (with `contents`) the sha256 the manifest records.

    Sizes alone cost one stat per shard; hashing reads every byte (see README, "Failure modes").
    """
    problems = Problems()
    expected = "the shard folder exactly as `sweep data shard` wrote it"
    for shard in manifest.shards():
        path = manifest.folder / shard.file
        if not path.is_file():
            problems.add(f"{shard.file} is missing", expected)
        elif path.stat().st_size != shard.bytes:
            problems.add(
                f"{shard.file} has {path.stat().st_size} bytes, the manifest says {shard.bytes}", expected
            )
        elif contents and sha256_file(path) != shard.sha256:
            problems.add(f"{shard.file} has changed (its sha256 differs from the manifest)", expected)
    problems.raise_if_any(
        f"{manifest.folder}: shard files do not match {names.DATA_MANIFEST} ({manifest.content_hash})"
    )
