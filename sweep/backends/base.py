"""The Backend protocol: what `submit`, `status`, `collect`, `resubmit` and `cancel` need of a backend."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from sweep.render import RenderedSubmission
from sweep.state import ItemStatus, Submission, SweepDir, SweepManifest


class Backend(Protocol):
    name: str

    def submit(self, sweep: SweepDir, manifest: SweepManifest, rendered: RenderedSubmission, token: str) -> Submission:
        """Submit every row of `rendered` in one transaction; return what was submitted."""
        ...

    def poll(self, sweep: SweepDir, manifest: SweepManifest) -> dict[str, ItemStatus]:
        """The current status of every item of the sweep (its latest submission counts)."""
        ...

    def cancel(self, sweep: SweepDir, manifest: SweepManifest, items: Collection[str] | None = None) -> list[str]:
        """Stop the named (default: all) unfinished items; return the names stopped."""
        ...

    def find_submission(self, sweep: SweepDir, manifest: SweepManifest, token: str) -> Submission | None:
        """A submission made with `token` whose record was lost (the CLI died mid-submit), or None."""
        ...


def latest_submission_of_items(manifest: SweepManifest) -> dict[str, Submission]:
    """For each item, the last submission that ran it: a resubmitted item's old attempts no longer count."""
    latest: dict[str, Submission] = {}
    for submission in manifest.submissions:
        for item in submission.items:
            latest[item] = submission
    return latest
