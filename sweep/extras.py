"""Optional dependencies: which extra a command needs, and one clear error when it is not installed.

The core install runs every command but `report` (and `demo`, which ends with the report):
matplotlib and SciPy are large, so they come with `pip install 'sweep[report]'`. The `train` extra is
for running the training code in this interpreter (tests); jobs get it from the packed environment.
"""

from __future__ import annotations

from importlib.util import find_spec

from sweep.errors import MissingExtraError

# extra -> the modules it provides, as imported
EXTRAS: dict[str, tuple[str, ...]] = {"report": ("matplotlib", "scipy")}


def require_extra(extra: str, command: str) -> None:
    """MissingExtraError naming the extra unless all its modules can be imported (nothing is imported here)."""
    modules = EXTRAS[extra]
    missing = [module for module in modules if find_spec(module) is None]
    if missing:
        raise MissingExtraError(
            f"sweep {command} needs {' and '.join(modules)}: pip install 'sweep[{extra}]' "
            f"({', '.join(missing)} not installed)"
        )
