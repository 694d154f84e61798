"""The `sweep` command line: thin commands that parse options and call the library.

Library functions raise SweepError and never print; here, at the edge only, an error becomes
one clear message on stderr and exit code 2. Heavy modules (TensorFlow, pandas, htcondor2)
are imported inside the commands so that `sweep --help` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sweep import __version__
from sweep.cli_common import (
    DEFAULT_SWEEPS_DIR,
    EnvCache,
    ExportFormat,
    JsonFlag,
    RequirementsFile,
    SweepName,
    SweepsDir,
    err,
    out,
    print_json,
    say,
    user_errors,
    whole_number,
)
from sweep.cli_data import data_app
from sweep.cli_submit import resubmit, submit
from sweep.data.layout import SYNTH_SIZES

app = typer.Typer(
    name="sweep",
    help="Train one model per (data fraction x replica) on HTCondor or locally, collect AUC and timings, report the learning curve.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data_app, name="data")


def version_callback(value: bool) -> None:
    if value:
        out.print(f"sweep {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """sweep: how do accuracy (AUC) and cost (time) change with the amount of training data?"""


# ---------------------------------------------------------------- shared options
# Both defaults are looked up when a command runs (sweep.resources): the lock file is package data,
# the cache folder follows $SWEEP_ENV_CACHE_DIR.
@app.command()
@user_errors
def pack(requirements: RequirementsFile = None, cache: EnvCache = None, as_json: JsonFlag = False) -> None:
    """Build (or find in the cache) the interpreter and dependency tarballs every job unpacks."""
    from sweep import pack as packing
    from sweep import resources

    requirements = requirements or resources.job_requirements()
    cache = cache or resources.default_env_cache()
    with err.status("packing the job environment") as status:
        result = packing.build_environment(requirements, cache, progress=lambda msg: status.update(msg))
    env = result.env
    if as_json:
        print_json(
            {
                "key": env.key,
                "cache_hit": result.cache_hit,
                "seconds": round(result.seconds, 3),
                "python_version": env.python_version,
                "glibc_min": env.glibc_min,
                "interpreter": {
                    "path": str(env.interpreter.path),
                    "sha256": env.interpreter.sha256,
                    "bytes": env.interpreter.bytes,
                },
                "site_packages": {
                    "path": str(env.site_packages.path),
                    "sha256": env.site_packages.sha256,
                    "bytes": env.site_packages.bytes,
                },
            }
        )
        return
    verb = "found in the cache" if result.cache_hit else "built"
    out.print(f"environment {env.key} {verb} in {result.seconds:.2f} s")
    for tarball in (env.interpreter, env.site_packages):
        out.print(
            f"  {tarball.path}  {tarball.bytes / 1e6:.1f} MB  {tarball.files} files  sha256 {tarball.sha256[:16]}…",
            soft_wrap=True,
        )


app.command()(submit)


@app.command()
@user_errors
def status(
    name: SweepName,
    watch: Annotated[
        bool, typer.Option("--watch", help="Follow with a live progress bar until every item settles.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=1,
            help="With --watch: stop watching after this many seconds and exit 2, "
            "saying which items still wait and why (the jobs keep running).",
        ),
    ] = None,
    as_json: JsonFlag = False,
    sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR,
) -> None:
    """Counts per state and one line per item, with failure and hold reasons in plain words.

    Idle items say why when no slot of the pool matches their requirements (the failing clause).
    """
    from sweep import tracking
    from sweep.views import status_table, watch_sweep

    if watch:
        watch_sweep(sweeps_dir, name, err, timeout=timeout)
    _, manifest, statuses = tracking.sweep_statuses(sweeps_dir, name)
    if as_json:
        print_json(tracking.status_payload(manifest, statuses))
        return
    out.print(status_table(manifest, statuses))


@app.command()
@user_errors
def collect(name: SweepName, sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR, as_json: JsonFlag = False) -> None:
    """Gather every item's metrics, timings and machine into results.parquet and results.csv."""
    from sweep.collect import collect_sweep

    result = collect_sweep(sweeps_dir, name)
    if as_json:
        print_json(
            {
                "parquet": str(result.parquet),
                "csv": str(result.csv),
                "rows": result.rows,
                "counts": result.counts,
                "problems": result.problems,
            }
        )
        return
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result.counts.items()))
    out.print(f"{result.rows} rows ({counts})")
    out.print(f"  {result.parquet}\n  {result.csv}")
    for problem in result.problems:
        out.print(f"  [yellow]problem:[/yellow] {escape(problem)}")


