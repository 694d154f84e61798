"""Writing archives so that a half-written one never survives, and hashing them.

Two writers: a gzip tarball built by Python's `tarfile` from an explicit member list (small
archives; optionally byte-for-byte deterministic), and a zstd tarball streamed from GNU `tar`
through multithreaded zstandard (the 1.4 GB site-packages: measured 5 s, against 55 s for gzip).
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

import zstandard

from sweep.errors import PackError
from sweep.fs import atomic_path

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """One archive member: where it comes from and what it is called inside the archive."""

    source: Path
    arcname: str


@dataclass(frozen=True)
class Written:
    sha256: str
    bytes: int


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.bytes += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def write_tar_gz(members: Iterable[Member], dest: Path, *, deterministic: bool, level: int = 6) -> Written:
    """A gzip tarball of `members` in the given order, written atomically.

    Deterministic: mtime 0, uid/gid 0, no user names, modes 0644/0755, gzip header without
    time or name, so the same sources give the same sha256. Otherwise file metadata is kept:
    the stdlib's .pyc files are only valid while their source's mtime is.
    """
    with atomic_path(dest) as tmp, tmp.open("wb") as raw:
        hashing = _HashingWriter(raw)
        with (
            gzip.GzipFile(filename="", mode="wb", fileobj=hashing, compresslevel=level, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for member in members:
                info = tar.gettarinfo(str(member.source), arcname=member.arcname)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if deterministic:
                    info.mtime = 0
                    info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
                if info.isreg():
                    with member.source.open("rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
        raw.flush()
    return Written(sha256=hashing.digest.hexdigest(), bytes=hashing.bytes)


def write_tar_zstd(root: Path, relpaths: list[str], dest: Path, *, level: int = 3) -> Written:
    """A zstd tarball of `relpaths` (relative to `root`, listed in order, directories included).

    GNU tar writes the tar stream (fast on 30k small files); zstandard compresses it on all
    cores; the compressed bytes are hashed on the way to the temp file.
    """
    compressor = zstandard.ZstdCompressor(level=level, threads=-1)
    with (
        atomic_path(dest) as tmp,
        tmp.open("wb") as raw,
        tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.list-") as file_list,
        tempfile.TemporaryFile() as errors,  # a file, not a pipe: 30k warnings must not block tar
    ):
        file_list.write("\0".join(relpaths).encode() + b"\0")
        file_list.flush()
        command = [
            "tar", "--create", "--file=-", f"--directory={root}", "--no-recursion", "--null",
            f"--files-from={file_list.name}", "--owner=0", "--group=0", "--numeric-owner", "--format=gnu",
        ]  # fmt: skip
        hashing = _HashingWriter(raw)
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
        try:
            assert proc.stdout
            # a writer with write() is all copy_stream uses; its stub asks for a whole IO[bytes]
            compressor.copy_stream(proc.stdout, cast(IO[bytes], hashing), read_size=_CHUNK, write_size=_CHUNK)
            proc.stdout.close()
        except BaseException:
            proc.kill()
            raise
        finally:
            proc.wait()
        if proc.returncode != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()[-2000:]
            raise PackError(f"tar could not archive {root} (exit {proc.returncode}): {message}")
        raw.flush()
    return Written(sha256=hashing.digest.hexdigest(), bytes=hashing.bytes)
