"""The write side of a sweep: plan its items, render them, and submit or resubmit them in one transaction.

`submit_sweep` leaves either a complete sweep directory with its submission recorded, or nothing
(a backend that did accept the jobs before an interruption is found again by the sweep's submit
token, see sweep/recovery.py, so its jobs are never orphaned).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sweep import __version__, names
from sweep.backends import get_backend
from sweep.errors import RenderError, SpecError, StateError, SweepError
from sweep.fs import atomic_write_json, atomic_write_text
from sweep.pack import EnvManifest, Tarball
from sweep.recovery import open_settled_sweep, settle_interrupted_submit, submit_or_undo
from sweep.render import ItemPlan, RenderedSubmission, SubmitTemplate, render_submission, submit_word
from sweep.shipped import ShippedEnvironment
from sweep.spec import DEFAULT_REQUIREMENTS, REQUIRED_CPU_FLAGS, SweepSpec
from sweep.state import ItemState, ItemStatus, SweepDir, SweepManifest, create_sweep_dir
from sweep.tracking import cancel_sweep

if TYPE_CHECKING:  # the data modules load only when a command needs them
    from sweep.data.manifest import DataManifest
    from sweep.data.plan import ItemDataPlan

TEST_ENVIRONMENT = ("SWEEP_TEST_SIGILL_BELOW",)  # test switches passed from the submitting shell into jobs

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class SubmitRequest:
    spec: SweepSpec
    data_dir: Path
    sweeps_dir: Path
    requirements_file: Path
    env_cache: Path
    backend: dict[str, str]
    max_retries: int = 1
    replace_existing: bool = False
    environment: Mapping[str, str] = field(default_factory=dict)
    verify_data: bool = False  # re-hash every shard, not only check its size
    submit_template: SubmitTemplate | None = None  # rendered instead of the built-in submit description


@dataclass(frozen=True)
class FilePlan:
    """A data plan reduced to what render needs (rebuilt from the manifest on resubmit)."""

    files: tuple[str, ...]


@dataclass(frozen=True)
class NewSweep:
    """What building a sweep directory produced: its manifest and the submission to hand to the backend."""

    manifest: SweepManifest
    rendered: RenderedSubmission


def test_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The test-only job switches set in the submitting environment (documented in README)."""
    return {key: environ[key] for key in TEST_ENVIRONMENT if environ.get(key)}


def node_env_cache(folder: str | None, backend: str) -> dict[str, str]:
    """The job environment that makes the wrapper unpack once per execute node into `folder`."""
    if folder is None:
        return {}
    if backend != "condor":
        raise SpecError(
            "--node-env-cache is for --backend condor (local jobs always share one unpacked copy); "
            "accepted: drop it or use --backend condor"
        )
    if not folder.startswith("/"):
        raise SpecError(
            f"--node-env-cache {folder!r} is not an absolute path; accepted: e.g. /tmp/sweep-envs"
        )
    submit_word(folder)  # it goes into the submit description's environment
    return {names.ENV_CACHE_VARIABLE: folder}


def plan_items(
    spec: SweepSpec, data_dir: Path, verify_data: bool = False
) -> tuple[DataManifest, dict[str, ItemDataPlan]]:
    """The data manifest and every item's plan. Shard sizes are always checked (a stat each);
    `verify_data` also re-hashes every shard, which reads the whole folder."""
    from sweep.data.manifest import load_data_manifest, verify_shards
    from sweep.data.plan import plan_item_inputs

    data = load_data_manifest(data_dir)
    verify_shards(data, contents=verify_data)
    plans = {
        item.name: plan_item_inputs(data, float(item.fraction), item.subset_seed) for item in spec.items()
    }
    return data, plans


def render_for(
    spec: SweepSpec,
    shipped: ShippedEnvironment,
    plans: Mapping[str, ItemPlan],
    sweep_dir: Path,
    data_dir: Path,
    max_retries: int,
    environment: Mapping[str, str],
    token: str,
    template: SubmitTemplate | None = None,
) -> RenderedSubmission:
    return render_submission(
        spec, shipped.env, shipped.code, plans,
        sweep_dir=sweep_dir, data_dir=data_dir, wrapper=sweep_dir / names.JOB_WRAPPER,
        max_retries=max_retries, environment=environment, submit_token=token, template=template,
    )  # fmt: skip


