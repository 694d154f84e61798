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
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

from sweep import results_schema as C
from sweep.analysis.learning_curve import LearningCurve

CHANCE_AUC = 0.5
_DPI = 110
REPLICA_COLOR = "#4c72b0"
FIT_COLOR = "#dd8452"
TARGET_COLOR = "#2ca02c"
FAIL_COLOR = "#c44e52"
_MIN_LABEL_GAP = 0.04  # least distance between two top-axis labels, as a share of the axis width
PENDING_COLOR = "#8c8c8c"
STAGE_LABELS = {
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
        no_data(ax, "No training-set sizes are known: nothing to draw against.")
        return fig
    _draw_replicas_and_means(ax, curve, known)
    if curve.fit is not None:
        _draw_fit(ax, curve, target)
    ax.axhline(CHANCE_AUC, color="black", lw=1, ls=":", label="chance (AUC 0.5)")
    ax.axhline(target, color=TARGET_COLOR, lw=1.2, ls="--", label=f"target AUC {target:.2f}")
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
            color=REPLICA_COLOR,
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
            color=REPLICA_COLOR,
            alpha=0.15,
            label="95 % CI of the mean (t)",
        )
    ax.plot(
        done["images"],
        done["mean_auc"],
        "o-",
        color=REPLICA_COLOR,
        ms=5,
        lw=1.2,
        label="mean of replicas",
        zorder=4,
    )


def _draw_fit(ax, curve: LearningCurve, target: float) -> None:
    law = curve.fit.law
    label = f"fit: AUC = {law.a:.3f} − {law.b:.3g}·n^(−{law.c:.2f})"
    ax.plot(curve.grid, law(curve.grid), color=FIT_COLOR, lw=2, label=label, zorder=2)
    if np.isfinite(curve.band_low).any():
        ax.fill_between(
            curve.grid,
            curve.band_low,
            curve.band_high,
            color=FIT_COLOR,
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
        ax.axvspan(needed.low, needed.high, color=TARGET_COLOR, alpha=0.10, lw=0)
    ax.axvline(n, color=TARGET_COLOR, lw=1.2, ls="--")
    ax.plot(
        [n],
        [target],
        "D",
        color=TARGET_COLOR,
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
        color = FAIL_COLOR if m.failed + m.cancelled else PENDING_COLOR
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
        wrap(statement, 38),
        transform=ax.transAxes,
        ha="left",
        va="bottom",
        fontsize=9,
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": TARGET_COLOR},
    )


def no_data(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width))
