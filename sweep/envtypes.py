"""The packed job environment as the rest of sweep sees it: its tarballs and their manifest.

Plain data, no building: render, the backends and the sweep manifest use these types, and
sweep/pack.py makes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Tarball:
    """One built archive and what its JSON manifest (beside it) says about it."""

    path: Path
    sha256: str
    bytes: int
    files: int
    compression: Literal["gzip", "zstd"]

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class EnvManifest:
    """A packed job environment: a relocatable interpreter and the pre-installed dependencies."""

    key: str  # content hash of (python version, platform, glibc, locked requirements)
    python_version: str  # e.g. "3.11.7"
    platform: str  # e.g. "linux-x86_64"
    glibc_min: str  # the oldest glibc the tarballs run on, e.g. "2.35"
    interpreter: Tarball  # gzip: unpackable with plain tar + gzip on a bare node
    site_packages: Tarball  # zstd: unpacked by the shipped interpreter's zstandard module
    requirements: Path  # the locked requirements file it was built from
    system_libraries: tuple[str, ...] = ()  # shared libraries the node must provide


@dataclass(frozen=True)
class PackResult:
    env: EnvManifest
    cache_hit: bool
    seconds: float