def load_submit_template(path: Path) -> SubmitTemplate:
    """A --submit-template file; its text is kept in the sweep so that resubmit renders the same."""
    try:
        return SubmitTemplate(text=Path(path).read_text(encoding="utf-8"), origin=str(path))
    except (OSError, UnicodeDecodeError) as error:
        raise RenderError(
            f"cannot read the submit template {path}: {getattr(error, 'strerror', None) or error}; "
            "accepted: a UTF-8 Jinja file like submit_templates/submit.sub.j2"
        ) from None


def wrapper_text(env: EnvManifest, code: Tarball) -> str:
    from sweep.wrapper import render_job_wrapper

    return render_job_wrapper(
        interpreter=env.interpreter, site_packages=env.site_packages, code=code, glibc_min=env.glibc_min,
        python_version=env.python_version, required_cpu_flags=list(REQUIRED_CPU_FLAGS),
    )  # fmt: skip


def dry_run(request: SubmitRequest) -> str:
    """The complete submit description `submit` would use; creates nothing anywhere."""
    import tempfile

    from sweep.pack import pack_job_code, planned_environment

    data, plans = plan_items(request.spec, request.data_dir, request.verify_data)
    env = planned_environment(request.requirements_file, request.env_cache)
    sweep_dir = (request.sweeps_dir / request.spec.name).resolve()
    with tempfile.TemporaryDirectory() as scratch:
        code = pack_job_code(Path(scratch))
    shipped = ShippedEnvironment(env=env, code=replace(code, path=sweep_dir / code.name))
    rendered = render_for(
        request.spec,
        shipped,
        plans,
        sweep_dir,
        Path(data.folder).resolve(),
        request.max_retries,
        request.environment,
        "dry-run",
        request.submit_template,
    )
    return rendered.full_text()


def submit_sweep(request: SubmitRequest, progress: Progress = _quiet) -> tuple[SweepDir, SweepManifest]:
    from sweep.pack import build_environment, pack_job_code

    spec = request.spec
    final = (request.sweeps_dir / spec.name).resolve()
    if (final / names.SWEEP_MANIFEST).is_file():
        settle_interrupted_submit(SweepDir(final))  # an earlier submit of this name that was killed
    if final.exists() and not request.replace_existing:
        raise StateError(
            f"a sweep named {spec.name!r} already exists at {final}; accepted: another --name, or --replace to discard it"
        )
    if final.exists() and not (final / names.SWEEP_MANIFEST).is_file():
        raise StateError(
            f"{final} exists but is not a sweep (no {names.SWEEP_MANIFEST}); --replace only discards "
            "sweeps; accepted: another --name, or move that folder away"
        )
    progress("reading the data manifest and planning items")
    data, plans = plan_items(spec, request.data_dir, request.verify_data)
    backend = get_backend(request.backend)
    progress("packing the job environment")
    env = build_environment(request.requirements_file, request.env_cache, progress=progress).env
    token = secrets.token_hex(8)

    def build(tmp: Path) -> NewSweep:
        shipped = ShippedEnvironment(
            env=env, code=replace(pack_job_code(tmp), path=final / names.CODE_TARBALL)
        )
        template = request.submit_template
        rendered = render_for(
            spec,
            shipped,
            plans,
            final,
            Path(data.folder).resolve(),
            request.max_retries,
            request.environment,
            token,
            template,
        )
        manifest = SweepManifest(
            name=spec.name, spec=spec, backend=dict(request.backend), env=shipped.to_dict(),
            data=data.sweep_record(), items=manifest_items(rendered, plans), max_retries=request.max_retries,
            environment=dict(request.environment), sweep_version=__version__, pending_submit=token,
            submit_template=asdict(template) if template else None,
        )  # fmt: skip
        write_sweep_files(tmp, manifest, rendered, wrapper_text(shipped.env, shipped.code))
        return NewSweep(manifest=manifest, rendered=rendered)

    if (
        final / names.SWEEP_MANIFEST
    ).is_file():  # --replace: its jobs must not run on into the new sweep's folders
        _cancel_replaced(request.sweeps_dir, spec.name)
    progress("writing the sweep directory")
    with contextlib.ExitStack() as held:  # the sweep's lock, until its submission is recorded
        sweep, new = create_sweep_dir(
            request.sweeps_dir, spec.name, build, replace_existing=request.replace_existing, hold_lock=held
        )
        progress(f"submitting {len(new.manifest.items)} items to the {backend.name} backend")
        submit_or_undo(backend, sweep, new.manifest, new.rendered, token)
    return sweep, new.manifest


def _cancel_replaced(sweeps_dir: Path, name: str) -> None:
    try:
        cancel_sweep(sweeps_dir, name)
    except SweepError as error:
        raise StateError(
            f"cannot stop the jobs of the sweep {name!r} that --replace would discard ({error}); "
            f"accepted: `sweep cancel {name}` first, or another --name"
        ) from None


