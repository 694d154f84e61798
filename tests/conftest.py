from collections.abc import Iterator

import pytest

from condor_pool import PersonalPool, PoolUnavailable, connect, pool_required, unavailable_message


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
