"""Render the job wrapper shell script: template in, text out, nothing else.

Every value that enters the script is checked against a narrow pattern first, so the
template can place it between single quotes without any further escaping.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import jinja2

from sweep import names, resources
from sweep.envfiles import INTERPRETER_DIR, SITE_DIR
from sweep.errors import RenderError

WRAPPER_TEMPLATE = "job_wrapper.sh.j2"
JOB_MODULE = "sweep.job"

_TARBALL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"\d+(\.\d+)+")
_CPU_FLAG = re.compile(r"[a-z0-9_]+")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class NamedArchive(Protocol):
    """What the wrapper needs of a tarball (sweep.pack.Tarball has it)."""

    @property
    def name(self) -> str: ...

    @property
    def sha256(self) -> str: ...


def _checked(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.fullmatch(value):
        raise RenderError(f"cannot put {what} {value!r} into the job wrapper: expected {pattern.pattern}")
    return value


def _archive(archive: NamedArchive, what: str) -> dict[str, str]:
    return {
        "name": _checked(archive.name, _TARBALL_NAME, f"the {what} tarball name"),
        "sha256": _checked(archive.sha256, _SHA256, f"the {what} sha256"),
    }


def render_job_wrapper(
    interpreter: NamedArchive,
    site_packages: NamedArchive,
    code: NamedArchive,
    glibc_min: str,
    python_version: str,
    required_cpu_flags: Sequence[str],
    *,
    job_module: str = JOB_MODULE,
) -> str:
    """The job wrapper script for these tarballs (POSIX sh; see the template's header)."""
    environment = jinja2.Environment(
        loader=resources.template_loader(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # shell, not HTML; values are pattern-checked above
        keep_trailing_newline=True,
    )
    values = {
        "interpreter": _archive(interpreter, "interpreter"),
        "site_packages": _archive(site_packages, "site-packages"),
        "code": _archive(code, "code"),
        "glibc_min": _checked(glibc_min, _VERSION, "the minimum glibc"),
        "python_version": _checked(python_version, _VERSION, "the Python version"),
        "required_cpu_flags": [_checked(flag, _CPU_FLAG, "the CPU flag") for flag in required_cpu_flags],
        "job_module": _checked(job_module, _MODULE, "the job module"),
        "output_dir": names.JOB_OUTPUT_DIR,
        "timings_file": names.WRAPPER_TIMINGS,
        "error_file": names.ERROR,
        "sigill_exit_code": names.SIGILL_EXIT_CODE,
        "interpreter_dir": INTERPRETER_DIR,
        "site_dir": SITE_DIR,
    }
    try:
        return environment.get_template(WRAPPER_TEMPLATE).render(values)
    except jinja2.TemplateError as error:
        raise RenderError(f"the job wrapper template cannot be rendered: {error}") from error
