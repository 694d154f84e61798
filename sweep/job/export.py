"""Save the trained model as model.keras and model.tflite, and prove the TFLite file runs.

The TFLite model is what a small web service would load (the reference project deployed one on
AWS Lambda); it is checked with ai-edge-litert's Interpreter (tf.lite.Interpreter is deprecated)
against Keras' own predictions on a few test images.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from sweep import names

CHECK_IMAGES = 32
MAX_ABS_DIFFERENCE = 1e-3  # float32 TFLite vs Keras on the same inputs: ~1e-6 in practice


def export_models(model: keras.Model, out: Path, sample: np.ndarray) -> dict[str, float | int]:
    keras_path, tflite_path = out / names.MODEL_KERAS, out / names.MODEL_TFLITE
    model.save(keras_path)
    model.export(str(tflite_path), format="litert", verbose=False)
    images = sample[:CHECK_IMAGES]
    difference = float(np.abs(run_tflite(tflite_path, images) - model.predict(images, verbose=0)).max())
    if difference > MAX_ABS_DIFFERENCE:
        raise RuntimeError(
            f"{tflite_path.name} disagrees with the Keras model by {difference:.2e} (> {MAX_ABS_DIFFERENCE})"
        )
    return {
        "keras_bytes": keras_path.stat().st_size,
        "tflite_bytes": tflite_path.stat().st_size,
        "tflite_images_checked": len(images),
        "tflite_max_abs_difference": difference,
    }


def run_tflite(path: Path, images: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_path=str(path))
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(source["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], images.astype(source["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(target["index"])
