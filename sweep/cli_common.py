"""What every `sweep` command shares: the consoles, the one error edge, JSON output, option types.

Library functions raise SweepError and never print; at this edge only an error becomes one clear
message on stderr and exit code 2. Every user- or job-supplied string is printed as text, never
as rich markup (a reason such as "[verify] ..." must keep its brackets).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.markup import escape

from sweep.errors import SpecError, SweepError

# Piped output (grep, files) gets one line per table row instead of rich's 80-column folding.
out = Console(width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Turn a SweepError into a message and exit 2; Ctrl-C into a short note and exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SweepError as error:
            err.print(f"[bold red]error:[/bold red] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            err.print("interrupted", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return cast(F, wrapper)


def print_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def say(text: str) -> None:
    """One line of user- or job-supplied text on stdout, printed as it is."""
    out.print(escape(text), highlight=False, soft_wrap=True)


def whole_number(flag: str, help: str, minimum: int = 1, maximum: int | None = None) -> Any:
    """typer.Option for an integer in [minimum, maximum]: --help shows the range; a value outside it is
    refused (exit 2) naming the value and the range (typer's own range check does not name the value)."""
    accepted = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"

    def parse(value: str) -> int:
        from sweep.spec import parse_positive_int

        try:
            return parse_positive_int(flag, value, minimum=minimum, maximum=maximum)
        except SpecError as error:
            raise typer.BadParameter(str(error)) from None

    return typer.Option(flag, help=f"{help} (range {accepted})", parser=parse, metavar="INTEGER")


class ExportFormat(StrEnum):
    tflite = "tflite"


class BackendName(StrEnum):
    local = "local"
    condor = "condor"


SweepsDir = Annotated[
    Path, typer.Option("--sweeps-dir", help="Folder that holds the sweep directories.", show_default=True)
]
SweepName = Annotated[str, typer.Argument(help="The sweep's name (a folder under --sweeps-dir).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of text.")]
DEFAULT_SWEEPS_DIR = Path("sweeps")
RequirementsFile = Annotated[
    Path | None,
    typer.Option(
        "--requirements",
        help="Locked requirements of the job environment.",
        show_default="the lock file shipped with sweep",
    ),
]
EnvCache = Annotated[
    Path | None,
    typer.Option(
        "--cache",
        help="Where environment tarballs are kept.",
        show_default="$SWEEP_ENV_CACHE_DIR or ~/.cache/sweep/envs",
    ),
]


class ProgressBar:
    """A progress callback (done, total) drawn as a rich progress bar on stderr."""

    def __init__(self, description: str) -> None:
        from rich.progress import Progress

        self._progress = Progress(console=err, transient=True)
        self._task = self._progress.add_task(description, total=None)

    def __enter__(self) -> Callable[[int, int], None]:
        self._progress.start()
        return self.update

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, done: int, total: int) -> None:
        self._progress.update(self._task, completed=done, total=total)
