"""How sweep state looks in a terminal: the status table and the live --watch bar (rich)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sweep.state import ItemState, ItemStatus, SweepManifest

STATE_STYLE = {
    ItemState.IDLE: "dim", ItemState.RUNNING: "cyan", ItemState.HELD: "yellow",
    ItemState.DONE: "green", ItemState.FAILED: "red", ItemState.CANCELLED: "magenta",
}  # fmt: skip


def counts_line(statuses: Mapping[str, ItemStatus]) -> str:
    counts = dict.fromkeys(ItemState, 0)
    for status in statuses.values():
        counts[status.state] += 1
    return "  ".join(f"[{STATE_STYLE[s]}]{counts[s]} {s.value}[/]" for s in ItemState if counts[s])


def status_table(manifest: SweepManifest, statuses: Mapping[str, ItemStatus]) -> Table:
    backend = manifest.backend.get("name", "?")
    table = Table(title=f"sweep {manifest.name} ({backend}): {counts_line(statuses)}", title_justify="left")
    for column in ("item", "fraction", "replica", "state", "tries", "host", "wall s", "reason"):
        table.add_column(
            column,
            overflow="fold",
            justify="right" if column in ("fraction", "replica", "tries", "wall s") else "left",
        )
    for row in manifest.items:
        status = statuses[str(row["item"])]
        wall = f"{status.wall_time:.1f}" if status.wall_time is not None else ""
        table.add_row(
            escape(str(row["item"])), str(row["fraction"]), str(row["replica"]),
            f"[{STATE_STYLE[status.state]}]{status.state.value}[/]", str(status.attempts or ""),
            escape(status.host), wall, escape(status.reason),  # job- and pool-supplied text, never markup
        )  # fmt: skip
    return table


def watch_sweep(sweeps_dir: Path, name: str, console: Console, timeout: float | None = None) -> None:
    """A live bar until every item settles (or `timeout` s pass: StateError). Ctrl-C stops watching, never the jobs.

    Why items wait (no slot matches their requirements, a hold) is printed once per distinct reason,
    so a sweep that cannot start says so instead of showing a bar that never moves.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sweep.tracking import wait_for_sweep

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"),
        console=console,
        transient=False,
    )
    task = progress.add_task(f"sweep {name}", total=None, counts="")

    said: set[str] = set()

    def update(manifest: SweepManifest, statuses: Mapping[str, ItemStatus]) -> None:
        settled = sum(1 for s in statuses.values() if s.state.is_settled)
        progress.update(task, total=len(statuses), completed=settled, counts=counts_line(statuses))
        for line in waiting_reasons(statuses):
            if line not in said:
                said.add(line)
                progress.console.print(escape(line), highlight=False, soft_wrap=True)

    # A Ctrl-C at any moment from here on, the first poll included, gets the same answer.
    try:
        console.print(f"watching sweep {name}; Ctrl-C stops watching, not the jobs")
        with progress:
            wait_for_sweep(sweeps_dir, name, update, timeout=timeout)
    except KeyboardInterrupt:
        progress.stop()
        console.print(
            f"stopped watching; the jobs keep running. Follow again: sweep status {name} --watch; "
            f"stop them: sweep cancel {name}"
        )
        raise


def waiting_reasons(statuses: Mapping[str, ItemStatus]) -> list[str]:
    """One line per distinct reason that idle or held items give, with how many give it."""
    counts: dict[tuple[str, str], int] = {}
    for status in statuses.values():
        if status.state in (ItemState.IDLE, ItemState.HELD) and status.reason:
            key = (status.state.value, status.reason)
            counts[key] = counts.get(key, 0) + 1
    return [f"{n} {state}: {reason}" for (state, reason), n in counts.items()]


def results_summary_table(results_csv: Path) -> Table:
    """Per fraction: items done of all, training images, mean macro AUC and wall time."""
    import pandas as pd

    results = pd.read_csv(results_csv)
    table = Table(title=f"results ({len(results)} items)", title_justify="left")
    for column in ("fraction", "done", "train images", "mean AUC", "AUC range", "mean wall s"):
        table.add_column(column, justify="right")
    for fraction, group in results.groupby("fraction", sort=True):
        done = group[group["state"] == "done"]
        auc = done["auc_macro"].dropna()
        table.add_row(
            f"{fraction:g}", f"{len(done)}/{len(group)}",
            f"{done['train_images'].mean():.0f}" if len(done) else "",
            f"{auc.mean():.3f}" if len(auc) else "", f"{auc.min():.3f}-{auc.max():.3f}" if len(auc) else "",
            f"{done['wall_time'].mean():.1f}" if len(done) else "",
        )  # fmt: skip
    return table
