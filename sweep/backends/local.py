"""The embedded local backend: the same wrapper and tarballs as on HTCondor, run on this machine.

`submit` starts a detached runner process (sweep.backends.local_runner) and returns, as
condor_submit does: the jobs keep running when the CLI exits or is interrupted, and `status`
follows them through the sweep's event log (events.jsonl). A runner that dies leaves its
unfinished items marked failed with the reason, never silently "running".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path

from sweep import names
from sweep.backends.base import latest_submission_of_items, wait_until_terminal
from sweep.errors import BackendError
from sweep.fs import atomic_write_json, file_lock
from sweep.reasons import CPU_LACKS_AVX2
from sweep.render import RenderedSubmission, item_arguments
from sweep.state import ItemState, ItemStatus, Submission, SweepDir, SweepManifest

RUNNER_START_TIMEOUT = 30.0  # seconds for a new runner to say it is alive
SLOTS_VARIABLE = "SWEEP_LOCAL_SLOTS"  # overrides the number of jobs run at once


class EventLog:
    """An append-only JSON-lines log, safe for several runner processes and threads at once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, **event: object) -> None:
        event.setdefault("t", time.time())
        line = json.dumps(event, sort_keys=True) + "\n"
        with file_lock(self.path.with_suffix(".lock")), open(self.path, "a") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[dict]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a crash carries no state worth guessing at
        return events


