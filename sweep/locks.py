"""The lock file of the job environment: its entries, the check that it is hashed, the command that
makes one, and installing it into a venv with pip --require-hashes (which enforces the rest).
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

from sweep.envfiles import SITE_DIR
from sweep.envtypes import Progress
from sweep.errors import PackError


def locked_lines(requirements: Path) -> list[str]:
    """The requirements as pip reads them: one entry per requirement, its `\\`-continued --hash lines
    joined, comments and blanks dropped. Editing the header or uv's `# via` notes keeps the key."""
    try:
        text = requirements.read_text(encoding="utf-8")
    except OSError as error:
        raise PackError(f"cannot read the requirements file {requirements}: {error.strerror}") from error
    entries: list[str] = []
    pending: list[str] = []
    for raw in text.splitlines():
        line = "" if raw.lstrip().startswith("#") else raw.split(" #", 1)[0].strip()
        pending += line.removesuffix("\\").split()
        if not line.endswith("\\") and pending:
            entries.append(" ".join(pending))
            pending = []
    return entries + ([" ".join(pending)] if pending else [])


# The target of the job's lock (scripts/lock): CPython of this version on Linux x86-64, glibc >= 2.28.
LOCK_PLATFORM = "x86_64-manylinux_2_28"


def lock_command(requirements: Path) -> str:
    """The one command that makes a hashed lock of `requirements` from a file of the direct needs."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return (
        f"uv pip compile --generate-hashes --python-version {version} --python-platform {LOCK_PLATFORM} "
        f"NEEDS.in -o {requirements} (sweep's own lock: `make lock-job`, see envs/README.md)"
    )


def check_hashed(requirements: Path) -> None:
    """Refuse a file that is no hashed lock before a venv is made; pip --require-hashes enforces the rest
    (every requirement pinned with ==, every dependency listed, every download matching a hash)."""
    entries = locked_lines(requirements)  # those starting with "-" are options (-c, --index-url)
    bare = [entry for entry in entries if not entry.startswith("-") and "--hash=" not in entry]
    if bare:
        raise PackError(
            f"{requirements} is not a hashed lock: {len(bare)} requirement(s) have no --hash "
            f"({', '.join(bare[:3])}); `sweep pack` installs with pip --require-hashes. "
            f"Make one with: {lock_command(requirements)}"
        )


def install_lock(requirements: Path, venv: Path, report: Progress) -> Path:
    """A fresh venv of the running base interpreter with exactly the locked packages.

    Not --no-deps: pip resolves each requirement's dependencies, and in --require-hashes mode refuses
    one the lock does not pin and hash, so an incomplete lock fails here instead of in a job.
    """
    report(f"creating a venv of Python {platform.python_version()}")
    _run([sys.executable, "-m", "venv", str(venv)], what=f"python -m venv {venv}", requirements=requirements)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    report(f"installing {requirements} with pip (a few minutes when the pip cache is cold)")
    try:
        _run([*pip, "install", "--require-hashes", "-r", str(requirements)], what="pip install",
             requirements=requirements)  # fmt: skip
    except PackError as error:
        if "--require-hashes mode" not in str(error):  # pip's words for an unpinned or unhashed dependency
            raise
        raise PackError(f"{error}\n{requirements} is not a complete hashed lock; make one with: "
                        f"{lock_command(requirements)}") from None  # fmt: skip
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return venv / "lib" / version / SITE_DIR


def _run(command: list[str], *, what: str, requirements: Path) -> str:
    result = subprocess.run(command, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise PackError(
            f"{what} failed for {requirements} (exit {result.returncode}):\n"
            + _last_error_lines(result.stdout + result.stderr)
        )
    return result.stdout


def _last_error_lines(output: str, count: int = 12) -> str:
    """pip's ERROR lines with the indented ones under them (the requirements they name), else its
    last lines that are not warnings."""
    lines = [line for line in output.splitlines() if line.strip()]
    errors: list[str] = []
    under_error = False
    for line in lines:
        under_error = line.startswith("ERROR") or (under_error and line.startswith(" "))
        if under_error:
            errors.append(line)
    if errors:
        more = f"\n(and {len(errors) - count} more lines)" if len(errors) > count else ""
        return "\n".join(errors[:count]) + more
    return "\n".join(([line for line in lines if not line.startswith("WARNING")] or lines)[-count:])
