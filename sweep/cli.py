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
from rich.markup import escape

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
        out.print(f"  {tarball.path}  {tarball.bytes / 1e6:.1f} MB  {tarball.files} files  sha256 {tarball.sha256[:16]}…",
                  soft_wrap=True)


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
    request_memory: Annotated[str, typer.Option("--request-memory", help="Memory per job, e.g. 4GB (bare number: MB).")] = "2GB",
    request_disk: Annotated[str, typer.Option("--request-disk", help="Disk per job, e.g. 8GB (bare number: KB).")] = "3GB",
    require: Annotated[
        str | None, typer.Option("--require", help="ClassAd requirements expression replacing the AVX2 default.")
    ] = None,
    no_require_avx: Annotated[
        bool, typer.Option("--no-require-avx", help="Drop the default AVX2 requirement (jobs may then SIGILL and be held).")
    ] = False,
    max_retries: Annotated[str, typer.Option("--max-retries", help="Retries of a failed job (not of a SIGILL hold).")] = "1",
    schedd: Annotated[str | None, typer.Option("--schedd", help="condor: schedd name (default: the local one).")] = None,
    pool: Annotated[str | None, typer.Option("--pool", help="condor: collector host[:port] (default: CONDOR_CONFIG's).")] = None,
    requirements_file: Annotated[
        Path, typer.Option("--requirements", help="Locked requirements of the job environment.")
    ] = DEFAULT_REQUIREMENTS_FILE,
    cache: Annotated[Path, typer.Option("--cache", help="Where environment tarballs are kept.")] = DEFAULT_ENV_CACHE,
    replace: Annotated[
        bool, typer.Option("--replace", help="Cancel and discard an existing sweep of the same name.")
    ] = False,
    node_env_cache: Annotated[
        str | None,
        typer.Option("--node-env-cache", help="condor: a writable folder on every execute node where jobs unpack "
                     "the environment once and share it (e.g. /tmp/sweep-envs); default: every job unpacks its own."),
    ] = None,
    sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the submit description; create nothing.")] = False,
    verify_data: Annotated[
        bool, typer.Option("--verify-data", help="Re-hash every shard against manifest.json (sizes are always checked).")
    ] = False,
    submit_option: Annotated[
        list[str] | None,
        typer.Option("--submit-option", help="KEY=VALUE added to the submit description, e.g. accounting_group=physics "
                     "or +ProjectName=\"chest\" (repeatable; keys sweep sets itself are refused)."),
    ] = None,
    submit_template: Annotated[
        Path | None,
        typer.Option("--submit-template", help="A Jinja file rendered instead of submit_templates/submit.sub.j2 "
                     "(same variables and filters; sweep's own commands must stay as they are)."),
    ] = None,
) -> None:
    """Pack the environment, render one submission for every fraction x replica, and submit it."""
    import os
    import time as _time

    from sweep import spec as specs
    from sweep import submission
    from sweep.render import parse_submit_option, submit_expression

    if require is not None and no_require_avx:
        raise SweepError("--require and --no-require-avx contradict each other; accepted: one of them, or neither")
    sweep_spec = specs.SweepSpec(
        name=specs.validate_name(name or _time.strftime("sweep-%Y%m%d-%H%M%S")),
        fractions=specs.parse_fractions(fractions),
        replicas=specs.parse_replicas(replicas),
        seed=seed,
        epochs=specs.parse_positive_int("epochs", epochs, maximum=10_000),
        batch_size=specs.parse_positive_int("batch-size", batch_size, maximum=65_536),
        resources=specs.Resources(
            cpus=specs.parse_positive_int("request-cpus", request_cpus, maximum=1024),
            memory_mb=specs.parse_memory_mb(request_memory),
            disk_kb=specs.parse_disk_kb(request_disk),
        ),
        requirements=None if no_require_avx else (require if require is not None else specs.DEFAULT_REQUIREMENTS),
        backend=specs.validate_backend(backend),
        submit_options=tuple(parse_submit_option(option) for option in submit_option or ()),
    )
    if sweep_spec.requirements is not None:
        submit_expression(sweep_spec.requirements)
    retries = specs.parse_positive_int("max-retries", max_retries, minimum=0, maximum=100)
    request = submission.SubmitRequest(
        spec=sweep_spec, data_dir=data.resolve(), sweeps_dir=sweeps_dir, requirements_file=requirements_file,
        env_cache=cache.resolve(), backend=_backend_settings(backend, schedd, pool), max_retries=retries,
        replace_existing=replace,
        environment={**submission.test_environment(os.environ), **submission.node_env_cache(node_env_cache, backend)},
        verify_data=verify_data,
        submit_template=submission.load_submit_template(submit_template) if submit_template else None,
    )
    if dry_run:
        sys.stdout.write(submission.dry_run(request))
        return
    with err.status("submitting") as spinner:
        sweep, manifest = submission.submit_sweep(request, progress=lambda msg: spinner.update(msg))
    last = manifest.submissions[-1]
    out.print(f"sweep {manifest.name!r}: {len(last.items)} items submitted to the {backend} backend ({last.id})")
    out.print(f"  folder: {sweep.path}")
    out.print(f"  follow: sweep status {manifest.name} --watch" + _sweeps_dir_flag(sweeps_dir))


def _backend_settings(backend: str, schedd: str | None, pool: str | None) -> dict[str, str]:
    settings = {"name": backend}
    if backend == "condor":
        settings.update(schedd=schedd or "", pool=pool or "")
    elif schedd or pool:
        raise SweepError("--schedd and --pool are for --backend condor; accepted: drop them or use --backend condor")
    return settings