def process_start_ticks(pid: int) -> int | None:
    """The kernel's start time of a live `pid` (tells a live runner from a recycled pid); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # a zombie: dead, only waiting for its parent to reap it
        return None
    return int(fields[19])


def runner_alive(pid: int, start_ticks: int | None) -> bool:
    return start_ticks is not None and process_start_ticks(pid) == start_ticks


def local_slots(request_cpus: int) -> int:
    override = os.environ.get(SLOTS_VARIABLE)
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            raise BackendError(
                f"{SLOTS_VARIABLE}={override!r} is not a whole number; accepted: a number >= 1"
            ) from None
    return max(1, (os.cpu_count() or 1) // max(1, request_cpus))


class LocalBackend:
    name = "local"

    def submit(
        self, sweep: SweepDir, manifest: SweepManifest, rendered: RenderedSubmission, token: str
    ) -> Submission:
        runs_dir = sweep.path / names.LOCAL_RUNS_DIR
        runs_dir.mkdir(exist_ok=True)
        run_id = f"local-{len(list(runs_dir.glob(names.LOCAL_RUN_GLOB))) + 1}"
        items = tuple(row["item"] for row in rendered.rows)
        run_file = runs_dir / names.LOCAL_RUN_FILE.format(run_id=run_id)
        atomic_write_json(
            run_file,
            {
                "id": run_id,
                "token": token,
                "slots": local_slots(manifest.spec.resources.cpus),
                "max_retries": manifest.max_retries,
                "wrapper": str(sweep.path / names.JOB_WRAPPER),
                "common_inputs": list(rendered.common_inputs),
                "environment": manifest.environment,
                "request_cpus": manifest.spec.resources.cpus,
                "env_cache": str(Path(rendered.common_inputs[0]).parent / names.UNPACKED_ENV_CACHE),
                "items": [
                    {
                        "item": row["item"],
                        "args": item_arguments(manifest.spec, row),
                        "inputs": row["inputs"].split(","),
                    }
                    for row in rendered.rows
                ],
            },
        )
        events = EventLog(sweep.path / names.LOCAL_EVENTS)
        now = time.time()
        for item in items:
            events.write(run=run_id, item=item, event="submitted", t=now)
        self._start_runner(sweep, run_id, events)
        return Submission(id=run_id, items=items, submitted_at=now, token=token)

    def _start_runner(self, sweep: SweepDir, run_id: str, events: EventLog) -> None:
        log_path = sweep.path / names.LOCAL_RUNS_DIR / names.LOCAL_RUNNER_LOG.format(run_id=run_id)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "sweep.backends.local_runner", str(sweep.path), run_id],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl-C in the terminal must not reach the jobs
                close_fds=True,
            )
        deadline = time.monotonic() + RUNNER_START_TIMEOUT
        while time.monotonic() < deadline:
            if any(e.get("run") == run_id and e.get("event") == "runner_started" for e in events.read()):
                return
            if process.poll() is not None:
                break
            time.sleep(0.05)
        process.kill()
        raise BackendError(f"the local runner for sweep {sweep.name!r} did not start; see {log_path}")

    def poll(self, sweep: SweepDir, manifest: SweepManifest) -> dict[str, ItemStatus]:
        latest = latest_submission_of_items(manifest)
        events = EventLog(sweep.path / names.LOCAL_EVENTS).read()
        statuses = {
            item: ItemStatus(item=item, submission=latest[item].id if item in latest else "")
            for item in manifest.item_names
        }
        runners: dict[str, dict] = {}
        for event in events:
            run, item = event.get("run"), event.get("item")
            if item is None:
                if run is not None:
                    runners.setdefault(str(run), {}).update(event)
                continue
            if item not in statuses or item not in latest or latest[item].id != run:
                continue
            statuses[item] = apply_event(statuses[item], event)
        return {
            item: mark_orphans(status, runners.get(status.submission)) for item, status in statuses.items()
        }

    def cancel(
        self, sweep: SweepDir, manifest: SweepManifest, items: Collection[str] | None = None
    ) -> list[str]:
        statuses = self.poll(sweep, manifest)
        wanted = [
            s for s in statuses.values() if not s.state.is_terminal and (items is None or s.item in items)
        ]
        if not wanted:
            return []
        events = EventLog(sweep.path / names.LOCAL_EVENTS)
        runners = {e["run"]: e for e in events.read() if e.get("event") == "runner_started"}
        signalled = set()
        for status in wanted:
            runner = runners.get(status.submission)
            if (
                runner
                and runner_alive(runner["pid"], runner.get("start_ticks"))
                and status.state is not ItemState.HELD
            ):
                signalled.add(status.submission)
                stop_file = sweep.path / names.LOCAL_RUNS_DIR / f"cancel-{status.submission}"
                with open(stop_file, "a") as handle:
                    handle.write(status.item + "\n")
            else:  # nothing runs it any more: record the cancellation ourselves
                events.write(
                    run=status.submission,
                    item=status.item,
                    event="cancelled",
                    reason="cancelled by `sweep cancel`",
                )
        for run in signalled:
            os.kill(
                runners[run]["pid"], signal.SIGUSR1
            )  # the runner reads its cancel file and stops those items
        wait_until_terminal(self, sweep, manifest, [s.item for s in wanted])
        return [s.item for s in wanted]

    def find_submission(self, sweep: SweepDir, manifest: SweepManifest, token: str) -> Submission | None:
        runs_dir = sweep.path / names.LOCAL_RUNS_DIR
        for run_file in sorted(runs_dir.glob(names.LOCAL_RUN_GLOB)):
            run = json.loads(run_file.read_text())
            if run.get("token") == token:
                submitted = [
                    e
                    for e in EventLog(sweep.path / names.LOCAL_EVENTS).read()
                    if e.get("run") == run["id"] and e.get("event") == "submitted"
                ]
                if submitted:
                    return Submission(
                        id=run["id"],
                        items=tuple(i["item"] for i in run["items"]),
                        submitted_at=min(e["t"] for e in submitted),
                        token=token,
                    )
        return None


def apply_event(status: ItemStatus, event: dict) -> ItemStatus:
    """Fold one local event into an item's status."""
    kind = event.get("event")
    if kind == "submitted":
        return status.with_changes(state=ItemState.IDLE, submitted_at=event["t"], reason="")
    if kind == "executing":
        return status.with_changes(
            state=ItemState.RUNNING, attempts=status.attempts + 1, started_at=event["t"], ended_at=None,
            host=event.get("host", ""), microarch=event.get("microarch", ""),
            transfer_seconds=event.get("transfer_seconds"), exit_code=None, exit_signal=None,
        )  # fmt: skip
    if kind == "retrying":
        return status.with_changes(
            state=ItemState.IDLE,
            reason=event.get("reason", ""),
            exit_code=event.get("exit_code"),
            exit_signal=event.get("exit_signal"),
        )
    if kind == "terminated":
        code, sig = event.get("exit_code"), event.get("exit_signal")
        done = code == 0 and sig is None
        return status.with_changes(
            state=ItemState.DONE if done else ItemState.FAILED, exit_code=code, exit_signal=sig,
            ended_at=event["t"], reason="" if done else event.get("reason", ""),
        )  # fmt: skip
    if kind == "held":
        return status.with_changes(
            state=ItemState.HELD,
            exit_code=event.get("exit_code"),
            exit_signal=event.get("exit_signal"),
            ended_at=event["t"],
            reason=event.get("reason", CPU_LACKS_AVX2),
        )
    if kind == "cancelled":
        return status.with_changes(
            state=ItemState.CANCELLED,
            ended_at=status.ended_at or event["t"],
            reason=event.get("reason", "cancelled"),
        )
    return status


def mark_orphans(status: ItemStatus, runner: dict | None) -> ItemStatus:
    """An unfinished item whose runner is gone failed; say so instead of showing it running forever."""
    if status.state not in (ItemState.IDLE, ItemState.RUNNING) or not status.submission:
        return status
    if runner is None:
        return status.with_changes(state=ItemState.FAILED, reason="the local runner never started")
    if runner.get("event") == "runner_finished" or not runner_alive(runner["pid"], runner.get("start_ticks")):
        return status.with_changes(
            state=ItemState.FAILED,
            reason=f"the local runner (pid {runner['pid']}) stopped before this item finished "
            "(killed, or the machine restarted)",
        )
    return status
