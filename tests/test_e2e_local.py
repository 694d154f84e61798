"""End to end on the embedded local backend, for real: the CLI, the packed environment, the wrapper,
TensorFlow training on synthetic ChestX-ray14 shards, collect and the report in Chromium.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sweep import names
from sweep.backends.local import EventLog

from browser import assert_renders_non_blank, find_chromium, rendered_dom
from data_fixtures import shard_folder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
REPO = Path(__file__).resolve().parents[1]
SWEEP = [str(Path(sys.executable).parent / "sweep")]  # the installed console script, as a user runs it


def sweep_cli(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*SWEEP, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, (
            f"sweep {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shard_folder(tmp_path_factory, images=400, size=32)


def statuses(sweeps: Path, name: str) -> dict[str, dict]:
    payload = json.loads(sweep_cli("status", name, "--json", "--sweeps-dir", str(sweeps)).stdout)
    return {item["item"]: item for item in payload["items"]}


def wait_running_job(sweep_dir: Path, item: str, timeout: float = 120) -> int:
    """The pid of `item`'s job once python runs the training (the wrapper exec'd into it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in EventLog(sweep_dir / names.LOCAL_EVENTS).read():
            if event.get("item") == item and event.get("event") == "executing":
                try:
                    cmdline = Path(f"/proc/{event['pid']}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"sweep.job" in cmdline:
                    return int(event["pid"])
        time.sleep(0.2)
    raise AssertionError(f"{item} never started training")


def test_a_small_sweep_runs_collects_and_reports(shards: Path, tmp_path: Path) -> None:
    sweeps = tmp_path / "sweeps"
    common = ["--sweeps-dir", str(sweeps)]
    submitted = sweep_cli(
        "submit",
        "--fractions",
        "0.5,1",
        "--replicas",
        "2",
        "--data",
        str(shards),
        "--name",
        "e2e",
        "--epochs",
        "1",
        *common,
    )
    assert "4 items submitted to the local backend" in submitted.stdout
    sweep_cli("status", "e2e", "--watch", *common)
    states = statuses(sweeps, "e2e")
    assert {item["state"] for item in states.values()} == {"done"}, states
    sweep_cli("collect", "e2e", *common)
    results = sweeps / "e2e" / names.RESULTS_CSV
    first = (results.read_bytes(), (sweeps / "e2e" / names.RESULTS_PARQUET).read_bytes())
    sweep_cli("collect", "e2e", *common)
    assert (results.read_bytes(), (sweeps / "e2e" / names.RESULTS_PARQUET).read_bytes()) == first
    table = pd.read_csv(results)
    assert len(table) == 4 and table["item"].is_unique
    assert table["auc_macro"].between(0, 1).all() and (table["t_train"] > 0).all()
    assert (table.groupby("fraction")["train_images"].first().diff().dropna() > 0).all()
    for row in table.itertuples():
        assert (sweeps / "e2e" / row.model_path).is_file()
        assert row.microarch.startswith("x86_64-v") and row.cpu_model
    reported = json.loads(sweep_cli("report", "e2e", "--json", *common).stdout)
    assert reported["done"] == 4 and Path(reported["files"]["report"]).is_file()
    # jobs write model.keras only; `sweep export` converts the one that is needed
    assert (table["t_train_first_epoch"] > 0).all() and (table["t_train_steady"] >= 0).all()
    item_out = sweeps / "e2e" / "items" / "f1_r0" / names.JOB_OUTPUT_DIR
    assert not (item_out / names.MODEL_TFLITE).exists()
    exported = json.loads(sweep_cli("export", "e2e", "--item", "f1_r0", "--json", *common).stdout)
    assert exported == {
        "name": "e2e",
        "item": "f1_r0",
        "format": "tflite",
        "file": str(item_out / names.MODEL_TFLITE),
    }
    assert (item_out / names.MODEL_TFLITE).stat().st_size > 1000


def test_report_of_a_real_sweep_opens_in_chromium(shards: Path, tmp_path: Path) -> None:
    chromium = find_chromium()
    sweeps = tmp_path / "sweeps"
    common = ["--sweeps-dir", str(sweeps)]
    sweep_cli(
        "submit",
        "--fractions",
        "0.25,0.5,0.75,1",
        "--replicas",
        "1",
        "--data",
        str(shards),
        "--name",
        "browse",
        "--epochs",
        "1",
        *common,
    )
    sweep_cli("status", "browse", "--watch", *common)
    html = Path(json.loads(sweep_cli("report", "browse", "--json", *common).stdout)["files"]["report"])
    assert_renders_non_blank(chromium, html, tmp_path)
    dom = rendered_dom(chromium, html, tmp_path)
    assert "browse" in dom


def test_killed_job_fails_with_reason_and_only_it_is_resubmitted(shards: Path, tmp_path: Path) -> None:
    sweeps = tmp_path / "sweeps"
    common = ["--sweeps-dir", str(sweeps)]
    sweep_cli(
        "submit",
        "--fractions",
        "0.5,1",
        "--replicas",
        "1",
        "--data",
        str(shards),
        "--name",
        "kill",
        "--epochs",
        "3",
        "--max-retries",
        "0",
        *common,
    )
    watcher = subprocess.Popen(
        [*SWEEP, "status", "kill", "--watch", *common],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid = wait_running_job(sweeps / "kill", "f1_r0")
    assert "Ctrl-C stops watching, not the jobs" in watcher.stderr.readline()  # it is watching now
    watcher.send_signal(signal.SIGINT)  # Ctrl-C stops watching, never the jobs
    _, stderr = watcher.communicate(timeout=60)
    assert watcher.returncode == 130 and "the jobs keep running" in stderr
    os.kill(pid, signal.SIGKILL)
    sweep_cli("status", "kill", "--watch", *common)
    states = statuses(sweeps, "kill")
    assert states["f0.5_r0"]["state"] == "done"
    assert states["f1_r0"]["state"] == "failed" and "killed by signal 9" in states["f1_r0"]["reason"]
    resubmitted = sweep_cli("resubmit", "kill", "--failed", *common)
    assert "resubmitted 1 items: f1_r0" in resubmitted.stdout
    sweep_cli("status", "kill", "--watch", *common)
    assert {item["state"] for item in statuses(sweeps, "kill").values()} == {"done"}
    executions = [
        e["item"]
        for e in EventLog(sweeps / "kill" / names.LOCAL_EVENTS).read()
        if e.get("event") == "executing"
    ]
    assert sorted(executions) == ["f0.5_r0", "f1_r0", "f1_r0"]  # the done item did not run again
    sweep_cli("collect", "kill", *common)
    table = pd.read_csv(sweeps / "kill" / names.RESULTS_CSV)
    assert sorted(table["item"]) == ["f0.5_r0", "f1_r0"] and set(table["state"]) == {"done"}
