"""Which files of the interpreter and of the installed site-packages a job is given.

Every exclusion below was measured (size) and is proven harmless by the slow test, which
imports TensorFlow and fits a Keras model from the UNPACKED tarballs. Bump pack.PACK_FORMAT
when a rule changes, so cached tarballs built under the old rules are not reused.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sweep.archive import Member
from sweep.errors import PackError

INTERPRETER_DIR = "python"  # top folder inside the interpreter tarball
SITE_DIR = "site-packages"  # top folder inside the site-packages tarball

# --- site-packages (sizes: tensorflow-cpu 2.21 env, 1.9 GB and 27k files before slimming)
# Installers: a job never runs pip. setuptools and wheel are declared by tensorflow-cpu and
# astunparse, but only their setup code imports them. 26 MB.
_INSTALLER_TOOLING = {"pip", "setuptools", "pkg_resources", "_distutils_hack", "wheel"}
# libclang: `clang/native/libclang.so` serves TensorFlow's build tooling only. 62 MB.
_BUILD_ONLY_PACKAGES = {"clang"}
_DROPPED_DISTRIBUTIONS = {"pip", "setuptools", "wheel", "libclang"}
# setuptools' distutils shim; nothing to shim once setuptools is gone.
_DROPPED_SITE_FILES = {"distutils-precedence.pth"}
# C++ headers for compiling custom TensorFlow ops: 287 MB and 11k files.
_DROPPED_SITE_DIRS = {("tensorflow", "include")}
# Test suites (numpy, scipy, scikit-learn, h5py, ...: 70 MB). Never under tensorflow/ or keras/:
# there a folder named test(s) can be API (tensorflow/_api/v2/test is `tf.test`, imported by
# `import tensorflow`), so a blanket rule breaks the import.
_TEST_DIRS = {"tests"}
_TEST_DIRS_KEPT_UNDER = {"tensorflow", "keras"}
# __pycache__ is KEPT: measured `import tensorflow, keras` 3.5 s with it, 7 s without
# (+40 MB compressed, 7k files).

# --- the interpreter (sys.base_prefix; the pyenv build is 964 MB, mostly its own site-packages)
# site-packages (and Debian's dist-packages) hold the build machine's own packages: 685 MB here.
_STDLIB_DROPPED_TOP = {
    "site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "turtle.py",
}  # fmt: skip
_STDLIB_TEST_DIRS = {"test", "tests", "idle_test"}  # ctypes/test, unittest/test, lib2to3/tests, ...
# config-3.11-*/ holds the static libpython and Makefile: for building extensions, not running them.
_STDLIB_CONFIG_PREFIX = "config-"
_DYNLOAD_DROPPED = re.compile(r"^(_test|_ctypes_test|_xxtestfuzz|xxlimited|_tkinter|xxsubtype)")
# Only the default-optimization .pyc files (kept: `import tensorflow` measured 3.1 s with them,
# 3.8 s without, in a fresh sandbox); -O and -OO variants are never used by a job.
_OPTIMIZED_PYC = re.compile(r"\.opt-\d\.pyc$")
# zstandard without its cffi backend (12 MB); the C backend is the default.
_ZSTANDARD_DROPPED = re.compile(r"^(_cffi\..*\.so|backend_cffi\.(py|cpython-.*\.pyc))$")

# Read by the interpreter's site.py at start: adds the job's site-packages with
# site.addsitedir, i.e. after the standard library and with .pth files processed, as a venv would.
SITE_HOOK_NAME = "_sweep_site.pth"
SITE_HOOK = (
    "import os, site; os.environ.get('SWEEP_SITE_PACKAGES') "
    "and site.addsitedir(os.environ['SWEEP_SITE_PACKAGES'])\n"
)


@dataclass
class Selection:
    """The chosen entries of one tree, in archive order (sorted, parents before children)."""

    root: Path  # archive names are relative to this folder
    relpaths: list[str] = field(default_factory=list)
    files: int = 0  # entries that are not directories
    unpacked_bytes: int = 0
    elf_candidates: list[Path] = field(default_factory=list)


def _is_elf_candidate(name: str, mode: int) -> bool:
    """Shared objects and executables; spares opening 30k .py files to read four bytes."""
    return ".so" in name or bool(mode & 0o111)


def select_tree(
    root: Path,
    top: str,
    keep_dir: Callable[[tuple[str, ...]], bool],
    keep_file: Callable[[tuple[str, ...]], bool],
) -> Selection:
    """Walk `root/top`, keeping what the predicates accept (they see path parts below `top`)."""
    selection = Selection(root=root)
    selection.relpaths.append(top)
    for dirpath, dirnames, filenames in os.walk(root / top):
        here = Path(dirpath)
        parts = here.relative_to(root / top).parts
        dirnames[:] = sorted(d for d in dirnames if keep_dir((*parts, d)))
        entries = sorted([*dirnames, *(f for f in filenames if keep_file((*parts, f)))])
        for name in entries:
            path = here / name
            info = path.lstat()
            selection.relpaths.append(path.relative_to(root).as_posix())
            if stat.S_ISDIR(info.st_mode):
                continue
            selection.files += 1
            selection.unpacked_bytes += info.st_size
            if stat.S_ISREG(info.st_mode) and _is_elf_candidate(name, info.st_mode):
                selection.elf_candidates.append(path)
    selection.relpaths.sort()
    return selection


def _distribution_name(dist_info: str) -> str:
    return dist_info.split("-", 1)[0].lower().replace("_", "-")


def _keep_site_dir(parts: tuple[str, ...]) -> bool:
    name = parts[-1]
    if len(parts) == 1:
        if name in _INSTALLER_TOOLING or name in _BUILD_ONLY_PACKAGES:
            return False
        if name.endswith(".dist-info") and _distribution_name(name) in _DROPPED_DISTRIBUTIONS:
            return False
    if parts in _DROPPED_SITE_DIRS:
        return False
    return not (name in _TEST_DIRS and parts[0] not in _TEST_DIRS_KEPT_UNDER)


def _keep_site_file(parts: tuple[str, ...]) -> bool:
    return not (len(parts) == 1 and parts[0] in _DROPPED_SITE_FILES)


def select_site_packages(site_dir: Path) -> Selection:
    """The venv's site-packages, slimmed; archive names start with `site-packages/`."""
    staged = site_dir.parent / SITE_DIR
    if site_dir != staged:
        raise ValueError(f"site-packages must be named {SITE_DIR}: {site_dir}")
    return select_tree(site_dir.parent, SITE_DIR, _keep_site_dir, _keep_site_file)


