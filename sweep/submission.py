"""Submit, watch, resubmit and cancel a sweep: the arrows spec -> pack + plan -> render -> backend.

`submit_sweep` is transactional: it leaves either a complete sweep directory with its
submission recorded, or nothing (a backend that did accept the jobs before an interruption is
found again by the sweep's submit token, so its jobs are never orphaned).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sweep import __version__, names
from sweep.backends import get_backend
from sweep.backends.base import Backend
from sweep.errors import RenderError, SpecError, StateError, SweepError
from sweep.fs import atomic_write_json, atomic_write_text
from sweep.pack import EnvManifest, Tarball
from sweep.render import RenderedSubmission, SubmitTemplate, render_submission, submit_word
from sweep.spec import DEFAULT_REQUIREMENTS, REQUIRED_CPU_FLAGS, SweepSpec
from sweep.state import (
    ItemState,
    ItemStatus,
    Submission,
    SweepDir,
    SweepManifest,
    create_sweep_dir,
    open_sweep,
    remove_sweep_dir,
)

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


def test_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The test-only job switches set in the submitting environment (documented in README)."""
    return {key: environ[key] for key in TEST_ENVIRONMENT if environ.get(key)}


def node_env_cache(folder: str | None, backend: str) -> dict[str, str]:
    """The job environment that makes the wrapper unpack once per execute node into `folder`."""
    if folder is None:
        return {}
    if backend != "condor":
        raise SpecError("--node-env-cache is for --backend condor (local jobs always share one unpacked copy); "
                        "accepted: drop it or use --backend condor")
    if not folder.startswith("/"):
        raise SpecError(f"--node-env-cache {folder!r} is not an absolute path; accepted: e.g. /tmp/sweep-envs")
    submit_word(folder)  # it goes into the submit description's environment
    return {names.ENV_CACHE_VARIABLE: folder}


def plan_items(spec: SweepSpec, data_dir: Path, verify_data: bool = False) -> tuple[DataManifest, dict[str, ItemDataPlan]]:
    """The data manifest and every item's plan. Shard sizes are always checked (a stat each);
    `verify_data` also re-hashes every shard, which reads the whole folder."""
    from sweep.data.manifest import load_data_manifest, verify_shards
    from sweep.data.plan import plan_item_inputs

    data = load_data_manifest(data_dir)
    verify_shards(data, contents=verify_data)
    plans = {item.name: plan_item_inputs(data, float(item.fraction), item.subset_seed) for item in spec.items()}
    return data, plans


def data_summary(data: DataManifest) -> dict[str, object]:
    """What the report and the manifest keep of the dataset (so they need not open the shards)."""
    return {
        "folder": str(data.folder),
        "content_hash": data.content_hash,
        "image_size": data.image_size,
        "labels": list(data.labels),
        "label_prevalence": data.label_prevalence("test"),
        "train_images_total": data.splits["train"].images,
        "test_images": data.splits["test"].images,
    }


def env_summary(env: EnvManifest, code: Tarball) -> dict[str, object]:
    def tarball(t: Tarball) -> dict[str, object]:
        return {"path": str(t.path), "sha256": t.sha256, "bytes": t.bytes, "files": t.files, "compression": t.compression}

    return {
        "key": env.key,
        "python_version": env.python_version,
        "platform": env.platform,
        "glibc_min": env.glibc_min,
        "requirements": str(env.requirements),
        "interpreter": tarball(env.interpreter),
        "site_packages": tarball(env.site_packages),
        "code": tarball(code),
    }


def env_from_summary(summary: Mapping[str, object]) -> tuple[EnvManifest, Tarball]:
    def tarball(data: Mapping) -> Tarball:
        return Tarball(path=Path(data["path"]), sha256=data["sha256"], bytes=int(data["bytes"]),
                       files=int(data["files"]), compression=data["compression"])

    env = EnvManifest(
        key=str(summary["key"]), python_version=str(summary["python_version"]), platform=str(summary["platform"]),
        glibc_min=str(summary["glibc_min"]), interpreter=tarball(summary["interpreter"]),  # type: ignore[arg-type]
        site_packages=tarball(summary["site_packages"]), requirements=Path(str(summary["requirements"])),  # type: ignore[arg-type]
    )  # fmt: skip
    return env, tarball(summary["code"])  # type: ignore[arg-type]


