"""One exception base for every error a user can cause or fix.

Library code raises these; only the CLI edge turns them into a message and exit code 2.
"""


class SweepError(Exception):
    """A user-facing error: the message names the bad value and what would be accepted."""


class SpecError(SweepError):
    """A bad sweep specification (fractions, replicas, resources, names, requirements)."""


class DataError(SweepError):
    """A dataset folder or shard set that cannot be used."""


class PackError(SweepError):
    """The job environment cannot be built, or a tarball is not what its manifest says."""


class RenderError(SweepError):
    """A submit description or job wrapper cannot be rendered safely."""


class BackendError(SweepError):
    """The backend (local process pool or HTCondor schedd) refused or cannot be reached."""


class StateError(SweepError):
    """A sweep directory is missing, incomplete, locked or in an unexpected state."""


class AnalysisError(SweepError):
    """A results table or sweep description the report cannot use, or a report that cannot be written."""


class MissingExtraError(SweepError):
    """A command needs an optional dependency that is not installed; the message names the extra."""
