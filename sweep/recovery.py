"""A submission is recorded or undone, never lost: the submit transaction's last step and its recovery.

Until its submission is recorded a sweep carries the submit token (`pending_submit`). A submit
that fails adopts whatever the backend accepted under that token, or removes the sweep; one that
was killed outright is settled by the next command that opens the sweep, the same way.
"""

from __future__ import annotations

from pathlib import Path

from sweep.backends import get_backend
from sweep.backends.base import Backend
from sweep.errors import StateError, SweepError
from sweep.render import RenderedSubmission
from sweep.state import Submission, SweepDir, SweepManifest, open_sweep, remove_sweep_dir


def submit_or_undo(
    backend: Backend, sweep: SweepDir, manifest: SweepManifest, rendered: RenderedSubmission, token: str
) -> None:
    """Submit and record; on any failure adopt what the backend did accept under `token`, or undo it."""
    try:
        submission = backend.submit(sweep, manifest, rendered, token)
    except BaseException:
        try:
            found = backend.find_submission(sweep, manifest, token)
        except Exception:  # the backend is unreachable: nothing can have been submitted there
            found = None
        adopt_or_undo(sweep, manifest, found)
        raise
    adopt_or_undo(sweep, manifest, submission)


def adopt_or_undo(sweep: SweepDir, manifest: SweepManifest, submission: Submission | None) -> None:
    """Record a submission; without one, forget the pending token, or remove a sweep that never had jobs."""
    manifest.pending_submit = None
    if submission is not None:
        manifest.submissions.append(submission)
    elif not manifest.submissions:
        remove_sweep_dir(sweep)
        return
    sweep.save(manifest)


def settle_interrupted_submit(sweep: SweepDir) -> None:
    """A submit killed (SIGKILL, power loss) after its sweep appeared leaves `pending_submit` set: adopt
    the jobs the backend accepted under that token, or remove a sweep that never reached the backend."""
    if sweep.load().pending_submit is None:
        return
    with sweep.locked():  # a live submit holds this lock until it has recorded its result: wait for it
        if not sweep.manifest_path.is_file():
            return  # that submit failed and removed the sweep
        manifest = sweep.load()
        if manifest.pending_submit is None:
            return
        try:
            found = get_backend(manifest.backend).find_submission(sweep, manifest, manifest.pending_submit)
        except SweepError as error:
            raise StateError(
                f"sweep {sweep.name!r}: its submit was interrupted and the backend cannot say whether it accepted "
                f"the jobs ({error}); accepted: run the command again when the backend answers"
            ) from None
        adopt_or_undo(sweep, manifest, found)


def open_settled_sweep(sweeps_dir: Path, name: str) -> SweepDir:
    """open_sweep, after settling an interrupted submit (which may turn out to be no sweep at all)."""
    settle_interrupted_submit(open_sweep(sweeps_dir, name))
    return open_sweep(sweeps_dir, name)
