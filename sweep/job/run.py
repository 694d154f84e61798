"""One training job, stage by stage: inputs, import, data, train, evaluate, export, write.

The manifest and the subset are checked before TensorFlow is imported, so a job sent the wrong
files fails in a second with a clear error.json instead of after a 5 s import.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from sweep import names
from sweep.job import host, imbalance, metrics, outputs
from sweep.job.stages import Stages
from sweep.job.subset import TrainingSubset, select_training_subset

EVALUATION_BATCH = 256


@dataclass(frozen=True)
class JobConfig:
    data: Path
    out: Path
    fraction: Decimal
    replica: int
    seed: int
    subset_seed: int
    epochs: int
    batch_size: int
    learning_rate: float
    image_size: int | None  # None: the shards' size
    threads: int


@dataclass(frozen=True)
class Inputs:
    manifest: dict[str, Any]
    subset: TrainingSubset
    labels: tuple[str, ...]
    stored_size: int


def run_job(config: JobConfig, stages: Stages) -> dict[str, Any]:
    """Train and evaluate one item; writes every output into config.out and returns the metrics."""
    config.out.mkdir(parents=True, exist_ok=True)
    with stages.stage("data_load"):
        inputs = read_inputs(config)
    with stages.stage("import"):
        tf = import_tensorflow(config.threads)
        from sweep.job import dataset, export  # Keras and our TensorFlow code: part of the import cost

    size = config.image_size or inputs.stored_size
    with stages.stage("data_load"):
        train = dataset.training_dataset(
            files=_paths(config.data, inputs.subset.shards), patients=inputs.subset.patients,
            images=inputs.subset.images, stored_size=inputs.stored_size, size=size, labels=len(inputs.labels),
            batch_size=config.batch_size, seed=config.seed,
        )
        validation = dataset.read_split(_split_files(config.data, inputs, "validation"), inputs.stored_size, size, len(inputs.labels))
        test = dataset.read_split(_split_files(config.data, inputs, "test"), inputs.stored_size, size, len(inputs.labels))
        positives = dataset.label_counts(_paths(config.data, inputs.subset.shards), inputs.subset.patients,
                                         len(inputs.labels))
    with stages.stage("train"):
        trained, history, epoch_seconds = _train(config, inputs, train, validation, size, positives)
    with stages.stage("evaluate"):
        validation_scores = trained.predict(validation.images, batch_size=EVALUATION_BATCH, verbose=0)
        test_scores = trained.predict(test.images, batch_size=EVALUATION_BATCH, verbose=0)
        evaluation = _evaluate(inputs.labels, validation.labels, validation_scores, test.labels, test_scores)
    with stages.stage("export"):
        exported = export.export_models(trained, config.out, test.images if len(test.images) else validation.images)
    outputs.write_history(config.out, history, epoch_seconds)
    outputs.write_predictions(config.out, {
        "labels": test.labels, "scores": test_scores.astype(np.float32), "label_names": np.array(inputs.labels),
        "image_index": test.image_index, "patient_id": test.patient_ids,
        "validation_labels": validation.labels, "validation_scores": validation_scores.astype(np.float32),
        "validation_image_index": validation.image_index,
    })
    result = {
        **_describe(config, inputs, size, validation.labels, test.labels, positives),
        **evaluation,
        "parameters": int(trained.count_params()),
        "train_images_per_second": round(inputs.subset.images * config.epochs / max(sum(epoch_seconds), 1e-9), 1),
        "export": exported,
        "timings": stages.timings(),
        "host": host.host_facts(config.threads, tf.__version__),
    }
    outputs.write_metrics(config.out, result)
    return result


def read_inputs(config: JobConfig) -> Inputs:
    """The manifest, this item's subset, and a check that every file it needs is here and whole."""
    manifest_path = config.data / names.DATA_MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} is missing: the job needs the shard folder's manifest")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("schema") != names.DATA_MANIFEST_SCHEMA:
        raise ValueError(f"{manifest_path}: schema {manifest.get('schema')!r}, expected {names.DATA_MANIFEST_SCHEMA!r}")
    if manifest.get("image_encoding") != names.DATA_IMAGE_ENCODING:
        raise ValueError(f"{manifest_path}: image_encoding {manifest.get('image_encoding')!r}, "
                         f"expected {names.DATA_IMAGE_ENCODING!r}; re-shard with this version of sweep")
    subset = select_training_subset(manifest, config.fraction, config.subset_seed)
    inputs = Inputs(manifest, subset, tuple(manifest["labels"]), int(manifest["image_size"]))
    _check_files(config.data, inputs)
    return inputs


