"""Why an item stopped, in plain words: exit codes, signals and HTCondor hold codes as data."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from sweep import names

SIGILL_EXIT_CODE = names.SIGILL_EXIT_CODE
CPU_LACKS_AVX2 = "this machine's CPU lacks AVX2, TensorFlow cannot run there"

SIGNAL_MEANINGS = {
    signal.SIGILL: CPU_LACKS_AVX2,
    signal.SIGKILL: "the process was killed (by a person, the out-of-memory killer or a time limit)",
    signal.SIGTERM: "the process was asked to stop (SIGTERM)",
    signal.SIGSEGV: "the process crashed (segmentation fault)",
    signal.SIGABRT: "the process aborted",
    signal.SIGBUS: "the process crashed (bus error; often a full disk or a truncated file)",
}

# HTCondor's HoldReasonCode values (the manual's "Job ClassAd attributes", HoldReasonCode), in plain
# words. A code missing here is shown with HTCondor's own HoldReason text alone.
HOLD_CODES = {
    1: "held by a person (condor_hold)",
    3: "held by a job policy (periodic_hold or on_exit_hold)",
    4: "the job's credentials are invalid",
    5: "a job policy expression evaluated to undefined",
    6: "the execute machine could not start the job's program",
    7: "the job's standard output file could not be opened",
    8: "the job's standard input file could not be opened",
    9: "the job's standard output stream could not be opened",
    10: "the job's standard input stream could not be opened",
    11: "an internal HTCondor error while transferring files",
    12: "output files could not be transferred back",
    13: "input files could not be transferred to the execute machine",
    14: "the job's initial directory (the sweep folder) cannot be reached from the pool",
    15: "submitted on hold",
    16: "input files are being spooled",
    17: "the job does not fit the submit machine's condor_shadow",
    18: "an internal HTCondor error while transferring files",
    19: "the execute machine's prepare-job hook failed",
    20: "the job missed its deferred start time",
    21: "the execute machine's policy held the job (WANT_HOLD)",
    22: "the job's event log could not be written",
    23: "the job owner's account could not be used",
    24: "no compatible condor_shadow",
    25: "invalid cron settings",
    26: "held by the pool's system policy (SYSTEM_PERIODIC_HOLD)",
    27: "the pool's system policy evaluated to undefined",
    32: "the job's input files are larger than the pool allows",
    33: "the job's output files are larger than the pool allows",
    34: "the job used more memory (or another resource) than it asked for",
    35: "the container image is invalid",
    36: "the job failed when asked to checkpoint",
    43: "the pre-script failed",
    44: "the post-script failed",
    45: "the container runtime test failed before the job started",
    46: "the job ran longer than its allowed duration",
    47: "the job ran longer than its allowed execution time",
    48: "the submit machine's prepare-job hook failed",
}


def is_sigill(exit_code: int | None, exit_signal: int | None) -> bool:
    return exit_signal == signal.SIGILL or exit_code == SIGILL_EXIT_CODE


def explain_signal(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    meaning = SIGNAL_MEANINGS.get(number)  # type: ignore[call-overload]
    return f"killed by signal {number} ({name})" + (f": {meaning}" if meaning else "")


def explain_exit(exit_code: int | None, exit_signal: int | None, output_dir: Path | None = None) -> str:
    """Plain words for how a job ended, with the job's own error message when it left one."""
    if exit_signal is not None:
        return explain_signal(exit_signal)
    if exit_code is None:
        return "ended without an exit code"
    if exit_code == 0:
        return ""
    if exit_code == SIGILL_EXIT_CODE:
        return CPU_LACKS_AVX2
    detail = job_error_message(output_dir) if output_dir is not None else ""
    return f"exit code {exit_code}" + (f": {detail}" if detail else "")


def explain_hold(code: int | None, subcode: int | None, reason: str) -> str:
    """A hold in plain words; sweep's own SIGILL hold already carries its explanation."""
    if subcode == SIGILL_EXIT_CODE or CPU_LACKS_AVX2 in reason:
        return reason if CPU_LACKS_AVX2 in reason else f"{CPU_LACKS_AVX2} ({reason})"
    meaning = HOLD_CODES.get(code or 0)
    if meaning and reason:
        return f"{meaning}: {reason}"
    return meaning or reason or "held"


def job_error_message(output_dir: Path) -> str:
    """The one-line message of error.json that the job or the wrapper left, if any."""
    path = Path(output_dir) / names.ERROR
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    if not isinstance(payload, dict):
        return ""
    stage = payload.get("stage")
    kind = payload.get("type")
    message = str(payload.get("message", "")).strip().splitlines()
    text = (f"{kind}: " if kind else "") + (message[0] if message else "")
    return (f"[{stage}] " if stage else "") + text if text else ""
