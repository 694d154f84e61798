"""build_report: results table + sweep description -> report.html, PNGs, summary.csv and a ReportSummary.

The one entry point of the package. It runs the analysis, renders the figures once (the same PNG
bytes go to disk and into the page) and writes every file atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweep.analysis import detail_plots, learning_curve, plots, sections, tables
from sweep.analysis.failures import failures_table, pending_count
from sweep.analysis.files import (
    LEARNING_CURVE_PNG,
    MACHINES_PNG,
    PER_LABEL_PNG,
    REPORT_HTML,
    RUNTIME_PNG,
    SUMMARY_CSV,
    prepare_out_dir,
    write_atomic,
)
from sweep.analysis.learning_curve import LearningCurve
from sweep.analysis.stats import percentile_interval
from sweep.errors import AnalysisError


@dataclass(frozen=True)
class FitParameters:
    """The fitted AUC(n) = a - b * n**(-c) with 95 % bootstrap intervals (None without a bootstrap)."""

    a: float
    b: float
    c: float
    a_interval: tuple[float, float] | None
    b_interval: tuple[float, float] | None
    c_interval: tuple[float, float] | None
    r2: float | None
    residual_rms: float
    reduced_chi2: float | None
    fractions: int
    weighted: bool
    bootstrap_resamples: int
    bootstrap_failed: int
    bootstrap_seed: int | None


@dataclass(frozen=True)
class ReportSummary:
    sweep_name: str
    target_auc: float
    items: int
    done: int  # finished with an AUC
    failed: int  # failed, held, or finished without a usable AUC
    cancelled: int
    pending: int  # idle or running
    fit: FitParameters | None
    images_needed: float | None  # None: no fit, or the fitted curve never reaches the target
    images_needed_interval: tuple[float | None, float | None] | None  # None high: unbounded
    target_reached: bool | None  # does the fitted curve reach the target? None: no fit
    statement: str  # the answer in plain words
    warnings: list[str]
    files: dict[str, str] = field(default_factory=dict)  # "report", "summary_csv", PNG names -> paths

    def to_json(self, indent: int | None = 2) -> str:
        """JSON for `sweep report --json`; NaN and infinity become null."""
        return json.dumps(_json_safe(asdict(self)), indent=indent, allow_nan=False)


def build_report(
    results: pd.DataFrame,
    sweep_info: Mapping[str, Any],
    out_dir: Path,
    *,
    target_auc: float = 0.75,
    bootstrap_resamples: int = learning_curve.DEFAULT_RESAMPLES,
    seed: int = learning_curve.DEFAULT_SEED,
) -> ReportSummary:
    """Analyse one sweep and write its report into `out_dir` (created if needed).

    Raises AnalysisError for an unusable results table, a bad target or an unwritable folder.
    Partial sweeps (pending or failed items, whole fractions failed, one replica) give a report
    with warnings, not an error.
    """
    if not 0 < target_auc < 1:
        raise AnalysisError(f"the target AUC must lie between 0 and 1, got {target_auc}")
    if not isinstance(sweep_info, Mapping):
        raise AnalysisError("sweep_info must be a mapping (the sweep's name, spec, env and data)")
    out = prepare_out_dir(Path(out_dir))
    facts = analyse_sweep(results, sweep_info, target_auc, bootstrap_resamples, seed)
    images = _render_figures(facts, sweep_info)
    paths = {name: write_atomic(out / name, png) for name, png in images.items()}
    paths[SUMMARY_CSV] = write_atomic(
        out / SUMMARY_CSV, facts.summary.to_csv(index=False, float_format="%.6g")
    )
    page = sections.build_page(facts, sweep_info, images)
    paths[REPORT_HTML] = write_atomic(out / REPORT_HTML, page)
    return _summary(facts, sweep_info, paths)


def analyse_sweep(
    results: pd.DataFrame, sweep_info: Mapping[str, Any], target: float, resamples: int, seed: int
) -> sections.SweepFacts:
    """Every table and number the report shows, before anything is drawn or written."""
    df = tables.prepare_results(results)
    data = sweep_info.get("data") or {}
    summary = tables.fraction_summary(df, _positive(data.get("train_images_total")))
    sizes, groups = tables.auc_groups(df, summary)
    curve = learning_curve.analyse(sizes, groups, target, resamples=resamples, seed=seed)
    labels = tables.labels_of(df, data)
    return sections.SweepFacts(
        results=df,
        summary=summary,
        curve=curve,
        target=target,
        labels=labels,
        label_means=tables.label_means(df, labels),
        stages=tables.stage_means(df),
        machines=tables.machine_costs(df, summary),
        failures=failures_table(df),
        warnings=sweep_warnings(df, summary) + list(curve.warnings),
    )


def sweep_warnings(df: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """What a reader must know before trusting the numbers: partial, failed or estimated parts."""
    out = []
    pending = pending_count(df)
    if pending:
        out.append(
            f"{pending} of {len(df)} items are still idle or running: this report is partial; "
            "build it again when they finish."
        )
    lost = summary[(summary["done"] == 0) & (summary["failed"] + summary["cancelled"] == summary["items"])]
    if not lost.empty:
        out.append(
            f"Every item of {_fractions_text(lost['fraction'])} failed or was cancelled: "
            "the learning curve has no point there (see Failures)."
        )
    if not (summary["done"] > 0).any():
        out.append("No item finished with an AUC: there is no learning curve to draw yet.")
    estimated = summary[summary["images_estimated"]]
    if not estimated.empty:
        out.append(
            f"No item of {_fractions_text(estimated['fraction'])} reported its training-set size; "
            "the number of images there is estimated from the fraction."
        )
    return out


def _fractions_text(fractions: pd.Series) -> str:
    names = ", ".join(f"{f:.0%}" for f in fractions)
    return f"fraction {names}" if len(fractions) == 1 else f"fractions {names}"


def _render_figures(facts: sections.SweepFacts, sweep_info: Mapping[str, Any]) -> dict[str, bytes]:
    spec = sweep_info.get("spec") or {}
    epochs = _positive(spec.get("epochs"))
    n_labels = len(facts.labels) or int(np.nanmax(facts.results["auc_labels"].to_numpy(), initial=0))
    figures = {
        LEARNING_CURVE_PNG: plots.learning_curve_figure(facts.curve, facts.summary, facts.target, n_labels),
        PER_LABEL_PNG: detail_plots.label_heatmap_figure(facts.label_means, facts.labels),
        RUNTIME_PNG: detail_plots.runtime_figure(facts.results, facts.summary, facts.stages),
        MACHINES_PNG: detail_plots.machines_figure(
            facts.results, facts.machines, int(epochs) if epochs else None
        ),
    }
    return {name: plots.png_bytes(fig) for name, fig in figures.items()}


def _summary(
    facts: sections.SweepFacts, sweep_info: Mapping[str, Any], paths: dict[str, Path]
) -> ReportSummary:
    counts = facts.summary[["done", "failed", "cancelled", "pending"]].sum()
    needed = facts.curve.needed
    interval = None
    if needed is not None and (needed.low is not None or needed.high is not None):
        interval = (needed.low, needed.high)
    return ReportSummary(
        sweep_name=sections.sweep_name(sweep_info),
        target_auc=facts.target,
        items=len(facts.results),
        done=int(counts["done"]),
        failed=int(counts["failed"]),
        cancelled=int(counts["cancelled"]),
        pending=int(counts["pending"]),
        fit=fit_parameters(facts.curve),
        images_needed=needed.images if needed is not None else None,
        images_needed_interval=interval,
        target_reached=(needed.images is not None) if needed is not None else None,
        statement=facts.curve.statement,
        warnings=list(facts.warnings),
        files={_file_key(name): str(path) for name, path in paths.items()},
    )


def fit_parameters(curve: LearningCurve) -> FitParameters | None:
    if curve.fit is None:
        return None
    law, q, boot = curve.fit.law, curve.fit.quality, curve.boot
    intervals: list[tuple[float, float] | None] = [None, None, None]
    if boot is not None:
        intervals = [percentile_interval(boot.params[:, i]) for i in range(3)]
    return FitParameters(
        a=law.a,
        b=law.b,
        c=law.c,
        a_interval=intervals[0],
        b_interval=intervals[1],
        c_interval=intervals[2],
        r2=None if math.isnan(q.r2) else q.r2,
        residual_rms=q.rmse,
        reduced_chi2=None if math.isnan(q.reduced_chi2) else q.reduced_chi2,
        fractions=q.fractions,
        weighted=curve.fit.weighted,
        bootstrap_resamples=len(boot.params) if boot is not None else 0,
        bootstrap_failed=boot.failed if boot is not None else 0,
        bootstrap_seed=boot.seed if boot is not None else None,
    )


def _file_key(name: str) -> str:
    if name == REPORT_HTML:
        return "report"
    return name.rsplit(".", 1)[0].replace("-", "_") + ("_csv" if name.endswith(".csv") else "_png")


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value
