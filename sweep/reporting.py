"""`sweep report`: a sweep's collected results and manifest -> sweep.analysis.build_report.

The analysis package knows nothing of sweep directories; this module hands it the results
table and the facts of the sweep (spec, environment hashes, data manifest summary).
"""

from __future__ import annotations

from pathlib import Path

from sweep import names
from sweep.errors import StateError
from sweep.state import SweepManifest, open_sweep


def sweep_info(manifest: SweepManifest) -> dict[str, object]:
    spec = manifest.spec.to_dict()
    spec["backend"] = manifest.backend.get("name")
    return {"name": manifest.name, "spec": spec, "env": manifest.env, "data": manifest.data}


def report_sweep(
    sweeps_dir: Path, name: str, *, out_dir: Path | None = None, target_auc: float = 0.75
):  # -> ReportSummary
    """Write report.html, the PNGs and summary.csv for a collected sweep (collect first if it never was)."""
    import pandas as pd

    from sweep.analysis.report import build_report
    from sweep.collect import collect_sweep

    sweep = open_sweep(sweeps_dir, name)
    results_path = sweep.path / names.RESULTS_PARQUET
    if not results_path.is_file():
        collect_sweep(sweeps_dir, name)
    try:
        results = pd.read_parquet(results_path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise StateError(
            f"{results_path} cannot be read ({error}); run `sweep collect {name}` again"
        ) from None
    return build_report(
        results, sweep_info(sweep.load()), out_dir or sweep.path / names.REPORT_DIR, target_auc=target_auc
    )
