"""The report page's sections: the analysed sweep turned into text, tables and inlined figures.

Only formatting lives here; the numbers come from tables, stats and learning_curve.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

import sweep
from sweep import results_schema as C
from sweep.analysis import files as F
from sweep.analysis.learning_curve import LearningCurve
from sweep.analysis.page import Image, Page, Section, Table, render_page
from sweep.analysis.stats import percentile_interval
from sweep.analysis.tables import OK, OUTCOME, Label

_DASH = "–"


@dataclass(frozen=True)
class SweepFacts:
    """Everything the report shows about one sweep, computed once."""

    results: pd.DataFrame  # prepared (see tables.prepare_results)
    summary: pd.DataFrame  # per fraction (tables.SUMMARY_COLUMNS)
    curve: LearningCurve
    target: float
    labels: list[Label]
    label_means: pd.DataFrame
    stages: pd.DataFrame
    machines: pd.DataFrame
    failures: pd.DataFrame
    warnings: list[str]


def sweep_name(sweep_info: Mapping[str, Any]) -> str:
    return str(sweep_info.get("name") or "unnamed sweep")


def build_page(facts: SweepFacts, sweep_info: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    """The whole HTML page; `images` maps the PNG file names of sweep.analysis.files to their bytes."""
    png = {name: Image(data, _ALT[name], name) for name, data in images.items()}
    curve_png, label_png = png[F.LEARNING_CURVE_PNG], png[F.PER_LABEL_PNG]
    runtime_png, machine_png = png[F.RUNTIME_PNG], png[F.MACHINES_PNG]
    page = Page(
        title=f"How much data is enough? Sweep {sweep_name(sweep_info)}",
        subtitle=f"Target: macro ROC AUC {facts.target:.2f}. {len(facts.results)} training jobs.",
        sections=[
            summary_section(facts),
            Section("learning-curve", "Learning curve", _curve_text(facts), images=[curve_png]),
            fit_section(facts),
            Section("per-label", "Per-label AUC", _label_text(facts), images=[label_png]),
            runtime_section(facts, runtime_png),
            machines_section(facts, machine_png),
            failures_section(facts),
            provenance_section(facts, sweep_info),
        ],
    )
    return render_page(page)


_ALT = {
    F.LEARNING_CURVE_PNG: "Learning curve: macro AUC against the number of training images, with the fitted curve",
    F.PER_LABEL_PNG: "Heat map of the mean AUC of every label at every training fraction",
    F.RUNTIME_PNG: "Wall time of each job by fraction, and mean time of each job stage",
    F.MACHINES_PNG: "Training seconds per image on each machine type, and the estimated cost of the sweep",
}


def summary_section(facts: SweepFacts) -> Section:
    s = facts.summary
    counts = (
        f"{int(s['done'].sum())} of {len(facts.results)} items finished with an AUC, "
        f"{int(s['failed'].sum())} failed, {int(s['cancelled'].sum())} were cancelled, "
        f"{int(s['pending'].sum())} are still pending."
    )
    table = Table(
        columns=[
            "fraction",
            "training images",
            "items",
            "done",
            "failed",
            "cancelled",
            "pending",
            "mean AUC",
            "95 % CI",
            "mean wall time",
        ],
        rows=[_summary_row(r) for r in s.itertuples(index=False)],
        numeric=frozenset(range(1, 10)),
        row_classes=tuple("failed" if r.failed + r.cancelled else "" for r in s.itertuples(index=False)),
    )
    return Section(
        "summary", "Summary", [facts.curve.statement, counts], tables=[table], notes=facts.warnings
    )


def _summary_row(r: Any) -> list[str]:
    images = _int(r.images) + (" (estimated)" if r.images_estimated else "")
    ci = f"{r.ci_low:.3f} to {r.ci_high:.3f}" if math.isfinite(r.ci_low) else _DASH
    return [
        f"{r.fraction:.0%}",
        images,
        str(r.items),
        str(r.done),
        str(r.failed),
        str(r.cancelled),
        str(r.pending),
        _num(r.mean_auc, 3),
        ci,
        _duration(r.mean_wall_time_s),
    ]


def _curve_text(facts: SweepFacts) -> list[str]:
    text = [
        (
            "Each dot is one trained replica; the line and shaded band are the mean and its 95 % t-interval "
            "per fraction. The orange curve is the inverse power law fitted to the means (weighted by their "
            "standard errors) with its 95 % bootstrap band (replicas resampled within each fraction). "
            "The dotted line is chance (AUC 0.5); the dashed green line is the target. Crosses at the bottom "
            "mark fractions with failed or pending items and say how many."
        )
    ]
    lost = facts.summary[
        (facts.summary["done"] == 0) & (facts.summary["failed"] + facts.summary["cancelled"] > 0)
    ]
    if not lost.empty:
        text.append("Fractions without any result: " + ", ".join(f"{f:.0%}" for f in lost["fraction"]) + ".")
    return text


def fit_section(facts: SweepFacts) -> Section:
    curve = facts.curve
    if curve.fit is None:
        return Section("fit", "Fit", [curve.statement])
    law, q, boot = curve.fit.law, curve.fit.quality, curve.boot
    ci = [percentile_interval(boot.params[:, i]) for i in range(3)] if boot is not None else [None] * 3
    rows = [
        ["a", _num(law.a, 4), _interval(ci[0], 4), "the AUC approached with unlimited data of this kind"],
        [
            "b",
            f"{law.b:.4g}",
            _interval(ci[1], 4, general=True),
            "scale: how far below a small training sets are",
        ],
        ["c", _num(law.c, 3), _interval(ci[2], 3), "rate: how fast the gap to a closes as images grow"],
        ["R²", _num(q.r2, 3), "", "share of the variation of the fraction means the curve explains"],
        ["residual RMS", _num(q.rmse, 4), "", "typical distance of a fraction mean from the curve (AUC)"],
        ["reduced χ²", _num(q.reduced_chi2, 2), "", "about 1 when the misfit matches the replica noise"],
        ["fractions fitted", str(q.fractions), "", "training-set sizes with at least one AUC"],
    ]
    table = Table(
        ["parameter", "estimate", "95 % bootstrap interval", "meaning"], rows, numeric=frozenset({1})
    )
    method = (
        f"AUC(n) = a − b·n^(−c), n = training images; weighted least squares on the fraction means "
        f"({'weights from the replica spread' if curve.fit.weighted else 'unweighted: no replica spread'}). "
    )
    if boot is not None:
        method += (
            f"Bootstrap: {len(boot.params)} resamples (seed {boot.seed}), {boot.failed} did not converge."
        )
    return Section("fit", "Fit", [curve.statement, method], tables=[table])


def _label_text(facts: SweepFacts) -> list[str]:
    return [
        (
            "Mean ROC AUC of each label over the finished replicas of each fraction. 0.5 is chance (white): "
            "red labels are predicted worse than guessing, blue better. The share in brackets is the label's "
            "prevalence among the test images; rare labels have few positives, so their AUC is noisy; "
            "grey cells could not be evaluated (no positive test image in the evaluated set)."
        )
    ]


def runtime_section(facts: SweepFacts, image: Image) -> Section:
    df = facts.results
    total = float(df[C.WALL_TIME].sum())
    lost = float(df.loc[df[OUTCOME] != OK, C.WALL_TIME].sum())
    share = f" ({lost / total:.0%})" if total > 0 else ""
    text = [
        (
            f"The jobs of this sweep ran for {_duration(total)} of wall time in total; "
            f"{_duration(lost)}{share} of it went into jobs that produced no AUC."
        ),
        (
            "Stage times are means over finished jobs: transfer and unpack of the environment, importing "
            "the libraries, loading the data, training, evaluation and export of the model."
        ),
    ]
    return Section("runtime", "Runtime", text, images=[image])


def machines_section(facts: SweepFacts, image: Image) -> Section:
    m = facts.machines
    text = [
        (
            "A job's time is modelled per machine type as a fixed overhead plus training seconds per image "
            "(medians of its finished jobs). The cost of the whole sweep on a type is that model summed over "
            "every item of the sweep, in hours of wall time as if all ran on that type."
        )
    ]
    rows = [
        [
            r.machine,
            str(r.hosts),
            str(r.items),
            f"{1000 * r.sec_per_image:.2f}",
            _duration(r.overhead_s),
            f"{r.sweep_hours:,.1f}",
        ]
        for r in m.itertuples(index=False)
    ]
    table = Table(
        [
            "machine type",
            "hosts",
            "finished jobs",
            "training ms per image",
            "fixed overhead per job",
            "whole sweep (hours)",
        ],
        rows,
        numeric=frozenset({1, 2, 3, 4, 5}),
    )
    return Section(
        "machines", "Runtime by machine type", text, images=[image], tables=[table] if rows else []
    )


def failures_section(facts: SweepFacts) -> Section:
    f = facts.failures
    pending = int(facts.summary["pending"].sum())
    text = [f"{len(f)} item(s) gave no AUC." if len(f) else "No item failed."]
    if pending:
        text.append(f"{pending} item(s) are still idle or running and are not counted as failures.")
    rows = [[r.item, f"{r.fraction:.0%}", r.state, r.reason, r.machine] for r in f.itertuples(index=False)]
    table = Table(["item", "fraction", "state", "reason", "machine"], rows)
    return Section("failures", "Failures", text, tables=[table] if rows else [])


def provenance_section(facts: SweepFacts, sweep_info: Mapping[str, Any]) -> Section:
    report = {
        "generated (UTC)": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "sweep version": sweep.__version__,
        "target AUC": facts.target,
    }
    info = {
        "sweep": sweep_name(sweep_info),
        "spec": sweep_info.get("spec") or "not recorded",
        "environment": sweep_info.get("env") or "not recorded",
        "data": sweep_info.get("data") or "not recorded",
        "report": report,
    }
    text = ["What was run, in which environment, on which data: enough to reproduce the sweep."]
    return Section("provenance", "Provenance", text, facts=info)


def _interval(ci: tuple[float, float] | None, digits: int, general: bool = False) -> str:
    if ci is None or not all(math.isfinite(v) for v in ci):
        return _DASH
    if general:
        return f"{ci[0]:.{digits}g} to {ci[1]:.{digits}g}"
    return f"{ci[0]:.{digits}f} to {ci[1]:.{digits}f}"


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if value is not None and math.isfinite(value) else _DASH


def _int(value: float) -> str:
    return f"{value:,.0f}" if math.isfinite(value) else _DASH


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return _DASH
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
