"""Write a whole output folder or nothing: build it in a temporary sibling, rename at the end.

A sibling (same parent, same file system) keeps the final rename atomic, so a crash or Ctrl-C
leaves either no OUT or a complete one, never a half-written folder that looks usable.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sweep.errors import DataError


def refuse_existing_output(out: Path) -> None:
    """OUT may be absent or an empty folder; anything else would be overwritten."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise DataError(f"output {out} exists and is not a folder; choose a new path")
    if out.is_dir() and any(out.iterdir()):
        raise DataError(
            f"output folder {out} is not empty; refusing to overwrite it (choose a new path or remove it)"
        )


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside OUT; on success it becomes OUT, on any failure it vanishes."""
    refuse_existing_output(out)
    parent = out.absolute().parent
    if not parent.is_dir():
        raise DataError(f"the parent folder of {out} does not exist; create {parent} first")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    except OSError as error:
        raise DataError(
            f"cannot write {out}: {error.strerror}; accepted: a new folder in a folder you can write to"
        ) from None
    try:
        yield staging
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700; the result is an ordinary folder
        if out.is_dir():
            out.rmdir()  # an empty OUT (checked above) is replaced, as documented
        os.rename(staging, out)
    except OSError as error:  # e.g. the disk filled up: say so instead of a traceback
        shutil.rmtree(staging, ignore_errors=True)
        raise DataError(f"writing {out} failed ({error.strerror or error}); nothing was left there") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
