"""The results table's column names and state values: the contract between `sweep collect` and the report.

`sweep collect` writes one row per item (fraction x replica) with these columns; the report reads
them. Both sides import the names from here so that a rename breaks loudly in one place.
Pure constants (plus two tiny helpers for the per-label columns): no heavy imports.
"""

from __future__ import annotations

from typing import Final

# --- identity of an item
ITEM: Final = "item"  # str, e.g. "f0.1_r0"
FRACTION: Final = "fraction"  # float in (0, 1]
REPLICA: Final = "replica"  # int
SEED: Final = "seed"  # int

# --- what happened to it
STATE: Final = "state"  # str, one of STATES
REASON: Final = "reason"  # str in plain words, "" when none
EXIT_CODE: Final = "exit_code"  # nullable Int64
EXIT_SIGNAL: Final = "exit_signal"  # nullable Int64
RETRIES: Final = "retries"  # int

# --- where it ran ("" for items that never ran)
HOST: Final = "host"
MICROARCH: Final = "microarch"  # e.g. "x86_64-v3"
CPU_MODEL: Final = "cpu_model"

# --- size of the item's training set (nullable Int64)
TRAIN_IMAGES: Final = "train_images"
TRAIN_PATIENTS: Final = "train_patients"

# --- stage timings in seconds (nullable float), in the order the job runs them
T_TRANSFER: Final = "t_transfer"
T_UNPACK: Final = "t_unpack"
T_IMPORT: Final = "t_import"
T_LOAD: Final = "t_load"
T_TRAIN: Final = "t_train"
T_EVALUATE: Final = "t_evaluate"
T_EXPORT: Final = "t_export"
STAGE_COLUMNS: Final = (T_TRANSFER, T_UNPACK, T_IMPORT, T_LOAD, T_TRAIN, T_EVALUATE, T_EXPORT)
WALL_TIME: Final = "wall_time"  # the whole job, seconds

# --- evaluation
AUC_MACRO: Final = "auc_macro"  # float, NaN when not done
AUC_LABELS: Final = "auc_labels"  # number of labels that could be evaluated
LABEL_AUC_PREFIX: Final = "auc_"  # one column per label: auc_<Label>, NaN where not evaluable

# --- outputs
MODEL_PATH: Final = "model_path"
OUTPUT_PROBLEM: Final = "output_problem"  # "" or e.g. "metrics.json truncated"

# Every column the report needs, in the order collect writes them; per-label columns follow these.
REQUIRED_COLUMNS: Final = (
    ITEM,
    FRACTION,
    REPLICA,
    SEED,
    STATE,
    REASON,
    EXIT_CODE,
    EXIT_SIGNAL,
    RETRIES,
    HOST,
    MICROARCH,
    CPU_MODEL,
    TRAIN_IMAGES,
    TRAIN_PATIENTS,
    *STAGE_COLUMNS,
    WALL_TIME,
    AUC_MACRO,
    AUC_LABELS,
    MODEL_PATH,
    OUTPUT_PROBLEM,
)

# Columns holding strings ("" for none); every other required column holds numbers (nullable ones
# included), and so do the per-label AUC columns.
STRING_COLUMNS: Final = (ITEM, STATE, REASON, HOST, MICROARCH, CPU_MODEL, MODEL_PATH, OUTPUT_PROBLEM)
NUMERIC_COLUMNS: Final = tuple(c for c in REQUIRED_COLUMNS if c not in STRING_COLUMNS)

# --- values of STATE
IDLE: Final = "idle"
RUNNING: Final = "running"
HELD: Final = "held"
DONE: Final = "done"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
STATES: Final = (IDLE, RUNNING, HELD, DONE, FAILED, CANCELLED)
PENDING_STATES: Final = (IDLE, RUNNING)  # may still finish: the sweep is partial, not failed

# Columns whose names start with the label prefix but are not labels.
_NOT_LABELS: Final = frozenset({AUC_MACRO, AUC_LABELS})


def label_column(label: str) -> str:
    """The per-label AUC column of `label`, e.g. "Pleural_Thickening" -> "auc_Pleural_Thickening"."""
    return f"{LABEL_AUC_PREFIX}{label}"


def label_columns(columns: list[str] | tuple[str, ...]) -> list[str]:
    """The per-label AUC columns among `columns`, in their order."""
    return [c for c in columns if c.startswith(LABEL_AUC_PREFIX) and c not in _NOT_LABELS]
