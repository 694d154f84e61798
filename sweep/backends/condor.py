"""The HTCondor backend: one cluster per submission through the htcondor2 bindings, state from the event log.

Where to submit is what the user's environment says (CONDOR_CONFIG, as on any submit node),
or --schedd / --pool. Nothing here depends on how a pool is configured; the sweep's own event
log is the source of truth for item states, so a schedd restart loses nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from sweep.backends.base import latest_submission_of_items, wait_until_terminal
from sweep.backends.matchmaking import analyze_job
from sweep.errors import BackendError
from sweep.reasons import explain_exit, explain_hold
from sweep.render import RenderedSubmission
from sweep.state import ItemState, ItemStatus, Submission, SweepDir, SweepManifest

EVENT_LOG_GRACE = 5.0  # seconds: the log is there when submit returns (measured); allow for a slow disk
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
            raise BackendError(
                f"cannot reach the HTCondor {where}: {_one_line(error)}; {REACH_ADVICE}"
            ) from None

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
    def submit(
        self, sweep: SweepDir, manifest: SweepManifest, rendered: RenderedSubmission, token: str
    ) -> Submission:
        htcondor2 = _bindings()
        description = htcondor2.Submit(rendered.submit_text)
        schedd = self.schedd()
        rows = [dict(row) for row in rendered.rows]
        result = self._call("accept the submission", lambda: schedd.submit(description, itemdata=iter(rows)))
        cluster = result.cluster()
        self._check_event_log_written(schedd, sweep, cluster)
        return Submission(
            id=str(cluster), items=tuple(row["item"] for row in rows), submitted_at=time.time(), token=token
        )

    def _check_event_log_written(self, schedd, sweep: SweepDir, cluster: int) -> None:
        """The schedd writes every job's submit event into the sweep's log as it commits the transaction.

        No log means the schedd cannot see or write the sweep folder (a pool in a container or chroot,
        a folder only the submitting user may write): its jobs would be held or stay idle for ever
        while the log that status reads says nothing. Take them out again and say what to change.
        """
        deadline = time.monotonic() + EVENT_LOG_GRACE
        while not sweep.event_log.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if sweep.event_log.exists():
            return
        htcondor2 = _bindings()
        owner = ""
        with contextlib.suppress(Exception):  # the owner only makes the advice more precise
            ads = schedd.query(f"ClusterId == {int(cluster)}", ["Owner"], limit=1)
            owner = str(ads[0].get("Owner", "")) if ads else ""
        self._call(
            "remove the jobs",
            lambda: schedd.act(
                htcondor2.JobAction.Remove,
                f"ClusterId == {int(cluster)}",
                reason="sweep: the schedd cannot write the event log",
            ),
        )
        raise BackendError(
            f"the schedd accepted the jobs but could not write their event log {sweep.event_log}, so it cannot "
            f"run them (their initial directory is {sweep.path}); the jobs were removed. Accepted: a --sweeps-dir "
            f"that the schedd sees at the same path and may write to as the jobs' owner{f' ({owner})' if owner else ''}"
            "; for the project's personal pool that is a folder under $SWEEP_POOL_SHARED, e.g. "
            '--sweeps-dir "$SWEEP_POOL_SHARED/sweeps" created with umask 0 (see docs/personal-pool.md)'
        )

    def poll(self, sweep: SweepDir, manifest: SweepManifest) -> dict[str, ItemStatus]:
        latest = latest_submission_of_items(manifest)
        statuses = {
            item: ItemStatus(item=item, submission=latest[item].id if item in latest else "")
            for item in manifest.item_names
        }
        by_job = _jobs_to_items(manifest)
        for event in read_events(sweep.event_log):
            item = by_job.get((event.cluster, event.proc))
            if item is None or latest[item].id != str(event.cluster):
                continue  # an attempt of a submission that a resubmit has replaced
            statuses[item] = apply_event(statuses[item], event, sweep.item_output(item))
        return self._reconcile_with_queue(statuses)

    def _reconcile_with_queue(self, statuses: dict[str, ItemStatus]) -> dict[str, ItemStatus]:
        """What the event log cannot say yet: the machine of a held job, and why an idle job waits.

        The log stays the source of truth for states; the queue only adds a hold the log lacks (a log
        that lags or cannot be written) and, for idle jobs, HTCondor's matchmaking analysis.
        """
        waiting = sorted(
            {s.submission for s in statuses.values() if s.state in (ItemState.IDLE, ItemState.HELD)} - {""}
        )
        if not waiting:
            return statuses
        constraint = " || ".join(f"ClusterId == {int(c)}" for c in waiting)
        try:
            schedd = self.schedd()
            ads = schedd.query(f"(JobStatus == 1 || JobStatus == 5) && ({constraint})", QUEUE_PROJECTION)
        except Exception:  # the queue is a nicety here; state comes from the event log alone
            return statuses
        idle_jobs: dict[str, tuple[int, int]] = {}
        for ad in ads:
            item = str(ad.get("SweepItem", ""))
            status = statuses.get(item)
            if status is None or status.submission != str(ad.get("ClusterId")):
                continue  # a job of a submission that a resubmit has replaced
            if int(ad.get("JobStatus", 0)) == HELD_IN_QUEUE:
                statuses[item] = _held_from_queue(status, ad)
            elif status.state is ItemState.IDLE:
                idle_jobs[item] = (int(ad["ClusterId"]), int(ad["ProcId"]))
        for item, reason in self._why_idle(schedd, idle_jobs).items():
            statuses[item] = statuses[item].with_changes(reason=reason)
        return statuses

    def _why_idle(self, schedd, idle_jobs: Mapping[str, tuple[int, int]]) -> dict[str, str]:
        """item -> why no slot matches it, for the idle items whose job matches none (one analysis per cluster)."""
        if not idle_jobs:
            return {}
        reasons_by_cluster: dict[int, str] = {}
        for cluster, proc in sorted({jobs[0]: jobs for jobs in idle_jobs.values()}.values()):
            reasons_by_cluster[cluster] = _cached_analysis(self, schedd, cluster, proc)
        return {
            item: reasons_by_cluster[job[0]] for item, job in idle_jobs.items() if reasons_by_cluster[job[0]]
        }

    def slot_ads(self) -> list:
        """Every slot ad of the pool, as condor_status sees it."""
        htcondor2 = _bindings()
        collector = htcondor2.Collector(self.pool) if self.pool else htcondor2.Collector()
        return list(collector.query(htcondor2.AdTypes.Startd))

    def cancel(
        self, sweep: SweepDir, manifest: SweepManifest, items: Collection[str] | None = None
    ) -> list[str]:
        htcondor2 = _bindings()
        statuses = self.poll(sweep, manifest)
        wanted = [
            s for s in statuses.values() if not s.state.is_terminal and (items is None or s.item in items)
        ]
        if not wanted:
            return []
        jobs = _items_to_jobs(manifest)
        job_ids = [f"{jobs[s.item][0]}.{jobs[s.item][1]}" for s in wanted if s.item in jobs]
        schedd = self.schedd()
        self._call(
            "remove the jobs", lambda: schedd.act(htcondor2.JobAction.Remove, job_ids, reason="sweep cancel")
        )
        wait_until_terminal(self, sweep, manifest, [s.item for s in wanted], timeout=60.0, interval=0.5)
        return [s.item for s in wanted]

    def find_submission(self, sweep: SweepDir, manifest: SweepManifest, token: str) -> Submission | None:
        schedd = self.schedd()
        # jobs removed (JobStatus 3) were taken out again, e.g. by the event-log check above: nothing to adopt
        constraint = f'SweepSubmitToken == "{token}" && JobStatus =!= 3'
        projection = ["ClusterId", "ProcId", "SweepItem", "QDate"]
        ads = self._call("list the jobs", lambda: schedd.query(constraint, projection))
        ads += self._call("read the history", lambda: schedd.history(constraint, projection))
        if not ads:
            return None
        ads = sorted(
            {(int(ad["ClusterId"]), int(ad["ProcId"])): ad for ad in ads}.values(),
            key=lambda ad: int(ad["ProcId"]),
        )
        return Submission(
            id=str(ads[0]["ClusterId"]),
            items=tuple(str(ad["SweepItem"]) for ad in ads),
            submitted_at=float(ads[0].get("QDate", time.time())),
            token=token,
        )


HELD_IN_QUEUE = 5  # JobStatus
QUEUE_PROJECTION = [
    "SweepItem",
    "ClusterId",
    "ProcId",
    "JobStatus",
    "HoldReason",
    "HoldReasonCode",
    "HoldReasonSubCode",
    "MachineAttrMachine0",
    "MachineAttrMicroarch0",
]
ANALYSIS_TTL = 30.0  # seconds: a watch polls every second; the pool's slots change far more slowly
_analyses: dict[tuple[str, int], tuple[float, str]] = {}


def _held_from_queue(status: ItemStatus, ad: Mapping) -> ItemStatus:
    """A held job as the queue shows it: the log's own hold event, or the queue's if the log has none yet."""
    machine = {
        "host": str(ad.get("MachineAttrMachine0", status.host)),
        "microarch": str(ad.get("MachineAttrMicroarch0", status.microarch)),
    }
    if status.state is ItemState.HELD:  # a held job wrote no metrics: the queue knows where it was held
        return status if status.microarch else status.with_changes(**machine)
    reason = explain_hold(
        _int(ad.get("HoldReasonCode")), _int(ad.get("HoldReasonSubCode")), str(ad.get("HoldReason", ""))
    )
    return status.with_changes(state=ItemState.HELD, reason=reason, **machine)


def _cached_analysis(backend: CondorBackend, schedd, cluster: int, proc: int) -> str:
    """Why job cluster.proc matches no slot ('' if it does), computed at most once per ANALYSIS_TTL."""
    key = (backend.pool or "", cluster)
    now = time.monotonic()
    if key in _analyses and now - _analyses[key][0] < ANALYSIS_TTL:
        return _analyses[key][1]
    try:
        jobs = schedd.query(f"ClusterId == {cluster} && ProcId == {proc}", limit=1)
        reason = analyze_job(jobs[0], backend.slot_ads()).explain() if jobs else ""
    except Exception:  # an analysis that cannot be made says nothing rather than something wrong
        reason = ""
    _analyses[key] = (now, reason)
    return reason


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _jobs_to_items(manifest: SweepManifest) -> dict[tuple[int, int], str]:
    """(cluster, proc) -> item: procs are numbered in the order of the submitted item rows."""
    return {(int(s.id), proc): item for s in manifest.submissions for proc, item in enumerate(s.items)}


def _items_to_jobs(manifest: SweepManifest) -> dict[str, tuple[int, int]]:
    latest = latest_submission_of_items(manifest)
    return {item: (int(s.id), s.items.index(item)) for item, s in latest.items()}


def read_events(path: Path) -> Iterable[Any]:
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
        reason = explain_hold(
            _int(event.get("HoldReasonCode")),
            _int(event.get("HoldReasonSubCode")),
            str(event.get("HoldReason", "")),
        )
        return status.with_changes(state=ItemState.HELD, reason=reason, ended_at=t)
    if kind == types.JOB_RELEASED:
        return status.with_changes(state=ItemState.IDLE, reason="released")
    if kind == types.JOB_ABORTED:
        why = str(event.get("Reason", "") or "removed from the queue")
        return status.with_changes(
            state=ItemState.CANCELLED, reason=f"removed: {why}", ended_at=status.ended_at or t
        )
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
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return int(value)
    except ValueError:
        return None
