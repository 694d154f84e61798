"""Where jobs run: one protocol, an embedded local backend and HTCondor."""

from __future__ import annotations

from sweep.backends.base import Backend
from sweep.errors import SpecError


def get_backend(settings: dict[str, str]) -> Backend:
    """The backend a sweep manifest names ({"name": "local"} or {"name": "condor", ...})."""
    name = settings.get("name")
    if name == "local":
        from sweep.backends.local import LocalBackend

        return LocalBackend()
    if name == "condor":
        from sweep.backends.condor import CondorBackend

        return CondorBackend(schedd=settings.get("schedd") or None, pool=settings.get("pool") or None)
    raise SpecError(f"backend {name!r} is unknown; accepted: local, condor")
