"""Faults: pools that misbehave, jobs that die, a CLI killed mid-submit, two collects at once.
Each case asserts what the user sees (exit code, state, reason) and that nothing was lost or half-written.

Covered elsewhere and not repeated here:
- a job killed mid-run (SIGKILL): tests/test_local_backend.py::test_killed_job_fails_with_reason_and_resubmit_runs_only_it
  (the stand-in job; a real TensorFlow job killed the same way adds minutes and nothing the runner sees differently)
- a truncated metrics.json flagged by collect: tests/test_local_backend.py::test_collect_is_idempotent_and_flags_damaged_outputs
- a tarball whose hash does not match, at the wrapper: tests/test_wrapper.py::test_tampered_code_tarball_exits_23 and
  test_tampered_site_packages_exits_23_via_the_unpacker; here the same through a whole sweep, up to `status`
- tarball members with `..`, absolute paths or links out: tests/test_unpack.py::test_unsafe_members_are_refused_before_anything_is_written,
  tests/test_wrapper.py::test_unsafe_interpreter_member_exits_24_and_writes_nothing and
  tests/test_hardening_security.py::test_the_wrapper_refuses_members_that_hide_a_way_out
- a local runner that dies: tests/test_local_backend.py::test_a_dead_runner_marks_its_unfinished_items_failed
- an unreachable pool: tests/test_condor_backend.py::test_unreachable_pool_is_a_clear_error
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hardening_fixtures import TINY_CACHE, cli, entries, refused, settle, submit_args

from sweep import names, submitting
from sweep.backends.local import EventLog, LocalBackend, process_start_ticks
from sweep.state import ItemState, SweepDir
from sweep.tracking import sweep_statuses

from condor_pool import PersonalPool
from data_fixtures import copy_of, shard_folder
from local_fakes import FAKE_WRAPPER, make_fake_sweep
from packing_fakes import tiny_environment

pytestmark = pytest.mark.timeout(300)
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shard_folder(tmp_path_factory, images=200, size=16)


@pytest.fixture
def stand_in_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """Submitted sweeps run the stand-in job (done in 0.2 s): here the transaction is under test, not the job."""
    monkeypatch.setattr(submitting, "wrapper_text", lambda env, code: FAKE_WRAPPER)


def status_json(sweeps: Path, name: str) -> dict:
    ran = cli("status", name, "--sweeps-dir", sweeps, "--json")
    assert ran.code == 0, ran.output
    return json.loads(ran.stdout)


# ----------------------------------------------------------------------------- damaged job outputs

DAMAGED_METRICS = {
    "an old schema": ({"schema": "sweep.metrics/0", "auc_macro": 0.7}, "metrics.json has schema 'sweep.metrics/0', expected 'sweep.metrics/1'"),
    "a list": ([0.7, 0.8], "metrics.json has schema 'list', expected 'sweep.metrics/1'"),
    "a word for the AUC": ({"schema": "sweep.metrics/1", "auc_macro": "high"}, "metrics.json has a non-numeric auc_macro"),
}  # fmt: skip


def test_collect_flags_metrics_of_the_wrong_schema_row_by_row(tmp_path: Path) -> None:
    import pandas as pd

    sweep, manifest = make_fake_sweep(tmp_path, fractions="0.1,0.2,0.3,0.4")
    settle(sweep.path.parent, sweep.name)
    damaged = dict(zip(manifest.item_names[1:], DAMAGED_METRICS.values(), strict=True))
    for item, (payload, _) in damaged.items():
        (sweep.item_output(item) / names.METRICS).write_text(json.dumps(payload))
    ran = cli("collect", "fake", "--sweeps-dir", sweep.path.parent, "--json")
    assert ran.code == 0, ran.output  # a damaged output is a finding, not a crash
    result = json.loads(ran.stdout)
    assert result["rows"] == 4 and result["counts"] == {"done": 4}
    assert result["problems"] == [f"{item}: {problem}" for item, (_, problem) in damaged.items()]
    table = pd.read_csv(result["csv"]).set_index("item")
    assert table.loc["f0.1_r0", "auc_macro"] == pytest.approx(0.75) and pd.isna(
        table.loc["f0.1_r0", "output_problem"]
    )
    for item, (_, problem) in damaged.items():
        assert table.loc[item, "output_problem"] == problem and pd.isna(table.loc[item, "auc_macro"])


# ----------------------------------------------------------------------------- a tarball tampered with


def test_a_tampered_tarball_fails_the_jobs_and_status_says_why(shards: Path, tmp_path: Path) -> None:
    env = tiny_environment()
    cache = tmp_path / "cache"  # a copy: the shared test cache stays whole
    shutil.copytree(TINY_CACHE, cache, ignore=shutil.ignore_patterns("unpacked", ".lock-*"))
    tarball = cache / env.interpreter.name
    with open(
        tarball, "r+b"
    ) as handle:  # one byte, same size: the cache (which checks sizes) still trusts it
        handle.seek(env.interpreter.bytes // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    sweeps = tmp_path / "sweeps"
    ran = cli(*submit_args(shards, sweeps), "--requirements", cache / "requirements.txt", "--cache", cache)
    assert ran.code == 0, ran.output
    settle(sweeps, "t")
    expected = (
        f"exit code 23: [verify] {env.interpreter.name}: sha256 mismatch, tampered or corrupt: "
        f"expected {env.interpreter.sha256}, got "
    )
    for item in status_json(sweeps, "t")["items"]:
        assert item["state"] == "failed" and item["reason"].startswith(expected), item
        assert item["attempts"] == 1  # --max-retries 0
    assert not (cache / names.UNPACKED_ENV_CACHE / env.interpreter.sha256).exists()  # nothing was unpacked


# ----------------------------------------------------------------------------- the CLI killed during submit

# Where the child `sweep submit` kills itself (SIGKILL: no handler runs), and what must be left.
KILL_POINTS = {
    "files written, not yet in place": ("sweep.submitting:write_sweep_files", "no sweep"),
    "in place, nothing submitted": ("sweep.submitting:create_sweep_dir", "no sweep"),
    "jobs accepted, not recorded": ("sweep.backends.local:LocalBackend.submit", "complete"),
    "recorded": ("sweep.recovery:adopt_or_undo", "complete"),
}
KILLED_CHILD = """
import importlib, os, signal, sys
sys.path.insert(0, {tests!r})
from local_fakes import FAKE_WRAPPER
from sweep import submitting
from sweep.cli import app

