"""The sweep directory: its manifest, its item folders, and the item states every backend reports.

A sweep directory is created whole or not at all: it is built in a hidden temporary folder
beside its final place and renamed into place in one step.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from sweep import names
from sweep.errors import StateError, SweepError
from sweep.fs import atomic_write_json, current_umask, file_lock, read_json
from sweep.results_schema import ItemState
from sweep.spec import SweepSpec, validate_name

MANIFEST_SCHEMA = "sweep.sweep/1"
T = TypeVar("T")


@dataclass(frozen=True)
class ItemStatus:
    item: str
    state: ItemState = ItemState.IDLE
    reason: str = ""  # plain words: why it failed, is held or was cancelled
    exit_code: int | None = None
    exit_signal: int | None = None
    attempts: int = 0  # executions started (the first run and every retry)
    host: str = ""
    microarch: str = ""
    submitted_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    transfer_seconds: float | None = None  # input transfer of the last attempt, where the backend knows it
    transfer_started_at: float | None = None  # kept until the matching "transfer finished" event arrives
    submission: str = ""  # the cluster id (condor) or run id (local) that produced this status

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)

    @property
    def wall_time(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    def with_changes(self, **changes: Any) -> ItemStatus:
        return replace(self, **changes)


@dataclass(frozen=True)
class Submission:
    """One submit transaction: a cluster (condor) or a run (local) and the items in proc order."""

    id: str
    items: tuple[str, ...]
    submitted_at: float
    token: str

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "items": list(self.items),
            "submitted_at": self.submitted_at,
            "token": self.token,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Submission:
        return cls(
            id=str(data["id"]),
            items=tuple(data["items"]),
            submitted_at=float(data["submitted_at"]),
            token=data["token"],
        )


@dataclass
class SweepManifest:
    """sweep.json: everything needed to understand, watch and collect a sweep later."""

    name: str
    spec: SweepSpec
    backend: dict[str, str]  # {"name": "local"} or {"name": "condor", "schedd": ..., "pool": ...}
    env: dict[str, object]
    data: dict[str, object]
    items: list[dict[str, object]]  # item rows plus per-item plan facts (train images, input bytes)
    max_retries: int
    environment: dict[str, str] = field(default_factory=dict)  # extra job environment (test switches)
    submissions: list[Submission] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    sweep_version: str = ""
    # the token of a submission handed to the backend whose result is not recorded yet: set while a
    # submit runs; still set afterwards only if that process died (then see recovery.settle_interrupted_submit)
    pending_submit: str | None = None
    submit_template: dict[str, str] | None = (
        None  # {"origin", "text"} of a --submit-template: resubmit renders it again
    )

    @property
    def labels(self) -> list[str]:
        """The dataset's labels, in the order the job reports them."""
        labels = self.data.get("labels", [])
        return [str(label) for label in labels] if isinstance(labels, list) else []

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": MANIFEST_SCHEMA,
            "name": self.name,
            "sweep_version": self.sweep_version,
            "created_at": self.created_at,
            "spec": self.spec.to_dict(),
            "backend": self.backend,
            "env": self.env,
            "data": self.data,
            "items": self.items,
            "max_retries": self.max_retries,
            "environment": self.environment,
            "submissions": [s.to_dict() for s in self.submissions],
            "pending_submit": self.pending_submit,
            "submit_template": self.submit_template,
        }

    @classmethod
    def from_dict(cls, data: dict) -> SweepManifest:
        if data.get("schema") != MANIFEST_SCHEMA:
            raise StateError(f"sweep manifest schema {data.get('schema')!r} is not {MANIFEST_SCHEMA!r}")
        return cls(
            name=data["name"],
            spec=SweepSpec.from_dict(data["spec"]),
            backend=data["backend"],
            env=data["env"],
            data=data["data"],
            items=data["items"],
            max_retries=int(data["max_retries"]),
            environment=data.get("environment", {}),
            submissions=[Submission.from_dict(s) for s in data.get("submissions", [])],
            created_at=float(data["created_at"]),
            sweep_version=data.get("sweep_version", ""),
            pending_submit=data.get("pending_submit"),
            submit_template=data.get("submit_template"),
        )

    @property
    def item_names(self) -> list[str]:
        return [str(row["item"]) for row in self.items]


