"""Why an item stopped, in plain words: exit codes, signals and HTCondor hold codes as data."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from sweep import names

SIGILL_EXIT_CODE = 132  # 128 + SIGILL: what a shell reports for a child killed by SIGILL
CPU_LACKS_AVX2 = "this machine's CPU lacks AVX2, TensorFlow cannot run there"

SIGNAL_MEANINGS = {
    signal.SIGILL: CPU_LACKS_AVX2,
    signal.SIGKILL: "the process was killed (by a person, the out-of-memory killer or a time limit)",
    signal.SIGTERM: "the process was asked to stop (SIGTERM)",
    signal.SIGSEGV: "the process crashed (segmentation fault)",
    signal.SIGABRT: "the process aborted",
    signal.SIGBUS: "the process crashed (bus error; often a full disk or a truncated file)",
}

# HTCondor HoldReasonCode values worth explaining (see the HTCondor manual, "Job ClassAd attributes").
HOLD_CODES = {
    1: "held by a person (condor_hold)",
    3: "held by a job policy",
    6: "the job could not be started on the execute machine",
    12: "input files could not be transferred to the execute machine",
    13: "output files could not be transferred back",
    21: "the job used more memory than it asked for",
    26: "the job was held by a system policy (SYSTEM_PERIODIC_HOLD)",
    34: "the job ran out of memory or another resource",
    46: "the job ran longer than allowed",
    47: "the job ran longer than allowed",
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
