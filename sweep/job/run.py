"""One training job, stage by stage: inputs, import, data, train, evaluate, export, write.

Fixed costs are kept out of the epochs (a 10 % item of the demo data spent over half of its time
outside training): validation and test are scored by one traced inference function, and the TFLite
conversion is only done when asked (--export tflite); otherwise the job writes model.keras and
`sweep export` converts it later. The training subset is still streamed from its shards every epoch
(see _training_data for why).

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
    export: str = "none"  # "tflite": also convert and check model.tflite in the job


@dataclass(frozen=True)
class Inputs:
    manifest: dict[str, Any]
    subset: TrainingSubset
    labels: tuple[str, ...]
    stored_size: int


@dataclass(frozen=True)
class Data:
    train: Any  # tf.data.Dataset of the subset
    validation: Any  # dataset.SplitArrays
    test: Any
    train_positives: list[int]  # per label, in the subset


@dataclass(frozen=True)
class Trained:
    model: Any  # keras.Model
    history: dict[str, list[float]]
    epoch_seconds: list[float]  # training only, without the validation after each epoch
    validation_seconds: list[float]
    validation_scores: np.ndarray  # the final model's, from the last epoch's validation
    score: Any  # model.Scorer: images -> scores, traced once


def run_job(config: JobConfig, stages: Stages) -> dict[str, Any]:
    """Train and evaluate one item; writes every output into config.out and returns the metrics."""
    config.out.mkdir(parents=True, exist_ok=True)
    with stages.stage("data_load"):
        inputs = read_inputs(config)
    with stages.stage("import"):
        tf = import_tensorflow(config.threads)
        from sweep.job import export  # Keras and our TensorFlow code: part of the import cost
    size = config.image_size or inputs.stored_size
    with stages.stage("data_load"):
        data = load_data(config, inputs, size)
    with stages.stage("train"):
        trained = train(config, inputs, data, size)
    with stages.stage("evaluate"):
        validation_scores = trained.validation_scores
        test_scores = trained.score(data.test.images)
        evaluation = evaluate(
            inputs.labels, data.validation.labels, validation_scores, data.test.labels, test_scores
        )
    with stages.stage("export"):
        exported: dict[str, float | int] = dict(export.save_keras(trained.model, config.out))
        if config.export == "tflite":
            sample = data.test.images if len(data.test.images) else data.validation.images
            exported |= export.convert_tflite(trained.model, config.out / names.MODEL_TFLITE, sample)
    outputs.write_history(config.out, trained.history, trained.epoch_seconds)
    outputs.write_predictions(config.out, _prediction_arrays(inputs, data, validation_scores, test_scores))
    result = {
        **_describe(config, inputs, size, data),
        **evaluation,
        "parameters": int(trained.model.count_params()),
        "train_images_per_second": round(
            inputs.subset.images * config.epochs / max(sum(trained.epoch_seconds), 1e-9), 1
        ),
        "train_steady_images_per_second": steady_rate(inputs.subset.images, trained.epoch_seconds),
        "export": exported,
        "timings": {**stages.timings(), **train_timings(trained)},
        "host": {**host.host_facts(config.threads, tf.__version__), **tensorflow_threads(tf)},
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
        raise ValueError(
            f"{manifest_path}: schema {manifest.get('schema')!r}, expected {names.DATA_MANIFEST_SCHEMA!r}"
        )
    if manifest.get("image_encoding") != names.DATA_IMAGE_ENCODING:
        raise ValueError(
            f"{manifest_path}: image_encoding {manifest.get('image_encoding')!r}, "
            f"expected {names.DATA_IMAGE_ENCODING!r}; re-shard with this version of sweep"
        )
    subset = select_training_subset(manifest, config.fraction, config.subset_seed)
    inputs = Inputs(manifest, subset, tuple(manifest["labels"]), int(manifest["image_size"]))
    _check_files(config.data, inputs)
    return inputs


def _check_files(folder: Path, inputs: Inputs) -> None:
    """Every shard this job reads is present with the size the manifest records."""
    sizes = {s["file"]: s["bytes"] for split in inputs.manifest["splits"].values() for s in split["shards"]}
    needed = [
        *inputs.subset.shards,
        *(s["file"] for split in ("validation", "test") for s in inputs.manifest["splits"][split]["shards"]),
    ]
    wrong = [problem for file in needed if (problem := _file_problem(folder / file, sizes[file]))]
    if wrong:
        raise FileNotFoundError(
            f"{len(wrong)} input file(s) in {folder} are not as the manifest says: " + "; ".join(wrong[:10])
        )


def _file_problem(path: Path, expected_bytes: int) -> str | None:
    if not path.is_file():
        return f"{path.name} missing"
    actual = path.stat().st_size
    return None if actual == expected_bytes else f"{path.name} has {actual} bytes, expected {expected_bytes}"


def import_tensorflow(threads: int) -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["OMP_NUM_THREADS"] = str(
        threads
    )  # oneDNN reads it at import; --threads may differ from the slot's
    import tensorflow as tf

    # Must happen before TensorFlow runs anything; oneDNN reads OMP_NUM_THREADS itself.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    return tf


def tensorflow_threads(tf: Any) -> dict[str, int]:
    """What TensorFlow really uses, recorded because jobs once ran on one thread whatever the slot had."""
    return {
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def load_data(config: JobConfig, inputs: Inputs, size: int) -> Data:
    from sweep.job import dataset

    labels = len(inputs.labels)
    train, positives = _training_data(config, inputs, size)
    return Data(
        train=train,
        train_positives=positives,
        validation=dataset.read_split(
            _split_files(config.data, inputs, "validation"), inputs.stored_size, size, labels
        ),
        test=dataset.read_split(_split_files(config.data, inputs, "test"), inputs.stored_size, size, labels),
    )


def _training_data(config: JobConfig, inputs: Inputs, size: int) -> tuple[Any, list[int]]:
    """(training dataset, positives per label), streamed from the subset's shards every epoch.

    Not decoded once into memory: measured side by side over 12 seeds at 100 % of the demo data,
    that path (the same images, shuffled in full from arrays) gave a macro AUC 0.019 lower on
    average (paired t = -2.7) for a few seconds saved; streaming gives the old results exactly.
    """
    from sweep.job import dataset

    files = [config.data / file for file in inputs.subset.shards]
    subset, labels = inputs.subset, len(inputs.labels)
    stream = dataset.training_dataset(
        files=files,
        patients=subset.patients,
        images=subset.images,
        stored_size=inputs.stored_size,
        size=size,
        labels=labels,
        batch_size=config.batch_size,
        seed=config.seed,
        threads=config.threads,
    )
    return stream, dataset.label_counts(files, subset.patients, labels)


def _split_files(folder: Path, inputs: Inputs, split: str) -> list[Path]:
    return [folder / shard["file"] for shard in inputs.manifest["splits"][split]["shards"]]


def train(config: JobConfig, inputs: Inputs, data: Data, size: int) -> Trained:
    import keras

    from sweep.job import model as cnn

    keras.utils.set_random_seed(config.seed)
    pos_weights, neg_weights = imbalance.balanced_weights(data.train_positives, inputs.subset.images)
    network = cnn.build_model(size, len(inputs.labels), config.seed)
    cnn.compile_model(network, pos_weights, neg_weights, config.learning_rate)
    timer = cnn.EpochTimer()  # first: it stops the epoch's clock before validation starts
    score = cnn.scorer(network)
    validation = cnn.ValidationScores(
        score, data.validation.images, data.validation.labels, pos_weights, neg_weights
    )
    history = network.fit(
        data.train, epochs=config.epochs, callbacks=[timer, validation], verbose=2, shuffle=False
    )  # the dataset shuffles itself, with its seed
    return Trained(
        network,
        {key: [float(v) for v in values] for key, values in history.history.items()},
        timer.seconds,
        validation.seconds,
        validation.scores,
        score,
    )


def train_timings(trained: Trained) -> dict[str, float]:
    """The train stage split: the first epoch carries tracing and the pipeline's first pass."""
    return {
        "train_first_epoch": round(trained.epoch_seconds[0], 3),
        "train_steady": round(sum(trained.epoch_seconds[1:]), 3),
        "train_validation": round(sum(trained.validation_seconds), 3),
    }