submitting.wrapper_text = lambda env, code: FAKE_WRAPPER
module, _, attribute = sys.argv[1].partition(":")
owner = importlib.import_module(module)
*path, last = attribute.split(".")
for part in path:
    owner = getattr(owner, part)
original = getattr(owner, last)

def then_die(*args, **kwargs):
    result = original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(owner, last, then_die)
app(sys.argv[2:], prog_name="sweep")
"""


def submit_killed_after(point: str, args: list[object]) -> None:
    child = KILLED_CHILD.format(tests=str(TESTS))
    done = subprocess.run(
        [sys.executable, "-c", child, point, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def assert_complete(sweeps: Path, name: str) -> None:
    """One recorded submission that every item belongs to, run once, all done."""
    items = status_json(sweeps, name)["items"]
    manifest = SweepDir(sweeps / name).load()
    assert manifest.pending_submit is None and len(manifest.submissions) == 1
    assert {item["submission"] for item in items} == {manifest.submissions[0].id}
    assert {status.state for status in settle(sweeps, name).values()} == {ItemState.DONE}
    assert len(list((sweeps / name / names.LOCAL_RUNS_DIR).glob("run-*.json"))) == 1


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_submit_killed_leaves_no_sweep_or_a_complete_one_and_can_be_run_again(
    point: str, shards: Path, tmp_path: Path, stand_in_job: None
) -> None:
    target, outcome = KILL_POINTS[point]
    sweeps = tmp_path / "sweeps"
    args = submit_args(shards, sweeps)
    submit_killed_after(target, args)
    if outcome == "complete":
        assert_complete(sweeps, "t")  # status adopted the accepted jobs by the submit token
        refused(cli(*args), "a sweep named 't' already exists", "accepted: another --name, or --replace")
        assert len(SweepDir(sweeps / "t").load().submissions) == 1
        return
    if point == "in place, nothing submitted":
        assert SweepDir(sweeps / "t").load().pending_submit is not None  # what the kill left: settled below
    refused(cli("status", "t", "--sweeps-dir", sweeps), "no sweep named 't'")
    ran = cli(*args)  # the same command again
    assert ran.code == 0, ran.output
    assert_complete(sweeps, "t")
    assert entries(sweeps) == ["t"]  # the killed attempt's temporary folder is gone too


def _interrupted_after_accepting(monkeypatch: pytest.MonkeyPatch) -> None:
    accept = LocalBackend.submit

    def accepted_then_interrupted(self: LocalBackend, *args: object, **kwargs: object) -> None:
        accept(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalBackend, "submit", accepted_then_interrupted)


def _interrupted_before_accepting(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: LocalBackend, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalBackend, "submit", interrupted)


@pytest.mark.parametrize("accepted", [True, False], ids=["after-accepting", "before-accepting"])
def test_ctrl_c_during_submit_adopts_accepted_jobs_or_leaves_nothing(
    accepted: bool, shards: Path, tmp_path: Path, stand_in_job: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweeps = tmp_path / "sweeps"
    with monkeypatch.context() as patch:
        (_interrupted_after_accepting if accepted else _interrupted_before_accepting)(patch)
        ran = cli(*submit_args(shards, sweeps))
    assert ran.code == 130 and "interrupted" in ran.output
    if accepted:
        assert_complete(sweeps, "t")
        return
    assert entries(sweeps) == []
    assert cli(*submit_args(shards, sweeps)).code == 0
    assert_complete(sweeps, "t")


def test_an_unreachable_pool_at_submit_leaves_no_sweep(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import htcondor2

    config = tmp_path / "condor_config"
    config.write_text(
        "COLLECTOR_HOST = 127.0.0.1:1\nSCHEDD_ADDRESS_FILE = /nonexistent\n"
        "SCHEDD_SUPER_ADDRESS_FILE = /nonexistent\nSEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS\n"
    )
    monkeypatch.setenv("CONDOR_CONFIG", str(config))
    htcondor2.reload_config()
    sweeps = tmp_path / "sweeps"
    try:
        refused(
            cli(*submit_args(shards, sweeps), "--backend", "condor"),
            "cannot reach the HTCondor schedd",
            "check that CONDOR_CONFIG points at this submit node's configuration",
        )
    finally:
        monkeypatch.undo()
        htcondor2.reload_config()
    assert entries(sweeps) == []


def test_replace_stops_the_old_jobs_before_it_discards_their_sweep(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweeps = tmp_path / "sweeps"
    monkeypatch.setattr(submitting, "wrapper_text", lambda env, code: "#!/bin/sh\nsleep 60\n")
    assert cli(*submit_args(shards, sweeps)).code == 0
    deadline = time.monotonic() + 30
    while (
        len(
            running := [
                e["pid"]
                for e in EventLog(sweeps / "t" / names.LOCAL_EVENTS).read()
                if e.get("event") == "executing"
            ]
        )
        < 2
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert len(running) == 2
    monkeypatch.setattr(submitting, "wrapper_text", lambda env, code: FAKE_WRAPPER)
    ran = cli(*submit_args(shards, sweeps), "--replace")
    assert ran.code == 0, ran.output
    assert [pid for pid in running if process_start_ticks(pid) is not None] == []  # the old jobs are gone
    assert_complete(sweeps, "t")  # and nothing of theirs is in the new sweep's log


def test_replace_refuses_a_folder_that_is_not_a_sweep(shards: Path, tmp_path: Path) -> None:
    sweeps = tmp_path / "sweeps"
    keep = sweeps / "t" / "precious.txt"
    keep.parent.mkdir(parents=True)
    keep.write_text("mine")
    refused(
        cli(*submit_args(shards, sweeps), "--replace"),
        "exists but is not a sweep",
        "--replace only discards sweeps",
    )
    assert keep.read_text() == "mine" and entries(sweeps) == ["t"]


def test_a_sweep_of_the_same_name_made_meanwhile_is_never_clobbered(tmp_path: Path) -> None:
    from sweep.errors import StateError
    from sweep.state import create_sweep_dir

    sweeps = tmp_path / "sweeps"

    def build(tmp: Path) -> None:  # another submit of the same name finishes while this one builds
        (tmp / "mine").write_text("new")
        (sweeps / "t").mkdir()
        (sweeps / "t" / names.SWEEP_MANIFEST).write_text("{}")

    with pytest.raises(StateError, match="appeared .* while this one was being made"):
        create_sweep_dir(sweeps, "t", build)
    assert entries(sweeps) == ["t"] and entries(sweeps / "t") == [names.SWEEP_MANIFEST]


# ----------------------------------------------------------------------------- two collects at once


def _waiting_for_lock(pids: set[int]) -> set[int]:
    """The pids among `pids` that the kernel lists as blocked on a lock (the '->' lines of /proc/locks)."""
    blocked = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "->" and int(fields[5]) in pids:
            blocked.add(int(fields[5]))
    return blocked


def test_two_collects_at_once_take_turns_and_agree(tmp_path: Path) -> None:
    import pandas as pd

    sweep, _ = make_fake_sweep(tmp_path, fractions="0.1,0.2,0.3")
    settle(sweep.path.parent, sweep.name)
    command = [sys.executable, "-c", "from sweep.cli import app; app(prog_name='sweep')",
               "collect", "fake", "--sweeps-dir", str(sweep.path.parent)]  # fmt: skip
    parquet, csv = sweep.path / names.RESULTS_PARQUET, sweep.path / names.RESULTS_CSV
    with sweep.locked():  # as a collect (or resubmit, cancel) in progress would
        collects = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
        ]
        pids = {process.pid for process in collects}
        deadline = time.monotonic() + 60
        while _waiting_for_lock(pids) != pids and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _waiting_for_lock(pids) == pids  # both wait for the sweep's lock ...
        assert not parquet.exists() and not csv.exists()  # ... and have written nothing
    for process in collects:
        assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    first = parquet.read_bytes(), csv.read_bytes()
    assert cli("collect", "fake", "--sweeps-dir", sweep.path.parent).code == 0
    assert (parquet.read_bytes(), csv.read_bytes()) == first  # the same files a lone collect writes
    assert (
        list(pd.read_parquet(parquet)["item"])
        == list(pd.read_csv(csv)["item"])
        == ["f0.1_r0", "f0.2_r0", "f0.3_r0"]
    )


# ----------------------------------------------------------------------------- the real pool

CONDOR = {"name": "condor"}


def _schedd_start_time(pool: PersonalPool) -> str:
    return pool.condor("condor_status", "-schedd", "-af", "DaemonStartTime").stdout.strip()


def _wait_for_a_new_schedd(pool: PersonalPool, old_start_time: str) -> None:
    """Until the collector lists a schedd started after `old_start_time`.

    The master restarts the schedd after 2 s, but restarts within 5 minutes of each other (reruns of
    this test) double that back-off each time; `condor_on` starts it at once, so the shared pool is
    never left without a schedd for minutes."""
    deadline = time.monotonic() + 120
    nudged = False
    while _schedd_start_time(pool) in ("", old_start_time):
        assert time.monotonic() < deadline, "the schedd did not come back"
        if not nudged and time.monotonic() > deadline - 110:
            pool.condor("condor_on", "-schedd")
            nudged = True
        time.sleep(0.5)


@pytest.mark.condor
def test_a_schedd_restart_mid_sweep_loses_nothing(
    condor_pool: PersonalPool, pool_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep, manifest = make_fake_sweep(
        pool_root,
        fractions="0.1,0.2,0.3,0.4",
        backend=CONDOR,
        behaviour=dict.fromkeys(("0.1", "0.2", "0.3", "0.4"), "slow"),
    )
    sweeps = sweep.path.parent
    deadline = time.monotonic() + 120
    while not any(s.state is ItemState.RUNNING for s in sweep_statuses(sweeps, "fake")[2].values()):
        assert time.monotonic() < deadline, "no item started"
        time.sleep(0.5)
    started = _schedd_start_time(condor_pool)
    condor_pool.condor("condor_restart", "-schedd")
    assert status_json(sweeps, "fake")["counts"]["done"] < 4  # status answers from the event log meanwhile
    _wait_for_a_new_schedd(condor_pool, started)
    statuses = settle(sweeps, "fake", timeout=240)
    assert {s.state for s in statuses.values()} == {ItemState.DONE}
    assert all((sweep.item_output(item) / names.METRICS).is_file() for item in manifest.item_names)
    assert len(sweep.load().submissions) == 1  # nothing was submitted twice
    result = json.loads(cli("collect", "fake", "--sweeps-dir", sweeps, "--json").stdout)
    assert result["rows"] == 4 and result["counts"] == {"done": 4} and result["problems"] == []
    # and with no schedd to ask at all, status still reads the whole story from the event log
    import htcondor2

    config = pool_root / "nowhere_config"
    config.write_text("SCHEDD_ADDRESS_FILE = /nonexistent\nSCHEDD_SUPER_ADDRESS_FILE = /nonexistent\n")
    monkeypatch.setenv("CONDOR_CONFIG", str(config))
    htcondor2.reload_config()
    try:
        assert status_json(sweeps, "fake")["counts"]["done"] == 4
    finally:
        monkeypatch.undo()
        htcondor2.reload_config()


@pytest.mark.condor
def test_a_submit_killed_after_the_schedd_accepted_is_adopted(
    condor_pool: PersonalPool, pool_root: Path, shards: Path
) -> None:
    cache = pool_root / "cache"  # the pool sees only its shared folder: the tarballs and data go there
    shutil.copytree(TINY_CACHE, cache, ignore=shutil.ignore_patterns("unpacked", ".lock-*"))
    data = copy_of(shards, pool_root / "shards")
    sweeps = pool_root / "sweeps"
    args = [*submit_args(data, sweeps), "--requirements", cache / "requirements.txt", "--cache", cache,
            "--backend", "condor"]  # fmt: skip
    submit_killed_after("sweep.backends.condor:CondorBackend.submit", args)
    manifest = SweepDir(sweeps / "t").load()
    assert manifest.submissions == [] and manifest.pending_submit is not None
    items = status_json(sweeps, "t")["items"]  # settles: the schedd holds a cluster with the sweep's token
    adopted = SweepDir(sweeps / "t").load()
    assert adopted.pending_submit is None and len(adopted.submissions) == 1
    cluster = adopted.submissions[0].id
    assert {item["submission"] for item in items} == {cluster}
    queued = condor_pool.condor("condor_q", "-af", "ClusterId", "SweepSubmitToken").stdout.split("\n")
    history = condor_pool.condor("condor_history", "-af", "ClusterId", "SweepSubmitToken").stdout.split("\n")
    assert {line.split()[0] for line in queued + history if manifest.pending_submit in line} == {cluster}
    assert {s.state for s in settle(sweeps, "t", timeout=240).values()} == {ItemState.DONE}
    refused(cli(*args), "a sweep named 't' already exists")
