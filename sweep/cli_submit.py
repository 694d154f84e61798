"""`sweep submit` and `sweep resubmit`: the commands that hand jobs to a backend (thin: options -> library)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sweep.cli_common import (
    DEFAULT_SWEEPS_DIR,
    BackendName,
    EnvCache,
    ExportFormat,
    JsonFlag,
    RequirementsFile,
    SweepName,
    SweepsDir,
    err,
    print_json,
    say,
    user_errors,
    whole_number,
)
from sweep.errors import SweepError


@user_errors
def submit(
    fractions: Annotated[str, typer.Option("--fractions", help="0.1..1.0, 0.1..1.0:0.05 or 0.05,0.1,0.5")],
    replicas: Annotated[int, whole_number("--replicas", "Replicas per fraction.", 1, 10_000)],
    data: Annotated[Path, typer.Option("--data", help="Folder of shards written by `sweep data shard`.")],
    name: Annotated[str | None, typer.Option("--name", help="Sweep name (default: sweep-DATE-TIME).")] = None,
    backend: Annotated[
        BackendName, typer.Option("--backend", help="Where the jobs run.")
    ] = BackendName.local,
    epochs: Annotated[int, whole_number("--epochs", "Training epochs per job.", 1, 10_000)] = 5,
    batch_size: Annotated[int, whole_number("--batch-size", "Training batch size.", 1, 65_536)] = 32,
    seed: Annotated[int, typer.Option("--seed", help="Base seed; every item's seed derives from it.")] = 0,
    request_cpus: Annotated[int, whole_number("--request-cpus", "CPUs per job.", 1, 1024)] = 1,
    request_memory: Annotated[
        str, typer.Option("--request-memory", help="Memory per job, e.g. 4GB (bare number: MB).")
    ] = "2GB",
    request_disk: Annotated[
        str, typer.Option("--request-disk", help="Disk per job, e.g. 8GB (bare number: KB).")
    ] = "3GB",
    require: Annotated[
        str | None,
        typer.Option("--require", help="ClassAd requirements expression replacing the AVX2 default."),
    ] = None,
    no_require_avx: Annotated[
        bool,
        typer.Option(
            "--no-require-avx", help="Drop the default AVX2 requirement (jobs may then SIGILL and be held)."
        ),
    ] = False,
    max_retries: Annotated[
        int, whole_number("--max-retries", "Retries of a failed job (not of a SIGILL hold).", 0, 100)
    ] = 1,
    schedd: Annotated[
        str | None, typer.Option("--schedd", help="condor: schedd name (default: the local one).")
    ] = None,
    pool: Annotated[
        str | None, typer.Option("--pool", help="condor: collector host[:port] (default: CONDOR_CONFIG's).")
    ] = None,
    requirements_file: RequirementsFile = None,
    cache: EnvCache = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Cancel and discard an existing sweep of the same name.")
    ] = False,
    node_env_cache: Annotated[
        str | None,
        typer.Option(
            "--node-env-cache",
            help="condor: a writable folder on every execute node where jobs unpack "
            "the environment once and share it (e.g. /tmp/sweep-envs); default: every job unpacks its own.",
        ),
    ] = None,
    sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the submit description; create nothing.")
    ] = False,
    as_json: JsonFlag = False,
    export: Annotated[
        ExportFormat | None,
        typer.Option(
            "--export",
            help="Every job also converts its model to this format (default: none; "
            "`sweep export` converts the one you need).",
        ),
    ] = None,
    verify_data: Annotated[
        bool,
        typer.Option(
            "--verify-data", help="Re-hash every shard against manifest.json (sizes are always checked)."
        ),
    ] = False,
    submit_option: Annotated[
        list[str] | None,
        typer.Option(
            "--submit-option",
            help="KEY=VALUE added to the submit description, e.g. accounting_group=physics "
            'or +ProjectName="chest" (repeatable; keys sweep sets itself are refused).',
        ),
    ] = None,
    submit_template: Annotated[
        Path | None,
        typer.Option(
            "--submit-template",
            help="A Jinja file rendered instead of submit_templates/submit.sub.j2 "
            "(same variables and filters; sweep's own commands must stay as they are).",
        ),
    ] = None,
) -> None:
    """Pack the environment, render one submission for every fraction x replica, and submit it."""
    import os
    import time as _time

    from sweep import resources, submitting
    from sweep import spec as specs
    from sweep.render import parse_submit_option, submit_expression

    if require is not None and no_require_avx:
        raise SweepError(
            "--require and --no-require-avx contradict each other; accepted: one of them, or neither"
        )
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
        requirements=None
        if no_require_avx
        else (require if require is not None else specs.DEFAULT_REQUIREMENTS),
        backend=backend.value,
        submit_options=tuple(parse_submit_option(option) for option in submit_option or ()),
        export=export.value if export else None,
    )
    if sweep_spec.requirements is not None:
        submit_expression(sweep_spec.requirements)
    request = submitting.SubmitRequest(
        spec=sweep_spec,
        data_dir=data.resolve(),
        sweeps_dir=sweeps_dir,
        requirements_file=requirements_file or resources.job_requirements(),
        env_cache=(cache or resources.default_env_cache()).resolve(),
        backend=_backend_settings(backend.value, schedd, pool),
        max_retries=max_retries,
        replace_existing=replace,
        environment={
            **submitting.test_environment(os.environ),
            **submitting.node_env_cache(node_env_cache, backend.value),
        },
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
        print_json(
            {
                "name": manifest.name,
                "backend": backend.value,
                "submission": last.id,
                "items": list(last.items),
                "folder": str(sweep.path),
            }
        )
        return
    say(
        f"sweep {manifest.name!r}: {len(last.items)} items submitted to the {backend.value} backend ({last.id})"
    )
    say(f"  folder: {sweep.path}")
    say(f"  follow: sweep status {manifest.name} --watch" + _sweeps_dir_flag(sweeps_dir))


def _backend_settings(backend: str, schedd: str | None, pool: str | None) -> dict[str, str]:
    settings = {"name": backend}
    if backend == "condor":
        settings.update(schedd=schedd or "", pool=pool or "")
    elif schedd or pool:
        raise SweepError(
            "--schedd and --pool are for --backend condor; accepted: drop them or use --backend condor"
        )
    return settings


def _sweeps_dir_flag(sweeps_dir: Path) -> str:
    return "" if sweeps_dir == DEFAULT_SWEEPS_DIR else f" --sweeps-dir {sweeps_dir}"


@user_errors
def resubmit(
    name: SweepName,
    failed: Annotated[
        bool, typer.Option("--failed", help="Resubmit the failed and held items (required).")
    ] = False,
    require: Annotated[
        str | None, typer.Option("--require", help="Requirements for the resubmitted items.")
    ] = None,
    no_require_avx: Annotated[
        bool, typer.Option("--no-require-avx", help="No CPU requirement for them.")
    ] = False,
    as_json: JsonFlag = False,
    sweeps_dir: SweepsDir = DEFAULT_SWEEPS_DIR,
) -> None:
    """Run the failed and held items of a sweep again, as one new submission."""
    from sweep import submitting

    if not failed:
        raise SweepError("say which items to resubmit; accepted: --failed (the failed and held items)")
    if require is not None and no_require_avx:
        raise SweepError(
            "--require and --no-require-avx contradict each other; accepted: one of them, or neither"
        )
    items, note = submitting.resubmit_failed(sweeps_dir, name, require=require, no_require_avx=no_require_avx)
    if as_json:
        print_json({"name": name, "items": items, "requirements_note": note})
        return
    say(f"resubmitted {len(items)} items: {', '.join(items)}")
    if note:
        say(f"  {note}")
