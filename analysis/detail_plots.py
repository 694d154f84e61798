"""The report's figures beside the learning curve: per-label AUC heatmap, runtime, machines.

Built like those in plots.py (object API on the Agg canvas); `plots.png_bytes` renders them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from sweep import results_schema as C
from sweep.analysis.plots import CHANCE_AUC, FAIL_COLOR, FIT_COLOR, REPLICA_COLOR, STAGE_LABELS, no_data
from sweep.analysis.tables import OK, OUTCOME, Label


def label_heatmap_figure(means: pd.DataFrame, labels: list[Label]) -> Figure:
    """Mean per-label AUC, label x fraction; colour centred on chance so red means worse than guessing."""
    if means.empty or means.isna().all().all():
        fig = Figure(figsize=(8, 2.5))
        ax = fig.add_subplot()
        no_data(ax, "No per-label AUC: no item finished with per-label results.")
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
        no_data(left, "No job reported a wall time yet.")
        no_data(right, "No job reported stage times yet.")
        return fig
    divisor, unit = _time_unit(float(timed[C.WALL_TIME].max()))
    _wall_time_panel(left, timed, summary, divisor, unit)
    if stages.isna().all().all():
        no_data(right, "No job finished: no stage times to show.")
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
            color=REPLICA_COLOR,
            label="finished job",
        )
    if not bad.empty:
        ax.scatter(
            bad[C.FRACTION],
            bad[C.WALL_TIME] / divisor,
            marker="x",
            s=30,
            color=FAIL_COLOR,
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
        ax.bar(x, heights, bottom=bottom, color=colors[col], label=STAGE_LABELS[col], width=0.7)
        bottom += heights
    for i in np.flatnonzero(bottom == 0):
        ax.text(
            x[i], 0, "no finished job", rotation=90, ha="center", va="bottom", fontsize=8, color=FAIL_COLOR
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
        no_data(left, "No finished job with timings yet.")
        no_data(right, "No cost estimate without finished jobs.")
        return fig
    y = np.arange(len(machines))
    per_job = df[(df[C.STATE] == C.DONE) & (df[C.TRAIN_IMAGES] > 0)].dropna(subset=[C.T_TRAIN])
    for i, row in enumerate(machines.itertuples(index=False)):
        jobs = per_job[(per_job[C.MICROARCH] == row.microarch) & (per_job[C.CPU_MODEL] == row.cpu_model)]
        rates = 1000 * jobs[C.T_TRAIN] / jobs[C.TRAIN_IMAGES]
        left.scatter(rates, np.full(len(rates), i), s=16, alpha=0.6, color=REPLICA_COLOR, zorder=3)
    left.barh(y, 1000 * machines["sec_per_image"], color=REPLICA_COLOR, alpha=0.35)
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
    bars = right.barh(y, machines["sweep_hours"], color=FIT_COLOR, alpha=0.8)
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