def _check_files(folder: Path, inputs: Inputs) -> None:
    needed = set(inputs.subset.shards) | {s["file"] for split in ("validation", "test")
                                          for s in inputs.manifest["splits"][split]["shards"]}
    sizes = {s["file"]: s["bytes"] for split in inputs.manifest["splits"].values() for s in split["shards"]}
    wrong = [f"{file} missing" if not (folder / file).is_file() else f"{file} has {(folder / file).stat().st_size} bytes, "
             f"expected {sizes[file]}" for file in sorted(needed)
             if not (folder / file).is_file() or (folder / file).stat().st_size != sizes[file]]
    if wrong:
        raise FileNotFoundError(f"{len(wrong)} input file(s) in {folder} are not as the manifest says: " + "; ".join(wrong[:10]))


def import_tensorflow(threads: int) -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # Must happen before TensorFlow runs anything; oneDNN reads OMP_NUM_THREADS itself.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    return tf


def _paths(folder: Path, files: tuple[str, ...]) -> list[Path]:
    return [folder / file for file in files]


def _split_files(folder: Path, inputs: Inputs, split: str) -> list[Path]:
    return [folder / shard["file"] for shard in inputs.manifest["splits"][split]["shards"]]


def _train(config: JobConfig, inputs: Inputs, train: Any, validation: Any, size: int,
           positives: list[int]) -> tuple[Any, dict[str, list[float]], list[float]]:
    import keras

    from sweep.job import model as cnn

    keras.utils.set_random_seed(config.seed)
    pos_weights, neg_weights = imbalance.balanced_weights(positives, inputs.subset.images)
    network = cnn.build_model(size, len(inputs.labels), config.seed)
    cnn.compile_model(network, pos_weights, neg_weights, config.learning_rate)
    timer = cnn.EpochTimer()
    history = network.fit(train, epochs=config.epochs, validation_data=(validation.images, validation.labels),
                          callbacks=[timer], shuffle=False, verbose=2)  # the dataset shuffles itself
    return network, {key: [float(v) for v in values] for key, values in history.history.items()}, timer.seconds


def _evaluate(labels: tuple[str, ...], validation_truth: np.ndarray, validation_scores: np.ndarray,
              test_truth: np.ndarray, test_scores: np.ndarray) -> dict[str, Any]:
    thresholds = metrics.threshold_report(labels, validation_truth, validation_scores, test_truth, test_scores)
    return {
        **metrics.auc_report(labels, test_truth, test_scores),
        "thresholds": thresholds,
        "labels_predicting_positives": metrics.labels_predicting_positives(thresholds),
    }


def _describe(config: JobConfig, inputs: Inputs, size: int, validation_truth: np.ndarray, test_truth: np.ndarray,
              positives: list[int]) -> dict[str, Any]:
    return {
        "fraction": float(config.fraction),
        "replica": config.replica,
        "seed": config.seed,
        "subset_seed": config.subset_seed,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "image_size": size,
        "data_content_hash": inputs.manifest["content_hash"],
        "train_images": inputs.subset.images,
        "train_patients": len(inputs.subset.patients),
        "train_shards": len(inputs.subset.shards),
        "validation_images": len(validation_truth),
        "test_images": len(test_truth),
        "labels": list(inputs.labels),
        "train_positives": dict(zip(inputs.labels, positives, strict=True)),
        "test_positives": dict(zip(inputs.labels, test_truth.sum(axis=0).astype(int).tolist(), strict=True)),
    }
