"""The read side of a sweep: its items' states, the `status --json` object, waiting, and cancelling.

Nothing here writes a submission; every function opens the sweep through `open_settled_sweep`,
so a submit that was interrupted is settled before its states are read.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

from sweep.backends import get_backend
from sweep.errors import StateError
from sweep.recovery import open_settled_sweep
from sweep.state import ItemState, ItemStatus, SweepDir, SweepManifest


def sweep_statuses(sweeps_dir: Path, name: str) -> tuple[SweepDir, SweepManifest, dict[str, ItemStatus]]:
    sweep = open_settled_sweep(sweeps_dir, name)
    manifest = sweep.load()
    return sweep, manifest, get_backend(manifest.backend).poll(sweep, manifest)


def count_states(statuses: Mapping[str, ItemStatus]) -> dict[str, int]:
    counts = {state.value: 0 for state in ItemState}
    for status in statuses.values():
        counts[status.state.value] += 1
    return counts


def status_payload(manifest: SweepManifest, statuses: Mapping[str, ItemStatus]) -> dict[str, object]:
    """The `status --json` object: the same keys and state words on every backend."""
    rows = {str(row["item"]): row for row in manifest.items}
    return {
        "name": manifest.name,
        "backend": manifest.backend.get("name"),
        "counts": count_states(statuses),
        "items": [
            {
                "item": item,
                "fraction": float(str(rows[item]["fraction"])),
                "replica": int(str(rows[item]["replica"])),
                "state": status.state.value,
                "reason": status.reason,
                "attempts": status.attempts,
                "host": status.host,
                "microarch": status.microarch,
                "wall_time": status.wall_time,
                "submission": status.submission,
            }
            for item, status in statuses.items()
        ],
    }


def cancel_sweep(sweeps_dir: Path, name: str) -> list[str]:
    sweep = open_settled_sweep(sweeps_dir, name)
    with sweep.locked():
        manifest = sweep.load()
        return get_backend(manifest.backend).cancel(sweep, manifest)


def wait_for_sweep(
    sweeps_dir: Path,
    name: str,
    on_update: Callable[[SweepManifest, dict[str, ItemStatus]], None],
    interval: float = 1.0,
    timeout: float | None = None,
) -> dict[str, ItemStatus]:
    """Poll until every item is settled (done, failed, cancelled or held); report each poll."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        _, manifest, statuses = sweep_statuses(sweeps_dir, name)
        on_update(manifest, statuses)
        if all(s.state.is_settled for s in statuses.values()):
            return statuses
        if deadline is not None and time.monotonic() > deadline:
            raise StateError(
                f"sweep {name!r} did not settle within {timeout:.0f} s: {unsettled_summary(statuses)}"
            )
        time.sleep(interval)


def unsettled_summary(statuses: Mapping[str, ItemStatus]) -> str:
    """'3 idle, 1 running; f0.1_r0, f0.1_r1: idle no slot matches ...': what still waits, and why."""
    waiting = [s for s in statuses.values() if not s.state.is_settled]
    counts = Counter(s.state.value for s in waiting)
    text = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    by_reason: dict[str, list[str]] = {}
    for status in waiting:
        if status.reason:
            by_reason.setdefault(f"{status.state.value} {status.reason}", []).append(status.item)
    for reason, items in by_reason.items():
        shown = ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")
        text += f"; {shown}: {reason}"
    return text