def _sweeps_dir_flag(sweeps_dir: Path) -> str:
    return "" if sweeps_dir == DEFAULT_SWEEPS_DIR else f" --sweeps-dir {sweeps_dir}"


@app.command()
@user_errors
def status(
    name: SweepName,
    watch: Annotated[bool, typer.Option("--watch", help="Follow with a live progress bar until every item settles.")] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=1, help="With --watch: stop watching after this many seconds and exit 2, "
                     "saying which items still wait and why (the jobs keep running)."),
    ] = None,
    as_json: JsonFlag = False,
    sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR,
) -> None:
    """Counts per state and one line per item, with failure and hold reasons in plain words.

    Idle items say why when no slot of the pool matches their requirements (the failing clause).
    """
    from sweep import submission
    from sweep.views import status_table, watch_sweep

    if watch:
        watch_sweep(sweeps_dir, name, err, timeout=timeout)
    _, manifest, statuses = submission.sweep_statuses(sweeps_dir, name)
    if as_json:
        print_json(submission.status_payload(manifest, statuses))
        return
    out.print(status_table(manifest, statuses))


@app.command()
@user_errors
def collect(name: SweepName, sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR, as_json: JsonFlag = False) -> None:
    """Gather every item's metrics, timings and machine into results.parquet and results.csv."""
    from sweep.collect import collect_sweep

    result = collect_sweep(sweeps_dir, name)
    if as_json:
        print_json({"parquet": str(result.parquet), "csv": str(result.csv), "rows": result.rows,
                    "counts": result.counts, "problems": result.problems})
        return
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result.counts.items()))
    out.print(f"{result.rows} rows ({counts})")
    out.print(f"  {result.parquet}\n  {result.csv}")
    for problem in result.problems:
        out.print(f"  [yellow]problem:[/yellow] {problem}")


@app.command()
@user_errors
def report(
    name: SweepName,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the report (default: the sweep's report/).")] = None,
    target_auc: Annotated[float, typer.Option("--target-auc", help="How many images reach this macro AUC?")] = 0.75,
    as_json: JsonFlag = False,
    sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR,
) -> None:
    """Draw the data-size-versus-AUC curve, runtimes and failures into report.html (+ PNGs, summary.csv)."""
    from sweep.reporting import report_sweep

    summary = report_sweep(sweeps_dir, name, out_dir=out_dir, target_auc=target_auc)
    if as_json:
        sys.stdout.write(summary.to_json() + "\n")
        return
    out.print(summary.statement)
    for warning in summary.warnings:
        out.print(f"  [yellow]warning:[/yellow] {warning}")
    out.print(f"report: {summary.files['report']}")


@app.command()
@user_errors
def resubmit(
    name: SweepName,
    failed: Annotated[bool, typer.Option("--failed", help="Resubmit the failed and held items (required).")] = False,
    require: Annotated[str | None, typer.Option("--require", help="Requirements for the resubmitted items.")] = None,
    no_require_avx: Annotated[bool, typer.Option("--no-require-avx", help="No CPU requirement for them.")] = False,
    sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR,
) -> None:
    """Run the failed and held items of a sweep again, as one new submission."""
    from sweep import submission

    if not failed:
        raise SweepError("say which items to resubmit; accepted: --failed (the failed and held items)")
    if require is not None and no_require_avx:
        raise SweepError("--require and --no-require-avx contradict each other; accepted: one of them, or neither")
    items, note = submission.resubmit_failed(sweeps_dir, name, require=require, no_require_avx=no_require_avx)
    out.print(f"resubmitted {len(items)} items: {', '.join(items)}")
    if note:
        out.print(f"  {note}")


@app.command()
@user_errors
def cancel(name: SweepName, sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR) -> None:
    """Stop every item of a sweep that has not finished."""
    from sweep import submission

    stopped = submission.cancel_sweep(sweeps_dir, name)
    out.print(f"cancelled {len(stopped)} items" + (f": {', '.join(stopped)}" if stopped else " (nothing was unfinished)"))


@app.command()
@user_errors
def demo(
    workdir: Annotated[Path, typer.Option("--dir", help="Folder for the dataset, shards and the sweep.")] = Path("demo"),
    images: Annotated[int, typer.Option("--images", help="Synthetic images.")] = 2000,
    size: Annotated[int, typer.Option("--size", help="Image side in pixels.")] = 64,
    fractions: Annotated[str, typer.Option("--fractions", help="Training-data fractions.")] = "0.1..1.0",
    replicas: Annotated[int, typer.Option("--replicas", help="Replicas per fraction.")] = 3,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs per job.")] = 3,
) -> None:
    """Synthesize data, shard, pack, run a local sweep, collect and report, end to end."""
    from sweep import spec as specs
    from sweep.demo import DemoSettings, run_demo
    from sweep.views import results_summary_table, watch_sweep

    specs.parse_fractions(fractions)
    settings = DemoSettings(workdir=workdir, images=specs.parse_positive_int("images", images),
                            size=specs.parse_positive_int("size", size, maximum=1024), fractions=fractions,
                            replicas=specs.parse_replicas(replicas), epochs=specs.parse_positive_int("epochs", epochs))
    result = run_demo(
        settings, requirements_file=DEFAULT_REQUIREMENTS_FILE, env_cache=DEFAULT_ENV_CACHE,
        say=lambda message: err.print(f"[bold]demo[/bold] {message}", highlight=False),
        watch=lambda sweeps_dir, name: watch_sweep(sweeps_dir, name, err),
    )
    out.print(results_summary_table(result.results_csv))
    out.print(f"sweep folder: {result.sweep_dir}")
    out.print(f"results:      {result.results_csv}")
    out.print(f"report:       {result.report_html}")