def render_for(spec: SweepSpec, env: EnvManifest, code: Tarball, plans: Mapping[str, object], sweep_dir: Path,
               data_dir: Path, max_retries: int, environment: Mapping[str, str], token: str,
               template: SubmitTemplate | None = None) -> RenderedSubmission:
    return render_submission(
        spec, env, code, plans,  # type: ignore[arg-type]
        sweep_dir=sweep_dir, data_dir=data_dir, wrapper=sweep_dir / names.JOB_WRAPPER,
        max_retries=max_retries, environment=environment, submit_token=token, template=template,
    )  # fmt: skip


def load_submit_template(path: Path) -> SubmitTemplate:
    """A --submit-template file; its text is kept in the sweep so that resubmit renders the same."""
    try:
        return SubmitTemplate(text=Path(path).read_text(encoding="utf-8"), origin=str(path))
    except (OSError, UnicodeDecodeError) as error:
        raise RenderError(f"cannot read the submit template {path}: {getattr(error, 'strerror', None) or error}; "
                          "accepted: a UTF-8 Jinja file like submit_templates/submit.sub.j2") from None


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
    code = replace(code, path=sweep_dir / code.name)
    rendered = render_for(request.spec, env, code, plans, sweep_dir, Path(data.folder).resolve(),
                          request.max_retries, request.environment, "dry-run", request.submit_template)
    return rendered.full_text()


def submit_sweep(request: SubmitRequest, progress: Progress = _quiet) -> tuple[SweepDir, SweepManifest]:
    from sweep.pack import build_environment, pack_job_code

    spec = request.spec
    final = (request.sweeps_dir / spec.name).resolve()
    if (final / names.SWEEP_MANIFEST).is_file():
        settle_interrupted_submit(SweepDir(final))  # an earlier submit of this name that was killed
    if final.exists() and not request.replace_existing:
        raise StateError(f"a sweep named {spec.name!r} already exists at {final}; accepted: another --name, or --replace to discard it")
    if final.exists() and not (final / names.SWEEP_MANIFEST).is_file():
        raise StateError(f"{final} exists but is not a sweep (no {names.SWEEP_MANIFEST}); --replace only discards "
                         "sweeps; accepted: another --name, or move that folder away")
    progress("reading the data manifest and planning items")
    data, plans = plan_items(spec, request.data_dir, request.verify_data)
    backend = get_backend(request.backend)
    progress("packing the job environment")
    env = build_environment(request.requirements_file, request.env_cache, progress=progress).env
    token = secrets.token_hex(8)
    state: dict[str, object] = {}

    def build(tmp: Path) -> None:
        code = replace(pack_job_code(tmp), path=final / names.CODE_TARBALL)
        template = request.submit_template
        rendered = render_for(spec, env, code, plans, final, Path(data.folder).resolve(),
                              request.max_retries, request.environment, token, template)
        manifest = SweepManifest(
            name=spec.name, spec=spec, backend=dict(request.backend), env=env_summary(env, code),
            data=data_summary(data), items=_manifest_items(rendered, plans), max_retries=request.max_retries,
            environment=dict(request.environment), sweep_version=__version__, pending_submit=token,
            submit_template=asdict(template) if template else None,
        )  # fmt: skip
        write_sweep_files(tmp, manifest, rendered, wrapper_text(env, code))
        state.update(rendered=rendered, manifest=manifest)

    if (final / names.SWEEP_MANIFEST).is_file():  # --replace: its jobs must not run on into the new sweep's folders
        _cancel_replaced(request.sweeps_dir, spec.name)
    progress("writing the sweep directory")
    with contextlib.ExitStack() as held:  # the sweep's lock, until its submission is recorded
        sweep = create_sweep_dir(request.sweeps_dir, spec.name, build, replace_existing=request.replace_existing,
                                 hold_lock=held)
        manifest: SweepManifest = state["manifest"]  # type: ignore[assignment]
        progress(f"submitting {len(manifest.items)} items to the {backend.name} backend")
        _submit_or_undo(backend, sweep, manifest, state["rendered"], token)  # type: ignore[arg-type]
    return sweep, manifest