def steady_rate(images: int, epoch_seconds: list[float]) -> float | None:
    """Images/s of the epochs after the first; None with one epoch."""
    later = epoch_seconds[1:]
    return round(images * len(later) / max(sum(later), 1e-9), 1) if later else None


def evaluate(
    labels: tuple[str, ...],
    validation_truth: np.ndarray,
    validation_scores: np.ndarray,
    test_truth: np.ndarray,
    test_scores: np.ndarray,
) -> dict[str, Any]:
    thresholds = metrics.threshold_report(
        labels, validation_truth, validation_scores, test_truth, test_scores
    )
    return {
        **metrics.auc_report(labels, test_truth, test_scores),
        "thresholds": thresholds,
        "labels_predicting_positives": metrics.labels_predicting_positives(thresholds),
    }


def _prediction_arrays(
    inputs: Inputs, data: Data, validation_scores: np.ndarray, test_scores: np.ndarray
) -> dict[str, np.ndarray]:
    return {
        "labels": data.test.labels,
        "scores": test_scores.astype(np.float32),
        "label_names": np.array(inputs.labels),
        "image_index": data.test.image_index,
        "patient_id": data.test.patient_ids,
        "validation_labels": data.validation.labels,
        "validation_scores": validation_scores.astype(np.float32),
        "validation_image_index": data.validation.image_index,
    }


def _describe(config: JobConfig, inputs: Inputs, size: int, data: Data) -> dict[str, Any]:
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
        "validation_images": len(data.validation.labels),
        "test_images": len(data.test.labels),
        "labels": list(inputs.labels),
        "train_positives": dict(zip(inputs.labels, data.train_positives, strict=True)),
        "test_positives": dict(
            zip(inputs.labels, data.test.labels.sum(axis=0).astype(int).tolist(), strict=True)
        ),
    }
