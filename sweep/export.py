"""Convert a finished item's model.keras to another format, on the submit side (`sweep export`, `sweep serve`).

Jobs no longer convert their model: only the served one needs TFLite, and the conversion
(5-20 s) was a large share of every small item. The code is the job's own (sweep.job.export),
so a job asked with --export tflite and a later conversion give the same checked file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sweep.errors import SweepError


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
