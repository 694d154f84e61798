"""What a job leaves in its output folder, each file written whole (temp + rename).

metrics.json is written last: its presence means the job finished. error.json is written instead
when anything failed, saying in which stage and why.
"""

from __future__ import annotations

import csv
import io
import json
import os
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sweep import names


def write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def write_json(path: Path, payload: Mapping) -> None:
    write_atomic(path, (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode())


def write_metrics(out: Path, metrics: Mapping) -> None:
    write_json(out / names.METRICS, {"schema": names.METRICS_SCHEMA, **metrics})


def write_error(out: Path, stage: str, error: BaseException) -> None:
    write_json(
        out / names.ERROR,
        {
            "schema": names.ERROR_SCHEMA,
            "stage": stage,
            "type": type(error).__name__,
            "message": str(error),
            "traceback": "".join(traceback.format_exception(error)),
        },
    )


def write_history(out: Path, history: Mapping[str, Sequence[float]], epoch_seconds: Sequence[float]) -> None:
    """One row per epoch: the Keras logs (loss, auc, val_loss, val_auc) and the epoch's wall time."""
    columns = sorted(history)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["epoch", *columns, "seconds"])
    for epoch, seconds in enumerate(epoch_seconds):
        writer.writerow([epoch + 1, *(f"{history[c][epoch]:.6g}" for c in columns), f"{seconds:.3f}"])
    write_atomic(out / names.HISTORY, text.getvalue().encode())


def write_predictions(out: Path, arrays: Mapping[str, Any]) -> None:  # name -> numpy array
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(out / names.PREDICTIONS, buffer.getvalue())
