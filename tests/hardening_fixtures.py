"""Helpers for the hardening tests: the CLI run in-process, real tmpfs mounts (a full disk, a
read-only folder), the tiny packed environment and a small shard folder.

Mounting needs root (`make test` runs as root); without it those tests are skipped with a reason.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sweep.cli import app
from sweep.tracking import wait_for_sweep

from packing_fakes import ENV_CACHE, tiny_environment

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounts a tmpfs, which needs root (make test runs as root)"
)
TINY_CACHE = ENV_CACHE / "test-tiny"  # where packing_fakes.tiny_environment() keeps its tarballs
TINY_REQUIREMENTS = TINY_CACHE / "requirements.txt"
PAGE = 4096  # tmpfs hands out space in pages


@dataclass(frozen=True)
class Ran:
    code: int
    output: str  # stdout and stderr as a terminal shows them
    stdout: str


def cli(*args: object) -> Ran:
    """`sweep ARGS...` in this process (exceptions other than SweepError surface as a traceback in output)."""
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        output += "".join(traceback.format_exception(result.exception))
    return Ran(result.exit_code, output, result.stdout)


def refused(ran: Ran, *fragments: str) -> str:
    """A user error as the CLI must report it: exit 2, one `error:` message holding every fragment."""
    assert ran.code == 2, ran.output
    # a SweepError prints "error: ..."; an option the parser refuses prints typer's "Error" panel
    assert "error" in ran.output.lower() and "Traceback" not in ran.output, ran.output
    flat = " ".join(ran.output.replace("│", " ").split())  # rich may wrap and box; compare words only
    for fragment in fragments:
        assert " ".join(fragment.split()) in flat, f"{fragment!r} not in: {ran.output}"
    return flat


def submit_args(data: Path, sweeps: Path, name: str = "t", *extra: object) -> list[object]:
    """A `sweep submit` of two items on the local backend with the tiny (cached) environment."""
    tiny_environment()  # a cache hit after the first build on this machine
    return ["submit", "--fractions", "0.5,1", "--replicas", "1", "--data", data, "--name", name,
            "--sweeps-dir", sweeps, "--requirements", TINY_REQUIREMENTS, "--cache", TINY_CACHE,
            "--max-retries", "0", *extra]  # fmt: skip


def entries(folder: Path) -> list[str]:
    """Everything in `folder`, hidden files included (a half-written sweep hides as .NAME.partial-*)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A real tmpfs of `size` (e.g. "4m") mounted at `mountpoint` for the block."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=False)


def fill(folder: Path, name: str = "filler") -> Path:
    """Fill the file system of `folder` to the last page with a file `name`; returns it."""
    filler = folder / name
    with open(filler, "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:  # unbuffered: the write that finds the disk full raises, close has nothing left to flush
            handle.write(b"\0" * PAGE)
    return filler


def free_pages(filler: Path, pages: int) -> None:
    """Give `pages` pages back to a file system `fill` filled."""
    os.truncate(filler, max(0, filler.stat().st_size - pages * PAGE))


def settle(sweeps: Path, name: str, timeout: float = 90) -> dict:
    return wait_for_sweep(sweeps, name, lambda *_: None, interval=0.2, timeout=timeout)


def world_writable(root: Path) -> Sequence[str]:
    """Paths under `root` that anyone may write to (symlinks do not count: their mode means nothing)."""
    found = []
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink() and path.stat().st_mode & 0o002:
            found.append(f"{path.relative_to(root)} {oct(path.stat().st_mode & 0o7777)}")
    return found
