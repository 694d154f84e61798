"""The personal HTCondor pool (scripts/personal-pool), as host-side tests see it.

The pool is found through what `eval "$(scripts/personal-pool env)"` exports:
CONDOR_CONFIG (host client config: collector, IDTOKENS token, schedd address file),
SWEEP_POOL_SHARED (the job dir visible at the same path inside the pool) and
SWEEP_POOL_UID / SWEEP_POOL_GID (the user every job and daemon runs as).

`connect()` raises PoolUnavailable with a reason when there is no usable pool; the
`condor_pool` fixture in conftest.py turns that into a skip, or into a failure when
SWEEP_REQUIRE_CONDOR=1 (make test, CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "personal-pool"
START_HINT = 'scripts/personal-pool up; eval "$(scripts/personal-pool env)"'
REQUIRE_ENV = "SWEEP_REQUIRE_CONDOR"


class PoolUnavailable(Exception):
    """There is no personal pool these tests can use; the message says why."""


class JobsDidNotFinish(AssertionError):
    """Jobs were held, aborted or still running when the wait ran out."""


@dataclass
class PersonalPool:
    """A running personal pool, reachable from this (host) process."""

    condor_config: Path
    shared: Path
    uid: int
    gid: int
    session_dir: Path
    _made: list[Path] = field(default_factory=list)

    def job_dir(self, name: str) -> Path:
        """A new empty folder under the shared dir that the pool's user may write to.

        Jobs submitted from the host need their initialdir (and executable and inputs) here:
        the schedd and shadow run inside the pool and write outputs and event logs as `uid`.
        """
        path = self.session_dir / f"{name}-{uuid.uuid4().hex[:6]}"
        path.mkdir(parents=True)
        os.chown(path, self.uid, self.gid)
        return path

    def condor(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run one of the pool's own tools inside it (`scripts/personal-pool condor TOOL ...`)."""
        done = subprocess.run(
            [str(SCRIPT), "condor", tool, *args], check=False, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def schedd(self) -> Any:
        import htcondor2

        return htcondor2.Schedd()

    def collector(self) -> Any:
        import htcondor2

        return htcondor2.Collector()

    def wait_for_jobs(self, event_log: Path, n_procs: int, timeout: float = 300) -> dict[int, Any]:
        """Follow a cluster's event log until each of its `n_procs` jobs terminated.

        Returns proc id -> its JOB_TERMINATED event.  Raises JobsDidNotFinish on a hold or
        abort, or when `timeout` seconds pass (generous: the machine is shared).
        """
        import htcondor2

        done: dict[int, Any] = {}
        deadline = time.monotonic() + timeout
        for event in _follow(htcondor2.JobEventLog(str(event_log)), deadline):
            if event.type == htcondor2.JobEventType.JOB_TERMINATED:
                done[event.proc] = event
            elif event.type in (htcondor2.JobEventType.JOB_HELD, htcondor2.JobEventType.JOB_ABORTED):
                reason = event.get("HoldReason", "")
                raise JobsDidNotFinish(f"job {event.cluster}.{event.proc}: {event.type.name} {reason}")
            if len(done) == n_procs:
                return done
        raise JobsDidNotFinish(
            f"{len(done)} of {n_procs} jobs terminated within {timeout:.0f} s ({event_log})"
        )

    def cleanup(self) -> None:
        shutil.rmtree(self.session_dir, ignore_errors=True)


def _follow(log: Any, deadline: float) -> Iterator[Any]:
    while (left := deadline - time.monotonic()) > 0:
        yield from log.events(stop_after=max(1, int(min(left, 5))))


def connect() -> PersonalPool:
    """The running personal pool, or PoolUnavailable saying what is missing."""
    missing = [v for v in ("CONDOR_CONFIG", "SWEEP_POOL_SHARED", "SWEEP_POOL_UID") if not os.environ.get(v)]
    if missing:
        raise PoolUnavailable(f"{', '.join(missing)} not set")
    config = Path(os.environ["CONDOR_CONFIG"])
    shared = Path(os.environ["SWEEP_POOL_SHARED"])
    if not config.is_file():
        raise PoolUnavailable(f"CONDOR_CONFIG={config} does not exist")
    if not shared.is_dir():
        raise PoolUnavailable(f"SWEEP_POOL_SHARED={shared} is not a directory")
    try:
        import htcondor2
    except ImportError as err:
        raise PoolUnavailable(
            f"the htcondor2 bindings are not installed ({err}); pip install htcondor"
        ) from err
    # Another module may have imported htcondor2 before CONDOR_CONFIG was set.
    htcondor2.reload_config()
    try:
        slots = htcondor2.Collector().query(htcondor2.AdTypes.Startd, projection=["Name"])
        htcondor2.Schedd().query(constraint="false", projection=["ClusterId"])
    except Exception as err:  # the bindings raise plain HTCondorException / OSError types
        raise PoolUnavailable(f"the pool does not answer ({type(err).__name__}: {err})") from err
    if not slots:
        raise PoolUnavailable("the collector knows no execute slots")
    session_dir = shared / "tests" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    session_dir.mkdir(parents=True)
    os.chmod(session_dir.parent, 0o1777)
    uid, gid = int(os.environ["SWEEP_POOL_UID"]), int(os.environ.get("SWEEP_POOL_GID", "-1"))
    os.chown(session_dir, uid, gid)
    return PersonalPool(condor_config=config, shared=shared, uid=uid, gid=gid, session_dir=session_dir)


def unavailable_message(err: PoolUnavailable) -> str:
    return f"no personal HTCondor pool: {err}. Start one with: {START_HINT}"


def pool_required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"
