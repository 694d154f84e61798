"""A realistic synthetic results table for the report tests, shaped like `sweep collect` output.

AUCs follow a known inverse power law plus replica noise; two machine types train at different
speeds; a few items fail the ways real ones do (SIGILL on an old CPU, an OOM kill, a truncated
metrics file). Nothing here is random without a seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from sweep import results_schema as C

LABELS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
# Roughly the NIH ChestX-ray14 label shares.
PREVALENCE = dict(
    zip(
        LABELS,
        (0.103, 0.025, 0.119, 0.177, 0.052, 0.056, 0.013, 0.047, 0.042, 0.021, 0.022, 0.015, 0.030, 0.002),
        strict=True,
    )
)
TRAIN_IMAGES_TOTAL = 78_468
FRACTIONS = tuple(round(0.1 * i, 1) for i in range(1, 11))
TRUE_LAW = (0.84, 6.0, 0.45)  # a, b, c of AUC(n) = a - b n^-c: about 0.68 at 10 %, 0.78 at 100 %
EPOCHS = 5

# (microarch, cpu model, hosts, training seconds per image per epoch)
FAST = ("x86_64-v4", "AMD EPYC 7763 64-Core Processor", ("exec-b1", "exec-b2"), 0.0021)
SLOW = ("x86_64-v3", "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", ("exec-a1", "exec-a2", "exec-a3"), 0.0037)
OLD = ("x86_64-v2", "Intel(R) Xeon(R) CPU E5-2650 v2 @ 2.60GHz", ("exec-old1",), 0.0)

SIGILL_REASON = "CPU lacks AVX2: TensorFlow was killed by SIGILL (illegal instruction) on import"

# item -> how it went wrong; the default sweep has these few failures.
DEFAULT_FAILURES: dict[str, str] = {
    "f0.3_r2": "oom",
    "f0.6_r1": "sigill",
    "f0.9_r0": "truncated",
}


def item_name(fraction: float, replica: int) -> str:
    return f"f{fraction:g}_r{replica}"


def make_sweep_info(fractions: Sequence[float] = FRACTIONS, replicas: int = 3) -> dict:
    return {
        "name": "chestxray-<demo>",  # the angle brackets check HTML escaping
        "spec": {
            "fractions": list(fractions),
            "replicas": replicas,
            "epochs": EPOCHS,
            "resources": {"cpus": 4, "memory": "16GB", "disk": "20GB"},
            "requirements": '(Microarch >= "x86_64-v3") && (OpSys == "LINUX")',
            "backend": "condor",
        },
        "env": {
            "interpreter": {"name": "python-3.11.7-linux-x86_64.tar.gz", "sha256": "ab" * 32},
            "site_packages": {"name": "site-9f1c2e.tar.zst", "sha256": "cd" * 32},
        },
        "data": {
            "content_hash": "ef" * 32,
            "image_size": 128,
            "labels": list(LABELS),
            "label_prevalence": dict(PREVALENCE),
            "train_images_total": TRAIN_IMAGES_TOTAL,
            "test_images": 25_596,
        },
    }


def make_results(
    *,
    fractions: Sequence[float] = FRACTIONS,
    replicas: int = 3,
    failures: dict[str, str] | None = None,
    failed_fractions: Iterable[float] = (),
    pending_fractions: Iterable[float] = (),
    noise: float = 0.006,
    seed: int = 7,
) -> pd.DataFrame:
    """One row per item. `failures` maps item -> "oom" | "sigill" | "truncated" | "cancelled";
    every item of a `failed_fractions` fraction dies of SIGILL before loading any data; every item of
    a `pending_fractions` fraction is still running."""
    rng = np.random.default_rng(seed)
    failures = dict(DEFAULT_FAILURES if failures is None else failures)
    dead = {round(f, 6) for f in failed_fractions}
    waiting = {round(f, 6) for f in pending_fractions}
    rows = []
    for fraction in fractions:
        for replica in range(replicas):
            name = item_name(fraction, replica)
            if round(fraction, 6) in dead:
                kind = "sigill"
            elif round(fraction, 6) in waiting:
                kind = "pending"
            else:
                kind = failures.get(name, "ok")
            rows.append(_item(rng, fraction, replica, kind, noise))
    return _typed(pd.DataFrame(rows))


def _item(rng: np.random.Generator, fraction: float, replica: int, kind: str, noise: float) -> dict:
    n = round(fraction * TRAIN_IMAGES_TOTAL)
    machine = OLD if kind == "sigill" else (FAST if rng.random() < 0.4 else SLOW)
    row = _base(fraction, replica, machine, rng)
    if kind == "pending":
        return row | {C.STATE: C.RUNNING, C.HOST: "", C.MICROARCH: "", C.CPU_MODEL: ""}
    if kind == "cancelled":
        return row | {
            C.STATE: C.CANCELLED,
            C.REASON: "removed by the user",
            C.HOST: "",
            C.MICROARCH: "",
            C.CPU_MODEL: "",
        }
    if kind == "sigill":
        early = {C.T_TRANSFER: rng.uniform(3, 12), C.T_UNPACK: rng.uniform(6, 10)}
        return (
            row
            | early
            | {
                C.STATE: C.HELD,
                C.REASON: SIGILL_REASON,
                C.EXIT_SIGNAL: 4,
                C.RETRIES: 1,
                C.WALL_TIME: sum(early.values()) + rng.uniform(1, 3),
            }
        )
    row |= {C.TRAIN_IMAGES: n, C.TRAIN_PATIENTS: round(n / 3.6)}
    row |= _timings(rng, n, machine[3])
    if kind == "oom":
        return row | {C.STATE: C.FAILED, C.EXIT_SIGNAL: 9, C.T_EVALUATE: None, C.T_EXPORT: None}
    row |= {C.STATE: C.DONE, C.EXIT_CODE: 0, C.MODEL_PATH: f"items/{row[C.ITEM]}/model.keras"}
    if kind == "truncated":
        return row | {C.OUTPUT_PROBLEM: "metrics.json truncated"}
    return row | _aucs(rng, n, noise)


def _base(fraction: float, replica: int, machine: tuple, rng: np.random.Generator) -> dict:
    row: dict = dict.fromkeys(C.REQUIRED_COLUMNS)
    row |= dict.fromkeys((*C.STAGE_COLUMNS, C.WALL_TIME, C.AUC_MACRO), np.nan)
    row |= {C.label_column(lb): np.nan for lb in LABELS}
    return row | {
        C.ITEM: item_name(fraction, replica),
        C.FRACTION: fraction,
        C.REPLICA: replica,
        C.SEED: 1000 + replica,
        C.STATE: C.DONE,
        C.REASON: "",
        C.RETRIES: 0,
        C.HOST: str(rng.choice(machine[2])),
        C.MICROARCH: machine[0],
        C.CPU_MODEL: machine[1],
        C.AUC_LABELS: 0,
        C.MODEL_PATH: "",
        C.OUTPUT_PROBLEM: "",
    }


def _timings(rng: np.random.Generator, n: int, sec_per_image_epoch: float) -> dict:
    t = {
        C.T_TRANSFER: rng.uniform(3, 12),
        C.T_UNPACK: rng.uniform(6, 10),
        C.T_IMPORT: rng.uniform(4, 8),
        C.T_LOAD: 0.0004 * n * rng.uniform(0.9, 1.1),
        C.T_TRAIN: sec_per_image_epoch * EPOCHS * n * rng.normal(1, 0.04),
        C.T_EVALUATE: rng.uniform(22, 30),
        C.T_EXPORT: rng.uniform(2, 5),
    }
    return t | {C.WALL_TIME: sum(t.values()) + rng.uniform(1, 3)}


def _aucs(rng: np.random.Generator, n: int, noise: float) -> dict:
    a, b, c = TRUE_LAW
    macro = a - b * n ** (-c) + rng.normal(0, noise)
    # Per-label AUCs scatter around the macro value; rare labels more. Offsets average to zero
    # so that the macro AUC (their mean) stays on the known curve.
    offsets = np.linspace(-0.08, 0.08, len(LABELS))
    rng.shuffle(offsets)
    per_label = {}
    for label, offset in zip(LABELS, offsets, strict=True):
        spread = 0.01 if PREVALENCE[label] > 0.05 else 0.03
        per_label[label] = float(np.clip(macro + offset + rng.normal(0, spread), 0, 1))
    if n < 0.25 * TRAIN_IMAGES_TOTAL:
        per_label["Hernia"] = np.nan  # too few positives in the evaluated subset: not evaluable
    values = np.array(list(per_label.values()))
    return {C.label_column(lb): v for lb, v in per_label.items()} | {
        C.AUC_MACRO: float(np.nanmean(values)),
        C.AUC_LABELS: int(np.isfinite(values).sum()),
    }


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """The dtypes `sweep collect` promises: nullable Int64 for counts that may be missing."""
    for col in (C.EXIT_CODE, C.EXIT_SIGNAL, C.TRAIN_IMAGES, C.TRAIN_PATIENTS, C.AUC_LABELS):
        df[col] = df[col].astype("Int64")
    for col in (C.REPLICA, C.SEED, C.RETRIES):
        df[col] = df[col].astype("int64")
    for col in (*C.STAGE_COLUMNS, C.WALL_TIME, C.AUC_MACRO, C.FRACTION):
        df[col] = df[col].astype("float64")
    return df
