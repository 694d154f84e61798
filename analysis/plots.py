"""The report's figures. Each function builds a matplotlib Figure from prepared tables; `png_bytes` renders it.

Figures are built with the object API on the Agg canvas, never through pyplot: no global state,
no display needed, safe to call from a library.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

from sweep import results_schema as C
from sweep.analysis.learning_curve import LearningCurve
from sweep.analysis.tables import OK, OUTCOME, Label

CHANCE_AUC = 0.5
_DPI = 110
_REPLICA_COLOR = "#4c72b0"
_FIT_COLOR = "#dd8452"
_TARGET_COLOR = "#2ca02c"
_FAIL_COLOR = "#c44e52"
_MIN_LABEL_GAP = 0.04  # least distance between two top-axis labels, as a share of the axis width
_PENDING_COLOR = "#8c8c8c"
_STAGE_LABELS = {
    C.T_TRANSFER: "transfer",
    C.T_UNPACK: "unpack",
    C.T_IMPORT: "import",
    C.T_LOAD: "load data",
    C.T_TRAIN: "train",
    C.T_EVALUATE: "evaluate",
    C.T_EXPORT: "export",
}


def png_bytes(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


@dataclass(frozen=True)
class FractionMarker:
    """A fraction with items that gave no AUC, as drawn at the bottom of the learning curve."""

    fraction: float
    images: float
    failed: int  # failed, held, or done without an AUC
    cancelled: int
    pending: int
    items: int

    @property
    def entirely_failed(self) -> bool:
        return self.failed + self.cancelled == self.items

    @property
    def text(self) -> str:
        counts = (("failed", self.failed), ("cancelled", self.cancelled), ("pending", self.pending))
        return "\n".join(f"{n}/{self.items} {what}" for what, n in counts if n)


def fraction_markers(summary: pd.DataFrame) -> list[FractionMarker]:
    """Every fraction with failed, cancelled or pending items; one that failed entirely is among them."""
    return [
        FractionMarker(r.fraction, r.images, int(r.failed), int(r.cancelled), int(r.pending), int(r.items))
        for r in summary.itertuples(index=False)
        if r.failed or r.cancelled or r.pending
    ]


def learning_curve_figure(
    curve: LearningCurve, summary: pd.DataFrame, target: float, n_labels: int
) -> Figure:
    """Macro AUC vs training images: replicas, mean with 95 % CI, fitted curve with band, target, failures."""
    fig = Figure(figsize=(12.5, 6.4))
    ax = fig.add_subplot()
    known = summary[summary["images"].notna()]
    if known.empty:
        _no_data(ax, "No training-set sizes are known: nothing to draw against.")
        return fig
    _draw_replicas_and_means(ax, curve, known)
    if curve.fit is not None:
        _draw_fit(ax, curve, target)
    ax.axhline(CHANCE_AUC, color="black", lw=1, ls=":", label="chance (AUC 0.5)")
    ax.axhline(target, color=_TARGET_COLOR, lw=1.2, ls="--", label=f"target AUC {target:.2f}")
    ax.set_xscale("log")
    _set_auc_limits(ax, curve, target)
    _draw_markers(ax, fraction_markers(known), known["images"])
    _fraction_axis(ax, known)
    ax.set_xlabel("training images (log scale)")
    ax.set_ylabel(f"macro ROC AUC over {n_labels} labels")
    ax.set_title("Learning curve: macro AUC vs amount of training data", pad=34)
    ax.grid(True, which="both", alpha=0.25)
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    # Legend and answer outside the axes: inside they would hide the smallest fractions.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, framealpha=0.9)
    _answer_box(ax, curve.statement)
    return fig


def _draw_replicas_and_means(ax, curve: LearningCurve, known: pd.DataFrame) -> None:
    for i, (size, group) in enumerate(zip(curve.sizes, curve.groups, strict=True)):
        ax.scatter(
            np.full(group.size, size),
            group,
            s=18,
            color=_REPLICA_COLOR,
            alpha=0.55,
            label="replica" if i == 0 else None,
            zorder=3,
        )
    done = known[known["done"] > 0]
    if done.empty:
        return
    if done["ci_low"].notna().any():  # a fraction with one replica has no interval to draw
        ax.fill_between(
            done["images"],
            done["ci_low"],
            done["ci_high"],
            color=_REPLICA_COLOR,
            alpha=0.15,
            label="95 % CI of the mean (t)",
        )
    ax.plot(
        done["images"],
        done["mean_auc"],
        "o-",
        color=_REPLICA_COLOR,
        ms=5,
        lw=1.2,
        label="mean of replicas",
        zorder=4,
    )


def _draw_fit(ax, curve: LearningCurve, target: float) -> None:
    law = curve.fit.law
    label = f"fit: AUC = {law.a:.3f} − {law.b:.3g}·n^(−{law.c:.2f})"
    ax.plot(curve.grid, law(curve.grid), color=_FIT_COLOR, lw=2, label=label, zorder=2)
    if np.isfinite(curve.band_low).any():
        ax.fill_between(
            curve.grid,
            curve.band_low,
            curve.band_high,
            color=_FIT_COLOR,
            alpha=0.18,
            label="95 % bootstrap band of the fit",
        )
    needed = curve.needed
    if needed is None or needed.images is None:
        return
    n = needed.images
    if not curve.grid.min() <= n <= curve.grid.max():
        return  # too far out to draw without squashing the data; the answer box still gives it
    if needed.low is not None and needed.high is not None:
        ax.axvspan(needed.low, needed.high, color=_TARGET_COLOR, alpha=0.10, lw=0)
    ax.axvline(n, color=_TARGET_COLOR, lw=1.2, ls="--")
    ax.plot(
        [n],
        [target],
        "D",
        color=_TARGET_COLOR,
        ms=7,
        zorder=5,
        label=f"≈ {n:,.0f} images reach AUC {target:.2f}",
    )


def _set_auc_limits(ax, curve: LearningCurve, target: float) -> None:
    values = [CHANCE_AUC, target] + [float(v) for g in curve.groups for v in g]
    low, high = min(values), max(values)
    pad = max(0.02, 0.08 * (high - low))
    # Room at the bottom for the failure markers, which sit below every data point.
    ax.set_ylim(max(0.0, low - 2.5 * pad), min(1.0, high + pad))


def _draw_markers(ax, markers: list[FractionMarker], sizes: pd.Series) -> None:
    transform = ax.get_xaxis_transform()  # x in data units, y in axes units: always at the bottom
    levels = _label_levels([m.images for m in markers], sizes)
    labelled: set[str] = set()
    for m, level in zip(markers, levels, strict=True):
        kind = "fraction with failed items" if m.failed + m.cancelled else "fraction with pending items"
        color = _FAIL_COLOR if m.failed + m.cancelled else _PENDING_COLOR
        ax.plot(
            [m.images],
            [0.03],
            marker="X",
            ms=11 if m.entirely_failed else 8,
            color=color,
            transform=transform,
            clip_on=False,
            zorder=6,
            ls="none",
            label=None if kind in labelled else kind,
        )
        labelled.add(kind)
        ax.annotate(
            m.text,
            (m.images, 0.03),
            xycoords=transform,
            xytext=(0, 9 + 24 * level),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
            color=color,
            fontweight="bold" if m.entirely_failed else "normal",
        )


def _label_levels(positions: list[float], sizes: pd.Series) -> list[int]:
    """Stack labels of neighbouring markers at alternating heights so that they do not overlap."""
    span = math.log10(float(sizes.max()) / float(sizes.min())) + 0.2 if len(sizes) > 1 else 1.0
    last: dict[int, float] = {}
    levels = []
    for x in positions:
        level = next(
            lv
            for lv in range(len(positions) + 1)
            if lv not in last or (math.log10(x) - last[lv]) / span > _MIN_LABEL_GAP * 2
        )
        last[level] = math.log10(x)
        levels.append(level % 3)
    return levels


def _fraction_axis(ax, known: pd.DataFrame) -> None:
    """Top axis in training fractions, using the measured images per unit fraction."""
    scale = float((known["images"] / known["fraction"]).median())
    top = ax.secondary_xaxis("top", functions=(lambda n: n / scale, lambda f: f * scale))
    top.set_xscale("log")
    fractions = known["fraction"].to_list()
    labelled = _spaced(fractions, ax.get_xlim(), scale)
    top.set_xticks(fractions)
    top.xaxis.set_minor_locator(NullLocator())
    top.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _: _percent(v) if _close_to_any(v, labelled) else "")
    )
    top.tick_params(labelsize=8)
    top.set_xlabel("fraction of the training split", fontsize=9)


def _spaced(fractions: list[float], xlim: tuple[float, float], scale: float) -> list[float]:
    """The fractions whose labels do not collide on a log axis, keeping the largest ones first."""
    span = math.log10(xlim[1]) - math.log10(xlim[0])
    kept: list[float] = []
    for f in sorted(fractions, reverse=True):
        position = math.log10(f * scale)
        if all(abs(position - math.log10(k * scale)) / span > _MIN_LABEL_GAP for k in kept):
            kept.append(f)
    return kept


def _close_to_any(value: float, targets: list[float]) -> bool:
    return any(math.isclose(value, t, rel_tol=1e-6) for t in targets)


def _percent(fraction: float) -> str:
    return f"{fraction:.0%}" if fraction >= 0.01 else f"{fraction:.1%}"


def _answer_box(ax, statement: str) -> None:
    ax.text(
        1.01,
        0.0,
        _wrap(statement, 38),
        transform=ax.transAxes,
        ha="left",
        va="bottom",
        fontsize=9,
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": _TARGET_COLOR},
    )


def label_heatmap_figure(means: pd.DataFrame, labels: list[Label]) -> Figure:
    """Mean per-label AUC, label x fraction; colour centred on chance so red means worse than guessing."""
    if means.empty or means.isna().all().all():
        fig = Figure(figsize=(8, 2.5))
        ax = fig.add_subplot()
        _no_data(ax, "No per-label AUC: no item finished with per-label results.")
        ax.set_title("Per-label ROC AUC by training fraction")
        return fig
    fig = Figure(figsize=(max(7.0, 1.2 + 0.75 * means.shape[1]), 1.6 + 0.42 * len(labels)))
    ax = fig.add_subplot()
    values = means.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    spread = max(0.2, float(np.max(np.abs(finite - CHANCE_AUC))))
    norm = TwoSlopeNorm(vcenter=CHANCE_AUC, vmin=CHANCE_AUC - spread, vmax=min(1.0, CHANCE_AUC + spread))
    cmap = _heat_cmap()
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
    for (r, c), v in np.ndenumerate(values):
        text, color = ("n/a", "#555555") if not math.isfinite(v) else (f"{v:.2f}", _ink_on(norm(v)))
        ax.text(c, r, text, ha="center", va="center", fontsize=7.5, color=color)
    ax.set_xticks(range(means.shape[1]), [f"{f:.0%}" for f in means.columns])
    ax.set_yticks(range(len(labels)), [_label_row(lb) for lb in labels])
    ax.set_xlabel("fraction of the training split")
    ax.set_ylabel("label (share of positive test images)")
    ax.set_title("Per-label ROC AUC, mean over replicas (0.5 = chance, white; grey = not evaluable)")
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("mean ROC AUC")
    return fig


def _heat_cmap():
    return colormaps["RdBu"].with_extremes(bad="#d9d9d9")


def _ink_on(level: float) -> str:
    return "white" if level < 0.15 or level > 0.85 else "black"


def _label_row(label: Label) -> str:
    name = label.name.replace("_", " ")
    return f"{name} ({label.prevalence:.1%})" if label.prevalence is not None else f"{name} (prevalence ?)"


def runtime_figure(df: pd.DataFrame, summary: pd.DataFrame, stages: pd.DataFrame) -> Figure:
    """Left: wall time of every job vs fraction, with the mean. Right: mean time of each stage, stacked."""
    fig = Figure(figsize=(12, 5))
    left, right = fig.subplots(1, 2)
    timed = df.dropna(subset=[C.WALL_TIME])
    if timed.empty:
        _no_data(left, "No job reported a wall time yet.")
        _no_data(right, "No job reported stage times yet.")
        return fig
    divisor, unit = _time_unit(float(timed[C.WALL_TIME].max()))
    _wall_time_panel(left, timed, summary, divisor, unit)
    if stages.isna().all().all():
        _no_data(right, "No job finished: no stage times to show.")
    else:
        _stage_panel(right, stages, divisor, unit)
    return fig


def _wall_time_panel(ax, timed: pd.DataFrame, summary: pd.DataFrame, divisor: float, unit: str) -> None:
    ok = timed[timed[OUTCOME] == OK]
    bad = timed[timed[OUTCOME] != OK]
    if not ok.empty:
        ax.scatter(
            ok[C.FRACTION],
            ok[C.WALL_TIME] / divisor,
            s=18,
            alpha=0.6,
            color=_REPLICA_COLOR,
            label="finished job",
        )
    if not bad.empty:
        ax.scatter(
            bad[C.FRACTION],
            bad[C.WALL_TIME] / divisor,
            marker="x",
            s=30,
            color=_FAIL_COLOR,
            label="failed job (time spent)",
        )
    # NaN means stay in: the line breaks at a fraction without finished jobs instead of bridging it.
    ax.plot(
        summary["fraction"],
        summary["mean_wall_time_s"] / divisor,
        "o-",
        color="black",
        ms=4,
        label="mean of finished jobs" if summary["mean_wall_time_s"].notna().any() else None,
    )
    ax.set_xlabel("fraction of the training split")
    ax.set_ylabel(f"wall time per job ({unit})")
    ax.set_title("Wall time of each job")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8.5)


def _stage_panel(ax, stages: pd.DataFrame, divisor: float, unit: str) -> None:
    x = np.arange(len(stages.index))
    bottom = np.zeros(len(x))
    colors = _stage_colors()
    for col in C.STAGE_COLUMNS:
        heights = stages[col].fillna(0).to_numpy(dtype=float) / divisor
        ax.bar(x, heights, bottom=bottom, color=colors[col], label=_STAGE_LABELS[col], width=0.7)
        bottom += heights
    for i in np.flatnonzero(bottom == 0):
        ax.text(
            x[i], 0, "no finished job", rotation=90, ha="center", va="bottom", fontsize=8, color=_FAIL_COLOR
        )
    ax.set_xticks(x, [f"{f:.0%}" for f in stages.index])
    ax.set_xlabel("fraction of the training split")
    ax.set_ylabel(f"mean time per finished job ({unit})")
    ax.set_title("Where the time goes: mean stage times")
    ax.grid(True, axis="y", alpha=0.25)
    ax.legend(fontsize=8.5, loc="upper left", ncols=2)


def _stage_colors() -> dict[str, tuple]:
    palette = colormaps["tab10"]
    return {col: palette(i) for i, col in enumerate(C.STAGE_COLUMNS)}


def machines_figure(df: pd.DataFrame, machines: pd.DataFrame, epochs: int | None) -> Figure:
    """Left: training seconds per image on each machine type (jobs and median). Right: whole-sweep cost."""
    fig = Figure(figsize=(12, 1.8 + 0.7 * max(len(machines), 1)))
    left, right = fig.subplots(1, 2, sharey=True)
    if machines.empty:
        _no_data(left, "No finished job with timings yet.")
        _no_data(right, "No cost estimate without finished jobs.")
        return fig
    y = np.arange(len(machines))
    per_job = df[(df[C.STATE] == C.DONE) & (df[C.TRAIN_IMAGES] > 0)].dropna(subset=[C.T_TRAIN])
    for i, row in enumerate(machines.itertuples(index=False)):
        jobs = per_job[(per_job[C.MICROARCH] == row.microarch) & (per_job[C.CPU_MODEL] == row.cpu_model)]
        rates = 1000 * jobs[C.T_TRAIN] / jobs[C.TRAIN_IMAGES]
        left.scatter(rates, np.full(len(rates), i), s=16, alpha=0.6, color=_REPLICA_COLOR, zorder=3)
    left.barh(y, 1000 * machines["sec_per_image"], color=_REPLICA_COLOR, alpha=0.35)
    epochs_text = f"all {epochs} epochs" if epochs else "all epochs"
    left.set_xlabel(f"training milliseconds per training image ({epochs_text})")
    left.set_yticks(
        y,
        [
            f"{m}\n{h} host(s), {n} job(s)"
            for m, h, n in zip(machines["machine"], machines["hosts"], machines["items"], strict=True)
        ],
    )
    left.set_title("Training speed by machine type (bar: median, dots: jobs)")
    bars = right.barh(y, machines["sweep_hours"], color=_FIT_COLOR, alpha=0.8)
    right.bar_label(bars, labels=[f"{h:,.1f} h" for h in machines["sweep_hours"]], padding=3, fontsize=8.5)
    right.set_xlabel("estimated wall-clock hours for the whole sweep, all jobs on this type")
    right.set_title("Estimated cost of the whole sweep")
    right.set_xlim(0, float(machines["sweep_hours"].max()) * 1.25)
    for ax in (left, right):
        ax.grid(True, axis="x", alpha=0.25)
    left.invert_yaxis()  # the y axis is shared: inverting it once puts the fastest type on top of both
    return fig


def _time_unit(max_seconds: float) -> tuple[float, str]:
    if max_seconds >= 3 * 3600:
        return 3600.0, "hours"
    if max_seconds >= 180:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _no_data(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width))
