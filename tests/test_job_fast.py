"""The job without TensorFlow: CPU levels, the SIGILL test switch, error.json, metrics arithmetic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from sweep import names
from sweep.job import host, imbalance, metrics

from data_fixtures import copy_of, shard_folder

V1 = host.LEVEL_FLAGS[1]
V2 = V1 | host.LEVEL_FLAGS[2]
V3 = V2 | host.LEVEL_FLAGS[3]
V4 = V3 | host.LEVEL_FLAGS[4]


@pytest.mark.parametrize(
    ("flags", "level"),
    [
        (V1, "x86_64-v1"),
        (V2, "x86_64-v2"),
        (V3, "x86_64-v3"),
        (V4, "x86_64-v4"),
        (V3 - {"avx2"}, "x86_64-v2"),
        (V4 - {"sse4_2"}, "x86_64-v1"),
        (frozenset({"fp", "asimd"}), None),
    ],
)
def test_microarch_is_the_highest_complete_level(flags: frozenset[str], level: str | None):
    assert host.microarch_from_flags(frozenset(flags)) == level


def test_cpuinfo_is_parsed(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        f"processor\t: 0\nmodel name\t: Old Xeon\nflags\t\t: {' '.join(sorted(V2))}\n\nprocessor\t: 1\n"
    )
    assert host.read_cpuinfo(cpuinfo) == ("Old Xeon", V2)
    assert host.read_cpuinfo(tmp_path / "absent") == (None, frozenset())


@pytest.mark.parametrize(
    ("below", "machine", "plays"),
    [
        ("x86_64-v3", "x86_64-v2", True),
        ("x86_64-v3", "x86_64-v1", True),
        ("x86_64-v3", "x86_64-v3", False),
        ("x86_64-v3", "x86_64-v4", False),
        ("x86_64-v3", "", False),
        ("x86_64-v3", None, False),
        (None, "x86_64-v1", False),
        ("nonsense", "x86_64-v1", False),
    ],
)
def test_old_cpu_switch_compares_levels(below: str | None, machine: str | None, plays: bool):
    env = {
        k: v
        for k, v in (("SWEEP_TEST_SIGILL_BELOW", below), ("SWEEP_MACHINE_MICROARCH", machine))
        if v is not None
    }
    assert host.should_play_old_cpu(env) is plays


def test_export_of_a_missing_model_names_it(tmp_path: Path):
    from sweep.errors import SweepError
    from sweep.export import export_tflite

    with pytest.raises(SweepError, match="model.keras does not exist"):
        export_tflite(tmp_path / "model.keras", tmp_path / "model.tflite")
    assert not (tmp_path / "model.tflite").exists()


def test_export_is_off_unless_asked(tmp_path: Path):
    from sweep.job.__main__ import parse_config

    base = [
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path),
        "--fraction",
        "0.1",
        "--replica",
        "0",
        "--seed",
        "1",
        "--subset-seed",
        "2",
    ]
    assert parse_config(base).export == "none"
    assert parse_config([*base, "--export", "tflite"]).export == "tflite"


def test_threads_follow_omp_num_threads():
    assert host.threads_to_use({"OMP_NUM_THREADS": "3"}) == 3
    assert host.threads_to_use({"OMP_NUM_THREADS": "junk"}) == len(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shard_folder(tmp_path_factory, images=200, size=16)


def run_job(args: list[str], env_extra: dict[str, str] | None = None, python_flags: tuple[str, ...] = ()):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "sweep.job", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def job_args(data: Path, out: Path, fraction: str = "0.5") -> list[str]:
    return [
        "--data",
        str(data),
        "--out",
        str(out),
        "--fraction",
        fraction,
        "--replica",
        "0",
        "--seed",
        "1",
        "--subset-seed",
        "2",
        "--epochs",
        "1",
    ]


def test_old_cpu_dies_of_sigill_before_tensorflow_is_imported(shards: Path, tmp_path: Path):
    result = run_job(
        job_args(shards, tmp_path / "out"),
        python_flags=("-X", "importtime"),
        env_extra={"SWEEP_TEST_SIGILL_BELOW": "x86_64-v3", "SWEEP_MACHINE_MICROARCH": "x86_64-v2"},
    )
    assert result.returncode == -signal.SIGILL
    assert "sweep.job.host" in result.stderr  # -X importtime lists every module imported before death
    assert "tensorflow" not in result.stderr
    assert not (tmp_path / "out" / names.ERROR).exists()  # a real SIGILL leaves no error.json either


def test_bad_arguments_still_leave_error_json(tmp_path: Path):
    result = run_job(job_args(tmp_path, tmp_path / "out", fraction="1.5"))
    assert result.returncode == 1
    error = json.loads((tmp_path / "out" / names.ERROR).read_text())
    assert error["schema"] == "sweep.error/1" and error["stage"] == "arguments"
    assert error["type"] == "ArgumentError" and "1.5 is outside (0, 1]" in error["message"]
    assert "Traceback" in error["traceback"]


def test_a_missing_shard_fails_fast_in_data_load_with_the_file_named(shards: Path, tmp_path: Path):
    data = copy_of(shards, tmp_path / "data")
    manifest = json.loads((data / names.DATA_MANIFEST).read_text())
    victim = manifest["splits"]["test"]["shards"][0]["file"]
    (data / victim).unlink()
    result = run_job(
        job_args(data, tmp_path / "out"),
        python_flags=("-X", "importtime"),
        env_extra={"SWEEP_TEST_SIGILL_BELOW": "x86_64-v3", "SWEEP_MACHINE_MICROARCH": "x86_64-v3"},
    )
    assert result.returncode == 1
    error = json.loads((tmp_path / "out" / names.ERROR).read_text())
    assert error["stage"] == "data_load" and f"{victim} missing" in error["message"]
    assert "tensorflow" not in result.stderr  # checked before the 5 s import
    assert not (tmp_path / "out" / names.METRICS).exists()


def test_a_folder_without_manifest_fails_in_data_load(tmp_path: Path):
    result = run_job(job_args(tmp_path, tmp_path / "out"))
    error = json.loads((tmp_path / "out" / names.ERROR).read_text())
    assert (
        result.returncode == 1
        and error["stage"] == "data_load"
        and "manifest.json is missing" in error["message"]
    )


# ---- metrics arithmetic

LABELS = ("A", "B", "C")


def test_auc_report_leaves_out_labels_without_both_classes():
    truth = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.5], [0.4, 0.3, 0.5], [0.5, 0.4, 0.5]])
    report = metrics.auc_report(LABELS, truth, scores)
    assert report["auc_per_label"]["A"] == roc_auc_score(truth[:, 0], scores[:, 0]) == 0.75
    assert report["auc_per_label"]["B"] is None and report["auc_per_label"]["C"] is None
    assert report["not_evaluable"] == {
        "B": "no positives in the test split",
        "C": "no negatives in the test split",
    }
    assert report["auc_macro"] == 0.75 and report["auc_labels_evaluated"] == 1


def test_thresholds_are_chosen_on_validation_and_measured_on_test():
    # validation: positives score 0.05, 0.3, 0.8; negatives 0.1, 0.2, 0.4, 0.5
    validation_truth = np.array([[1], [1], [1], [0], [0], [0], [0]])
    validation_scores = np.array([[0.05], [0.30], [0.80], [0.10], [0.20], [0.40], [0.50]])
    test_truth = np.array([[1], [0], [0], [1]])
    test_scores = np.array([[0.35], [0.31], [0.05], [0.90]])
    report = metrics.threshold_report(("A",), validation_truth, validation_scores, test_truth, test_scores)
    lowest = report["lowest_positive"]["A"]
    assert lowest["threshold"] == 0.05  # the lowest validation positive: every test image is called positive
    assert (lowest["precision"], lowest["recall"], lowest["specificity"]) == (0.5, 1.0, 0.0)
    assert lowest["predicted_positive_rate"] == 1.0 and lowest["predicted_positives"] == 4
    youden = report["youden"]["A"]
    assert youden["threshold"] == 0.80  # J = 1/3 - 0 at 0.8 beats 2/3 - 2/4 at 0.3 and 1 - 1 at 0.05
    assert (youden["precision"], youden["recall"], youden["specificity"]) == (1.0, 0.5, 1.0)
    assert (
        report["fixed_0.5"]["A"]["threshold"] == 0.5 and report["fixed_0.5"]["A"]["predicted_positives"] == 1
    )
    assert metrics.labels_predicting_positives(report) == {"lowest_positive": 1, "youden": 1, "fixed_0.5": 1}


def test_thresholds_say_why_a_label_has_none():
    report = metrics.threshold_report(
        ("A",), np.zeros((3, 1)), np.ones((3, 1)) / 2, np.array([[1], [0]]), np.ones((2, 1))
    )
    assert report["youden"]["A"] == {"threshold": None, "reason": "no positives in the validation split"}


def test_balanced_weights_give_each_class_half_of_a_label():
    pos, neg = imbalance.balanced_weights([10, 0, 100, 1], 100)
    assert pos[0] * 10 == pytest.approx(neg[0] * 90) == pytest.approx(50)
    assert (pos[1], neg[1]) == (1.0, 1.0) and (pos[2], neg[2]) == (1.0, 1.0)
    assert pos[3] == imbalance.MAX_POSITIVE_WEIGHT
