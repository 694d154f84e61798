"""The Backend protocol: what `submit`, `status`, `collect`, `resubmit` and `cancel` need of a backend."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from typing import Protocol

from sweep.render import RenderedSubmission
from sweep.state import ItemStatus, Submission, SweepDir, SweepManifest


class Backend(Protocol):
    name: str

    def submit(
        self, sweep: SweepDir, manifest: SweepManifest, rendered: RenderedSubmission, token: str
    ) -> Submission:
        """Submit every row of `rendered` in one transaction; return what was submitted."""
        ...

    def poll(self, sweep: SweepDir, manifest: SweepManifest) -> dict[str, ItemStatus]:
        """The current status of every item of the sweep (its latest submission counts)."""
        ...

    def cancel(
        self, sweep: SweepDir, manifest: SweepManifest, items: Collection[str] | None = None
    ) -> list[str]:
        """Stop the named (default: all) unfinished items; return the names stopped."""
        ...

    def find_submission(self, sweep: SweepDir, manifest: SweepManifest, token: str) -> Submission | None:
        """A submission made with `token` whose record was lost (the CLI died mid-submit), or None."""
        ...


def wait_until_terminal(
    backend: Backend,
    sweep: SweepDir,
    manifest: SweepManifest,
    items: Iterable[str],
    timeout: float = 60.0,
    interval: float = 0.3,
) -> None:
    """Stopping a job is asynchronous on every backend: wait until the stopped items show a final state."""
    deadline = time.monotonic() + timeout
    pending = set(items)
    while pending and time.monotonic() < deadline:
        statuses = backend.poll(sweep, manifest)
        pending = {item for item in pending if not statuses[item].state.is_terminal}
        if pending:
            time.sleep(interval)


def latest_submission_of_items(manifest: SweepManifest) -> dict[str, Submission]:
    """For each item, the last submission that ran it: a resubmitted item's old attempts no longer count."""
    latest: dict[str, Submission] = {}
    for submission in manifest.submissions:
        for item in submission.items:
            latest[item] = submission
    return latest
