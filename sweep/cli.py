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
    BackendName,
    JsonFlag,
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
from sweep.data.layout import SYNTH_SIZES
from sweep.errors import SweepError

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
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """sweep: how do accuracy (AUC) and cost (time) change with the amount of training data?"""


# ---------------------------------------------------------------- shared options
# Both defaults are looked up when a command runs (sweep.resources): the lock file is package data,
# the cache folder follows $SWEEP_ENV_CACHE_DIR.
RequirementsFile = Annotated[
    Path | None,
    typer.Option("--requirements", help="Locked requirements of the job environment.",
                 show_default="the lock file shipped with sweep"),
]
EnvCache = Annotated[
    Path | None,
    typer.Option("--cache", help="Where environment tarballs are kept.",
                 show_default="$SWEEP_ENV_CACHE_DIR or ~/.cache/sweep/envs"),
]


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


@app.command()
@user_errors
def submit(
    fractions: Annotated[str, typer.Option("--fractions", help="0.1..1.0, 0.1..1.0:0.05 or 0.05,0.1,0.5")],
    replicas: Annotated[int, whole_number("--replicas", "Replicas per fraction.", 1, 10_000)],
    data: Annotated[Path, typer.Option("--data", help="Folder of shards written by `sweep data shard`.")],
    name: Annotated[str | None, typer.Option("--name", help="Sweep name (default: sweep-DATE-TIME).")] = None,
    backend: Annotated[BackendName, typer.Option("--backend", help="Where the jobs run.")] = BackendName.local,
    epochs: Annotated[int, whole_number("--epochs", "Training epochs per job.", 1, 10_000)] = 5,
    batch_size: Annotated[int, whole_number("--batch-size", "Training batch size.", 1, 65_536)] = 32,
    seed: Annotated[int, typer.Option("--seed", help="Base seed; every item's seed derives from it.")] = 0,
    request_cpus: Annotated[int, whole_number("--request-cpus", "CPUs per job.", 1, 1024)] = 1,
    request_memory: Annotated[str, typer.Option("--request-memory", help="Memory per job, e.g. 4GB (bare number: MB).")] = "2GB",
    request_disk: Annotated[str, typer.Option("--request-disk", help="Disk per job, e.g. 8GB (bare number: KB).")] = "3GB",
    require: Annotated[
        str | None, typer.Option("--require", help="ClassAd requirements expression replacing the AVX2 default.")
    ] = None,
    no_require_avx: Annotated[
        bool, typer.Option("--no-require-avx", help="Drop the default AVX2 requirement (jobs may then SIGILL and be held).")
    ] = False,
    max_retries: Annotated[int, whole_number("--max-retries", "Retries of a failed job (not of a SIGILL hold).", 0, 100)] = 1,
    schedd: Annotated[str | None, typer.Option("--schedd", help="condor: schedd name (default: the local one).")] = None,
    pool: Annotated[str | None, typer.Option("--pool", help="condor: collector host[:port] (default: CONDOR_CONFIG's).")] = None,
    requirements_file: RequirementsFile = None,
    cache: EnvCache = None,
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
    as_json: JsonFlag = False,
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

    from sweep import resources, submitting
    from sweep import spec as specs
    from sweep.render import parse_submit_option, submit_expression

    if require is not None and no_require_avx:
        raise SweepError("--require and --no-require-avx contradict each other; accepted: one of them, or neither")
    sweep_spec = specs.SweepSpec(
        name=specs.validate_name(name or _time.strftime("sweep-%Y%m%d-%H%M%S")),
        fractions=specs.parse_fractions(fractions),
        replicas=replicas,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        resources=specs.Resources(
            cpus=request_cpus,
            memory_mb=specs.parse_memory_mb(request_memory),
            disk_kb=specs.parse_disk_kb(request_disk),
        ),
        requirements=None if no_require_avx else (require if require is not None else specs.DEFAULT_REQUIREMENTS),
        backend=backend.value,
        submit_options=tuple(parse_submit_option(option) for option in submit_option or ()),
    )
    if sweep_spec.requirements is not None:
        submit_expression(sweep_spec.requirements)
    request = submitting.SubmitRequest(
        spec=sweep_spec, data_dir=data.resolve(), sweeps_dir=sweeps_dir,
        requirements_file=requirements_file or resources.job_requirements(),
        env_cache=(cache or resources.default_env_cache()).resolve(),
        backend=_backend_settings(backend.value, schedd, pool), max_retries=max_retries,
        replace_existing=replace,
        environment={**submitting.test_environment(os.environ), **submitting.node_env_cache(node_env_cache, backend.value)},
        verify_data=verify_data,
        submit_template=submitting.load_submit_template(submit_template) if submit_template else None,
    )
    if dry_run:
        sys.stdout.write(submitting.dry_run(request))
        return
    with err.status("submitting") as spinner:
        sweep, manifest = submitting.submit_sweep(request, progress=lambda msg: spinner.update(msg))
    last = manifest.submissions[-1]
    if as_json:
        print_json({"name": manifest.name, "backend": backend.value, "submission": last.id, "items": list(last.items),
                    "folder": str(sweep.path)})
        return
    say(f"sweep {manifest.name!r}: {len(last.items)} items submitted to the {backend.value} backend ({last.id})")
    say(f"  folder: {sweep.path}")
    say(f"  follow: sweep status {manifest.name} --watch" + _sweeps_dir_flag(sweeps_dir))


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
        print_json({"parquet": str(result.parquet), "csv": str(result.csv), "rows": result.rows,
                    "counts": result.counts, "problems": result.problems})
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
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the report (default: the sweep's report/).")] = None,
    target_auc: Annotated[float, typer.Option("--target-auc", help="How many images reach this macro AUC?")] = 0.75,
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


@app.command()
@user_errors
def resubmit(
    name: SweepName,
    failed: Annotated[bool, typer.Option("--failed", help="Resubmit the failed and held items (required).")] = False,
    require: Annotated[str | None, typer.Option("--require", help="Requirements for the resubmitted items.")] = None,
    no_require_avx: Annotated[bool, typer.Option("--no-require-avx", help="No CPU requirement for them.")] = False,
    as_json: JsonFlag = False,
    sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR,
) -> None:
    """Run the failed and held items of a sweep again, as one new submission."""
    from sweep import submitting

    if not failed:
        raise SweepError("say which items to resubmit; accepted: --failed (the failed and held items)")
    if require is not None and no_require_avx:
        raise SweepError("--require and --no-require-avx contradict each other; accepted: one of them, or neither")
    items, note = submitting.resubmit_failed(sweeps_dir, name, require=require, no_require_avx=no_require_avx)
    if as_json:
        print_json({"name": name, "items": items, "requirements_note": note})
        return
    say(f"resubmitted {len(items)} items: {', '.join(items)}")
    if note:
        say(f"  {note}")


@app.command()
@user_errors
def cancel(name: SweepName, as_json: JsonFlag = False, sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR) -> None:
    """Stop every item of a sweep that has not finished."""
    from sweep import tracking

    stopped = tracking.cancel_sweep(sweeps_dir, name)
    if as_json:
        print_json({"name": name, "cancelled": stopped})
        return
    say(f"cancelled {len(stopped)} items" + (f": {', '.join(stopped)}" if stopped else " (nothing was unfinished)"))


@app.command()
@user_errors
def demo(
    workdir: Annotated[Path, typer.Option("--dir", help="Folder for the dataset, shards and the sweep.")] = Path("demo"),
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
    settings = DemoSettings(workdir=workdir, images=images, size=size, fractions=fractions, replicas=replicas,
                            epochs=epochs)
    result = run_demo(
        settings, requirements_file=resources.job_requirements(), env_cache=resources.default_env_cache(),
        say=lambda message: err.print(f"[bold]demo[/bold] {message}", highlight=False),
        watch=lambda sweeps_dir, name: watch_sweep(sweeps_dir, name, err),
    )
    out.print(results_summary_table(result.results_csv))
    out.print(f"sweep folder: {result.sweep_dir}")
    out.print(f"results:      {result.results_csv}")
    out.print(f"report:       {result.report_html}")