class SweepDir:
    """A sweep's folder: sweeps/NAME/{sweep.json, submit.sub, items.json, job-wrapper.sh, events.log, items/}."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def manifest_path(self) -> Path:
        return self.path / names.SWEEP_MANIFEST

    @property
    def event_log(self) -> Path:
        return self.path / names.EVENT_LOG

    def item_dir(self, item: str) -> Path:
        return self.path / names.ITEMS_DIR / item

    def item_output(self, item: str) -> Path:
        return self.item_dir(item) / names.JOB_OUTPUT_DIR

    def load(self) -> SweepManifest:
        try:
            data = read_json(self.manifest_path)
        except SweepError as error:  # missing or garbled: say which sweep it is
            raise StateError(f"sweep {self.name!r} at {self.path} cannot be read: {error}") from None
        if not isinstance(data, dict):
            raise StateError(f"{self.manifest_path} does not hold a sweep manifest")
        return SweepManifest.from_dict(data)

    def save(self, manifest: SweepManifest) -> None:
        atomic_write_json(self.manifest_path, manifest.to_dict())

    @contextlib.contextmanager
    def locked(self, *, wait: bool = True) -> Iterator[None]:
        with file_lock(self.path / names.LOCK_FILE, wait=wait, what=f"sweep {self.name!r}"):
            yield


def open_sweep(sweeps_dir: Path, name: str) -> SweepDir:
    """The sweep called `name`, or a StateError that says which sweeps exist."""
    validate_name(name)
    sweep = SweepDir(Path(sweeps_dir) / name)
    if not sweep.manifest_path.is_file():
        known = sorted(p.parent.name for p in Path(sweeps_dir).glob(f"*/{names.SWEEP_MANIFEST}"))
        hint = f"known sweeps in {sweeps_dir}: {', '.join(known)}" if known else f"no sweeps in {sweeps_dir}"
        raise StateError(f"no sweep named {name!r} in {sweeps_dir}; {hint}")
    return sweep


def create_sweep_dir(
    sweeps_dir: Path,
    name: str,
    build: Callable[[Path], T],
    *,
    replace_existing: bool = False,
    hold_lock: contextlib.ExitStack | None = None,
) -> tuple[SweepDir, T]:
    """Build a sweep directory with `build(tmp)` and rename it into place: all of it, or nothing.

    Returns the sweep and what `build` returned.

    The new folder's lock is taken before `build` and kept through the rename; with `hold_lock`
    it stays taken until that stack closes, so a submit records its result before any other
    command can look at the sweep.
    """
    sweeps_dir = Path(sweeps_dir)
    final = sweeps_dir / name
    if final.exists() and not replace_existing:
        raise StateError(
            f"a sweep named {name!r} already exists at {final}; accepted: another --name, or --replace to discard it"
        )
    _remove_stale_partials(sweeps_dir, name)
    try:
        sweeps_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}{PARTIAL_INFIX}", dir=sweeps_dir))
    except OSError as error:
        raise StateError(
            f"cannot create a sweep in {sweeps_dir}: {error.strerror}; accepted: a folder you can write to"
        ) from None
    lock = contextlib.ExitStack()
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        lock.enter_context(file_lock(tmp / names.LOCK_FILE, what=f"sweep {name!r}"))
        built = build(tmp)
        if replace_existing and final.exists():  # move the old one aside first so the swap is one rename
            doomed = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=sweeps_dir))
            os.replace(final, doomed / name)
            os.replace(tmp, final)
            shutil.rmtree(doomed, ignore_errors=True)
        else:
            _rename_into_place(tmp, final, name)
    except BaseException:
        lock.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if hold_lock is None:
        lock.close()
    else:
        hold_lock.enter_context(lock)
    return SweepDir(final), built


PARTIAL_INFIX = ".partial-"


def _rename_into_place(tmp: Path, final: Path, name: str) -> None:
    """Rename, refusing if another command created the same sweep meanwhile (rename would fail or clobber)."""
    try:
        os.rename(tmp, final)  # onto an existing non-empty folder this fails instead of replacing it
    except OSError as error:
        if final.exists():
            raise StateError(
                f"a sweep named {name!r} appeared at {final} while this one was being made "
                "(another submit of the same name?); accepted: another --name"
            ) from None
        raise StateError(f"cannot create the sweep {final}: {error.strerror}") from None


def _remove_stale_partials(sweeps_dir: Path, name: str) -> None:
    """Temporary folders of an earlier create of `name` that was killed (SIGKILL): nobody holds their lock."""
    for leftover in sweeps_dir.glob(f".{name}{PARTIAL_INFIX}*"):
        try:
            with file_lock(leftover / names.LOCK_FILE, wait=False, what=f"the partial sweep {leftover}"):
                shutil.rmtree(leftover, ignore_errors=True)
        except SweepError:
            continue  # a live create of the same name holds it


def remove_sweep_dir(sweep: SweepDir) -> None:
    """Undo a sweep that could not be submitted (rename away first so no reader sees half a folder)."""
    doomed = sweep.path.with_name(f".{sweep.name}.removed-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.replace(sweep.path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
