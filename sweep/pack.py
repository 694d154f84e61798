"""Environment tarballs: build, hash, cache, verify.

Functions raise PackError on user-facing failures.

A packed environment is two tarballs in the cache folder, named by a content key:
  python-KEY.tar.gz          the running base interpreter, slimmed, with zstandard (plain tar + gzip)
  site-packages-KEY.tar.zst  a venv's site-packages installed from the locked requirements
each with a JSON manifest beside it (python-KEY.json, site-packages-KEY.json). A manifest is
written only after its tarball is complete, so a manifest whose tarball has the recorded size
means a finished build: that is the cache hit, which never re-hashes hundreds of MB.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sweep.archive import Member, Written, write_tar_gz, write_tar_zstd
from sweep.elfscan import SystemNeeds, scan_tree
from sweep.envfiles import (
    INTERPRETER_DIR,
    SITE_DIR,
    describe_members,
    select_interpreter,
    select_site_packages,
)
from sweep.envtypes import EnvManifest, PackResult, Progress, Tarball
from sweep.errors import PackError
from sweep.fs import atomic_write_text, sha256_file
from sweep.jobcode import pack_job_code
from sweep.locks import check_hashed, install_lock, locked_lines

# Bump when the layout inside the tarballs or the exclusion rules (sweep/envfiles.py) change.
PACK_FORMAT = 1
FULL_DISK_BYTES = 1 << 20  # less free space than this after a failed build step: the disk is why

# ----------------------------------------------------------------------------- names and keys


def interpreter_tarball_name(key: str) -> str:
    return f"python-{key}.tar.gz"


def site_packages_tarball_name(key: str) -> str:
    return f"site-packages-{key}.tar.zst"


def manifest_path(tarball: Path) -> Path:
    """python-KEY.tar.gz -> python-KEY.json (beside the tarball)."""
    return tarball.with_name(tarball.name.split(".tar.")[0] + ".json")


def _glibc_version() -> str:
    found = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
    return found.rpartition(" ")[2] or "none"


def environment_key(requirements: Path) -> str:
    """Content hash of what determines the tarballs' bytes (16 hex digits)."""
    identity = {
        "pack_format": PACK_FORMAT,
        "python": sys.version,  # version plus build: two 3.11.7 builds differ
        "implementation": sys.implementation.name,
        "platform": sysconfig.get_platform(),
        "glibc": _glibc_version(),
        "requirements": locked_lines(requirements),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- manifests


def _tarball_from_manifest(cache_dir: Path, data: dict[str, Any]) -> Tarball:
    return Tarball(
        path=cache_dir / data["name"],
        sha256=data["sha256"],
        bytes=int(data["bytes"]),
        files=int(data["files"]),
        compression=data["compression"],
    )


def _read_manifest(path: Path, key: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise PackError(f"no packed environment {key} in {path.parent}: {path.name} is missing") from error
    except (OSError, ValueError) as error:
        raise PackError(f"the manifest {path} cannot be read: {error}") from error
    if data.get("format") != PACK_FORMAT or data.get("key") != key:
        raise PackError(
            f"the manifest {path} is for key {data.get('key')} format {data.get('format')}, "
            f"expected key {key} format {PACK_FORMAT}"
        )
    return data


def load_environment(cache_dir: Path, key: str) -> EnvManifest:
    """The environment `key` as its two manifests describe it (nothing is hashed)."""
    interp = _read_manifest(manifest_path(cache_dir / interpreter_tarball_name(key)), key)
    site = _read_manifest(manifest_path(cache_dir / site_packages_tarball_name(key)), key)
    return EnvManifest(
        key=key,
        python_version=interp["python_version"],
        platform=interp["platform"],
        glibc_min=_newest_version(interp["glibc_min"], site["glibc_min"]),
        interpreter=_tarball_from_manifest(cache_dir, interp),
        site_packages=_tarball_from_manifest(cache_dir, site),
        requirements=Path(site["requirements"]),
        system_libraries=tuple(sorted(set(interp["system_libraries"]) | set(site["system_libraries"]))),
    )


def _newest_version(*versions: str) -> str:
    return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))