def _cancel_replaced(sweeps_dir: Path, name: str) -> None:
    try:
        cancel_sweep(sweeps_dir, name)
    except SweepError as error:
        raise StateError(
            f"cannot stop the jobs of the sweep {name!r} that --replace would discard ({error}); "
            f"accepted: `sweep cancel {name}` first, or another --name"
        ) from None


def write_sweep_files(folder: Path, manifest: SweepManifest, rendered: RenderedSubmission, wrapper: str) -> None:
    """Everything a new sweep directory holds before its first submission."""
    atomic_write_text(folder / names.SUBMIT_DESCRIPTION, rendered.full_text())
    atomic_write_json(folder / names.ITEM_ROWS, rendered.rows)
    atomic_write_text(folder / names.JOB_WRAPPER, wrapper, mode=0o755)
    atomic_write_json(folder / names.SWEEP_MANIFEST, manifest.to_dict())
    for row in rendered.rows:  # HTCondor writes job.out/job.err here and does not create folders
        (folder / names.ITEMS_DIR / row["item"]).mkdir(parents=True)


def _manifest_items(rendered: RenderedSubmission, plans: Mapping[str, object]) -> list[dict[str, object]]:
    items = []
    for row in rendered.rows:
        plan = plans[row["item"]]
        items.append({
            **{key: row[key] for key in ("item", "fraction", "replica", "seed", "subset_seed")},
            "files": list(plan.files),  # type: ignore[attr-defined]
            "input_bytes": getattr(plan, "bytes", None),
            "train_images": getattr(plan, "train_images", None),
            "train_patients": getattr(plan, "train_patients", None),
        })
    return items


def _submit_or_undo(backend: Backend, sweep: SweepDir, manifest: SweepManifest, rendered: RenderedSubmission,
                    token: str) -> None:
    """Submit and record; on any failure adopt what the backend did accept under `token`, or undo it."""
    try:
        submission = backend.submit(sweep, manifest, rendered, token)
    except BaseException:
        try:
            found = backend.find_submission(sweep, manifest, token)
        except Exception:  # the backend is unreachable: nothing can have been submitted there
            found = None
        _adopt_or_undo(sweep, manifest, found)
        raise
    _adopt_or_undo(sweep, manifest, submission)


def _adopt_or_undo(sweep: SweepDir, manifest: SweepManifest, submission: Submission | None) -> None:
    """Record a submission; without one, forget the pending token, or remove a sweep that never had jobs."""
    manifest.pending_submit = None
    if submission is not None:
        manifest.submissions.append(submission)
    elif not manifest.submissions:
        remove_sweep_dir(sweep)
        return
    sweep.save(manifest)


def settle_interrupted_submit(sweep: SweepDir) -> None:
    """A submit killed (SIGKILL, power loss) after its sweep appeared leaves `pending_submit` set: adopt
    the jobs the backend accepted under that token, or remove a sweep that never reached the backend."""
    if sweep.load().pending_submit is None:
        return
    with sweep.locked():  # a live submit holds this lock until it has recorded its result: wait for it
        if not sweep.manifest_path.is_file():
            return  # that submit failed and removed the sweep
        manifest = sweep.load()
        if manifest.pending_submit is None:
            return
        try:
            found = get_backend(manifest.backend).find_submission(sweep, manifest, manifest.pending_submit)
        except SweepError as error:
            raise StateError(
                f"sweep {sweep.name!r}: its submit was interrupted and the backend cannot say whether it accepted "
                f"the jobs ({error}); accepted: run the command again when the backend answers"
            ) from None
        _adopt_or_undo(sweep, manifest, found)


