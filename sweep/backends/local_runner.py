"""The detached process that runs one local submission: `python -m sweep.backends.local_runner SWEEP_DIR RUN_ID`.

It plays the part of HTCondor's schedd, starter and shadow on one machine: a bounded pool of
slots, one sandbox folder per attempt with the item's inputs linked in, the job wrapper run
with a clean environment, `out/` moved back to the item folder, retries, and the same
SIGILL hold policy as the submit description.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sweep import names
from sweep.backends.local import EventLog, process_start_ticks
from sweep.job.host import ENV_MACHINE_MICROARCH, microarch_from_flags, read_cpuinfo
from sweep.reasons import CPU_LACKS_AVX2, explain_exit, is_sigill
from sweep.state import SweepDir

STOP_GRACE_SECONDS = 10.0


def machine_microarch() -> str:
    """This machine's x86-64 level, as HTCondor's startd would advertise it in `Microarch`."""
    return microarch_from_flags(read_cpuinfo()[1]) or "unknown"


class Runner:
    def __init__(self, sweep: SweepDir, run_id: str) -> None:
        self.sweep = sweep
        self.run_id = run_id
        self.run = json.loads(
            (sweep.path / names.LOCAL_RUNS_DIR / names.LOCAL_RUN_FILE.format(run_id=run_id)).read_text()
        )
        self.events = EventLog(sweep.path / names.LOCAL_EVENTS)
        self.cancel_file = sweep.path / names.LOCAL_RUNS_DIR / f"cancel-{run_id}"
        self.stopping = threading.Event()  # the whole run is cancelled or the runner told to stop
        self.cancelled: set[str] = set()  # single items cancelled while the run goes on
        self.children: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.host = socket.gethostname()
        self.microarch = machine_microarch()

    # ------------------------------------------------------------------ lifecycle
    def main(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop_all())
        signal.signal(signal.SIGINT, lambda *_: self.stop_all())
        signal.signal(signal.SIGUSR1, lambda *_: self.cancel_requested())
        self.events.write(
            run=self.run_id,
            event="runner_started",
            pid=os.getpid(),
            start_ticks=process_start_ticks(os.getpid()),
            slots=self.run["slots"],
        )
        try:
            with ThreadPoolExecutor(max_workers=self.run["slots"], thread_name_prefix="slot") as pool:
                for spec in self.run["items"]:
                    pool.submit(self.run_item, spec)
        finally:
            self.events.write(run=self.run_id, event="runner_finished", pid=os.getpid())
        return 0

    def stop_all(self) -> None:
        self.stopping.set()
        with self.lock:
            for process in self.children.values():
                _terminate(process)

    def cancel_requested(self) -> None:
        try:
            wanted = set(self.cancel_file.read_text().split())
        except OSError:
            return
        with self.lock:
            self.cancelled |= wanted
            for item, process in self.children.items():
                if item in wanted:
                    _terminate(process)

    def is_cancelled(self, item: str) -> bool:
        return self.stopping.is_set() or item in self.cancelled

    # ------------------------------------------------------------------ one item
    def run_item(self, spec: dict) -> None:
        item = spec["item"]
        try:
            for attempt in range(1, self.run["max_retries"] + 2):
                if self.is_cancelled(item):
                    self.log(item, "cancelled", reason="cancelled by `sweep cancel`")
                    return
                exit_code, exit_signal = self.run_attempt(spec, attempt)
                if self.is_cancelled(item):
                    self.log(item, "cancelled", reason="cancelled by `sweep cancel` while running")
                    return
                outcome = {"exit_code": exit_code, "exit_signal": exit_signal}
                if is_sigill(exit_code, exit_signal):  # same policy as on_exit_hold in the submit description
                    how = "killed by SIGILL" if exit_signal else "wrapper found the CPU flags missing"
                    self.log(item, "held", reason=f"{CPU_LACKS_AVX2} ({how} on {self.host})", **outcome)
                    return
                if exit_code == 0:
                    self.log(item, "terminated", **outcome)
                    return
                reason = explain_exit(exit_code, exit_signal, self.sweep.item_output(item))
                if attempt <= self.run["max_retries"]:
                    self.log(
                        item, "retrying", reason=f"attempt {attempt} failed ({reason}); retrying", **outcome
                    )
                else:
                    self.log(item, "terminated", reason=reason, **outcome)
        except Exception as error:  # a runner bug must not leave the item "running" forever
            self.log(
                item,
                "terminated",
                exit_code=None,
                exit_signal=None,
                reason=f"the local runner failed: {error!r}",
            )

    def run_attempt(self, spec: dict, attempt: int) -> tuple[int | None, int | None]:
        item = spec["item"]
        item_dir = self.sweep.item_dir(item)
        item_dir.mkdir(parents=True, exist_ok=True)
        sandbox = self.sweep.path / names.LOCAL_SANDBOXES_DIR / f"{item}.{attempt}"
        shutil.rmtree(sandbox, ignore_errors=True)
        sandbox.mkdir(parents=True)
        started = time.monotonic()
        for source in [*self.run["common_inputs"], *spec["inputs"]]:
            os.symlink(source, sandbox / Path(source).name)  # Condor transfers flat; so do we
        transfer_seconds = time.monotonic() - started
        with (
            open(item_dir / names.JOB_STDOUT, "wb") as stdout,
            open(item_dir / names.JOB_STDERR, "wb") as stderr,
        ):
            process = subprocess.Popen(
                [self.run["wrapper"], *spec["args"]],
                cwd=sandbox, env=self.job_environment(sandbox), stdin=subprocess.DEVNULL,
                stdout=stdout, stderr=stderr, start_new_session=True,
            )  # fmt: skip
            with self.lock:
                self.children[item] = process
            self.log(
                item,
                "executing",
                attempt=attempt,
                pid=process.pid,
                host=self.host,
                microarch=self.microarch,
                transfer_seconds=round(transfer_seconds, 4),
            )
            returncode = process.wait()
            with self.lock:
                self.children.pop(item, None)
        self.return_outputs(sandbox, item_dir)
        shutil.rmtree(sandbox, ignore_errors=True)
        return (None, -returncode) if returncode < 0 else (returncode, None)

    def return_outputs(self, sandbox: Path, item_dir: Path) -> None:
        """Replace the item's out/ with this attempt's, as HTCondor's output transfer does."""
        produced = sandbox / names.JOB_OUTPUT_DIR
        if not produced.is_dir():
            return
        target = item_dir / names.JOB_OUTPUT_DIR
        if target.exists():
            stale = item_dir / f".{names.JOB_OUTPUT_DIR}.old"
            shutil.rmtree(stale, ignore_errors=True)
            os.replace(target, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(produced, target)

    def job_environment(self, sandbox: Path) -> dict[str, str]:
        """A clean environment like HTCondor's: nothing of the submitting shell leaks into the job."""
        cpus = str(self.run["request_cpus"])
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(sandbox),
            "TMPDIR": str(sandbox),
            "LANG": "C.UTF-8",
            "_CONDOR_SCRATCH_DIR": str(sandbox),
            "OMP_NUM_THREADS": cpus,
            ENV_MACHINE_MICROARCH: self.microarch,
            names.ENV_CACHE_VARIABLE: self.run["env_cache"],
        }
        env.update(self.run.get("environment", {}))
        return env

    def log(self, item: str, event: str, **fields: object) -> None:
        self.events.write(run=self.run_id, item=item, event=event, **fields)


def _terminate(process: subprocess.Popen) -> None:
    """SIGTERM the job's process group, SIGKILL it if it has not gone after a grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def kill_later() -> None:
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    threading.Thread(target=kill_later, daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m sweep.backends.local_runner SWEEP_DIR RUN_ID", file=sys.stderr)
        return 2
    return Runner(SweepDir(Path(argv[0])), argv[1]).main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
