"""The results table, checked and reduced to the per-fraction, per-label and per-machine tables the report shows.

Everything here tolerates partial sweeps: items still running, failed items, NaN metrics,
a fraction without any result, a single replica.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sweep import results_schema as C
from sweep.analysis.stats import t_interval
from sweep.errors import AnalysisError

# What became of an item, as the report counts it (OUTCOME column added by `prepare_results`).
OUTCOME = "outcome"
OK = "ok"  # done, with a macro AUC
FAILED = "failed"  # failed or held, or done without a usable AUC
CANCELLED = "cancelled"
PENDING = "pending"  # idle or running: may still finish

# Fractions are floats; 0.1 * 3 is not 0.3, so fractions are compared after rounding.
_FRACTION_DECIMALS = 6


def prepare_results(results: pd.DataFrame) -> pd.DataFrame:
    """A checked copy of the results: numbers as float (NaN for missing), strings never null, an outcome.

    Raises AnalysisError naming the missing columns or unknown states, or an empty table.
    """
    missing = [c for c in C.REQUIRED_COLUMNS if c not in results.columns]
    if missing:
        raise AnalysisError(f"the results table lacks the column(s) {', '.join(missing)}")
    if results.empty:
        raise AnalysisError(
            "the results table has no items: nothing was submitted, so there is nothing to report"
        )
    df = results.copy()
    for col in C.STRING_COLUMNS:
        df[col] = df[col].fillna("").astype(str)
    df[C.STATE] = df[C.STATE].str.strip().str.lower()
    unknown = sorted(set(df[C.STATE]) - set(C.STATES))
    if unknown:
        raise AnalysisError(
            f"unknown item state(s) {', '.join(map(repr, unknown))}; expected one of {', '.join(C.STATES)}"
        )
    for col in (*C.NUMERIC_COLUMNS, *C.label_columns(list(df.columns))):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    if df[C.FRACTION].isna().any() or (df[C.FRACTION] <= 0).any() or (df[C.FRACTION] > 1).any():
        raise AnalysisError("every item needs a training fraction in (0, 1]")
    df[C.FRACTION] = df[C.FRACTION].round(_FRACTION_DECIMALS)
    df[OUTCOME] = [_outcome(s, auc) for s, auc in zip(df[C.STATE], df[C.AUC_MACRO], strict=True)]
    return df


def _outcome(state: str, auc: float) -> str:
    if state == C.DONE:
        return OK if math.isfinite(auc) else FAILED
    if state in C.PENDING_STATES:
        return PENDING
    if state == C.CANCELLED:
        return CANCELLED
    return FAILED


def images_per_fraction(
    df: pd.DataFrame, train_images_total: float | None
) -> dict[float, tuple[float, bool]]:
    """Training images of each fraction, and whether that number is an estimate.

    Measured: the median `train_images` of the fraction's items. Items that never ran have none,
    so their fraction is scaled from the sweep's full training-set size, or failing that from
    the images-per-fraction ratio of the items that did run.
    """
    known = df.dropna(subset=[C.TRAIN_IMAGES])
    scale = train_images_total
    if not scale and not known.empty:
        scale = float((known[C.TRAIN_IMAGES] / known[C.FRACTION]).median())
    out: dict[float, tuple[float, bool]] = {}
    for fraction, group in df.groupby(C.FRACTION):
        sizes = group[C.TRAIN_IMAGES].dropna()
        if not sizes.empty:
            out[float(fraction)] = (float(sizes.median()), False)
        else:
            out[float(fraction)] = (float(fraction) * scale if scale else math.nan, True)
    return out


# Column names of the per-fraction summary (also the header of summary.csv).
SUMMARY_COLUMNS = (
    "fraction",
    "images",
    "images_estimated",
    "items",
    "done",
    "failed",
    "cancelled",
    "pending",
    "mean_auc",
    "ci_low",
    "ci_high",
    "sd_auc",
    "mean_wall_time_s",
)


def fraction_summary(df: pd.DataFrame, train_images_total: float | None) -> pd.DataFrame:
    """One row per fraction: images, item counts by outcome, mean AUC with its 95 % t-interval, and the
    mean wall time of the items that gave an AUC."""
    images = images_per_fraction(df, train_images_total)
    rows = []
    for fraction, group in df.groupby(C.FRACTION):
        ok = group[group[OUTCOME] == OK]
        ci = t_interval(ok[C.AUC_MACRO].to_numpy())
        counts = group[OUTCOME].value_counts()
        walls = ok[C.WALL_TIME].dropna()
        n_images, estimated = images[float(fraction)]
        rows.append(
            {
                "fraction": float(fraction),
                "images": n_images,
                "images_estimated": estimated,
                "items": len(group),
                "done": int(counts.get(OK, 0)),
                "failed": int(counts.get(FAILED, 0)),
                "cancelled": int(counts.get(CANCELLED, 0)),
                "pending": int(counts.get(PENDING, 0)),
                "mean_auc": ci.estimate,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "sd_auc": float(ok[C.AUC_MACRO].std(ddof=1)) if len(ok) >= 2 else math.nan,
                "mean_wall_time_s": float(walls.mean()) if not walls.empty else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)).sort_values("fraction", ignore_index=True)


def auc_groups(df: pd.DataFrame, summary: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray]]:
    """Training images and replica AUCs of every fraction that has at least one AUC and a known size."""
    usable = summary[(summary["done"] > 0) & summary["images"].notna()]
    ok = df[df[OUTCOME] == OK]
    groups = [ok.loc[ok[C.FRACTION] == f, C.AUC_MACRO].to_numpy(dtype=float) for f in usable["fraction"]]
    return usable["images"].to_numpy(dtype=float), groups


@dataclass(frozen=True)
class Label:
    name: str
    column: str
    prevalence: float | None  # share of positive images in the test split, when the sweep recorded it


def labels_of(df: pd.DataFrame, data_info: Mapping[str, Any]) -> list[Label]:
    """The labels in the sweep's data manifest order, else in column order; only those with a column."""
    present = C.label_columns(list(df.columns))
    names = [str(n) for n in data_info.get("labels") or []] or [c[len(C.LABEL_AUC_PREFIX) :] for c in present]
    prevalence = data_info.get("label_prevalence") or {}
    out = []
    for name in names:
        column = C.label_column(name)
        if column in present:
            p = prevalence.get(name)
            out.append(Label(name, column, float(p) if p is not None else None))
    return out


