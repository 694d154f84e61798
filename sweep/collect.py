"""Job outputs + backend states -> one results table (results.parquet and results.csv).

One row per item, always: an item that failed, is still running or left a truncated
metrics.json becomes a row with its state and the problem named, never a crash. Collecting
is idempotent: the same sweep gives byte-identical files (rows sorted, no collect timestamp).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from analysis import columns
from sweep import names
from sweep.backends import get_backend
from sweep.fs import atomic_write_files
from sweep.state import ItemStatus, SweepDir, SweepManifest
from sweep.submission import open_settled_sweep

METRICS_SCHEMA = names.METRICS_SCHEMA
# the job's own timings (metrics.json "timings") behind each stage column
JOB_TIMINGS = {"t_import": "import", "t_load": "data_load", "t_train": "train", "t_evaluate": "evaluate", "t_export": "export"}
WRAPPER_UNPACK_KEYS = ("verify", "unpack_interpreter", "unpack_code", "unpack_site")


@dataclass(frozen=True)
class CollectResult:
    parquet: Path
    csv: Path
    rows: int
    counts: dict[str, int]
    problems: list[str]  # "item: problem" for every row whose outputs are missing or damaged


def collect_sweep(sweeps_dir: Path, name: str) -> CollectResult:
    sweep = open_settled_sweep(sweeps_dir, name)
    with sweep.locked():  # two collects at once: the second waits, then writes the same files
        manifest = sweep.load()
        statuses = get_backend(manifest.backend).poll(sweep, manifest)
        table = results_table(sweep, manifest, statuses)
        parquet, csv = sweep.path / names.RESULTS_PARQUET, sweep.path / names.RESULTS_CSV
        # one update: a full disk must not leave a new parquet beside the previous csv
        atomic_write_files({parquet: _parquet_bytes(table), csv: table.to_csv(index=False, lineterminator="\n").encode()})
    problems = [f"{row.item}: {row.output_problem}" for row in table.itertuples() if row.output_problem]
    counts = table["state"].value_counts().to_dict()
    return CollectResult(parquet=parquet, csv=csv, rows=len(table), counts=counts, problems=problems)


def results_table(sweep: SweepDir, manifest: SweepManifest, statuses: Mapping[str, ItemStatus]):  # -> pd.DataFrame
    import pandas as pd

    labels = [str(label) for label in manifest.data.get("labels", [])]  # type: ignore[union-attr]
    rows = [item_row(sweep, row, statuses[str(row["item"])], labels) for row in manifest.items]
    table = pd.DataFrame(rows, columns=result_columns(labels))
    table = table.sort_values(["fraction", "replica"], kind="stable").reset_index(drop=True)
    for column in ("exit_code", "exit_signal", "train_images", "train_patients", "auc_labels"):
        table[column] = table[column].astype("Int64")
    return table


def result_columns(labels: list[str]) -> list[str]:
    return [*columns.REQUIRED_COLUMNS, *(columns.label_column(label) for label in labels)]


def item_row(sweep: SweepDir, row: Mapping[str, object], status: ItemStatus, labels: list[str]) -> dict[str, object]:
    item = str(row["item"])
    out_dir = sweep.item_output(item)
    metrics, problem = read_metrics(out_dir, expect=status.state.value == "done")
    wrapper = _read_optional_json(out_dir / names.WRAPPER_TIMINGS)
    timings = metrics.get("timings", {}) if metrics else {}
    host = metrics.get("host", {}) if metrics else {}
    per_label = metrics.get("auc_per_label", {}) if metrics else {}
    model = out_dir / names.MODEL_KERAS
    return {
        "item": item,
        "fraction": float(str(row["fraction"])),
        "replica": int(str(row["replica"])),
        "seed": int(str(row["seed"])),
        "state": status.state.value,
        "reason": status.reason,
        "exit_code": status.exit_code,
        "exit_signal": status.exit_signal,
        "retries": status.retries,
        "host": status.host or host.get("hostname", ""),
        "microarch": host.get("machine_microarch") or status.microarch or host.get("microarch_measured", ""),
        "cpu_model": host.get("cpu_model", ""),
        "train_images": metrics.get("train_images", row.get("train_images")) if metrics else row.get("train_images"),
        "train_patients": metrics.get("train_patients", row.get("train_patients")) if metrics else row.get("train_patients"),
        "t_transfer": _number(status.transfer_seconds),
        "t_unpack": _sum_or_none(wrapper, WRAPPER_UNPACK_KEYS),
        **{column: _number(timings.get(key)) for column, key in JOB_TIMINGS.items()},
        "wall_time": _number(status.wall_time),
        "auc_macro": _number(metrics.get("auc_macro")) if metrics else None,
        "auc_labels": metrics.get("auc_labels_evaluated") if metrics else None,
        **{columns.label_column(label): _number(per_label.get(label)) for label in labels},
        "model_path": str(model.relative_to(sweep.path)) if metrics and model.is_file() else "",
        "output_problem": problem,
    }


def read_metrics(out_dir: Path, *, expect: bool) -> tuple[dict, str]:
    """metrics.json if it is whole and of our schema; otherwise {} and what is wrong with it."""
    path = out_dir / names.METRICS
    if not path.exists():
        return {}, f"{names.METRICS} missing" if expect else ""
    try:
        metrics = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return {}, f"{names.METRICS} truncated or not JSON"
    except OSError as error:
        return {}, f"{names.METRICS} unreadable ({error.strerror})"
    if not isinstance(metrics, dict) or metrics.get("schema") != METRICS_SCHEMA:
        found = metrics.get("schema") if isinstance(metrics, dict) else type(metrics).__name__
        return {}, f"{names.METRICS} has schema {found!r}, expected {METRICS_SCHEMA!r}"
    if not isinstance(metrics.get("auc_macro"), (int, float, type(None))):
        return {}, f"{names.METRICS} has a non-numeric auc_macro"
    return metrics, ""


def _read_optional_json(path: Path) -> dict:
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def _sum_or_none(payload: Mapping[str, object], keys: tuple[str, ...]) -> float | None:
    values = [_number(payload.get(key)) for key in keys]
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _parquet_bytes(table) -> bytes:  # table: pd.DataFrame
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()
