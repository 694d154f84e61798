"""Writing the report's files: never a half-written file, and a clear error when the folder is unusable."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sweep.errors import AnalysisError

# The files of a report folder (sweep/names.py names the folder itself).
REPORT_HTML = "report.html"
SUMMARY_CSV = "summary.csv"
LEARNING_CURVE_PNG = "learning-curve.png"
PER_LABEL_PNG = "per-label-auc.png"
RUNTIME_PNG = "runtime.png"
MACHINES_PNG = "machines.png"


def prepare_out_dir(out_dir: Path) -> Path:
    """Create `out_dir` if needed and prove it writable; AnalysisError naming it otherwise.

    Probing with a real file catches what permission bits do not (read-only mounts, running as root).
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise AnalysisError(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from exc
    return out_dir


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write to a temporary file beside `path`, fsync, then rename over it: readers see old or new, never half."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be read by others
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise AnalysisError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
