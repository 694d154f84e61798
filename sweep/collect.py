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

from sweep import names
from sweep import results_schema as C
from sweep.backends import get_backend
from sweep.fs import atomic_write_files
from sweep.recovery import open_settled_sweep
from sweep.state import ItemState, ItemStatus, SweepDir, SweepManifest

METRICS_SCHEMA = names.METRICS_SCHEMA
# the job's own timings (metrics.json "timings") behind each stage column
JOB_TIMINGS = {
    C.T_IMPORT: "import",
    C.T_LOAD: "data_load",
    C.T_TRAIN: "train",
    C.T_EVALUATE: "evaluate",
    C.T_EXPORT: "export",
    C.T_TRAIN_FIRST_EPOCH: "train_first_epoch",
    C.T_TRAIN_STEADY: "train_steady",
}
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
        atomic_write_files(
            {parquet: _parquet_bytes(table), csv: table.to_csv(index=False, lineterminator="\n").encode()}
        )
    problems = [f"{row.item}: {row.output_problem}" for row in table.itertuples() if row.output_problem]
    counts = table[C.STATE].value_counts().to_dict()
    return CollectResult(parquet=parquet, csv=csv, rows=len(table), counts=counts, problems=problems)


def results_table(
    sweep: SweepDir, manifest: SweepManifest, statuses: Mapping[str, ItemStatus]
):  # -> pd.DataFrame
    import pandas as pd

    labels = manifest.labels
    rows = [item_row(sweep, row, statuses[str(row["item"])], labels) for row in manifest.items]
    table = pd.DataFrame(rows, columns=C.result_columns(labels))
    table = table.sort_values([C.FRACTION, C.REPLICA], kind="stable").reset_index(drop=True)
    for column in (C.EXIT_CODE, C.EXIT_SIGNAL, C.TRAIN_IMAGES, C.TRAIN_PATIENTS, C.AUC_LABELS):
        table[column] = table[column].astype("Int64")
    return table


def item_row(
    sweep: SweepDir, row: Mapping[str, object], status: ItemStatus, labels: list[str]
) -> dict[str, object]:
    item = str(row["item"])
    out_dir = sweep.item_output(item)
    metrics, problem = read_metrics(out_dir, expect=status.state is ItemState.DONE)
    wrapper = _read_optional_json(out_dir / names.WRAPPER_TIMINGS)
    timings = metrics.get("timings", {}) if metrics else {}
    host = metrics.get("host", {}) if metrics else {}
    per_label = metrics.get("auc_per_label", {}) if metrics else {}
    model = out_dir / names.MODEL_KERAS
    return C.result_row(
        {
            C.ITEM: item,
            C.FRACTION: float(str(row["fraction"])),
            C.REPLICA: int(str(row["replica"])),
            C.SEED: int(str(row["seed"])),
            C.STATE: status.state.value,
            C.REASON: status.reason,
            C.EXIT_CODE: status.exit_code,
            C.EXIT_SIGNAL: status.exit_signal,
            C.RETRIES: status.retries,
            C.HOST: status.host or host.get("hostname", ""),
            C.MICROARCH: host.get("machine_microarch")
            or status.microarch
            or host.get("microarch_measured", ""),
            C.CPU_MODEL: host.get("cpu_model", ""),
            C.TRAIN_IMAGES: metrics.get("train_images", row.get("train_images"))
            if metrics
            else row.get("train_images"),
            C.TRAIN_PATIENTS: metrics.get("train_patients", row.get("train_patients"))
            if metrics
            else row.get("train_patients"),
            C.T_TRANSFER: _number(status.transfer_seconds),
            C.T_UNPACK: _sum_or_none(wrapper, WRAPPER_UNPACK_KEYS),
            **{column: _number(timings.get(key)) for column, key in JOB_TIMINGS.items()},
            C.WALL_TIME: _number(status.wall_time),
            C.AUC_MACRO: _number(metrics.get("auc_macro")) if metrics else None,
            C.AUC_LABELS: metrics.get("auc_labels_evaluated") if metrics else None,
            **{C.label_column(label): _number(per_label.get(label)) for label in labels},
            C.MODEL_PATH: str(model.relative_to(sweep.path)) if metrics and model.is_file() else "",
            C.OUTPUT_PROBLEM: problem,
        },
        labels,
    )


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