def write_sweep_files(
    folder: Path, manifest: SweepManifest, rendered: RenderedSubmission, wrapper: str
) -> None:
    """Everything a new sweep directory holds before its first submission."""
    atomic_write_text(folder / names.SUBMIT_DESCRIPTION, rendered.full_text())
    atomic_write_json(folder / names.ITEM_ROWS, rendered.rows)
    atomic_write_text(folder / names.JOB_WRAPPER, wrapper, mode=0o755)
    atomic_write_json(folder / names.SWEEP_MANIFEST, manifest.to_dict())
    for row in rendered.rows:  # HTCondor writes job.out/job.err here and does not create folders
        (folder / names.ITEMS_DIR / row["item"]).mkdir(parents=True)


def manifest_items(
    rendered: RenderedSubmission, plans: Mapping[str, ItemDataPlan]
) -> list[dict[str, object]]:
    """The manifest's item list: the rendered row of each item plus what its data plan measured."""
    items = []
    for row in rendered.rows:
        plan = plans[row["item"]]
        items.append(
            {
                **{key: row[key] for key in ("item", "fraction", "replica", "seed", "subset_seed")},
                "files": list(plan.files),
                "input_bytes": plan.bytes,
                "train_images": plan.train_images,
                "train_patients": plan.train_patients,
            }
        )
    return items


def resubmit_failed(
    sweeps_dir: Path,
    name: str,
    *,
    require: str | None = None,
    no_require_avx: bool = False,
    progress: Progress = _quiet,
) -> tuple[list[str], str | None]:
    """Submit the failed and held items again as one new submission; returns (items, requirements note)."""
    sweep = open_settled_sweep(sweeps_dir, name)
    with sweep.locked():
        manifest = sweep.load()
        backend = get_backend(manifest.backend)
        statuses = backend.poll(sweep, manifest)
        again = [item for item, s in statuses.items() if s.state in (ItemState.FAILED, ItemState.HELD)]
        if not again:
            raise StateError(f"sweep {name!r} has no failed or held items to resubmit")
        spec, note = _resubmit_requirements(
            manifest.spec, [statuses[i] for i in again], require, no_require_avx
        )
        held = [item for item in again if statuses[item].state is ItemState.HELD]
        if held:  # a held job still sits in the queue: take it out before its replacement goes in
            backend.cancel(sweep, manifest, held)
        plans = {str(row["item"]): FilePlan(_stored_files(row)) for row in manifest.items}
        token = secrets.token_hex(8)
        template = SubmitTemplate(**manifest.submit_template) if manifest.submit_template else None
        full = render_for(
            spec,
            ShippedEnvironment.from_dict(manifest.env),
            plans,
            sweep.path,
            Path(str(manifest.data["folder"])),
            manifest.max_retries,
            manifest.environment,
            token,
            template,
        )
        rendered = replace(full, rows=[row for row in full.rows if row["item"] in again])
        progress(f"resubmitting {len(again)} items")
        manifest.pending_submit = token  # a resubmit killed mid-way is settled like a first submit
        sweep.save(manifest)
        submit_or_undo(backend, sweep, manifest, rendered, token)
        manifest.spec = spec
        sweep.save(manifest)
    return again, note


def _stored_files(row: Mapping[str, object]) -> tuple[str, ...]:
    files = row.get("files")
    if not isinstance(files, list):
        raise StateError(
            f"item {row.get('item')!r} of the sweep manifest has no file list; accepted: a sweep "
            "written by `sweep submit`"
        )
    return tuple(str(name) for name in files)


def _resubmit_requirements(
    spec: SweepSpec, statuses: list[ItemStatus], require: str | None, no_require_avx: bool
) -> tuple[SweepSpec, str | None]:
    """Items held for SIGILL get the AVX2 requirement back unless the user chose otherwise."""
    if require is not None:
        return replace(spec, requirements=require), f"requirements set to {require}"
    if no_require_avx:
        return replace(spec, requirements=None), "no CPU requirement"
    from sweep.reasons import CPU_LACKS_AVX2

    sigill = any(CPU_LACKS_AVX2 in s.reason for s in statuses)
    if sigill and spec.requirements is None:
        return (
            replace(spec, requirements=DEFAULT_REQUIREMENTS),
            f"items held because their machine lacked AVX2 now require it: {DEFAULT_REQUIREMENTS}",
        )
    return spec, None
