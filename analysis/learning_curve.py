"""The learning-curve analysis of one sweep: fit, bootstrap band, images needed for the target AUC.

Glue between the per-fraction tables and the statistics; the plot and the report read its result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sweep.analysis import stats
from sweep.analysis.stats import Bootstrap, CurveFit, ImagesNeeded

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 20210512  # the date of the report this project grew from; any fixed value would do
# How far beyond the measured sizes the curve is drawn when the answer lies outside them.
_MAX_EXTRAPOLATION = 10.0


@dataclass(frozen=True)
class LearningCurve:
    sizes: np.ndarray  # training images of each fraction with at least one AUC
    groups: list[np.ndarray]  # their replica AUCs
    fit: CurveFit | None
    boot: Bootstrap | None
    needed: ImagesNeeded | None
    grid: np.ndarray  # training images at which the fitted curve and its band are drawn
    band_low: np.ndarray
    band_high: np.ndarray
    statement: str  # the answer to "how many images reach the target?" in plain words
    warnings: tuple[str, ...]


def analyse(
    sizes: np.ndarray,
    groups: list[np.ndarray],
    target: float,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> LearningCurve:
    fit = stats.fit_learning_curve(sizes, groups)
    if fit is None:
        return _without_fit(sizes, groups, target)
    replicated = any(g.size >= 2 for g in groups)
    boot = None
    if resamples and replicated:
        boot = stats.bootstrap_fits(sizes, groups, fit.law, resamples=resamples, seed=seed)
    needed = stats.images_needed(fit.law, target, boot)
    grid = _grid(sizes, needed.images)
    low, high = stats.curve_band(boot, grid) if boot else (np.full_like(grid, np.nan),) * 2
    warnings = list(fit.warnings) + _extrapolation_warnings(sizes, needed) + _bootstrap_warnings(boot)
    if not replicated:
        warnings.append(
            "Every fraction has a single replica: there is no replica spread to resample, "
            "so the curve and the answer come without an interval."
        )
    return LearningCurve(sizes, groups, fit, boot, needed, grid, low, high, needed.statement, tuple(warnings))


def _without_fit(sizes: np.ndarray, groups: list[np.ndarray], target: float) -> LearningCurve:
    if len(groups) < stats.MIN_FRACTIONS_TO_FIT:
        why = (
            f"No learning curve was fitted: {len(groups)} training-set size(s) have results and the curve "
            f"has 3 parameters, so at least {stats.MIN_FRACTIONS_TO_FIT} are needed."
        )
    else:
        why = "No learning curve was fitted: the optimiser did not converge on these results."
    statement = f"Unknown how many training images reach AUC {target:.2f}. {why}"
    empty = np.array([], dtype=float)
    return LearningCurve(sizes, groups, None, None, None, empty, empty, empty, statement, (why,))


def _grid(sizes: np.ndarray, needed: float | None) -> np.ndarray:
    """Where the curve is drawn: the measured sizes, stretched to the answer but at most tenfold either way."""
    low, high = float(sizes.min()) * 0.8, float(sizes.max()) * 1.05
    if needed is not None:
        high = max(high, min(needed * 1.1, float(sizes.max()) * _MAX_EXTRAPOLATION))
        low = min(low, max(needed * 0.9, float(sizes.min()) / _MAX_EXTRAPOLATION))
    return np.geomspace(low, high, 200)


def _extrapolation_warnings(sizes: np.ndarray, needed: ImagesNeeded) -> list[str]:
    n = needed.images
    if n is None:
        return []
    if n > sizes.max():
        return [
            (
                f"The answer ({n:,.0f} images) lies beyond the largest training set measured "
                f"({sizes.max():,.0f}): it is an extrapolation of the fitted curve."
            )
        ]
    if n < sizes.min():
        return [
            (
                f"The answer ({n:,.0f} images) lies below the smallest training set measured "
                f"({sizes.min():,.0f}): it is an extrapolation; measure smaller fractions to confirm it."
            )
        ]
    return []


def _bootstrap_warnings(boot: Bootstrap | None) -> list[str]:
    if boot is None or boot.failed == 0:
        return []
    share = boot.failed / len(boot.params)
    if share < 0.05 and not math.isnan(share):
        return []
    return [f"{share:.0%} of the bootstrap refits did not converge; the intervals rest on the others."]
