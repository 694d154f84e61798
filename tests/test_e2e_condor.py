"""End to end on the real personal HTCondor pool: the real training job, the AVX2 story, the pool's own tools.

The pool (scripts/personal-pool) has three slots showing the real CPU and one that advertises an
old one (has_avx2 = false, Microarch = "x86_64-v2"). The jobs reach the environment tarballs in
the project's envs/cache, which scripts/run-tests shares into the pool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sweep import names
from sweep.resources import default_env_cache

from data_fixtures import copy_of, shard_folder

pytestmark = [pytest.mark.condor, pytest.mark.slow, pytest.mark.timeout(1200)]
SWEEP = str(Path(sys.executable).parent / "sweep")
OLD_CPU = "x86_64-v2"
NODE_ENV_CACHE = "/tmp/sweep-envs"  # the personal pool's /tmp is a node-local tmpfs, wiped by `down`


WATCH_LIMIT = "600"  # seconds: a sweep that cannot run fails the test with the reason, it never hangs it


def run_sweep(
    *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    # the pool's daemons run as another user and write the outputs and the event log: umask 0 here
    return subprocess.run(
        [SWEEP, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
        preexec_fn=lambda: os.umask(0),
    )


def sweep_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    if "--watch" in args:
        args = (*args, "--timeout", WATCH_LIMIT)
    done = run_sweep(*args, env=env, timeout=timeout)
    assert done.returncode == 0, (
        f"sweep {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done


@pytest.fixture(scope="module")
def pool_shards(condor_pool, tmp_path_factory: pytest.TempPathFactory) -> Path:
    mount_points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    cache = (
        default_env_cache()
    )  # $SWEEP_ENV_CACHE_DIR: the repository's envs/cache under pytest (conftest.py)
    if not any(point.endswith(str(cache)) for point in mount_points):
        pytest.fail(
            f"the pool cannot read {cache}: start it with "
            f"scripts/personal-pool up --share {cache} (scripts/run-tests does)"
        )
    return copy_of(
        shard_folder(tmp_path_factory, images=300, size=32), condor_pool.job_dir("shards") / "shards"
    )


def results(sweeps: Path, name: str) -> pd.DataFrame:
    sweep_cli("collect", name, "--sweeps-dir", str(sweeps))
    return pd.read_csv(sweeps / name / names.RESULTS_CSV)


def test_ten_fractions_three_replicas_on_the_pool(condor_pool, pool_shards: Path) -> None:
    sweeps = condor_pool.job_dir("sweeps")
    common = ["--sweeps-dir", str(sweeps)]
    # each execute node unpacks the environment once (the SIGILL test's jobs below each unpack their own)
    submitted = sweep_cli(
        "submit",
        "--backend",
        "condor",
        "--fractions",
        "0.1..1.0",
        "--replicas",
        "3",
        "--node-env-cache",
        NODE_ENV_CACHE,
        "--data",
        str(pool_shards),
        "--name",
        "pool-e2e",
        "--epochs",
        "1",
        *common,
    )
    assert "30 items submitted to the condor backend" in submitted.stdout
    sweep_cli("status", "pool-e2e", "--watch", *common)
    table = results(sweeps, "pool-e2e")
    assert len(table) == 30 and table["item"].is_unique
    assert set(table["state"]) == {"done"}, table[["item", "state", "reason"]]
    assert OLD_CPU not in set(table["microarch"])  # the AVX2 requirement kept every job off the old slot
    assert not table["host"].str.startswith("slot4@").any()
    assert table["auc_macro"].between(0, 1).all() and table["t_unpack"].notna().all()
    unpacked = [
        json.loads((sweeps / "pool-e2e" / "items" / item / "out" / names.WRAPPER_TIMINGS).read_text())
        for item in table["item"]
    ]
    assert {w["env_cache"] for w in unpacked} != {"off"}  # the node cache was used ...
    assert sum(w["unpack_site"] > 0.5 for w in unpacked) <= 3  # ... so at most one unpack per execute slot
    cluster = json.loads((sweeps / "pool-e2e" / names.SWEEP_MANIFEST).read_text())["submissions"][0]["id"]
    history = condor_pool.condor(
        "condor_history",
        cluster,
        "-af",
        "JobBatchName",
        "SweepName",
        "SweepItem",
        "SweepFraction",
        "SweepReplica",
        "MachineAttrMicroarch0",
    ).stdout.splitlines()
    assert len(history) == 30
    assert "pool-e2e pool-e2e f0.3_r2 0.3 2" in {line.rsplit(" ", 1)[0] for line in history}
    assert all(not line.endswith(OLD_CPU) for line in history)


def test_sigill_on_the_old_slot_is_held_explained_and_resubmitted(condor_pool, pool_shards: Path) -> None:
    sweeps = condor_pool.job_dir("sweeps")
    common = ["--sweeps-dir", str(sweeps)]
    sweep_cli(
        "submit",
        "--backend",
        "condor",
        "--fractions",
        "0.5,1",
        "--replicas",
        "3",
        "--no-require-avx",
        "--data",
        str(pool_shards),
        "--name",
        "sigill",
        "--epochs",
        "1",
        *common,
        env={"SWEEP_TEST_SIGILL_BELOW": "x86_64-v3"},
    )
    sweep_cli("status", "sigill", "--watch", *common)
    items = json.loads(sweep_cli("status", "sigill", "--json", *common).stdout)["items"]
    held = [item for item in items if item["state"] == "held"]
    assert held, "with four idle slots one item must have landed on the old-CPU slot"
    for item in held:
        assert "this machine's CPU lacks AVX2, TensorFlow cannot run there" in item["reason"]
        assert "killed by SIGILL" in item["reason"] and item["microarch"] == OLD_CPU
    assert {item["state"] for item in items} <= {"held", "done"}
    table_text = sweep_cli("status", "sigill", *common).stdout
    assert "lacks AVX2" in table_text
    resubmitted = sweep_cli("resubmit", "sigill", "--failed", *common).stdout
    assert f"resubmitted {len(held)} items" in resubmitted and "now require" in resubmitted
    sweep_cli("status", "sigill", "--watch", *common)
    table = results(sweeps, "sigill")
    assert len(table) == 6 and table["item"].is_unique and set(table["state"]) == {"done"}
    assert OLD_CPU not in set(table["microarch"])
    manifest = json.loads((sweeps / "sigill" / names.SWEEP_MANIFEST).read_text())
    first, second = manifest["submissions"]
    assert sorted(second["items"]) == sorted(item["item"] for item in held)
    assert (
        condor_pool.condor("condor_q", first["id"], "-af", "ProcId").stdout.strip() == ""
    )  # held jobs removed


def test_requirements_no_slot_matches_are_reported_with_the_failing_clause(
    condor_pool, pool_shards: Path
) -> None:
    sweeps = condor_pool.job_dir("sweeps")
    common = ["--sweeps-dir", str(sweeps)]
    sweep_cli(
        "submit",
        "--backend",
        "condor",
        "--fractions",
        "1",
        "--replicas",
        "2",
        "--request-memory",
        "64GB",
        "--data",
        str(pool_shards),
        "--name",
        "nomatch",
        "--epochs",
        "1",
        *common,
    )
    try:
        watched = run_sweep("status", "nomatch", "--watch", "--timeout", "60", *common)
        assert watched.returncode == 2, watched.stderr
        clause = "`TARGET.Memory >= RequestMemory` (RequestMemory = 65536) is true on none of 4 slots"
        assert f"2 idle: no slot matches its requirements: {clause}" in watched.stderr
        assert "did not settle within 60 s: 2 idle" in watched.stderr.replace("\n", "")
        items = json.loads(sweep_cli("status", "nomatch", "--json", *common).stdout)["items"]
        assert [item["state"] for item in items] == ["idle", "idle"]
        assert all(clause in item["reason"] for item in items)
    finally:
        sweep_cli("cancel", "nomatch", *common)


def test_a_sweep_folder_the_pools_schedd_cannot_write_is_refused_at_submit(
    condor_pool, pool_shards: Path, tmp_path: Path
) -> None:
    outside = (
        tmp_path / "sweeps"
    )  # not under the pool's shared folder: the schedd in the chroot cannot see it
    done = run_sweep(
        "submit",
        "--backend",
        "condor",
        "--fractions",
        "1",
        "--replicas",
        "1",
        "--data",
        str(pool_shards),
        "--name",
        "unseen",
        "--epochs",
        "1",
        "--sweeps-dir",
        str(outside),
    )
    assert done.returncode == 2, done.stdout + done.stderr
    message = done.stderr.replace("\n", "")
    assert f"could not write their event log {outside / 'unseen' / names.EVENT_LOG}" in message
    assert "the jobs were removed" in message and "$SWEEP_POOL_SHARED" in message
    assert not (outside / "unseen").exists()
    queued = condor_pool.condor(
        "condor_q",
        "-allusers",
        "-constraint",
        f'Iwd == "{outside / "unseen"}" && JobStatus =!= 3',
        "-af",
        "ClusterId",
    ).stdout
    assert queued.strip() == ""
