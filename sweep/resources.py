"""The files sweep ships and the folder it caches environments in, for a wheel and the checkout alike.

pyproject.toml maps the repository's submit_templates/ and envs/ into the package as
`sweep.submit_templates` and `sweep.envs`, so they are found with importlib.resources, never
beside a source file: an installed wheel has no repository around it.
"""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import jinja2

from sweep.errors import PackError

TEMPLATES_PACKAGE = "sweep.submit_templates"
ENVS_PACKAGE = "sweep.envs"
JOB_REQUIREMENTS = "requirements-job.txt"
ENV_CACHE_VARIABLE = "SWEEP_ENV_CACHE_DIR"


def templates() -> Traversable:
    """The folder of the built-in Jinja templates (the submit description, the job wrapper)."""
    return resources.files(TEMPLATES_PACKAGE)


def template_loader() -> jinja2.BaseLoader:
    """A Jinja loader over the built-in templates; reads them as resources when they are no folder (a zip)."""
    folder = templates()
    if isinstance(folder, Path):
        return jinja2.FileSystemLoader(folder)
    return jinja2.FunctionLoader(lambda name: _read_template(folder / name))


def _read_template(resource: Traversable) -> str | None:
    return resource.read_text(encoding="utf-8") if resource.is_file() else None  # None: TemplateNotFound


def job_requirements() -> Path:
    """The shipped lock file of the job environment: the default of `--requirements`."""
    return _on_disk(resources.files(ENVS_PACKAGE) / JOB_REQUIREMENTS, "the job environment's lock file")


def package_root() -> Path:
    """The folder that holds the `sweep` package (site-packages, or the checkout): the job code is packed from it."""
    return _on_disk(resources.files("sweep"), "the sweep package").parent


def _on_disk(resource: Traversable, what: str) -> Path:
    # pip reads the lock file by path and the job-code tarball lists real files: a zipped install cannot serve them
    if not isinstance(resource, Path):
        raise PackError(
            f"{what} is not a file on disk ({resource}); accepted: sweep installed unzipped (pip install)"
        )
    return resource


def default_env_cache() -> Path:
    """Where packed environments are kept: $SWEEP_ENV_CACHE_DIR, else ${XDG_CACHE_HOME:-~/.cache}/sweep/envs.

    Never beside the package: site-packages is no place for ~350 MB of tarballs and may be read-only.
    """
    configured = os.environ.get(ENV_CACHE_VARIABLE)
    if configured:
        return Path(configured).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = (
        Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    )  # the XDG spec ignores a relative value
    return base / "sweep" / "envs"
