"""The training job for real: TensorFlow trains on synthetic shards, in a subprocess as on a node.

A small learning curve (1,000 images at 32 px, 2 epochs, fraction 0.2 vs 1.0): the full data must
beat a fifth of it, the model must not say "no" to everything, and every number in metrics.json
must be recomputable from predictions.npz. 1,000 rather than ~500 images: with ~140 test images
the AUC of one run moves by +-0.05 between seeds, too much to separate the two fractions.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from sweep import names
from sweep.job import host
from sweep.job.subset import select_training_subset

from data_fixtures import shard_folder, synthetic_source

pytestmark = pytest.mark.slow

IMAGES, SIZE, EPOCHS, BATCH = 1000, 32, 2, 16
SEED, SUBSET_SEED = 1, 11
THREADS = "2"


def train(data: Path, out: Path, fraction: str, *extra: str) -> subprocess.CompletedProcess:
    args = [
        "--data",
        str(data),
        "--out",
        str(out),
        "--fraction",
        fraction,
        "--replica",
        "0",
        "--seed",
        str(SEED),
        "--subset-seed",
        str(SUBSET_SEED),
        "--epochs",
        str(EPOCHS),
        "--batch-size",
        str(BATCH),
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": THREADS, "SWEEP_MACHINE_MICROARCH": "x86_64-v3"}
    return subprocess.run(
        [sys.executable, "-m", "sweep.job", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shard_folder(tmp_path_factory, images=IMAGES, size=SIZE)


# run name -> (fraction, extra job arguments); "0.2-again" repeats "0.2" with the TFLite export on
RUNS = {"0.2": ("0.2", ()), "1.0": ("1.0", ()), "0.2-again": ("0.2", ("--export", "tflite"))}
SAME_SEED_AUC_TOLERANCE = 1e-6  # one process, the same threads: the same seed must give the same model


@pytest.fixture(scope="module")
def runs(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    outs = {}
    for name, (fraction, extra) in RUNS.items():
        out = tmp_path_factory.mktemp(f"job-{name}")
        result = train(shards, out, fraction, *extra)
        assert result.returncode == 0, result.stderr[-3000:]
        outs[name] = out
    return outs


def metrics_of(out: Path) -> dict:
    return json.loads((out / names.METRICS).read_text())


def test_more_data_gives_a_clearly_higher_auc(runs: dict[str, Path]):
    small, full = metrics_of(runs["0.2"]), metrics_of(runs["1.0"])
    assert full["auc_macro"] > 0.58
    assert full["auc_macro"] > small["auc_macro"] + 0.03, (small["auc_macro"], full["auc_macro"])
    assert full["train_images"] > 4 * small["train_images"]


def test_the_model_does_not_say_no_to_everything(runs: dict[str, Path]):
    """At the thresholds chosen on validation, most labels get positive predictions on test.

    Not all: a label with one validation positive may get a threshold above every test score.
    """
    for out in runs.values():
        result = metrics_of(out)
        thresholded = [
            label for label, entry in result["thresholds"]["youden"].items() if entry["threshold"] is not None
        ]
        assert len(thresholded) >= 10
        for rule in ("lowest_positive", "youden"):
            predicting = [
                label for label in thresholded if result["thresholds"][rule][label]["predicted_positives"] > 0
            ]
            assert result["labels_predicting_positives"][rule] == len(predicting) >= 0.8 * len(thresholded)


def test_auc_in_metrics_equals_roc_auc_score_recomputed_from_predictions(runs: dict[str, Path]):
    for out in runs.values():
        result = metrics_of(out)
        saved = np.load(out / names.PREDICTIONS)
        assert list(saved["label_names"]) == result["labels"]
        recomputed = {}
        for column, label in enumerate(result["labels"]):
            truth = saved["labels"][:, column]
            if 0 < truth.sum() < len(truth):
                recomputed[label] = roc_auc_score(truth, saved["scores"][:, column])
                assert result["auc_per_label"][label] == pytest.approx(recomputed[label], abs=1e-12)
            else:
                assert result["auc_per_label"][label] is None and label in result["not_evaluable"]
        assert result["auc_macro"] == pytest.approx(np.mean(list(recomputed.values())), abs=1e-12)
        assert result["auc_labels_evaluated"] == len(recomputed)
        assert len(saved["image_index"]) == result["test_images"] == len(saved["scores"])


def test_thresholds_follow_their_rules_on_validation(runs: dict[str, Path]):
    out = runs["1.0"]
    result, saved = metrics_of(out), np.load(out / names.PREDICTIONS)
    for column, label in enumerate(result["labels"]):
        entry = result["thresholds"]["lowest_positive"][label]
        positives = saved["validation_scores"][saved["validation_labels"][:, column] == 1, column]
        if len(positives) and entry["threshold"] is not None:
            assert entry["threshold"] == pytest.approx(float(positives.min()))
            truth, predicted = saved["labels"][:, column], saved["scores"][:, column] >= entry["threshold"]
            if truth.sum():
                assert entry["recall"] == pytest.approx((predicted & (truth == 1)).sum() / truth.sum())


def test_metrics_json_has_the_agreed_fields(runs: dict[str, Path], shards: Path):
    result = metrics_of(runs["0.2"])
    assert result["schema"] == "sweep.metrics/1"
    for key in (
        "fraction",
        "replica",
        "seed",
        "subset_seed",
        "epochs",
        "batch_size",
        "image_size",
        "train_images",
        "train_patients",
        "validation_images",
        "test_images",
        "labels",
        "auc_macro",
        "auc_labels_evaluated",
        "auc_per_label",
        "not_evaluable",
        "thresholds",
        "timings",
        "host",
    ):
        assert key in result, key
    assert (result["fraction"], result["seed"], result["subset_seed"], result["epochs"]) == (
        0.2,
        SEED,
        SUBSET_SEED,
        EPOCHS,
    )
    subset = select_training_subset(json.loads((shards / names.DATA_MANIFEST).read_text()), 0.2, SUBSET_SEED)
    assert (result["train_images"], result["train_patients"]) == (subset.images, len(subset.patients))
    assert set(result["timings"]) == {
        "import",
        "data_load",
        "train",
        "evaluate",
        "export",
        "total",
        "train_first_epoch",
        "train_steady",
        "train_validation",
    }
    facts = result["host"]
    assert facts["cores_used"] == int(THREADS) and facts["machine_microarch"] == "x86_64-v3"
    assert facts["tf_intra_op_threads"] == int(THREADS) and facts["tf_inter_op_threads"] == min(
        int(THREADS), 2
    )
    assert facts["microarch_measured"] == host.microarch_from_flags(host.read_cpuinfo()[1])
    assert set(facts["cpu_flags"]) == {"avx", "avx2", "avx512f", "sse4_2"} and facts["tensorflow"].startswith(
        "2."
    )


def test_timings_add_up(runs: dict[str, Path]):
    """The stages fit in the total; the train stage holds its first epoch, the later ones and validation."""
    for out in runs.values():
        result = metrics_of(out)
        timings = result["timings"]
        assert timings["total"] >= sum(
            timings[stage] for stage in ("import", "data_load", "train", "evaluate", "export")
        )
        parts = timings["train_first_epoch"] + timings["train_steady"] + timings["train_validation"]
        assert parts <= timings["train"] + 0.003  # each figure is rounded to 1 ms
        assert timings["train"] - parts < 0.5 * timings["train"]  # model building and fit's set-up are small
        with (out / names.HISTORY).open() as handle:
            seconds = [float(row["seconds"]) for row in csv.DictReader(handle)]
        assert seconds[0] == pytest.approx(timings["train_first_epoch"], abs=2e-3)
        assert sum(seconds[1:]) == pytest.approx(timings["train_steady"], abs=3e-3)
        steady_rate = result["train_images"] * (EPOCHS - 1) / timings["train_steady"]
        assert result["train_steady_images_per_second"] == pytest.approx(steady_rate, rel=0.01)


def test_the_same_seed_gives_the_same_auc(runs: dict[str, Path]):
    """Determinism, and proof that converting to TFLite in the job leaves the results alone."""
    first, again = metrics_of(runs["0.2"]), metrics_of(runs["0.2-again"])
    assert again["auc_macro"] == pytest.approx(first["auc_macro"], abs=SAME_SEED_AUC_TOLERANCE)
    scores = [np.load(runs[name] / names.PREDICTIONS)["scores"] for name in ("0.2", "0.2-again")]
    assert np.abs(scores[0] - scores[1]).max() < 1e-5


def test_history_has_one_row_per_epoch(runs: dict[str, Path]):
    with (runs["1.0"] / names.HISTORY).open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == [str(e + 1) for e in range(EPOCHS)]
    assert {"loss", "val_loss", "val_auc", "seconds"} <= set(rows[0])
    assert 0.0 <= float(rows[-1]["val_auc"]) <= 1.0


def test_jobs_write_model_keras_and_convert_to_tflite_only_when_asked(runs: dict[str, Path]):
    import keras

    import sweep.job.model  # noqa: F401 - registers the loss so model.keras loads
    from sweep.job.export import run_tflite

    assert not (runs["1.0"] / names.MODEL_TFLITE).exists()
    assert set(metrics_of(runs["1.0"])["export"]) == {"keras_bytes"}
    keras.models.load_model(runs["1.0"] / names.MODEL_KERAS)
    out = runs["0.2-again"]  # --export tflite: the old behaviour
    model = keras.models.load_model(out / names.MODEL_KERAS)
    images = np.random.default_rng(0).integers(0, 256, (5, SIZE, SIZE, 1), dtype=np.uint8)
    assert (
        np.abs(run_tflite(out / names.MODEL_TFLITE, images) - model.predict(images, verbose=0)).max() < 1e-4
    )
    assert metrics_of(out)["export"]["tflite_max_abs_difference"] < 1e-3


def test_a_finished_items_model_converts_later(runs: dict[str, Path], tmp_path: Path):
    """What `sweep export NAME --item ITEM --format tflite` calls."""
    import keras

    from sweep.export import export_tflite
    from sweep.job.export import run_tflite

    dest = export_tflite(runs["1.0"] / names.MODEL_KERAS, tmp_path / "served" / names.MODEL_TFLITE)
    model = keras.models.load_model(runs["1.0"] / names.MODEL_KERAS)
    sample = np.random.default_rng(1).integers(0, 256, (7, SIZE, SIZE, 1), dtype=np.uint8)
    assert np.abs(run_tflite(dest, sample) - model.predict(sample, verbose=0)).max() < 1e-4


def test_tensorflow_reads_our_records_back_as_the_source_images(
    shards: Path, tmp_path_factory: pytest.TempPathFactory
):
    """The pure-Python TFRecord writer against TensorFlow's reader; and the patient split seen in the records."""
    from sweep.job import dataset

    manifest = json.loads((shards / names.DATA_MANIFEST).read_text())
    source = synthetic_source(tmp_path_factory, IMAGES, SIZE)
    rows = {row[0]: row[1] for row in list(csv.reader((source / names.CXR_CSV).open()))[1:]}
    patients = {}
    for split in ("train", "validation", "test"):
        files = [shards / s["file"] for s in manifest["splits"][split]["shards"]]
        arrays = dataset.read_split(files, SIZE, SIZE, len(manifest["labels"]))
        assert len(arrays.images) == manifest["splits"][split]["images"]
        patients[split] = set(arrays.patient_ids.tolist())
        for index in (0, len(arrays.images) - 1):
            name = arrays.image_index[index]
            expected = np.asarray(Image.open(source / names.CXR_IMAGES_DIR / name))
            assert np.array_equal(arrays.images[index, :, :, 0], expected)
            findings = set(rows[name].split("|")) - {"No Finding"}
            assert {
                label for label, v in zip(manifest["labels"], arrays.labels[index], strict=True) if v
            } == findings
        assert arrays.labels.sum(axis=0).tolist() == [
            manifest["splits"][split]["label_counts"][k] for k in manifest["labels"]
        ]
    assert not patients["train"] & patients["test"] and not patients["validation"] & patients["test"]
    assert not patients["train"] & patients["validation"]
    resized = dataset.read_split([shards / manifest["splits"]["test"]["shards"][0]["file"]], SIZE, 16, 14)
    assert resized.images.shape[1:] == (16, 16, 1) and resized.images.dtype == np.uint8


def test_the_shard_pipeline_yields_exactly_the_subset_in_a_seeded_order(shards: Path):
    from sweep.job import dataset

    manifest = json.loads((shards / names.DATA_MANIFEST).read_text())
    subset = select_training_subset(manifest, 0.3, 5)

    def stream():
        return dataset.training_dataset(
            [shards / f for f in subset.shards],
            subset.patients,
            subset.images,
            SIZE,
            SIZE,
            14,
            batch_size=64,
            seed=3,
        )

    def epoch_labels(data) -> list:
        return [labels.numpy().tolist() for _, labels in data]

    one, two = stream(), stream()
    first_epoch = epoch_labels(one)
    assert sum(len(batch) for batch in first_epoch) == subset.images
    assert epoch_labels(two) == first_epoch  # the same seed, the same order
    assert epoch_labels(one) != first_epoch  # and a new order every epoch
