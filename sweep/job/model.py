"""The CNN and its imbalance-aware loss (weights from sweep.job.imbalance)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

MIN_FEATURE_SIDE = 4
SCORING_BATCH = 256
BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="sweep")
class BalancedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy on probabilities with per-label weights for positives and negatives."""

    def __init__(
        self,
        pos_weights: Sequence[float],
        neg_weights: Sequence[float],
        name: str = "balanced_bce",
        **kwargs: object,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.pos_weights = [float(w) for w in pos_weights]
        self.neg_weights = [float(w) for w in neg_weights]

    def call(self, y_true, y_pred):
        ops = keras.ops
        y_true = ops.cast(y_true, y_pred.dtype)
        p = ops.clip(y_pred, keras.backend.epsilon(), 1 - keras.backend.epsilon())
        pos = ops.convert_to_tensor(np.asarray(self.pos_weights, dtype="float32"))
        neg = ops.convert_to_tensor(np.asarray(self.neg_weights, dtype="float32"))
        per_label = -(pos * y_true * ops.log(p) + neg * (1 - y_true) * ops.log(1 - p))
        return ops.mean(per_label, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "pos_weights": self.pos_weights, "neg_weights": self.neg_weights}


def build_model(image_size: int, labels: int, seed: int) -> keras.Model:
    """A small CNN (~300k parameters at 64 px): conv blocks down to ~4 px, then mean and max pooling.

    Batch normalisation with momentum 0.9 (not Keras' 0.99): a 10 % job takes only a few dozen
    steps, and slow moving statistics would make small fractions look worse for a reason that is
    not data. Max pooling next to mean pooling lets a small bright spot (a nodule) count.
    """
    initializer = keras.initializers.HeNormal(seed=seed)
    inputs = keras.Input((image_size, image_size, 1), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    filters, side = 16, image_size
    while side // 2 >= MIN_FEATURE_SIDE:
        for _ in range(2):
            x = keras.layers.Conv2D(
                filters, 3, padding="same", use_bias=False, kernel_initializer=initializer
            )(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
        filters, side = min(filters * 2, 128), side // 2
    pooled = keras.layers.Concatenate()(
        [keras.layers.GlobalAveragePooling2D()(x), keras.layers.GlobalMaxPooling2D()(x)]
    )
    pooled = keras.layers.Dropout(0.2, seed=seed)(pooled)
    outputs = keras.layers.Dense(labels, activation="sigmoid", name="findings")(pooled)
    return keras.Model(inputs, outputs, name="sweep_cnn")


def compile_model(
    model: keras.Model, pos_weights: Sequence[float], neg_weights: Sequence[float], learning_rate: float
) -> None:
    """No training metric: Keras' multi-label AUC on every batch made the first epoch (tracing) ~2 s
    longer on 2 cores (measured, noisy; no steady-state difference measurable), for a running
    training-set figure nobody read; validation AUC is computed after each epoch by ValidationScores."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=BalancedBinaryCrossentropy(pos_weights, neg_weights),
    )


class EpochTimer(keras.callbacks.Callback):
    """Each epoch's training wall time, for history.csv and the first-epoch/steady-state timings.

    Put it first among the callbacks: it then stops before the validation callback runs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._began = 0.0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._began = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.seconds.append(time.perf_counter() - self._began)


def balanced_bce(
    truth: np.ndarray, scores: np.ndarray, pos_weights: Sequence[float], neg_weights: Sequence[float]
) -> float:
    """BalancedBinaryCrossentropy in numpy, averaged over images: the same number Keras' val_loss was."""
    eps = keras.backend.epsilon()
    p = np.clip(scores.astype(np.float64), eps, 1 - eps)
    pos, neg = np.asarray(pos_weights), np.asarray(neg_weights)
    return float(np.mean(-(pos * truth * np.log(p) + neg * (1 - truth) * np.log(1 - p))))


Scorer = Callable[[np.ndarray], np.ndarray]


def scorer(model: keras.Model) -> Scorer:
    """Images -> scores through one traced inference-mode forward pass, for any number of images.

    model.predict builds an input pipeline and an epoch iterator on every call (~0.3 s each): too
    much to validate after every epoch of a small item. Batch dimension left open: traced once.
    """
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype)
    forward = tf.function(lambda images: model(images, training=False), input_signature=[spec])

    def score(images: np.ndarray) -> np.ndarray:
        parts = [
            forward(images[start : start + SCORING_BATCH]).numpy()
            for start in range(0, len(images), SCORING_BATCH)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, model.outputs[0].shape[-1]), np.float32)

    return score


class ValidationScores(keras.callbacks.Callback):
    """val_loss and val_auc after every epoch, from one traced forward pass over the validation images.

    Replaces fit(validation_data=arrays): that built a new input pipeline every epoch and traced a
    separate test function; the same scorer later scores the test split.
    val_auc is scikit-learn's macro ROC AUC over labels with both classes (the report's definition).
    """

    def __init__(
        self,
        score: Scorer,
        images: np.ndarray,
        truth: np.ndarray,
        pos_weights: Sequence[float],
        neg_weights: Sequence[float],
    ) -> None:
        super().__init__()
        self.score, self.images, self.truth = score, images, truth.astype(np.float64)
        self.pos_weights, self.neg_weights = list(pos_weights), list(neg_weights)
        self.scores = np.zeros(truth.shape, np.float32)  # of the last epoch: the final model's
        self.seconds: list[float] = []

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        began = time.perf_counter()
        self.scores = self.score(self.images)
        if logs is not None:  # the same dict History records
            logs["val_loss"] = balanced_bce(self.truth, self.scores, self.pos_weights, self.neg_weights)
            logs["val_auc"] = macro_auc(self.truth, self.scores)
        self.seconds.append(time.perf_counter() - began)


def macro_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    usable = [c for c in range(truth.shape[1]) if 0 < truth[:, c].sum() < len(truth)]
    return (
        float(np.mean([roc_auc_score(truth[:, c], scores[:, c]) for c in usable])) if usable else float("nan")
    )
