"""Is training fed from the shards as fast as training fed from memory? One run, side by side.

Prints images/s of the same model trained from (a) the job's tf.data pipeline over the TFRecord
shards and (b) the same images already in memory, and their ratio (target >= 0.8). Then the
read-and-decode rate alone, and the bytes per image, for PNG records (what the shards hold) and
for raw-pixel records (the alternative).

    .venv/bin/python benchmarks/input_pipeline.py [--images 2000] [--size 64] [--epochs 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from common import prepare_shards

from sweep.data.shard import encode_png
from sweep.data.tfrecord import crc32c, encode_example, frame_record, pure_crc32c
from sweep.job.subset import select_training_subset

if TYPE_CHECKING:
    import tensorflow as tf

# TensorFlow is imported inside the functions, after sharding: the sharding workers are spawned
# processes that re-import this file, and must not each pay for a TensorFlow import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def compiled_model(size: int, labels: np.ndarray) -> Any:
    from sweep.job import imbalance, model

    network = model.build_model(size, labels.shape[1], seed=0)
    model.compile_model(network, *imbalance.balanced_weights(labels.sum(axis=0).tolist(), len(labels)), 3e-3)
    return network


def train_rates(
    streams: dict[str, tf.data.Dataset], images: int, size: int, labels: np.ndarray, epochs: int, rounds: int
) -> dict[str, list[float]]:
    """Images/s per source, timed in alternating rounds so that load from other processes hits both alike.

    Each source gets its own model and one untimed epoch first (graph tracing, warm caches).
    """
    models = {name: compiled_model(size, labels) for name in streams}
    for name, stream in streams.items():
        models[name].fit(stream, epochs=1, verbose=0, shuffle=False)
    rates: dict[str, list[float]] = {name: [] for name in streams}
    for _ in range(rounds):
        for name, stream in streams.items():
            began = time.perf_counter()
            models[name].fit(stream, epochs=epochs, verbose=0, shuffle=False)
            rates[name].append(images * epochs / (time.perf_counter() - began))
    return rates


def write_records(path: Path, pixels: np.ndarray, labels: np.ndarray, encoding: str) -> int:
    """The same images as one file of PNG or raw-pixel records; returns its size."""
    with path.open("wb") as handle:
        for image, label in zip(pixels, labels, strict=True):
            data = encode_png(image[:, :, 0]) if encoding == "png" else image.tobytes()
            handle.write(frame_record(encode_example({"image": data, "labels": label.tolist()})))
    return path.stat().st_size


def decode_rate(path: Path, encoding: str, size: int, count: int, passes: int = 3) -> float:
    """Images/s of read + parse + decode alone, on one thread (what one core spends per image)."""
    import tensorflow as tf

    features = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.FixedLenFeature([14], tf.int64),
    }

    def decode(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        parsed = tf.io.parse_single_example(record, features)
        pixels = (
            tf.io.decode_png(parsed["image"], channels=1)
            if encoding == "png"
            else tf.io.decode_raw(parsed["image"], tf.uint8)
        )
        return tf.reshape(pixels, [size, size, 1]), parsed["labels"]

    stream = tf.data.TFRecordDataset(str(path)).map(decode).batch(32)
    for _ in stream:  # warm-up pass
        pass
    began = time.perf_counter()
    for _ in range(passes):
        for _ in stream:
            pass
    return count * passes / (time.perf_counter() - began)


def crc_rate(crc: Callable[[bytes], int], megabytes: int) -> float:
    """MB/s of a CRC-32C function over random bytes (the shards' records are framed with it)."""
    blob = np.random.default_rng(0).integers(0, 256, megabytes << 20, dtype=np.uint8).tobytes()
    started = time.perf_counter()
    crc(blob)
    return megabytes / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per source")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        prepared = prepare_shards(scratch, args.images, args.size)
        from sweep.job import dataset

        manifest = prepared.manifest.to_dict()
        folder = scratch / "shards"
        subset = select_training_subset(manifest, 1.0, 0)
        files = [folder / name for name in subset.shards]
        in_memory = dataset.read_split(files, args.size, args.size, len(manifest["labels"]))
        from_shards = dataset.training_dataset(
            files,
            subset.patients,
            subset.images,
            args.size,
            args.size,
            len(manifest["labels"]),
            args.batch_size,
            seed=0,
        )
        from_memory = dataset.in_memory_training_dataset(
            in_memory.images, in_memory.labels, args.batch_size, seed=0
        )
        print(
            f"{subset.images} training images, {args.size} px, batch {args.batch_size}, "
            f"{args.rounds} rounds of {args.epochs} epochs, threads {os.environ.get('OMP_NUM_THREADS', 'all')}"
        )
        rates = train_rates(
            {"shards": from_shards, "memory": from_memory},
            subset.images,
            args.size,
            in_memory.labels,
            args.epochs,
            args.rounds,
        )
        for name, values in rates.items():
            print(
                f"training fed from {name:6s} : median {statistics.median(values):7.1f} images/s  "
                f"(rounds: {', '.join(f'{v:.0f}' for v in values)})"
            )
        ratio = statistics.median(rates["shards"]) / statistics.median(rates["memory"])
        print(f"ratio shards / memory    : {ratio:7.3f}   (target >= 0.8)")
        for encoding in ("png", "raw"):
            path = scratch / f"{encoding}.tfrecord"
            size_on_disk = write_records(path, in_memory.images, in_memory.labels, encoding)
            rate = decode_rate(path, encoding, args.size, subset.images)
            print(
                f"read+decode only, {encoding:4s}   : {rate:8.0f} images/s on one thread, "
                f"{size_on_disk / subset.images:6.0f} bytes/image"
            )
        print(
            f"synth {prepared.synth_seconds:.1f} s, shard {prepared.shard_seconds:.1f} s for {args.images} images"
        )
    library, pure = crc_rate(crc32c, 256), crc_rate(pure_crc32c, 4)
    print(
        f"CRC-32C, crc32c package : {library:8.0f} MB/s; pure Python fallback {pure:.1f} MB/s ({library / pure:.0f}x)"
    )


if __name__ == "__main__":
    main()
