"""Why an idle job matches no slot: clause splitting and HTCondor's own ClassAd evaluation, on hand-made ads.

The same analysis runs against the real personal pool in tests/test_e2e_condor.py.
"""

from __future__ import annotations

import classad2
import pytest

from sweep.backends.matchmaking import analyze_job, requirement_clauses
from sweep.spec import DEFAULT_REQUIREMENTS

# what the bindings make of sweep's requirements (HTCondor appends its own clauses)
JOB_REQUIREMENTS = (
    f'({DEFAULT_REQUIREMENTS}) && (TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && '
    "(TARGET.Disk >= RequestDisk) && (TARGET.Memory >= RequestMemory) && (TARGET.HasFileTransfer)"
)


def slot(
    name: str,
    *,
    avx2: bool = True,
    microarch: str = "x86_64-v3",
    memory: int = 3072,
    state: str = "Unclaimed",
    start: str = "true",
) -> classad2.ClassAd:
    # parsed from text, as ads come from the collector (classad2 resolves TARGET only in such ads)
    flags = "has_avx = true; has_avx2 = true;" if avx2 else ""  # advertised only for flags the startd found
    return classad2.parseOne(
        f'[ Name = "{name}"; Arch = "X86_64"; OpSys = "LINUX"; Disk = 4194304; Memory = {memory}; '
        f'HasFileTransfer = true; Microarch = "{microarch}"; State = "{state}"; {flags} Requirements = {start} ]'
    )


def job(requirements: str = JOB_REQUIREMENTS, memory: int = 2048) -> classad2.ClassAd:
    return classad2.parseOne(
        f'[ RequestDisk = 3145728; RequestMemory = {memory}; Owner = "someone"; Requirements = {requirements} ]'
    )


POOL = [
    slot("slot1@a"),
    slot("slot2@a", state="Claimed"),
    slot("slot3@a"),
    slot("slot4@a", avx2=False, microarch="x86_64-v2"),
]


@pytest.mark.parametrize(
    ("expression", "clauses"),
    [
        ("a && b", ["a", "b"]),
        ("((a && b)) && (c)", ["a", "b", "c"]),
        ("(a || b) && c", ["a || b", "c"]),
        ('x == "p && q" && y', ['x == "p && q"', "y"]),
        ('x == "a \\" && b" && (f(1, (2)) && g)', ['x == "a \\" && b"', "f(1, (2))", "g"]),
        ("(a) || (b)", ["(a) || (b)"]),
        ("true", ["true"]),
    ],
)
def test_requirement_clauses_split_at_top_level_and_only(expression: str, clauses: list[str]) -> None:
    assert requirement_clauses(expression) == clauses


def test_the_default_requirements_match_every_avx2_slot_whatever_its_microarch() -> None:
    # an AVX2 CPU whose hypervisor hides movbe or abm is advertised as x86_64-v2: it can run TensorFlow
    hidden_flags = slot("slot1@vm", microarch="x86_64-v2")
    analysis = analyze_job(job(), [hidden_flags])
    assert analysis.match_both == 1 and analysis.explain() == ""


def test_a_job_that_waits_for_a_busy_slot_is_not_called_unmatchable() -> None:
    analysis = analyze_job(job(), POOL)
    assert (analysis.slots, analysis.match_job, analysis.match_both, analysis.match_unclaimed) == (4, 3, 3, 2)
    assert not analysis.matches_nothing and analysis.explain() == ""


def test_the_clause_no_slot_satisfies_is_named_with_the_jobs_value() -> None:
    analysis = analyze_job(job(memory=100_000), POOL)
    assert analysis.matches_nothing
    assert analysis.explain() == (
        "no slot matches its requirements: `TARGET.Memory >= RequestMemory` "
        "(RequestMemory = 100000) is true on none of 4 slots"
    )


def test_every_failing_clause_is_named() -> None:
    analysis = analyze_job(job(JOB_REQUIREMENTS + ' && (Microarch >= "x86_64-v9")', memory=100_000), POOL)
    reason = analysis.explain()
    assert '`Microarch >= "x86_64-v9"` is true on none of 4 slots' in reason
    assert "`TARGET.Memory >= RequestMemory`" in reason
    assert "has_avx2" not in reason  # three slots satisfy it


def test_clauses_that_each_hold_somewhere_but_never_together() -> None:
    pool = [slot("slot1@a", memory=1024), slot("slot2@a", avx2=False, memory=8192)]
    reason = analyze_job(job(), pool).explain()
    assert reason.startswith(
        "no slot matches its requirements: each clause holds on some of 2 slots, never all at once"
    )
    assert "`TARGET.Memory >= RequestMemory` on 1" in reason and "`(has_avx2 =?= true)` on 1" not in reason


def test_slots_whose_own_start_policy_refuses_the_job() -> None:
    pool = [slot("slot1@a", start='TARGET.Owner == "somebody-else"')]
    analysis = analyze_job(job(), pool)
    assert analysis.match_job == 1 and analysis.match_both == 0
    assert (
        analysis.explain()
        == "1 of 1 slots meet its requirements but refuse the job by their own START policy"
    )


def test_an_empty_pool_says_so() -> None:
    assert "knows no execute slots" in analyze_job(job(), []).explain()
