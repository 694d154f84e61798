import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from condor_pool import PersonalPool, PoolUnavailable, connect, pool_required, unavailable_message

# Tests that pack or run the real job environment (and the `sweep` processes they start) share the
# repository's envs/cache, as scripts/run-tests and the Makefile do: never a second ~350 MB build in
# ~/.cache, and the folder the personal pool is started to share.
os.environ.setdefault("SWEEP_ENV_CACHE_DIR", str(Path(__file__).resolve().parents[1] / "envs" / "cache"))


@pytest.fixture(scope="session")
def condor_pool() -> Iterator[PersonalPool]:
    """The running personal HTCondor pool (tests marked `condor` use it).

    Not up: the test is skipped with how to start one, or fails when SWEEP_REQUIRE_CONDOR=1.
    """
    try:
        pool = connect()
    except PoolUnavailable as err:
        if pool_required():
            pytest.fail(
                unavailable_message(err) + " (SWEEP_REQUIRE_CONDOR=1 makes this a failure)", pytrace=False
            )
        pytest.skip(unavailable_message(err))
    yield pool
    pool.cleanup()


@pytest.fixture
def pool_root(condor_pool: PersonalPool, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder under the pool's shared dir, made under umask 0: the pool's daemons (another uid) write into it.

    Jobs a failed test left behind are removed afterwards, so none stays held in the shared queue
    for a folder that is gone.
    """
    previous = os.umask(0)
    root = condor_pool.job_dir(request.node.name[:40])
    yield root
    os.umask(previous)
    import htcondor2

    with contextlib.suppress(Exception):
        condor_pool.schedd().act(htcondor2.JobAction.Remove, f'regexp("^{root}/", Iwd)')