def open_settled_sweep(sweeps_dir: Path, name: str) -> SweepDir:
    """open_sweep, after settling an interrupted submit (which may turn out to be no sweep at all)."""
    settle_interrupted_submit(open_sweep(sweeps_dir, name))
    return open_sweep(sweeps_dir, name)


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
                "fraction": float(rows[item]["fraction"]),  # type: ignore[arg-type]
                "replica": int(rows[item]["replica"]),  # type: ignore[call-overload]
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


def resubmit_failed(sweeps_dir: Path, name: str, *, require: str | None = None, no_require_avx: bool = False,
                    progress: Progress = _quiet) -> tuple[list[str], str | None]:
    """Submit the failed and held items again as one new submission; returns (items, requirements note)."""
    sweep = open_settled_sweep(sweeps_dir, name)
    with sweep.locked():
        manifest = sweep.load()
        backend = get_backend(manifest.backend)
        statuses = backend.poll(sweep, manifest)
        again = [item for item, s in statuses.items() if s.state in (ItemState.FAILED, ItemState.HELD)]
        if not again:
            raise StateError(f"sweep {name!r} has no failed or held items to resubmit")
        spec, note = _resubmit_requirements(manifest.spec, [statuses[i] for i in again], require, no_require_avx)
        held = [item for item in again if statuses[item].state is ItemState.HELD]
        if held:  # a held job still sits in the queue: take it out before its replacement goes in
            backend.cancel(sweep, manifest, held)
        env, code = env_from_summary(manifest.env)
        plans = {str(row["item"]): FilePlan(tuple(row["files"])) for row in manifest.items}  # type: ignore[arg-type]
        token = secrets.token_hex(8)
        template = SubmitTemplate(**manifest.submit_template) if manifest.submit_template else None
        full = render_for(spec, env, code, plans, sweep.path, Path(str(manifest.data["folder"])),
                          manifest.max_retries, manifest.environment, token, template)
        rendered = replace(full, rows=[row for row in full.rows if row["item"] in again])
        progress(f"resubmitting {len(again)} items")
        manifest.pending_submit = token  # a resubmit killed mid-way is settled like a first submit
        sweep.save(manifest)
        _submit_or_undo(backend, sweep, manifest, rendered, token)
        manifest.spec = spec
        sweep.save(manifest)
    return again, note


def _resubmit_requirements(spec: SweepSpec, statuses: list[ItemStatus], require: str | None,
                           no_require_avx: bool) -> tuple[SweepSpec, str | None]:
    """Items held for SIGILL get the AVX2 requirement back unless the user chose otherwise."""
    if require is not None:
        return replace(spec, requirements=require), f"requirements set to {require}"
    if no_require_avx:
        return replace(spec, requirements=None), "no CPU requirement"
    from sweep.reasons import CPU_LACKS_AVX2

    sigill = any(CPU_LACKS_AVX2 in s.reason for s in statuses)
    if sigill and spec.requirements is None:
        return (replace(spec, requirements=DEFAULT_REQUIREMENTS),
                f"items held because their machine lacked AVX2 now require it: {DEFAULT_REQUIREMENTS}")
    return spec, None


def cancel_sweep(sweeps_dir: Path, name: str) -> list[str]:
    sweep = open_settled_sweep(sweeps_dir, name)
    with sweep.locked():
        manifest = sweep.load()
        return get_backend(manifest.backend).cancel(sweep, manifest)


def wait_for_sweep(sweeps_dir: Path, name: str, on_update: Callable[[SweepManifest, dict[str, ItemStatus]], None],
                   interval: float = 1.0, timeout: float | None = None) -> dict[str, ItemStatus]:
    """Poll until every item is settled (done, failed, cancelled or held); report each poll."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        _, manifest, statuses = sweep_statuses(sweeps_dir, name)
        on_update(manifest, statuses)
        if all(s.state.is_settled for s in statuses.values()):
            return statuses
        if deadline is not None and time.monotonic() > deadline:
            raise StateError(f"sweep {name!r} did not settle within {timeout:.0f} s: {unsettled_summary(statuses)}")
        time.sleep(interval)


def unsettled_summary(statuses: Mapping[str, ItemStatus]) -> str:
    """'3 idle, 1 running; idle f0.1_r0, f0.1_r1, ...: no slot matches ...': what still waits, and why."""
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

