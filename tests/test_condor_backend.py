"""The HTCondor backend on the real personal pool, with the stand-in job (fast).

The real training job on the pool is in tests/test_e2e_condor.py.
"""

import os
import time

import pytest

from sweep.backends.condor import CondorBackend
from sweep.collect import collect_sweep
from sweep.errors import BackendError
from sweep.state import ItemState
from sweep.submitting import resubmit_failed
from sweep.tracking import cancel_sweep, sweep_statuses, wait_for_sweep

from local_fakes import make_fake_sweep

pytestmark = [pytest.mark.condor, pytest.mark.timeout(300)]
CONDOR = {"name": "condor"}


@pytest.fixture
def pool_root(condor_pool, request):
    """A folder under the pool's shared dir; the pool's daemons (another uid here) write outputs into it."""
    previous = os.umask(0)
    yield condor_pool.job_dir(request.node.name[:40])
    os.umask(previous)


def settle(sweep, timeout=240):
    return wait_for_sweep(sweep.path.parent, sweep.name, lambda *_: None, interval=1, timeout=timeout)


def test_states_reasons_retries_and_pool_tools(condor_pool, pool_root):
    sweep, manifest = make_fake_sweep(
        pool_root,
        fractions="0.1,0.2,0.3",
        replicas=2,
        max_retries=1,
        backend=CONDOR,
        behaviour={"0.2": "fail", "0.3": "sigill"},
    )
    assert len(manifest.submissions) == 1  # one cluster, one transaction
    statuses = settle(sweep)
    assert [statuses[i].state for i in ("f0.1_r0", "f0.1_r1")] == [ItemState.DONE] * 2
    failed = statuses["f0.2_r0"]
    assert (
        failed.state is ItemState.FAILED and failed.attempts == 2 and "ValueError: bad batch" in failed.reason
    )
    held = statuses["f0.3_r1"]
    assert held.state is ItemState.HELD and held.attempts == 1
    assert "lacks AVX2" in held.reason and "killed by SIGILL" in held.reason
    assert held.microarch.startswith("x86_64-v")  # the machine it was held on comes from the job ad
    cluster = manifest.submissions[0].id
    q = condor_pool.condor(
        "condor_q",
        cluster,
        "-af",
        "JobBatchName",
        "SweepName",
        "SweepItem",
        "SweepFraction",
        "SweepReplica",
        "JobStatus",
    ).stdout.split("\n")
    assert "fake fake f0.3_r0 0.3 0 5" in q  # held jobs stay in the queue with our attributes
    history = condor_pool.condor(
        "condor_history", cluster, "-af", "JobBatchName", "SweepItem", "ExitCode"
    ).stdout
    assert "fake f0.1_r0 0" in history.splitlines()
    result = collect_sweep(sweep.path.parent, sweep.name)
    assert result.rows == 6 and result.counts == {"done": 2, "failed": 2, "held": 2}


def test_resubmit_failed_replaces_held_jobs_with_one_new_cluster(condor_pool, pool_root):
    sweep, manifest = make_fake_sweep(
        pool_root, fractions="0.1,0.3", backend=CONDOR, behaviour={"0.3": "sigill"}
    )
    statuses = settle(sweep)
    assert statuses["f0.3_r0"].state is ItemState.HELD
    (pool_root / "data" / "behaviour.txt").write_text("")  # the item now runs fine
    items, note = resubmit_failed(sweep.path.parent, sweep.name)
    assert items == ["f0.3_r0"] and note is None  # the fake sweep already had the AVX2 requirement
    statuses = settle(sweep)
    assert {s.state for s in statuses.values()} == {ItemState.DONE}
    manifest = sweep.load()
    assert len(manifest.submissions) == 2 and manifest.submissions[1].items == ("f0.3_r0",)
    old_cluster = manifest.submissions[0].id
    assert (
        condor_pool.condor("condor_q", old_cluster, "-af", "ProcId").stdout.strip() == ""
    )  # the held job left
    assert collect_sweep(sweep.path.parent, sweep.name).rows == 2


def test_cancel_removes_running_and_idle_jobs(condor_pool, pool_root):
    sweep, _ = make_fake_sweep(
        pool_root, fractions="0.1,0.2", backend=CONDOR, behaviour={"0.1": "sleep", "0.2": "sleep"}
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, _, statuses = sweep_statuses(sweep.path.parent, sweep.name)
        if any(s.state is ItemState.RUNNING for s in statuses.values()):
            break
        time.sleep(1)
    assert sorted(cancel_sweep(sweep.path.parent, sweep.name)) == ["f0.1_r0", "f0.2_r0"]
    _, _, statuses = sweep_statuses(sweep.path.parent, sweep.name)
    assert {s.state for s in statuses.values()} == {ItemState.CANCELLED}


def test_find_submission_by_token(condor_pool, pool_root):
    sweep, manifest = make_fake_sweep(pool_root, fractions="0.1,0.2", backend=CONDOR)
    found = CondorBackend().find_submission(sweep, manifest, manifest.submissions[0].token)
    assert (
        found is not None and found.id == manifest.submissions[0].id and found.items == ("f0.1_r0", "f0.2_r0")
    )
    assert CondorBackend().find_submission(sweep, manifest, "no-such-token") is None


def test_unreachable_pool_is_a_clear_error(tmp_path, monkeypatch):
    config = tmp_path / "condor_config"
    config.write_text(
        "COLLECTOR_HOST = 127.0.0.1:1\nSCHEDD_ADDRESS_FILE = /nonexistent\n"
        "SCHEDD_SUPER_ADDRESS_FILE = /nonexistent\nSEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS\n"
    )
    monkeypatch.setenv("CONDOR_CONFIG", str(config))
    import htcondor2

    htcondor2.reload_config()
    try:
        with pytest.raises(BackendError, match="cannot reach the HTCondor schedd.*CONDOR_CONFIG"):
            CondorBackend().schedd()
        with pytest.raises(BackendError, match="cannot reach.*pool 127.0.0.1:1"):
            CondorBackend(pool="127.0.0.1:1").schedd()
    finally:
        monkeypatch.undo()
        htcondor2.reload_config()
