"""The job code every job receives: sweep/__init__.py, sweep/names.py and sweep/job/, as one small
deterministic tarball (the same sources give the same sha256, so resubmits and caches agree).
"""

from __future__ import annotations

from pathlib import Path

from sweep import names, resources
from sweep.archive import Member, write_tar_gz
from sweep.envtypes import Tarball
from sweep.errors import PackError


def job_code_members(source_root: Path) -> list[Member]:
    """sweep/__init__.py, sweep/names.py and sweep/job/** without caches, sorted by name."""
    package = source_root / "sweep"
    sources = [package / "__init__.py", package / "names.py"]
    sources += [p for p in (package / "job").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    missing = [str(p) for p in sources[:2] if not p.is_file()]
    if missing or not (package / "job").is_dir():
        raise PackError(
            f"the job code is incomplete under {source_root}: missing {missing or [package / 'job']}"
        )
    members = [
        Member(p, p.relative_to(source_root).as_posix()) for p in sources if not p.name.endswith(".pyc")
    ]
    return sorted(members, key=lambda m: m.arcname)


def pack_job_code(dest_dir: Path, *, source_root: Path | None = None) -> Tarball:
    """The small deterministic code tarball (names.CODE_TARBALL): same sources, same sha256.

    `source_root` (default: where this `sweep` package lives) holds the `sweep/` folder to pack;
    tests point it at a copy with a stand-in job module.
    """
    members = job_code_members(source_root or resources.package_root())
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / names.CODE_TARBALL
    written = write_tar_gz(members, dest, deterministic=True, level=9)
    return Tarball(
        path=dest, sha256=written.sha256, bytes=written.bytes, files=len(members), compression="gzip"
    )
