"""Writing the report's files: never a half-written file, and a clear error when the folder is unusable."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sweep.errors import AnalysisError
from sweep.fs import atomic_write_bytes

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
    atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)
    return path
