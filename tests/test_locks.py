"""The two hashed locks agree with what they are made from (offline: no resolver, no index).

envs/requirements-job.txt comes from envs/requirements-job.in, requirements-dev.txt from pyproject.toml's
dependencies and [all] extra plus requirements-dev.in (`make lock`, scripts/lock). A lock that was not
regenerated after its inputs changed fails here, naming what it lacks, before pip or a job does.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from sweep import locks

REPO = Path(__file__).resolve().parent.parent
JOB_IN, JOB_LOCK = REPO / "envs" / "requirements-job.in", REPO / "envs" / "requirements-job.txt"
DEV_IN, DEV_LOCK = REPO / "requirements-dev.in", REPO / "requirements-dev.txt"


def pins(lock: Path) -> dict[str, Version]:
    """name -> pinned version of every requirement of a lock."""
    pinned: dict[str, Version] = {}
    for entry in locks.locked_lines(lock):
        name, _, version = entry.split(" ", 1)[0].partition("==")
        pinned[canonicalize_name(name)] = Version(version)
    return pinned


def needs(requirements_in: Path) -> list[Requirement]:
    """The requirements of an .in file (options such as -c are not requirements)."""
    return [Requirement(e) for e in locks.locked_lines(requirements_in) if not e.startswith("-")]


def pyproject_needs() -> list[Requirement]:
    """What `pip install -e '.[all]'` asks for, the extras that name sweep itself expanded; plus the build's."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    extras = project["project"]["optional-dependencies"]
    wanted, todo, seen = [*project["project"]["dependencies"]], ["all"], set()
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for text in extras[extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == "sweep":
                todo += [e for e in requirement.extras if e not in seen]
            else:
                wanted.append(text)
    return [Requirement(text) for text in [*wanted, *project["build-system"]["requires"]]]


def unmet(requirements: list[Requirement], pinned: dict[str, Version]) -> list[str]:
    """Those the lock does not satisfy (markers evaluated for this interpreter), with what it has instead."""
    missing = []
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            missing.append(f"{requirement} (locked: {version or 'nothing'})")
    return missing


@pytest.mark.parametrize("lock", [JOB_LOCK, DEV_LOCK], ids=["job", "dev"])
def test_every_requirement_of_a_lock_is_pinned_and_hashed(lock: Path) -> None:
    locks.check_hashed(lock)  # raises naming those without --hash
    entries = locks.locked_lines(lock)
    assert entries and all("==" in entry.split(" ", 1)[0] for entry in entries), entries
    assert f"Regenerate with:  make lock-{'job' if lock == JOB_LOCK else 'dev'}" in lock.read_text(
        encoding="utf-8"
    )


def test_the_job_lock_holds_every_direct_need_and_zstandard() -> None:
    pinned = pins(JOB_LOCK)
    assert unmet(needs(JOB_IN), pinned) == [], "regenerate with: make lock-job"
    assert "zstandard" in pinned  # the job-side unpacker runs on it (`sweep pack` refuses a lock without it)


def test_the_dev_lock_holds_what_pyproject_all_and_requirements_dev_in_ask_for() -> None:
    assert unmet([*pyproject_needs(), *needs(DEV_IN)], pins(DEV_LOCK)) == [], "regenerate with: make lock-dev"


def test_the_dev_lock_has_the_job_locks_versions() -> None:
    # the tests run the job code in-process: with other versions they would test another environment
    job, dev = pins(JOB_LOCK), pins(DEV_LOCK)
    differ = {name: (str(job[name]), str(dev[name])) for name in job.keys() & dev.keys()
              if job[name] != dev[name]}  # fmt: skip
    assert differ == {}, "regenerate with: make lock (the job's lock constrains the development one)"
