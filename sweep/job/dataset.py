"""tf.data pipelines over the shards: the streamed training subset, and validation/test in memory.

Records are tf.train.Example (see sweep.data.manifest.RECORD_FEATURES): a grayscale PNG, a
multi-hot label vector, the patient id and the image name. Records are parsed in batches (one
parse_example call per 256 records) and each image is decoded only after the patient filter, so
records outside the subset cost no PNG decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

SHUFFLE_BUFFER = 16_384  # images; covers a whole subset of up to ~16k images (64 MB at 64 px)
INTERLEAVE = 4
READ_BATCH = 256


@dataclass(frozen=True)
class SplitArrays:
    images: np.ndarray  # uint8 (n, size, size, 1)
    labels: np.ndarray  # uint8 (n, labels)
    patient_ids: np.ndarray  # int64 (n,)
    image_index: np.ndarray  # str (n,)


def _features(labels: int) -> dict[str, tf.io.FixedLenFeature]:
    return {
        "image": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.FixedLenFeature([labels], tf.int64),
        "patient_id": tf.io.FixedLenFeature([], tf.int64),
        "image_index": tf.io.FixedLenFeature([], tf.string),
    }


def _parse_batch(serialized: tf.Tensor, labels: int) -> dict[str, tf.Tensor]:
    return tf.io.parse_example(serialized, _features(labels))


def _decode_image(png: tf.Tensor, stored_size: int, size: int) -> tf.Tensor:
    """One PNG -> uint8 (size, size, 1), resized if the job asked for another size than the shards'."""
    image = tf.ensure_shape(tf.io.decode_png(png, channels=1), [stored_size, stored_size, 1])
    if size != stored_size:
        resized = tf.image.resize(image, [size, size], antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
    return image


def training_dataset(
    files: Sequence[Path],
    patients: Sequence[int],
    images: int,
    stored_size: int,
    size: int,
    labels: int,
    batch_size: int,
    seed: int,
    threads: int | None = None,
) -> tf.data.Dataset:
    """The subset's images, shuffled with a fixed seed, streamed from its shards in batches."""
    names = [str(f) for f in files]
    order = tf.data.Dataset.from_tensor_slices(names).shuffle(
        len(names), seed=seed, reshuffle_each_iteration=True
    )
    return with_threads(
        _decoded_subset(order, patients, images, stored_size, size, labels)
        .shuffle(min(images, SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE),
        threads,
    )


def _decoded_subset(
    order: tf.data.Dataset, patients: Sequence[int], images: int, stored_size: int, size: int, labels: int
) -> tf.data.Dataset:
    """(image, labels) of the subset's patients from the shard files in `order`, each PNG decoded once.

    The last shard of a subset may hold patients outside it: they are filtered out by patient id.
    assert_cardinality then checks that the shards held exactly the images the manifest promised.
    """
    keep = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(patients), tf.int64), tf.ones(len(patients), tf.int64)
        ),
        default_value=0,  # int64 -> int64: TensorFlow has no int64 -> bool hash table kernel
    )
    return (
        order.interleave(
            tf.data.TFRecordDataset,
            cycle_length=INTERLEAVE,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .batch(READ_BATCH)  # one parse_example per 256 records beats 256 single parses
        .map(lambda s: _parse_batch(s, labels), num_parallel_calls=tf.data.AUTOTUNE)
        .unbatch()
        .filter(lambda record: keep.lookup(record["patient_id"]) > 0)
        .map(
            lambda record: (
                _decode_image(record["image"], stored_size, size),
                tf.cast(record["labels"], tf.float32),
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .apply(tf.data.experimental.assert_cardinality(images))
    )


def with_threads(data: tf.data.Dataset, threads: int | None) -> tf.data.Dataset:
    """tf.data's own thread pool sized to the slot (by default it takes every core of the node)."""
    if threads is None:
        return data
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return data.with_options(options)


def label_counts(files: Sequence[Path], patients: Sequence[int], labels: int) -> list[int]:
    """Positives per label among the subset's images (labels and patient ids only: no pixels decoded)."""
    wanted = {
        "labels": tf.io.FixedLenFeature([labels], tf.int64),
        "patient_id": tf.io.FixedLenFeature([], tf.int64),
    }
    keep = {int(p) for p in patients}
    counts = np.zeros(labels, np.int64)
    for batch in (
        tf.data.TFRecordDataset([str(f) for f in files])
        .batch(READ_BATCH)
        .map(lambda s: tf.io.parse_example(s, wanted))
    ):
        chosen = np.isin(batch["patient_id"].numpy(), list(keep))
        counts += batch["labels"].numpy()[chosen].sum(axis=0)
    return counts.tolist()


def in_memory_training_dataset(
    images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, threads: int | None = None
) -> tf.data.Dataset:
    """The training stream from arrays in memory: a new seeded order every epoch, nothing re-read."""
    return with_threads(
        tf.data.Dataset.from_tensor_slices((images, labels.astype(np.float32)))
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE),
        threads,
    )


def read_split(files: Sequence[Path], stored_size: int, size: int, labels: int) -> SplitArrays:
    """A whole split (validation or test) as arrays, in shard order."""
    dataset = (
        tf.data.TFRecordDataset([str(f) for f in files])
        .batch(READ_BATCH)
        .map(lambda s: _parse_batch(s, labels), num_parallel_calls=tf.data.AUTOTUNE)
        .unbatch()
        .map(
            lambda record: {**record, "image": _decode_image(record["image"], stored_size, size)},
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .batch(READ_BATCH)
        .prefetch(tf.data.AUTOTUNE)
    )
    parts = [{key: value.numpy() for key, value in batch.items()} for batch in dataset]
    if not parts:
        return SplitArrays(
            np.zeros((0, size, size, 1), np.uint8),
            np.zeros((0, labels), np.uint8),
            np.zeros(0, np.int64),
            np.zeros(0, str),
        )
    return SplitArrays(
        images=np.concatenate([p["image"] for p in parts]),
        labels=np.concatenate([p["labels"] for p in parts]).astype(np.uint8),
        patient_ids=np.concatenate([p["patient_id"] for p in parts]),
        image_index=np.concatenate([p["image_index"] for p in parts]).astype(bytes).astype(str),
    )