@app.command()
@user_errors
def report(
    name: SweepName,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder for the report (default: the sweep's report/).")
    ] = None,
    target_auc: Annotated[
        float, typer.Option("--target-auc", help="How many images reach this macro AUC?")
    ] = 0.75,
    as_json: JsonFlag = False,
    sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR,
) -> None:
    """Draw the data-size-versus-AUC curve, runtimes and failures into report.html (+ PNGs, summary.csv)."""
    from sweep.extras import require_extra
    from sweep.reporting import report_sweep

    require_extra("report", "report")
    summary = report_sweep(sweeps_dir, name, out_dir=out_dir, target_auc=target_auc)
    if as_json:
        sys.stdout.write(summary.to_json() + "\n")
        return
    say(summary.statement)
    for warning in summary.warnings:
        out.print(f"  [yellow]warning:[/yellow] {escape(warning)}")
    out.print(f"report: {summary.files['report']}")


app.command()(resubmit)


@app.command("export")
@user_errors
def export_model(
    name: SweepName,
    item: Annotated[str, typer.Option("--item", help="The item whose model to convert, e.g. f1_r0.")],
    format: Annotated[
        ExportFormat, typer.Option("--format", help="The format to convert to.")
    ] = ExportFormat.tflite,
    dest: Annotated[
        Path | None, typer.Option("--out", help="The file to write (default: beside its model.keras).")
    ] = None,
    as_json: JsonFlag = False,
    sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR,
) -> None:
    """Convert one finished item's model.keras (jobs write only that by default) to TFLite."""
    from sweep.export import export_item

    written = export_item(sweeps_dir, name, item, dest)
    if as_json:
        print_json({"name": name, "item": item, "format": format.value, "file": str(written)})
        return
    say(f"{format.value}: {written}")


@app.command()
@user_errors
def cancel(name: SweepName, as_json: JsonFlag = False, sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR) -> None:
    """Stop every item of a sweep that has not finished."""
    from sweep import tracking

    stopped = tracking.cancel_sweep(sweeps_dir, name)
    if as_json:
        print_json({"name": name, "cancelled": stopped})
        return
    say(
        f"cancelled {len(stopped)} items"
        + (f": {', '.join(stopped)}" if stopped else " (nothing was unfinished)")
    )


@app.command()
@user_errors
def demo(
    workdir: Annotated[
        Path, typer.Option("--dir", help="Folder for the dataset, shards and the sweep.")
    ] = Path("demo"),
    images: Annotated[int, whole_number("--images", "Synthetic images.", 1, 10_000_000)] = 2000,
    size: Annotated[int, whole_number("--size", "Image side in pixels.", *SYNTH_SIZES)] = 64,
    fractions: Annotated[str, typer.Option("--fractions", help="Training-data fractions.")] = "0.1..1.0",
    replicas: Annotated[int, whole_number("--replicas", "Replicas per fraction.", 1, 10_000)] = 3,
    epochs: Annotated[int, whole_number("--epochs", "Training epochs per job.", 1, 10_000)] = 3,
) -> None:
    """Synthesize data, shard, pack, run a local sweep, collect and report, end to end."""
    from sweep import resources
    from sweep import spec as specs
    from sweep.demo import DemoSettings, run_demo
    from sweep.extras import require_extra
    from sweep.views import results_summary_table, watch_sweep

    require_extra("report", "demo")  # before the sweep runs, not after: the demo ends with the report
    specs.parse_fractions(fractions)
    settings = DemoSettings(
        workdir=workdir, images=images, size=size, fractions=fractions, replicas=replicas, epochs=epochs
    )
    result = run_demo(
        settings,
        requirements_file=resources.job_requirements(),
        env_cache=resources.default_env_cache(),
        say=lambda message: err.print(f"[bold]demo[/bold] {message}", highlight=False),
        watch=lambda sweeps_dir, name: watch_sweep(sweeps_dir, name, err),
    )
    out.print(results_summary_table(result.results_csv))
    out.print(f"sweep folder: {result.sweep_dir}")
    out.print(f"results:      {result.results_csv}")
    out.print(f"report:       {result.report_html}")
