"""The `sweep` command line: thin commands that parse options and call the library.

Library functions raise SweepError and never print; here, at the edge only, an error becomes
one clear message on stderr and exit code 2. Heavy modules (TensorFlow, pandas, htcondor2)
are imported inside the commands so that `sweep --help` stays instant.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from sweep import __version__
from sweep.errors import SweepError

app = typer.Typer(
    name="sweep",
    help="Train one model per (data fraction x replica) on HTCondor or locally, collect AUC and timings, report the learning curve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
data_app = typer.Typer(help="Make and prepare datasets in the ChestX-ray14 layout.", no_args_is_help=True)
app.add_typer(data_app, name="data")

out = Console()
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
            err.print(f"[bold red]error:[/bold red] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            err.print("interrupted", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def print_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def version_callback(value: bool) -> None:
    if value:
        out.print(f"sweep {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """sweep: how do accuracy (AUC) and cost (time) change with the amount of training data?"""


# ---------------------------------------------------------------- shared options
SweepsDir = Annotated[
    Path, typer.Option("--sweeps-dir", help="Folder that holds the sweep directories.", show_default=True)
]
SweepName = Annotated[str, typer.Argument(help="The sweep's name (a folder under --sweeps-dir).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
DEFAULT_SWEEPS_DIR = Path("sweeps")
DEFAULT_REQUIREMENTS_FILE = Path(__file__).resolve().parent.parent / "envs" / "requirements-job.txt"
DEFAULT_ENV_CACHE = DEFAULT_REQUIREMENTS_FILE.parent / "cache"


@app.command()
@user_errors
def pack(
    requirements: Annotated[
        Path, typer.Option("--requirements", help="Locked requirements of the job environment.")
    ] = DEFAULT_REQUIREMENTS_FILE,
    cache: Annotated[Path, typer.Option("--cache", help="Where built tarballs are kept.")] = DEFAULT_ENV_CACHE,
    as_json: JsonFlag = False,
) -> None:
    """Build (or find in the cache) the interpreter and dependency tarballs every job unpacks."""
    from sweep import pack as packing

    with err.status("packing the job environment") as status:
        result = packing.build_environment(requirements, cache, progress=lambda msg: status.update(msg))
    env = result.env
    if as_json:
        print_json({
            "key": env.key,
            "cache_hit": result.cache_hit,
            "seconds": round(result.seconds, 3),
            "python_version": env.python_version,
            "glibc_min": env.glibc_min,
            "interpreter": {"path": str(env.interpreter.path), "sha256": env.interpreter.sha256, "bytes": env.interpreter.bytes},
            "site_packages": {"path": str(env.site_packages.path), "sha256": env.site_packages.sha256, "bytes": env.site_packages.bytes},
        })
        return
    verb = "found in the cache" if result.cache_hit else "built"
    out.print(f"environment {env.key} {verb} in {result.seconds:.2f} s")
    for tarball in (env.interpreter, env.site_packages):
        out.print(f"  {tarball.path}  {tarball.bytes / 1e6:.1f} MB  {tarball.files} files  sha256 {tarball.sha256[:16]}…")


@data_app.command("synth")
@user_errors
def data_synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="New folder for the dataset.")],
    images: Annotated[int, typer.Option("--images", help="Number of images.")] = 2000,
    size: Annotated[int, typer.Option("--size", help="Image side in pixels.")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same dataset.")] = 0,
) -> None:
    """Generate a synthetic look-alike of NIH ChestX-ray14 (same layout, labels and imbalance)."""
    from sweep.data.synth import synthesize

    with _progress("synthesizing images") as report:
        summary = synthesize(out_dir, images=images, size=size, seed=seed, progress=report)
    out.print(f"wrote {summary}")


@data_app.command("shard")
@user_errors
def data_shard(
    src: Annotated[Path, typer.Argument(metavar="SRC", help="A folder in the ChestX-ray14 layout.")],
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="New folder for the TFRecord shards.")],
    size: Annotated[int, typer.Option("--size", help="Resize images to SIZE x SIZE pixels.")] = 64,
) -> None:
    """Validate a ChestX-ray14-layout folder and write patient-split TFRecord shards + manifest.json."""
    from sweep.data.shard import shard_dataset

    with _progress("sharding images") as report:
        manifest = shard_dataset(src, out_dir, size=size, progress=report)
    out.print(f"wrote {manifest.summary()}")


class _ProgressReporter:
    """A progress callback (done, total) drawn as a rich progress bar."""

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


def _progress(description: str) -> _ProgressReporter:
    return _ProgressReporter(description)


def not_yet(command: str, issue: int) -> None:
    """Commands whose body belongs to a later issue say so plainly instead of faking output."""
    raise SweepError(f"`sweep {command}` is not implemented yet (tracked in issue {issue})")


@app.command()
@user_errors
def submit(
    fractions: Annotated[str, typer.Option("--fractions", help="0.1..1.0, 0.1..1.0:0.05 or 0.05,0.1,0.5")],
    replicas: Annotated[str, typer.Option("--replicas", help="Replicas per fraction (>= 1).")],
    data: Annotated[Path, typer.Option("--data", help="Folder of shards written by `sweep data shard`.")],
    name: Annotated[str | None, typer.Option("--name", help="Sweep name (default: sweep-DATE-TIME).")] = None,
    backend: Annotated[str, typer.Option("--backend", help="local or condor.")] = "local",
    epochs: Annotated[str, typer.Option("--epochs", help="Training epochs per job.")] = "5",
    batch_size: Annotated[str, typer.Option("--batch-size", help="Training batch size.")] = "32",
    seed: Annotated[int, typer.Option("--seed", help="Base seed; every item's seed derives from it.")] = 0,
    request_cpus: Annotated[str, typer.Option("--request-cpus", help="CPUs per job.")] = "1",
    request_memory: Annotated[str, typer.Option("--request-memory", help="Memory per job, e.g. 4GB.")] = "4GB",
    request_disk: Annotated[str, typer.Option("--request-disk", help="Disk per job, e.g. 8GB.")] = "8GB",
    require: Annotated[
        str | None, typer.Option("--require", help="ClassAd requirements expression replacing the AVX2 default.")
    ] = None,
    no_require_avx: Annotated[
        bool, typer.Option("--no-require-avx", help="Drop the default AVX2 requirement (jobs may then SIGILL).")
    ] = False,
    sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the submit description; create nothing.")] = False,
) -> None:
    """Pack the environment, render one submission for every fraction x replica, and submit it."""
    not_yet("submit", 5)


@app.command()
@user_errors
def status(name: SweepName, watch: Annotated[bool, typer.Option("--watch")] = False, as_json: JsonFlag = False,
           sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR) -> None:
    """Counts per state and one line per item, with failure and hold reasons in plain words."""
    not_yet("status", 5)


@app.command()
@user_errors
def collect(name: SweepName, sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR) -> None:
    """Gather every item's metrics, timings and machine into results.parquet and results.csv."""
    not_yet("collect", 5)


@app.command()
@user_errors
def report(name: SweepName, sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR) -> None:
    """Draw the data-size-versus-AUC curve, runtimes and failures into an HTML report."""
    not_yet("report", 7)


@app.command()
@user_errors
def resubmit(name: SweepName, failed: Annotated[bool, typer.Option("--failed")] = False,
             sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR) -> None:
    """Run the failed (or held) items of a sweep again."""
    not_yet("resubmit", 5)


@app.command()
@user_errors
def cancel(name: SweepName, sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR) -> None:
    """Stop every item of a sweep that has not finished."""
    not_yet("cancel", 5)


@app.command()
@user_errors
def demo() -> None:
    """Synthesize data, shard, pack, run a local sweep, collect and report, end to end."""
    not_yet("demo", 5)