def find_environment(requirements: Path, cache_dir: Path) -> EnvManifest | None:
    """The cached environment for these requirements, if complete; cheap (stat, no hashing)."""
    key = environment_key(requirements)
    try:
        env = load_environment(cache_dir, key)
    except PackError:
        return None
    for tarball in (env.interpreter, env.site_packages):
        try:
            if tarball.path.stat().st_size != tarball.bytes:
                return None
        except FileNotFoundError:
            return None
    return _with_requirements(env, requirements)


def planned_environment(requirements: Path, cache_dir: Path) -> EnvManifest:
    """The cached environment, or the one `sweep pack` would build (names only): `submit --dry-run` packs nothing."""
    found = find_environment(requirements, cache_dir)
    if found is not None:
        return found
    key = environment_key(requirements)

    def planned(name: str, compression: Literal["gzip", "zstd"]) -> Tarball:
        return Tarball(
            path=cache_dir / name, sha256="not-packed-yet", bytes=0, files=0, compression=compression
        )

    return EnvManifest(
        key=key,
        python_version=platform.python_version(),
        platform=sysconfig.get_platform(),
        glibc_min="unknown",
        interpreter=planned(interpreter_tarball_name(key), "gzip"),
        site_packages=planned(site_packages_tarball_name(key), "zstd"),
        requirements=requirements,
    )


def _with_requirements(env: EnvManifest, requirements: Path) -> EnvManifest:
    return dataclasses.replace(env, requirements=requirements)


def verify_environment(env: EnvManifest) -> None:
    """Re-hash both tarballs; PackError naming the file and both hashes on a mismatch."""
    for tarball in (env.interpreter, env.site_packages):
        if not tarball.path.is_file():
            raise PackError(f"the tarball {tarball.path} is missing")
        actual = sha256_file(tarball.path)
        if actual != tarball.sha256:
            raise PackError(
                f"{tarball.path} does not match its manifest: sha256 {actual}, "
                f"manifest says {tarball.sha256} (corrupt or modified; delete it and run `sweep pack`)"
            )


# ----------------------------------------------------------------------------- building


def build_environment(requirements: Path, cache_dir: Path, *, progress: Progress | None = None) -> PackResult:
    """Build (or find in the cache) the packed environment for a locked requirements file."""
    started = time.monotonic()
    report = progress or (lambda message: None)
    found = find_environment(requirements, cache_dir)
    if found is not None:
        return PackResult(env=found, cache_hit=True, seconds=time.monotonic() - started)
    key = environment_key(requirements)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with _build_lock(cache_dir, key):
            found = find_environment(requirements, cache_dir)  # built by another process meanwhile
            if found is not None:
                return PackResult(env=found, cache_hit=True, seconds=time.monotonic() - started)
            _remove_leftovers(cache_dir, key)
            _build_under_lock(requirements, cache_dir, key, report)
    except OSError as error:  # a full disk or a folder we may not write: say which, in words
        raise PackError(_cache_error(cache_dir, error)) from None
    env = _with_requirements(load_environment(cache_dir, key), requirements)
    return PackResult(env=env, cache_hit=False, seconds=time.monotonic() - started)


def _build_under_lock(requirements: Path, cache_dir: Path, key: str, report: Progress) -> None:
    """Build both tarballs; on any failure remove what was made of this key (half a pair is no environment)."""
    try:
        with _scratch_dir(cache_dir, key) as scratch:
            try:
                check_hashed(requirements)
                site_dir = install_lock(requirements, scratch / "venv", report)
                _write_environment(requirements, cache_dir, key, site_dir, scratch, report)
            except PackError as error:  # checked before the scratch folder goes and frees the disk again
                raise _with_full_disk_named(cache_dir, error) from None
    except BaseException:
        for name in (interpreter_tarball_name(key), site_packages_tarball_name(key)):
            (cache_dir / name).unlink(missing_ok=True)
            manifest_path(cache_dir / name).unlink(missing_ok=True)
        raise


def _with_full_disk_named(cache_dir: Path, error: PackError) -> PackError:
    """venv and pip report a full disk in their own words, ensurepip not at all: name it when it is so."""
    if shutil.disk_usage(cache_dir).free >= FULL_DISK_BYTES:
        return error
    return PackError(
        f"{_cache_error(cache_dir, OSError(errno.ENOSPC, 'no space'))}\n(the step that failed: {error})"
    )


