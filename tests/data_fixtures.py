"""Small synthetic datasets and shard folders for the data and job tests, made once per session.

Helpers rather than conftest fixtures: tests/conftest.py belongs to the pool tests, and each test
module wraps these in its own fixtures.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from sweep.data.shard import shard_dataset
from sweep.data.synth import synthesize

_made: dict[tuple, Path] = {}


def synthetic_source(factory: pytest.TempPathFactory, images: int, size: int, seed: int = 0) -> Path:
    """A synthetic ChestX-ray14-layout folder (shared by the session: copy it before changing it)."""
    key = ("source", images, size, seed)
    if key not in _made:
        folder = factory.mktemp(f"source-{images}-{size}-{seed}") / "cxr"
        synthesize(folder, images=images, size=size, seed=seed)
        _made[key] = folder
    return _made[key]


def shard_folder(factory: pytest.TempPathFactory, images: int, size: int, seed: int = 0) -> Path:
    key = ("shards", images, size, seed)
    if key not in _made:
        folder = factory.mktemp(f"shards-{images}-{size}-{seed}") / "shards"
        shard_dataset(synthetic_source(factory, images, size, seed), folder, size=size)
        _made[key] = folder
    return _made[key]


def copy_of(folder: Path, destination: Path) -> Path:
    shutil.copytree(folder, destination)
    return destination


def read_tfrecord_payloads(path: Path) -> list[bytes]:
    """The records of a TFRecord file, checking both masked CRC-32C values of each (no TensorFlow)."""
    from sweep.data.tfrecord import masked_crc

    data, records, at = path.read_bytes(), [], 0
    while at < len(data):
        length_bytes = data[at : at + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (length_crc,) = struct.unpack("<I", data[at + 8 : at + 12])
        payload = data[at + 12 : at + 12 + length]
        (payload_crc,) = struct.unpack("<I", data[at + 12 + length : at + 16 + length])
        assert length_crc == masked_crc(length_bytes) and payload_crc == masked_crc(payload)
        records.append(payload)
        at += 16 + length
    return records