def _keep_stdlib_dir(parts: tuple[str, ...]) -> bool:
    name = parts[-1]
    if len(parts) == 1 and (name in _STDLIB_DROPPED_TOP or name.startswith(_STDLIB_CONFIG_PREFIX)):
        return False
    return name not in _STDLIB_TEST_DIRS


def _keep_stdlib_file(parts: tuple[str, ...]) -> bool:
    name = parts[-1]
    if len(parts) == 1 and name in _STDLIB_DROPPED_TOP:
        return False
    if parts[0] == "lib-dynload" and _DYNLOAD_DROPPED.match(name):
        return False
    return not _OPTIMIZED_PYC.search(name)


def _keep_zstandard_file(parts: tuple[str, ...]) -> bool:
    return not _OPTIMIZED_PYC.search(parts[-1]) and not _ZSTANDARD_DROPPED.match(parts[-1])


@dataclass(frozen=True)
class MemberStats:
    files: int  # entries that are not directories
    unpacked_bytes: int
    elf_candidates: list[Path]


def describe_members(members: list[Member]) -> MemberStats:
    files = size = 0
    candidates = []
    for member in members:
        info = member.source.lstat()
        if stat.S_ISDIR(info.st_mode):
            continue
        files += 1
        size += info.st_size
        if stat.S_ISREG(info.st_mode) and _is_elf_candidate(member.source.name, info.st_mode):
            candidates.append(member.source)
    return MemberStats(files=files, unpacked_bytes=size, elf_candidates=candidates)


def select_interpreter(base_prefix: Path, site_dir: Path, staging: Path) -> list[Member]:
    """The running base interpreter, slimmed, plus zstandard (from `site_dir`) and the site hook.

    Layout: python/bin/python3.X (+ python3, python links), python/lib/libpython3.X.so.1.0,
    python/lib/python3.X/ (stdlib, lib-dynload, site-packages/ with only zstandard and the hook).
    `staging` is an empty scratch folder for the generated members.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib_dir = base_prefix / "lib" / version
    if Path(sysconfig.get_paths()["stdlib"]).resolve() != stdlib_dir.resolve():
        raise PackError(
            f"cannot pack this interpreter: its standard library is {sysconfig.get_paths()['stdlib']}, "
            f"not {stdlib_dir} (only the PREFIX/bin + PREFIX/lib/{version} layout is relocatable here)"
        )
    members = _interpreter_binaries(base_prefix, version, staging)
    stdlib = select_tree(base_prefix / "lib", version, _keep_stdlib_dir, _keep_stdlib_file)
    members += [Member(stdlib.root / rel, f"{INTERPRETER_DIR}/lib/{rel}") for rel in stdlib.relpaths]
    site_arc = f"{INTERPRETER_DIR}/lib/{version}/site-packages"
    (staging / SITE_HOOK_NAME).write_text(SITE_HOOK, encoding="utf-8")
    members.append(Member(staging / SITE_HOOK_NAME, f"{site_arc}/{SITE_HOOK_NAME}"))
    for top in _zstandard_entries(site_dir):
        tree = select_tree(site_dir, top, lambda parts: True, _keep_zstandard_file)
        members += [Member(tree.root / rel, f"{site_arc}/{rel}") for rel in tree.relpaths]
    return members


def _interpreter_binaries(base_prefix: Path, version: str, staging: Path) -> list[Member]:
    executable = (base_prefix / "bin" / version).resolve()
    if not executable.is_file():
        raise PackError(f"the base interpreter has no {base_prefix / 'bin' / version}")
    members = [Member(executable, f"{INTERPRETER_DIR}/bin/{version}")]
    for alias in ("python3", "python"):
        (staging / alias).symlink_to(version)
        members.append(Member(staging / alias, f"{INTERPRETER_DIR}/bin/{alias}"))
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        soname = str(sysconfig.get_config_var("INSTSONAME"))
        members.append(Member(base_prefix / "lib" / soname, f"{INTERPRETER_DIR}/lib/{soname}"))
    return members


def _zstandard_entries(site_dir: Path) -> list[str]:
    """zstandard's package and dist-info in the installed site-packages."""
    dist_infos = sorted(p.name for p in site_dir.glob("zstandard-*.dist-info"))
    if not (site_dir / "zstandard").is_dir() or not dist_infos:
        raise PackError(
            "the locked requirements must pin zstandard: the job-side unpacker of the "
            "site-packages tarball runs on it, before anything else is unpacked"
        )
    return ["zstandard", *dist_infos]
