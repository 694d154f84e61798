"""Save the trained model as model.keras; convert a model to TFLite on request and prove it runs.

The TFLite model is what a small web service loads (the reference project deployed one on AWS
Lambda). Converting takes 5-20 s, often more than a small item's training, and only the served
model needs it: jobs write model.keras, and `export_tflite` converts one later (or a job asked
with --export tflite). The .tflite file is checked with ai-edge-litert's Interpreter
(tf.lite.Interpreter is deprecated) against Keras' own predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sweep import names

CHECK_IMAGES = 32
MAX_ABS_DIFFERENCE = 1e-3  # float32 TFLite vs Keras on the same inputs: ~1e-6 in practice
FORMATS = ("tflite",)


def save_keras(model: Any, out: Path) -> dict[str, int]:
    path = out / names.MODEL_KERAS
    model.save(path)
    return {"keras_bytes": path.stat().st_size}


def convert_tflite(model: Any, dest: Path, sample: np.ndarray) -> dict[str, float | int]:
    """Write dest as TFLite and check it against the Keras model on up to CHECK_IMAGES of sample."""
    model.export(str(dest), format="litert", verbose=False)
    images = sample[:CHECK_IMAGES]
    difference = float(np.abs(run_tflite(dest, images) - model.predict(images, verbose=0)).max())
    if difference > MAX_ABS_DIFFERENCE:
        dest.unlink()  # a model that disagrees must not be served
        raise RuntimeError(
            f"{dest.name} disagrees with the Keras model by {difference:.2e} (> {MAX_ABS_DIFFERENCE})"
        )
    return {
        "tflite_bytes": dest.stat().st_size,
        "tflite_images_checked": len(images),
        "tflite_max_abs_difference": difference,
    }


def export_tflite(model_keras: Path, dest: Path, sample: np.ndarray | None = None) -> Path:
    """Convert a saved model.keras to a checked .tflite file; sample: images to compare on (default: random)."""
    import keras

    from sweep.job import model as _registers_the_loss  # noqa: F401 - model.keras names our loss class

    model = keras.models.load_model(model_keras, compile=False)
    if sample is None:
        shape = tuple(model.inputs[0].shape[1:])
        sample = np.random.default_rng(0).integers(0, 256, (CHECK_IMAGES, *shape), dtype=np.uint8)
    convert_tflite(model, dest, sample)
    return dest


def run_tflite(path: Path, images: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(source["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], images.astype(source["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(target["index"])
