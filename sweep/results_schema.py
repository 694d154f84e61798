"""The results table's schema: column names, item states, and the one way to make a row.

`sweep collect` writes one row per item (fraction x replica) with these columns and the report
reads them; both import the names from here. A row is made with `result_row`, which refuses an
unknown or a missing key: pandas would silently drop the first and leave the second empty, so a
rename on one side would give an empty column instead of an error.
Pure constants and small helpers: no heavy imports (the job side and the CLI may load it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
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
# the train stage split (part of T_TRAIN, not another stage): the first epoch carries tracing and the
# pipeline's first pass, the later epochs are the per-image cost
T_TRAIN_FIRST_EPOCH: Final = "t_train_first_epoch"
T_TRAIN_STEADY: Final = "t_train_steady"

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
    T_TRAIN_FIRST_EPOCH,
    T_TRAIN_STEADY,
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

# --- values of STATE: the item states, the same words on every backend


class ItemState(StrEnum):
    IDLE = "idle"  # waiting for a slot
    RUNNING = "running"
    HELD = "held"  # stopped by a policy (e.g. SIGILL); needs a person: resubmit or cancel
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (ItemState.DONE, ItemState.FAILED, ItemState.CANCELLED)

    @property
    def is_settled(self) -> bool:
        """Nothing more will happen without a person: terminal, or held."""
        return self.is_terminal or self is ItemState.HELD


IDLE: Final = ItemState.IDLE.value
RUNNING: Final = ItemState.RUNNING.value
HELD: Final = ItemState.HELD.value
DONE: Final = ItemState.DONE.value
FAILED: Final = ItemState.FAILED.value
CANCELLED: Final = ItemState.CANCELLED.value
STATES: Final = tuple(state.value for state in ItemState)
PENDING_STATES: Final = (IDLE, RUNNING)  # may still finish: the sweep is partial, not failed

# Columns whose names start with the label prefix but are not labels.
_NOT_LABELS: Final = frozenset({AUC_MACRO, AUC_LABELS})


def label_column(label: str) -> str:
    """The per-label AUC column of `label`, e.g. "Pleural_Thickening" -> "auc_Pleural_Thickening"."""
    return f"{LABEL_AUC_PREFIX}{label}"


def label_columns(columns: list[str] | tuple[str, ...]) -> list[str]:
    """The per-label AUC columns among `columns`, in their order."""
    return [c for c in columns if c.startswith(LABEL_AUC_PREFIX) and c not in _NOT_LABELS]


def result_columns(labels: Sequence[str]) -> list[str]:
    """Every column of a results table for these labels, in the order collect writes them."""
    return [*REQUIRED_COLUMNS, *(label_column(label) for label in labels)]


def result_row(values: Mapping[str, object], labels: Sequence[str]) -> dict[str, object]:
    """One results row with exactly the schema's columns, in order; SchemaError names any other key."""
    expected = result_columns(labels)
    unknown = sorted(set(values) - set(expected))
    missing = [column for column in expected if column not in values]
    if unknown or missing:
        raise SchemaError(
            f"a results row must have exactly the schema's columns: unknown {unknown}, missing {missing}"
        )
    return {column: values[column] for column in expected}


class SchemaError(ValueError):
    """A results row that does not follow the schema: a bug in the writer, not a user error."""
