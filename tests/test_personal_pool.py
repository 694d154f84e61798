"""The personal pool really runs jobs submitted from the host with the htcondor2 bindings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from condor_pool import PersonalPool

pytestmark = pytest.mark.condor

MODERN = '(has_avx2 =?= true) && (Microarch >= "x86_64-v3")'
OLD = '(has_avx2 =?= false) && (Microarch =?= "x86_64-v2")'


def batch_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Finished:
    folder: Path
    cluster: int
    batch: str
    words: list[str]


@pytest.fixture(scope="module")
def finished_cluster(condor_pool: PersonalPool) -> Finished:
    """One itemdata submit of trivial /bin/sh jobs from the host, waited for."""
    import htcondor2

    folder = condor_pool.job_dir("itemdata")
    (folder / "input.txt").write_text("from the host\n")
    batch = batch_name("pool-itemdata")
    words = ["alpha", "beta", "gamma", "delta"]
    submit = htcondor2.Submit(f"""
        executable = /bin/sh
        transfer_executable = false
        arguments = "-c 'echo word=$1; id -u; pwd; cat input.txt; echo made-by-$1 > result.$1' sh $(word)"
        initialdir = {folder}
        transfer_input_files = input.txt
        output = out.$(word).txt
        error = err.$(word).txt
        log = events.log
        batch_name = {batch}
        request_cpus = 1
        request_memory = 64M
        request_disk = 10M
    """)
    result = condor_pool.schedd().submit(submit, itemdata=iter([{"word": w} for w in words]))
    assert result.num_procs() == len(words)
    condor_pool.wait_for_jobs(folder / "events.log", len(words))
    return Finished(folder, result.cluster(), batch, words)


def test_collector_sees_slots_and_exactly_one_old_cpu(condor_pool: PersonalPool) -> None:
    import htcondor2

    ads = condor_pool.collector().query(
        htcondor2.AdTypes.Startd, projection=["Name", "has_avx2", "Microarch"]
    )
    assert len(ads) >= 3, [ad.get("Name") for ad in ads]
    old = [ad["Name"] for ad in ads if ad.get("has_avx2") is False and ad.get("Microarch") == "x86_64-v2"]
    assert len(old) == 1, [dict(ad) for ad in ads]


def test_itemdata_jobs_from_the_host_complete_and_outputs_come_back(
    condor_pool: PersonalPool, finished_cluster: Finished
) -> None:
    folder = finished_cluster.folder
    for word in finished_cluster.words:
        word_line, uid_line, cwd_line, input_line = (folder / f"out.{word}.txt").read_text().splitlines()
        assert word_line == f"word={word}"
        assert int(uid_line) == condor_pool.uid  # jobs run as the pool's user
        assert cwd_line != str(folder)  # in a sandbox: files moved by file transfer, as on a real pool
        assert input_line == "from the host"
        assert (folder / f"result.{word}").read_text() == f"made-by-{word}\n"
        assert (folder / f"err.{word}.txt").read_text() == ""
    ads = condor_pool.schedd().history(
        constraint=f"ClusterId == {finished_cluster.cluster}", projection=["ProcId", "ExitCode", "JobStatus"]
    )
    assert sorted((ad["ProcId"], ad["ExitCode"], ad["JobStatus"]) for ad in ads) == [
        (proc, 0, 4) for proc in range(len(finished_cluster.words))
    ]


def test_modern_cpu_requirement_never_lands_on_the_old_slot(condor_pool: PersonalPool) -> None:
    import htcondor2

    old_slots = [
        ad["Name"]
        for ad in condor_pool.collector().query(htcondor2.AdTypes.Startd, projection=["Name", "has_avx2"])
        if ad.get("has_avx2") is False
    ]
    folder = condor_pool.job_dir("requirements")
    # More modern jobs than modern slots, so the old slot sits idle while they wait; one
    # control job that may only run on the old slot shows that slot really takes jobs.
    rows = [{"kind": "modern", "req": MODERN} for _ in range(6)] + [{"kind": "old", "req": OLD}]
    submit = htcondor2.Submit(f"""
        executable = /bin/sh
        transfer_executable = false
        arguments = "-c 'sleep 2'"
        initialdir = {folder}
        log = events.log
        requirements = $(req)
        job_machine_attrs = Name Microarch
        +SweepKind = "$(kind)"
        batch_name = {batch_name("pool-requirements")}
        request_memory = 64M
        request_disk = 10M
    """)
    result = condor_pool.schedd().submit(submit, itemdata=iter(rows))
    condor_pool.wait_for_jobs(folder / "events.log", len(rows))
    ads = condor_pool.schedd().history(
        constraint=f"ClusterId == {result.cluster()}", projection=["ProcId", "SweepKind", "MachineAttrName0"]
    )
    ran_on = {ad["ProcId"]: (ad["SweepKind"], ad["MachineAttrName0"]) for ad in ads}
    assert len(ran_on) == len(rows)
    assert {slot for kind, slot in ran_on.values() if kind == "old"} == set(old_slots)
    assert not {slot for kind, slot in ran_on.values() if kind == "modern"} & set(old_slots), ran_on


def test_pool_tools_show_the_batch_name(condor_pool: PersonalPool, finished_cluster: Finished) -> None:
    import htcondor2

    history = condor_pool.condor(
        "condor_history", str(finished_cluster.cluster), "-af", "JobBatchName", "ExitCode"
    ).stdout.splitlines()
    assert history == [f"{finished_cluster.batch} 0"] * len(finished_cluster.words)

    # A held job stays in the queue: condor_q must show it under its batch name.
    folder = condor_pool.job_dir("held")
    batch = batch_name("pool-held")
    submit = htcondor2.Submit(f"""
        executable = /bin/true
        transfer_executable = false
        initialdir = {folder}
        hold = true
        batch_name = {batch}
    """)
    schedd = condor_pool.schedd()
    cluster = schedd.submit(submit).cluster()
    try:
        queue = condor_pool.condor("condor_q", "-af", "JobBatchName", "JobStatus").stdout.splitlines()
        assert f"{batch} 5" in queue
    finally:
        schedd.act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}")
