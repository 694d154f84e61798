"""The HTCondor backend: one cluster per submission through the htcondor2 bindings, state from the event log.

Where to submit is what the user's environment says (CONDOR_CONFIG, as on any submit node),
or --schedd / --pool. Nothing here depends on how a pool is configured; the sweep's own event
log is the source of truth for item states, so a schedd restart loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from sweep.backends.base import latest_submission_of_items, wait_until_terminal
from sweep.errors import BackendError
from sweep.reasons import explain_exit, explain_hold
from sweep.render import RenderedSubmission
from sweep.state import ItemState, ItemStatus, Submission, SweepDir, SweepManifest

STALE_SESSION = "SECMAN:2004"  # "Server rejected our session id"
REACH_ADVICE = (
    "check that CONDOR_CONFIG points at this submit node's configuration (for the project's personal pool: "
    'eval "$(scripts/personal-pool env)"), or name one with --schedd / --pool'
)


def _bindings():
    import htcondor2

    return htcondor2


class CondorBackend:
    name = "condor"

    def __init__(self, schedd: str | None = None, pool: str | None = None) -> None:
        self.schedd_name = schedd
        self.pool = pool

    # ------------------------------------------------------------------ connection
    def schedd(self):  # -> htcondor2.Schedd
        htcondor2 = _bindings()
        where = f"schedd {self.schedd_name or '(local)'}" + (f" in pool {self.pool}" if self.pool else "")
        try:
            if self.schedd_name or self.pool:
                collector = htcondor2.Collector(self.pool) if self.pool else htcondor2.Collector()
                ad = collector.locate(htcondor2.DaemonType.Schedd, self.schedd_name)
                return htcondor2.Schedd(ad)
            return htcondor2.Schedd()
        except Exception as error:  # the bindings raise HTCondorException subclasses, ValueError, OSError
            raise BackendError(f"cannot reach the HTCondor {where}: {_one_line(error)}; {REACH_ADVICE}") from None

    def _call(self, what: str, call):
        try:
            try:
                return call()
            except Exception as error:
                # a schedd that restarted rejects this process's security session once, then the bindings
                # open a new one; nothing ran, so trying again is safe (measured on the personal pool)
                if STALE_SESSION not in str(error):
                    raise
                return call()
        except BackendError:
            raise
        except Exception as error:
            raise BackendError(f"HTCondor refused to {what}: {_one_line(error)}; {REACH_ADVICE}") from None

    # ------------------------------------------------------------------ protocol
    def submit(self, sweep: SweepDir, manifest: SweepManifest, rendered: RenderedSubmission, token: str) -> Submission:
        htcondor2 = _bindings()
        description = htcondor2.Submit(rendered.submit_text)
        schedd = self.schedd()
        rows = [dict(row) for row in rendered.rows]
        result = self._call("accept the submission", lambda: schedd.submit(description, itemdata=iter(rows)))
        cluster = result.cluster()
        return Submission(id=str(cluster), items=tuple(row["item"] for row in rows), submitted_at=time.time(), token=token)

    def poll(self, sweep: SweepDir, manifest: SweepManifest) -> dict[str, ItemStatus]:
        latest = latest_submission_of_items(manifest)
        statuses = {item: ItemStatus(item=item, submission=latest[item].id if item in latest else "")
                    for item in manifest.item_names}
        by_job = _jobs_to_items(manifest)
        for event in read_events(sweep.event_log):
            item = by_job.get((event.cluster, event.proc))
            if item is None or latest[item].id != str(event.cluster):
                continue  # an attempt of a submission that a resubmit has replaced
            statuses[item] = apply_event(statuses[item], event, sweep.item_output(item))
        return self._add_held_machines(statuses)

    def _add_held_machines(self, statuses: dict[str, ItemStatus]) -> dict[str, ItemStatus]:
        """A held job wrote no metrics: ask the schedd which machine (and Microarch) it was held on."""
        held = {s.submission for s in statuses.values() if s.state is ItemState.HELD and not s.microarch}
        if not held:
            return statuses
        constraint = " || ".join(f"ClusterId == {int(c)}" for c in sorted(held))
        try:
            ads = self.schedd().query(f"JobStatus == 5 && ({constraint})",
                                      ["SweepItem", "MachineAttrMachine0", "MachineAttrMicroarch0"])
        except Exception:  # the machine is a nicety here; state comes from the event log alone
            return statuses
        for ad in ads:
            item = str(ad.get("SweepItem", ""))
            if item in statuses and statuses[item].state is ItemState.HELD:
                statuses[item] = statuses[item].with_changes(
                    host=str(ad.get("MachineAttrMachine0", statuses[item].host)),
                    microarch=str(ad.get("MachineAttrMicroarch0", "")),
                )
        return statuses

    def cancel(self, sweep: SweepDir, manifest: SweepManifest, items: Collection[str] | None = None) -> list[str]:
        htcondor2 = _bindings()
        statuses = self.poll(sweep, manifest)
        wanted = [s for s in statuses.values() if not s.state.is_terminal and (items is None or s.item in items)]
        if not wanted:
            return []
        jobs = _items_to_jobs(manifest)
        job_ids = [f"{jobs[s.item][0]}.{jobs[s.item][1]}" for s in wanted if s.item in jobs]
        schedd = self.schedd()
        self._call("remove the jobs", lambda: schedd.act(htcondor2.JobAction.Remove, job_ids, reason="sweep cancel"))
        wait_until_terminal(self, sweep, manifest, [s.item for s in wanted], timeout=60.0, interval=0.5)
        return [s.item for s in wanted]

    def find_submission(self, sweep: SweepDir, manifest: SweepManifest, token: str) -> Submission | None:
        schedd = self.schedd()
        constraint = f'SweepSubmitToken == "{token}"'
        projection = ["ClusterId", "ProcId", "SweepItem", "QDate"]
        ads = self._call("list the jobs", lambda: schedd.query(constraint, projection))
        ads += self._call("read the history", lambda: schedd.history(constraint, projection))
        if not ads:
            return None
        ads = sorted({(int(ad["ClusterId"]), int(ad["ProcId"])): ad for ad in ads}.values(), key=lambda ad: int(ad["ProcId"]))
        return Submission(id=str(ads[0]["ClusterId"]), items=tuple(str(ad["SweepItem"]) for ad in ads),
                          submitted_at=float(ads[0].get("QDate", time.time())), token=token)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _jobs_to_items(manifest: SweepManifest) -> dict[tuple[int, int], str]:
    """(cluster, proc) -> item: procs are numbered in the order of the submitted item rows."""
    return {(int(s.id), proc): item for s in manifest.submissions for proc, item in enumerate(s.items)}


def _items_to_jobs(manifest: SweepManifest) -> dict[str, tuple[int, int]]:
    latest = latest_submission_of_items(manifest)
    return {item: (int(s.id), s.items.index(item)) for item, s in latest.items()}


def read_events(path: Path) -> Iterable[object]:
    """Every event in the sweep's log so far (none if no job has been logged yet)."""
    htcondor2 = _bindings()
    if not path.exists():
        return []
    try:
        return list(htcondor2.JobEventLog(str(path)).events(stop_after=0))
    except Exception as error:
        raise BackendError(f"the event log {path} cannot be read: {_one_line(error)}") from None


