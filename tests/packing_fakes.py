"""Small real archives and job sandboxes for the packing, unpacking and wrapper tests."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import zstandard

from sweep.pack import EnvManifest, build_environment, pack_job_code
from sweep.wrapper import render_job_wrapper

REPO = Path(__file__).resolve().parent.parent
CLEAN_PATH = "/usr/bin:/bin"


@dataclass(frozen=True)
class FakeArchive:
    """A tarball in a sandbox, with the name and sha256 the wrapper is rendered with."""

    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    """An uncompressed tar of (name, content) files and ready-made TarInfo entries (links, dirs)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                name, content = member
                info = tarfile.TarInfo(name)
                info.size = len(content)
                info.mode = 0o755 if content.startswith(b"#!") else 0o644
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def link(name: str, target: str, *, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def write_zst(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> FakeArchive:
    path.write_bytes(zstandard.ZstdCompressor(level=3).compress(tar_bytes(members)))
    return FakeArchive(path, sha256_of(path))


def write_gz(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> FakeArchive:
    import gzip

    path.write_bytes(gzip.compress(tar_bytes(members), mtime=0))
    return FakeArchive(path, sha256_of(path))


def job_source_root(dest: Path, job_modules: Mapping[str, str]) -> Path:
    """A copy of the shipped job code plus stand-in job modules (sweep/job/NAME.py)."""
    (dest / "sweep" / "job").mkdir(parents=True)
    for name in ("__init__.py", "names.py"):
        shutil.copy(REPO / "sweep" / name, dest / "sweep" / name)
    for source in (REPO / "sweep" / "job").glob("*.py"):
        shutil.copy(source, dest / "sweep" / "job" / source.name)
    for module, text in job_modules.items():
        (dest / "sweep" / "job" / f"{module}.py").write_text(text, encoding="utf-8")
    return dest


# A stand-in "interpreter": the test's own Python behind python/bin/python3, which has zstandard.
FAKE_PYTHON = f'#!/bin/sh\nexec "{sys.executable}" "$@"\n'.encode()


def fake_interpreter(sandbox: Path) -> FakeArchive:
    return write_gz(sandbox / "python-fake.tar.gz", [("python/bin/python3", FAKE_PYTHON)])


def fake_site_packages(sandbox: Path) -> FakeArchive:
    return write_zst(
        sandbox / "site-packages-fake.tar.zst", [("site-packages/marker_pkg.py", b"VALUE = 42\n")]
    )


@dataclass
class Sandbox:
    """A job sandbox: the three tarballs side by side and the rendered job-wrapper.sh."""

    path: Path
    interpreter: FakeArchive
    site_packages: FakeArchive
    code: FakeArchive

    def render(
        self,
        *,
        job_module: str,
        glibc_min: str = "2.17",
        python_version: str = "3.11.7",
        cpu_flags: tuple[str, ...] = (),
    ) -> Path:
        text = render_job_wrapper(
            self.interpreter, self.site_packages, self.code, glibc_min, python_version, list(cpu_flags),
            job_module=job_module,
        )  # fmt: skip
        script = self.path / "job-wrapper.sh"
        script.write_text(text, encoding="utf-8")
        return script

    def run(
        self,
        *args: str,
        shell: str = "sh",
        env: Mapping[str, str] | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run the wrapper like a job: in the sandbox, with an empty environment (env -i)."""
        environment = {"PATH": CLEAN_PATH, **(env or {})}
        return subprocess.run(
            ["env", "-i", *(f"{k}={v}" for k, v in environment.items()), shell, "job-wrapper.sh", *args],
            cwd=self.path, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip


def make_sandbox(
    root: Path,
    job_modules: Mapping[str, str],
    *,
    interpreter: Path | None = None,
    site_packages: Path | None = None,
    interpreter_sha256: str | None = None,
    site_sha256: str | None = None,
) -> Sandbox:
    """A sandbox with real code, and the given (or fake) interpreter and site-packages tarballs."""
    sandbox = root / "sandbox"
    sandbox.mkdir(parents=True)
    code = pack_job_code(sandbox, source_root=job_source_root(root / "src", job_modules))
    if interpreter is None:
        interp = fake_interpreter(sandbox)
    else:
        os.symlink(interpreter, sandbox / interpreter.name)  # HTCondor would copy; a link is enough
        interp = FakeArchive(sandbox / interpreter.name, interpreter_sha256 or sha256_of(interpreter))
    if site_packages is None:
        site = fake_site_packages(sandbox)
    else:
        os.symlink(site_packages, sandbox / site_packages.name)
        site = FakeArchive(sandbox / site_packages.name, site_sha256 or sha256_of(site_packages))
    return Sandbox(sandbox, interp, site, FakeArchive(code.path, code.sha256))


# --- packed environments shared by test modules; cached under the git-ignored envs/cache/,
# so only the first test run on a machine builds them

ENV_CACHE = REPO / "envs" / "cache"
JOB_REQUIREMENTS = REPO / "envs" / "requirements-job.txt"
TINY_LOCK = REPO / "tests" / "requirements-tiny.txt"  # zstandard==0.25.0 with its hashes


@functools.cache
def tiny_environment() -> EnvManifest:
    """A real environment with one package (zstandard): a real interpreter tarball in ~10 s."""
    requirements = ENV_CACHE / "test-tiny" / "requirements.txt"  # beside its tarballs, as tests copy them
    requirements.parent.mkdir(parents=True, exist_ok=True)
    requirements.write_text(TINY_LOCK.read_text(encoding="utf-8"), encoding="utf-8")
    return build_environment(requirements, requirements.parent).env


@functools.cache
def job_environment() -> EnvManifest:
    """The real job environment (TensorFlow): minutes when cold, a cache hit afterwards."""
    return build_environment(JOB_REQUIREMENTS, ENV_CACHE).env
