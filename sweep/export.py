"""Convert a finished item's model.keras to another format, on the submit side (`sweep export`, `sweep serve`).

Jobs no longer convert their model: only the served one needs TFLite, and the conversion
(5-20 s) was a large share of every small item. The code is the job's own (sweep.job.export),
so a job asked with --export tflite and a later conversion give the same checked file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sweep import names
from sweep.errors import StateError, SweepError


def export_tflite(model_keras: Path, dest: Path, sample: np.ndarray | None = None) -> Path:
    """model.keras -> dest (.tflite), checked with LiteRT against Keras; returns dest.

    sample: images (uint8, the model's input shape) to compare on; default: 32 random images.
    Raises SweepError if model.keras is missing; RuntimeError if the converted model disagrees.
    """
    if not model_keras.is_file():
        raise SweepError(f"{model_keras} does not exist: accepted: a model.keras a finished item wrote")
    from sweep.job import export

    dest.parent.mkdir(parents=True, exist_ok=True)
    return export.export_tflite(model_keras, dest, sample)


def export_item(sweeps_dir: Path, name: str, item: str, dest: Path | None = None) -> Path:
    """Convert the model of one finished item of a sweep to TFLite; default dest: beside its model.keras."""
    from sweep.recovery import open_settled_sweep

    sweep = open_settled_sweep(sweeps_dir, name)
    items = sweep.load().item_names
    if item not in items:
        shown = ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
        raise StateError(f"sweep {name!r} has no item {item!r}; accepted: one of {shown}")
    model = sweep.item_output(item) / names.MODEL_KERAS
    if not model.is_file():
        raise StateError(
            f"item {item!r} of sweep {name!r} has no {names.MODEL_KERAS} (is it done? see "
            f"`sweep status {name}`); accepted: a finished item"
        )
    return export_tflite(model, dest or model.with_name(names.MODEL_TFLITE))
