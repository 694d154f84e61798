"""File-system primitives with one promise: a reader never sees a half-written file.

Every write goes to a temporary file in the same folder, is flushed to disk, then renamed
over the target (rename is atomic within one file system).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from sweep.errors import SweepError

HASH_CHUNK = 1 << 20


def _write_error(path: Path, error: OSError) -> SweepError:
    if error.errno == errno.ENOSPC:
        return SweepError(
            f"no space left on the device while writing {path}; nothing was written there; free space and retry"
        )
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return SweepError(f"cannot write {path}: {error.strerror}; accepted: a folder you can write to")
    return SweepError(f"cannot write {path}: {error.strerror or error}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(dest: Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; it becomes `dest` only if the block completes.

    The temp file lives in the same folder (so the rename is atomic), is flushed to disk before
    the rename, and is removed on any exception, KeyboardInterrupt included. Streaming writers
    (tarballs) write to the path themselves; small files use atomic_write_bytes.
    """
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        yield tmp
        _fsync_path(tmp)
        os.chmod(tmp, mode & ~current_umask())
        os.replace(tmp, dest)
        _fsync_path(dest.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    atomic_write_files({Path(path): data}, mode)


def atomic_write_files(files: Mapping[Path, bytes], mode: int = 0o644) -> None:
    """Replace several files as one update: every temporary file is complete before the first rename.

    A full disk (the usual failure) then strikes before any target changed: readers see the old
    set of files or the new one, never a new file beside a stale one.
    """
    temps: dict[Path, str] = {}
    current = next(iter(files), Path("."))
    try:
        for current, data in files.items():
            fd, temps[current] = tempfile.mkstemp(
                prefix=f".{current.name}.", suffix=".tmp", dir=current.parent
            )
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temps[current], mode & ~current_umask())
        for current in files:
            os.replace(temps.pop(current), current)
    except OSError as error:
        raise _write_error(current, error) from None
    finally:
        for tmp_name in temps.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode(), mode)


def atomic_write_json(path: Path, payload: object) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> object:
    """Read JSON; a missing, truncated or garbled file is a SweepError that names it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SweepError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SweepError(f"{path} is not valid JSON ({error}); it may be truncated") from None


def current_umask() -> int:
    """The process umask (os.umask can only be read by setting it)."""
    current = os.umask(0)
    os.umask(current)
    return current


def _open_lock_file(path: Path, what: str) -> IO[str]:
    try:
        return open(path, "a")
    except OSError as error:  # a read-only or vanished folder: a message, not a traceback
        raise SweepError(f"cannot open the lock file {path} of {what}: {error.strerror or error}") from None


@contextlib.contextmanager
def file_lock(path: Path, *, wait: bool = True, what: str = "this sweep") -> Iterator[None]:
    """An advisory lock (flock) on `path`, released when the block ends or the process dies."""
    with _open_lock_file(path, what) as handle:
        flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(handle.fileno(), flags)
        except BlockingIOError:
            raise SweepError(
                f"{what} is busy: another sweep command holds {path}; try again when it finishes"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
