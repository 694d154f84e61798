"""The local runner's scheduling, retries, SIGILL holds, kills and cancellation, with a stand-in job."""

import json
import os
import signal
import time

import pytest

from sweep import names
from sweep.backends.local import EventLog
from sweep.collect import collect_sweep
from sweep.state import ItemState
from sweep.submitting import resubmit_failed
from sweep.tracking import cancel_sweep, status_payload, sweep_statuses, wait_for_sweep

from local_fakes import make_fake_sweep

pytestmark = pytest.mark.timeout(120)


def settle(sweep):
    return wait_for_sweep(sweep.path.parent, sweep.name, lambda *_: None, interval=0.1, timeout=60)


def pid_of(sweep, item):
    for event in EventLog(sweep.path / names.LOCAL_EVENTS).read():
        if event.get("item") == item and event.get("event") == "executing":
            return event["pid"]
    return None


def wait_running(sweep, item, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = pid_of(sweep, item)
        if pid:
            return pid
        time.sleep(0.05)
    raise AssertionError(f"{item} never started")


def test_all_items_run_and_outputs_come_back(tmp_path):
    sweep, manifest = make_fake_sweep(tmp_path, fractions="0.1,0.2,0.3", replicas=2)
    statuses = settle(sweep)
    assert {s.state for s in statuses.values()} == {ItemState.DONE}
    for item in manifest.item_names:
        assert (sweep.item_output(item) / names.METRICS).is_file()
        assert (sweep.item_dir(item) / "job.out").exists()
        assert statuses[item].attempts == 1 and statuses[item].wall_time > 0
    assert not any((sweep.path / names.LOCAL_SANDBOXES_DIR).iterdir())  # sandboxes cleaned


def test_failure_sigill_and_retries(tmp_path):
    sweep, _ = make_fake_sweep(
        tmp_path, fractions="0.1,0.2,0.3", max_retries=1, behaviour={"0.2": "fail", "0.3": "sigill"}
    )
    statuses = settle(sweep)
    assert statuses["f0.1_r0"].state is ItemState.DONE
    failed = statuses["f0.2_r0"]
    assert failed.state is ItemState.FAILED and failed.attempts == 2  # retried once
    assert "exit code 1" in failed.reason and "ValueError: bad batch" in failed.reason
    held = statuses["f0.3_r0"]
    assert held.state is ItemState.HELD and held.attempts == 1  # a SIGILL is never retried
    assert "lacks AVX2" in held.reason and "SIGILL" in held.reason


def test_killed_job_fails_with_reason_and_resubmit_runs_only_it(tmp_path):
    sweep, manifest = make_fake_sweep(tmp_path, fractions="0.1,0.2,0.3", behaviour={"0.2": "sleep"})
    pid = wait_running(sweep, "f0.2_r0")
    os.kill(pid, signal.SIGKILL)
    statuses = settle(sweep)
    assert statuses["f0.2_r0"].state is ItemState.FAILED
    assert "signal 9" in statuses["f0.2_r0"].reason and "killed" in statuses["f0.2_r0"].reason
    # the stand-in now succeeds for 0.2
    (tmp_path / "data" / "behaviour.txt").write_text("")
    items, _ = resubmit_failed(sweep.path.parent, sweep.name)
    assert items == ["f0.2_r0"]
    statuses = settle(sweep)
    assert {s.state for s in statuses.values()} == {ItemState.DONE}
    runs = [e for e in EventLog(sweep.path / names.LOCAL_EVENTS).read() if e.get("event") == "executing"]
    assert sorted(e["item"] for e in runs) == ["f0.1_r0", "f0.2_r0", "f0.2_r0", "f0.3_r0"]
    result = collect_sweep(sweep.path.parent, sweep.name)
    import pandas as pd

    table = pd.read_parquet(result.parquet)
    assert len(table) == 3 and table["item"].is_unique and set(table["state"]) == {"done"}


def test_cancel_stops_running_and_idle_items(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEP_LOCAL_SLOTS", "1")
    sweep, _ = make_fake_sweep(tmp_path, fractions="0.1,0.2", behaviour={"0.1": "sleep", "0.2": "sleep"})
    pid = wait_running(sweep, "f0.1_r0")
    stopped = cancel_sweep(sweep.path.parent, sweep.name)
    assert sorted(stopped) == ["f0.1_r0", "f0.2_r0"]
    _, _, statuses = sweep_statuses(sweep.path.parent, sweep.name)
    assert {s.state for s in statuses.values()} == {ItemState.CANCELLED}
    time.sleep(0.3)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_dead_runner_marks_its_unfinished_items_failed(tmp_path):
    sweep, _ = make_fake_sweep(tmp_path, fractions="0.1", behaviour={"0.1": "sleep"})
    job_pid = wait_running(sweep, "f0.1_r0")
    runner = next(
        e for e in EventLog(sweep.path / names.LOCAL_EVENTS).read() if e.get("event") == "runner_started"
    )
    os.kill(runner["pid"], signal.SIGKILL)
    os.killpg(job_pid, signal.SIGKILL)
    time.sleep(0.3)
    _, _, statuses = sweep_statuses(sweep.path.parent, sweep.name)
    assert statuses["f0.1_r0"].state is ItemState.FAILED
    assert "runner" in statuses["f0.1_r0"].reason and "stopped" in statuses["f0.1_r0"].reason


def test_status_json_shape(tmp_path):
    sweep, manifest = make_fake_sweep(tmp_path, fractions="0.1,0.2", behaviour={"0.2": "fail"})
    statuses = settle(sweep)
    payload = json.loads(json.dumps(status_payload(manifest, statuses)))
    assert payload["name"] == "fake" and payload["counts"]["done"] == 1 and payload["counts"]["failed"] == 1
    assert {"fraction", "replica", "state", "reason"} <= set(payload["items"][0])


def test_collect_is_idempotent_and_flags_damaged_outputs(tmp_path):
    sweep, _ = make_fake_sweep(
        tmp_path, fractions="0.1,0.2,0.3", behaviour={"0.2": "truncated", "0.3": "fail"}
    )
    settle(sweep)
    first = collect_sweep(sweep.path.parent, sweep.name)
    parquet, csv = first.parquet.read_bytes(), first.csv.read_bytes()
    second = collect_sweep(sweep.path.parent, sweep.name)
    assert second.parquet.read_bytes() == parquet and second.csv.read_bytes() == csv
    import pandas as pd

    table = pd.read_csv(first.csv).set_index("item")
    assert table.loc["f0.1_r0", "auc_macro"] == pytest.approx(0.75)
    assert table.loc["f0.1_r0", "t_train"] == 2.0 and table.loc["f0.1_r0", "t_unpack"] == 0.5
    assert table.loc["f0.2_r0", "output_problem"] == "metrics.json truncated or not JSON"
    assert pd.isna(table.loc["f0.2_r0", "auc_macro"])
    assert table.loc["f0.3_r0", "state"] == "failed" and "bad batch" in table.loc["f0.3_r0", "reason"]
    assert first.problems == ["f0.2_r0: metrics.json truncated or not JSON"]


def test_report_reads_what_collect_writes(tmp_path):
    from sweep.reporting import report_sweep

    sweep, _ = make_fake_sweep(tmp_path, fractions="0.1,0.2,0.3", replicas=2, behaviour={"0.3": "fail"})
    settle(sweep)
    summary = report_sweep(sweep.path.parent, sweep.name)
    html = (sweep.path / names.REPORT_DIR / "report.html").read_text()
    assert summary.failed == 2 and summary.done == 4
    assert "f0.3_r0" in html and "bad batch" in html  # the failures table names the item and why
