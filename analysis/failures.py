"""Items that did not produce a result, with the reason in plain words and the machine they were on."""

from __future__ import annotations

import math
import signal

import pandas as pd

from sweep import results_schema as C
from sweep.analysis.tables import CANCELLED, FAILED, OUTCOME, PENDING, machine_name

FAILURE_COLUMNS = ("item", "fraction", "replica", "state", "reason", "machine")

# Signals whose usual cause on a training node is worth saying outright.
_SIGNAL_HINTS = {
    signal.SIGILL: "the CPU lacks an instruction the code needs (e.g. AVX)",
    signal.SIGKILL: "killed, often for exceeding its memory request",
    signal.SIGSEGV: "crashed",
    signal.SIGBUS: "crashed",
}


def failures_table(df: pd.DataFrame) -> pd.DataFrame:
    """Failed, held and cancelled items, and done items without a usable AUC (prepared results)."""
    bad = df[df[OUTCOME].isin([FAILED, CANCELLED])].sort_values([C.FRACTION, C.REPLICA])
    rows = [
        {
            "item": row[C.ITEM],
            "fraction": row[C.FRACTION],
            "replica": int(row[C.REPLICA]) if math.isfinite(row[C.REPLICA]) else None,
            "state": row[C.STATE],
            "reason": plain_reason(row),
            "machine": _machine(row),
        }
        for _, row in bad.iterrows()
    ]
    return pd.DataFrame(rows, columns=list(FAILURE_COLUMNS))


def plain_reason(row: pd.Series) -> str:
    """The recorded reason, else one derived from the exit signal, exit code or output problem."""
    parts = [str(row[C.REASON]).strip()]
    if not parts[0]:
        parts = [_exit_reason(row[C.EXIT_SIGNAL], row[C.EXIT_CODE])]
    problem = str(row[C.OUTPUT_PROBLEM]).strip()
    if problem:
        parts.append(f"output problem: {problem}")
    if row[C.STATE] == C.DONE and not math.isfinite(row[C.AUC_MACRO]) and not problem:
        parts.append("finished without an AUC")
    retries = _as_int(row[C.RETRIES])
    if retries:
        parts.append(f"after {retries} retr{'y' if retries == 1 else 'ies'}")
    return "; ".join(p for p in parts if p) or "no reason recorded"


def _exit_reason(sig: float, code: float) -> str:
    if math.isfinite(sig) and sig > 0:
        return _signal_reason(int(sig))
    if math.isfinite(code) and code != 0:
        return f"exited with code {int(code)}"
    return ""


def _signal_reason(number: int) -> str:
    try:
        sig = signal.Signals(number)
    except ValueError:
        return f"killed by signal {number}"
    hint = _SIGNAL_HINTS.get(sig)
    text = f"killed by signal {number} ({sig.name})"
    return f"{text}: {hint}" if hint else text


def _machine(row: pd.Series) -> str:
    if not row[C.HOST] and not row[C.MICROARCH] and not row[C.CPU_MODEL]:
        return "never ran"
    kind = machine_name(row[C.MICROARCH], row[C.CPU_MODEL])
    return f"{row[C.HOST]} ({kind})" if row[C.HOST] else kind


def pending_count(df: pd.DataFrame) -> int:
    return int((df[OUTCOME] == PENDING).sum())


def _as_int(value: float) -> int:
    return int(value) if math.isfinite(value) else 0