def label_means(df: pd.DataFrame, labels: list[Label]) -> pd.DataFrame:
    """Mean per-label AUC over done replicas: one row per label, one column per fraction (NaN: none)."""
    fractions = sorted(df[C.FRACTION].unique())
    ok = df[df[OUTCOME] == OK]
    table = pd.DataFrame(index=[lb.name for lb in labels], columns=fractions, dtype=float)
    for lb in labels:
        means = ok.groupby(C.FRACTION)[lb.column].mean()
        table.loc[lb.name] = [means.get(f, math.nan) for f in fractions]
    return table


def stage_means(df: pd.DataFrame) -> pd.DataFrame:
    """Mean seconds of each job stage per fraction, over the items that gave an AUC (NaN: none did)."""
    fractions = sorted(df[C.FRACTION].unique())
    done = df[df[OUTCOME] == OK]
    means = done.groupby(C.FRACTION)[list(C.STAGE_COLUMNS)].mean()
    return means.reindex(fractions)


MACHINE_COLUMNS = (
    "machine",
    "microarch",
    "cpu_model",
    "hosts",
    "items",
    "sec_per_image",
    "overhead_s",
    "sweep_hours",
)


def machine_costs(df: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Training speed per machine type (microarch + CPU model) and what the whole sweep would cost on it.

    Training time grows with the images while transfer, unpacking and imports do not, so a job's
    time is modelled as overhead + seconds-per-image x images; both from the medians of the
    machine type's finished items. The sweep's cost on a type is that model summed over every item
    of the sweep (done or not), in hours of wall time.
    """
    done = df[(df[C.STATE] == C.DONE) & (df[C.TRAIN_IMAGES] > 0)].dropna(subset=[C.T_TRAIN, C.WALL_TIME])
    sweep_images = float((summary["images"] * summary["items"]).sum())
    sweep_items = int(summary["items"].sum())
    rows = []
    for (arch, cpu), group in done.groupby([C.MICROARCH, C.CPU_MODEL]):
        rate = float((group[C.T_TRAIN] / group[C.TRAIN_IMAGES]).median())
        overhead = float((group[C.WALL_TIME] - group[C.T_TRAIN]).median())
        rows.append(
            {
                "machine": machine_name(str(arch), str(cpu)),
                "microarch": arch,
                "cpu_model": cpu,
                "hosts": int(group[C.HOST].nunique()),
                "items": len(group),
                "sec_per_image": rate,
                "overhead_s": overhead,
                "sweep_hours": (sweep_items * overhead + sweep_images * rate) / 3600,
            }
        )
    table = pd.DataFrame(rows, columns=list(MACHINE_COLUMNS))
    return table.sort_values("sec_per_image", ignore_index=True)


def machine_name(microarch: str, cpu_model: str) -> str:
    parts = [p for p in (microarch, cpu_model) if p]
    return " · ".join(parts) if parts else "unknown machine"