def _host_of(event: Mapping) -> str:
    """The execute host's name from an ExecuteHost sinful string such as <127.0.0.1:9618?...&alias=node1>."""
    sinful = str(event.get("ExecuteHost", ""))
    if "alias=" in sinful:
        return sinful.split("alias=", 1)[1].split("&")[0].rstrip(">")
    return sinful.strip("<>").split("?")[0]


def apply_event(status: ItemStatus, event, output_dir: Path) -> ItemStatus:
    """Fold one HTCondor job event into an item's status."""
    htcondor2 = _bindings()
    kind = event.type
    t = float(event.timestamp)
    types = htcondor2.JobEventType
    if kind == types.SUBMIT:
        return status.with_changes(state=ItemState.IDLE, submitted_at=t)
    if kind == types.EXECUTE:
        return status.with_changes(
            state=ItemState.RUNNING, attempts=status.attempts + 1, started_at=t, ended_at=None,
            host=event.get("SlotName") or _host_of(event), exit_code=None, exit_signal=None, reason="",
        )  # fmt: skip
    if kind == types.FILE_TRANSFER:
        return _apply_transfer(status, event, t)
    if kind == types.JOB_TERMINATED:
        normal = bool(event.get("TerminatedNormally", True))
        code = int(event["ReturnValue"]) if normal and "ReturnValue" in event else None
        sig = None if normal else int(event.get("TerminatedBySignal", 0)) or None
        done = normal and code == 0
        return status.with_changes(
            state=ItemState.DONE if done else ItemState.FAILED, exit_code=code, exit_signal=sig, ended_at=t,
            reason="" if done else explain_exit(code, sig, output_dir),
        )  # fmt: skip
    if kind == types.JOB_HELD:
        reason = explain_hold(_int(event.get("HoldReasonCode")), _int(event.get("HoldReasonSubCode")),
                              str(event.get("HoldReason", "")))
        return status.with_changes(state=ItemState.HELD, reason=reason, ended_at=t)
    if kind == types.JOB_RELEASED:
        return status.with_changes(state=ItemState.IDLE, reason="released")
    if kind == types.JOB_ABORTED:
        why = str(event.get("Reason", "") or "removed from the queue")
        return status.with_changes(state=ItemState.CANCELLED, reason=f"removed: {why}", ended_at=status.ended_at or t)
    if kind in (types.JOB_EVICTED, types.SHADOW_EXCEPTION, types.JOB_RECONNECT_FAILED):
        if status.state.is_terminal or status.state is ItemState.HELD:
            return status
        why = str(event.get("Message", "") or event.get("Reason", "") or "evicted")
        return status.with_changes(state=ItemState.IDLE, reason=f"will run again: {why}")
    return status


def _apply_transfer(status: ItemStatus, event, t: float) -> ItemStatus:
    htcondor2 = _bindings()
    kind = _int(event.get("Type"))
    if kind == int(htcondor2.FileTransferEventType.IN_STARTED):
        return status.with_changes(transfer_started_at=t)
    if kind == int(htcondor2.FileTransferEventType.IN_FINISHED) and status.transfer_started_at is not None:
        return status.with_changes(transfer_seconds=t - status.transfer_started_at, transfer_started_at=None)
    return status


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