def _cache_error(cache_dir: Path, error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return (
            f"no space left on the device of the environment cache {cache_dir} while packing; "
            "nothing of this environment was kept there; free space, or use --cache on another disk"
        )
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write to the environment cache {cache_dir}: {error.strerror}; accepted: --cache FOLDER you can write to"
    return f"packing into the environment cache {cache_dir} failed: {error.strerror or error}"


@contextlib.contextmanager
def _build_lock(cache_dir: Path, key: str) -> Iterator[None]:
    """One builder per key: a second `sweep pack` waits, then finds the first one's result."""
    with (cache_dir / f".lock-{key}").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _remove_leftovers(cache_dir: Path, key: str) -> None:
    """Scratch folders and temp files of this key left by a build that was killed (SIGKILL)."""
    for leftover in cache_dir.glob(f".*{key}*"):
        if leftover.name.startswith(f".lock-{key}"):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def _scratch_dir(cache_dir: Path, key: str) -> Iterator[Path]:
    """A build folder beside the cache (same file system), removed on any exit, Ctrl-C included."""
    scratch = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=cache_dir))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_environment(
    requirements: Path, cache_dir: Path, key: str, site_dir: Path, scratch: Path, report: Progress
) -> None:
    """Both tarballs, each followed by its manifest (the manifest marks it complete)."""
    common = {
        "format": PACK_FORMAT,
        "key": key,
        "python_version": platform.python_version(),
        "platform": sysconfig.get_platform(),
        "build_glibc": _glibc_version(),
        "requirements": str(requirements.resolve()),
        "requirements_sha256": sha256_file(requirements),
    }
    staging = scratch / "staging"
    staging.mkdir()
    report("packing the interpreter (gzip)")
    members = select_interpreter(Path(sys.base_prefix), site_dir, staging)
    _pack_interpreter(members, cache_dir / interpreter_tarball_name(key), common)
    report("packing site-packages (zstd, all cores)")
    _pack_site_packages(site_dir, cache_dir / site_packages_tarball_name(key), common)


def _pack_interpreter(members: list[Member], dest: Path, common: dict[str, Any]) -> None:
    started = time.monotonic()
    stats = describe_members(members)
    written = write_tar_gz(members, dest, deterministic=False)
    needs = scan_tree(stats.elf_candidates)
    fields = {"files": stats.files, "unpacked_bytes": stats.unpacked_bytes, "compression": "gzip",
              "top_folder": INTERPRETER_DIR}  # fmt: skip
    _write_manifest(dest, written, needs, {**common, **fields}, time.monotonic() - started)


def _pack_site_packages(site_dir: Path, dest: Path, common: dict[str, Any]) -> None:
    started = time.monotonic()
    selection = select_site_packages(site_dir)
    written = write_tar_zstd(selection.root, selection.relpaths, dest)
    needs = scan_tree(selection.elf_candidates)
    fields = {"files": selection.files, "unpacked_bytes": selection.unpacked_bytes, "compression": "zstd",
              "top_folder": SITE_DIR}  # fmt: skip
    _write_manifest(dest, written, needs, {**common, **fields}, time.monotonic() - started)


def _write_manifest(
    tarball: Path, written: Written, needs: SystemNeeds, fields: dict[str, Any], seconds: float
) -> None:
    manifest = {
        **fields,
        "name": tarball.name,
        "sha256": written.sha256,
        "bytes": written.bytes,
        "glibc_min": needs.version("GLIBC") or "0.0",  # newest GLIBC_x.y symbol version any ELF file needs
        "glibcxx_min": needs.version("GLIBCXX"),
        "system_libraries": needs.system_libraries(),
        "elf_files": needs.elf_files,
        "pack_seconds": round(seconds, 2),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write_text(manifest_path(tarball), json.dumps(manifest, indent=2) + "\n")


__all__ = [
    "PACK_FORMAT",
    "EnvManifest",
    "PackResult",
    "Tarball",
    "build_environment",
    "environment_key",
    "find_environment",
    "load_environment",
    "pack_job_code",
    "verify_environment",
]
