"""Statistics of a data-size sweep: confidence intervals, the learning-curve fit, its bootstrap.

Pure numbers in, numbers (and plain-word warnings) out; no pandas, no plotting.

The learning curve is the inverse power law ``AUC(n) = a - b * n**(-c)``: ``a`` is the AUC the
model would reach with unlimited data of this kind, ``b`` and ``c`` say how fast it gets there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

CONFIDENCE = 0.95
MIN_FRACTIONS_TO_FIT = 3  # three parameters
MIN_FRACTIONS_TO_TRUST = 4  # with three points the curve passes through them: no check left
POOR_R2 = 0.5
POOR_REDUCED_CHI2 = 4.0

# Bounds of the fit, in the scaled form a - b' * (n / n_ref) ** (-c).
# a <= 1 because an AUC cannot exceed 1; c <= 5 because steeper curves are indistinguishable from
# a step on any realistic set of fractions and only slow the optimiser down.
_A_BOUNDS = (0.0, 1.0)
_B_MIN = 1e-12
_C_BOUNDS = (1e-3, 5.0)
_C_GRID = np.geomspace(0.02, 4.0, 48)
_PRIOR_DOF = 4.0  # weight of the pooled replica variance when estimating one fraction's variance


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided interval; low/high are NaN when they cannot be computed."""

    estimate: float
    low: float
    high: float
    n: int


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """Student-t interval of the mean of `values` (NaNs ignored).

    One value gives the mean with a NaN interval (no spread to estimate); none gives all NaN.
    """
    x = _finite(values)
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(sps.t.ppf(0.5 + confidence / 2, df=x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Interval(mean, mean - half, mean + half, int(x.size))


@dataclass(frozen=True)
class PowerLaw:
    """AUC(n) = a - b * n**(-c), n = number of training images."""

    a: float
    b: float
    c: float

    def __call__(self, n: float | np.ndarray) -> np.ndarray:
        return self.a - self.b * np.power(np.asarray(n, dtype=float), -self.c)

    def images_for(self, target: float) -> float | None:
        """Training images at which the curve reaches `target`; None when it never does (target >= a)."""
        if target >= self.a:
            return None
        return float((self.b / (self.a - target)) ** (1.0 / self.c))


@dataclass(frozen=True)
class FitQuality:
    r2: float  # on the per-fraction means; NaN when the means do not vary at all
    rmse: float  # root mean square residual of the per-fraction means, in AUC units
    reduced_chi2: float  # NaN without replica spread or without degrees of freedom
    fractions: int  # distinct training-set sizes the fit saw


@dataclass(frozen=True)
class CurveFit:
    law: PowerLaw
    quality: FitQuality
    weighted: bool  # False when no fraction had two replicas to estimate a spread from
    warnings: tuple[str, ...]


def fraction_sigmas(groups: Sequence[np.ndarray]) -> tuple[np.ndarray, bool]:
    """Standard error of each fraction's mean AUC, used as the fit's sigma; and whether it is real.

    Three to five replicas estimate a spread poorly: a fraction whose replicas happen to agree would
    get a huge weight. So each fraction's variance is shrunk toward the pooled variance of all
    fractions (as if the pooled value were worth _PRIOR_DOF more replicas); a fraction with one
    replica gets the pooled value. Without any replicated fraction the fit is unweighted.
    """
    counts = np.array([g.size for g in groups], dtype=float)
    dof = np.maximum(counts - 1, 0)
    variances = np.array([g.var(ddof=1) if g.size >= 2 else 0.0 for g in groups])
    if dof.sum() == 0:
        return np.ones(len(groups)), False
    pooled = float(np.sum(dof * variances) / dof.sum())
    if pooled <= 0:
        return np.ones(len(groups)), False
    shrunk = (dof * variances + _PRIOR_DOF * pooled) / (dof + _PRIOR_DOF)
    return np.sqrt(shrunk / counts), True


def fit_power_law(
    sizes: np.ndarray, means: np.ndarray, sigmas: np.ndarray, start: PowerLaw | None = None
) -> PowerLaw:
    """Weighted least-squares fit of the inverse power law to per-fraction means.

    Raises FitFailed when the optimiser does not converge. Without `start`, the starting point is
    the best of a grid over c, where a and b follow from a linear weighted fit: that keeps the
    non-linear fit away from the flat regions where a bad start strands it.
    """
    sizes, means, sigmas = (np.asarray(v, dtype=float) for v in (sizes, means, sigmas))
    n_ref = float(sizes.max())
    x = sizes / n_ref  # scaled so that b' is the gap to the asymptote at the largest size
    p0 = _scaled(start, n_ref) if start is not None else _grid_start(x, means, sigmas)
    lower = (_A_BOUNDS[0], _B_MIN, _C_BOUNDS[0])
    upper = (_A_BOUNDS[1], np.inf, _C_BOUNDS[1])
    p0 = np.clip(p0, np.add(lower, 1e-9), np.subtract(upper, 1e-9))
    try:
        result = optimize.least_squares(
            lambda p: (means - _scaled_model(x, *p)) / sigmas,
            p0,
            bounds=(lower, upper),
            method="trf",
            max_nfev=2000,
        )
    except ValueError as exc:  # e.g. non-finite input
        raise FitFailed(str(exc)) from exc
    if not result.success:
        raise FitFailed(result.message)
    params = result.x
    a, b_scaled, c = (float(v) for v in params)
    return PowerLaw(a=a, b=b_scaled * n_ref**c, c=c)


class FitFailed(Exception):
    """The optimiser did not converge (internal: callers turn it into a warning)."""


def fit_learning_curve(sizes: np.ndarray, groups: Sequence[np.ndarray]) -> CurveFit | None:
    """Fit the curve to the fractions that have at least one AUC; None (plus nothing) below 3 of them.

    `groups[i]` holds the replica AUCs measured at `sizes[i]` training images.
    """
    sizes = np.asarray(sizes, dtype=float)
    if len(groups) < MIN_FRACTIONS_TO_FIT:
        return None
    means = np.array([g.mean() for g in groups])
    sigmas, weighted = fraction_sigmas(groups)
    try:
        law = fit_power_law(sizes, means, sigmas)
    except FitFailed:
        return None
    quality = fit_quality(law, sizes, means, sigmas if weighted else None)
    return CurveFit(law, quality, weighted, tuple(quality_warnings(quality) + bound_warnings(law)))


def fit_quality(law: PowerLaw, sizes: np.ndarray, means: np.ndarray, sigmas: np.ndarray | None) -> FitQuality:
    residuals = means - law(sizes)
    ss_tot = float(np.sum((means - means.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residuals**2)) / ss_tot if ss_tot > 0 else math.nan
    rmse = float(np.sqrt(np.mean(residuals**2)))
    dof = len(means) - 3
    chi2 = math.nan
    if sigmas is not None and dof > 0:
        chi2 = float(np.sum((residuals / sigmas) ** 2) / dof)
    return FitQuality(r2=r2, rmse=rmse, reduced_chi2=chi2, fractions=len(means))


def quality_warnings(q: FitQuality) -> list[str]:
    """Plain-word warnings about a fit: too few fractions to check it, or a poor match."""
    out: list[str] = []
    if q.fractions < MIN_FRACTIONS_TO_TRUST:
        out.append(
            f"Only {q.fractions} training-set sizes have results: a 3-parameter curve passes through "
            f"{q.fractions} points almost regardless of the truth, so treat the fit as a sketch "
            f"(at least {MIN_FRACTIONS_TO_TRUST} are needed to check it)."
        )
    if not math.isnan(q.r2) and q.r2 < POOR_R2:
        out.append(
            f"The fitted curve explains little of the variation between fractions (R² = {q.r2:.2f}): "
            "AUC barely changes with data size here, or does not follow an inverse power law."
        )
    if not math.isnan(q.reduced_chi2) and q.reduced_chi2 > POOR_REDUCED_CHI2:
        out.append(
            f"The fraction means scatter around the curve {math.sqrt(q.reduced_chi2):.1f}x more than "
            "the replica spread explains: the curve shape may be wrong for this sweep."
        )
    return out


def bound_warnings(law: PowerLaw) -> list[str]:
    """A fit that ends on a bound did not find its own optimum there: say what that means."""
    if law.a >= _A_BOUNDS[1] - 1e-6:
        return [
            (
                "The fitted asymptote is at its bound (AUC 1): the results do not yet show the curve levelling "
                "off, so the asymptote and answers far beyond the measured sizes are not reliable."
            )
        ]
    return []


@dataclass(frozen=True)
class Bootstrap:
    """Fits to resampled replicas: one row (a, b, c) per resample, NaN where that fit failed."""

    params: np.ndarray  # shape (resamples, 3)
    seed: int

    @property
    def laws(self) -> list[PowerLaw]:
        return [PowerLaw(*row) for row in self.params if np.all(np.isfinite(row))]

    @property
    def failed(self) -> int:
        return int(np.sum(~np.all(np.isfinite(self.params), axis=1)))


def bootstrap_fits(
    sizes: np.ndarray, groups: Sequence[np.ndarray], start: PowerLaw, *, resamples: int, seed: int
) -> Bootstrap:
    """Refit the curve to `resamples` resamplings of the replicas within each fraction.

    Resampling within a fraction keeps every training-set size in every resample, so the spread
    reflects replica noise, not which fractions happened to be drawn. Fixed seed: same report twice.
    """
    rng = np.random.default_rng(seed)
    params = np.full((resamples, 3), np.nan)
    for i in range(resamples):
        drawn = [rng.choice(g, size=g.size, replace=True) for g in groups]
        means = np.array([d.mean() for d in drawn])
        sigmas, _ = fraction_sigmas(drawn)
        try:
            law = fit_power_law(sizes, means, sigmas, start=start)
        except FitFailed:
            continue
        params[i] = (law.a, law.b, law.c)
    return Bootstrap(params=params, seed=seed)


def percentile_interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval that tolerates infinities (it picks sample values, never interpolates)."""
    x = np.asarray(samples, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(x, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def curve_band(
    boot: Bootstrap, grid: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile band of the bootstrap curves on `grid`; NaN when no resample fitted."""
    laws = boot.laws
    if not laws:
        nan = np.full(grid.shape, np.nan)
        return nan, nan.copy()
    curves = np.vstack([law(grid) for law in laws])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(curves, [tail, 100 - tail], axis=0)
    return low, high


@dataclass(frozen=True)
class ImagesNeeded:
    """Training images needed to reach a target AUC, from the fitted curve and its bootstrap."""

    target: float
    images: float | None  # None: the fitted curve levels off below the target
    low: float | None  # None when unknown (no bootstrap)
    high: float | None  # None when unknown or unbounded (see share_unreached)
    share_unreached: float  # of bootstrap resamples whose curve never reaches the target
    asymptote: float
    statement: str


def images_needed(law: PowerLaw, target: float, boot: Bootstrap | None) -> ImagesNeeded:
    """Point estimate (analytic inverse of the fit), bootstrap interval and a plain statement."""
    point = law.images_for(target)
    low = high = None
    unreached = math.nan
    if boot is not None and boot.laws:
        needed = np.array([_needed_or_inf(lw, target) for lw in boot.laws])
        unreached = float(np.mean(np.isinf(needed)))
        lo, hi = percentile_interval(needed)
        low = lo if math.isfinite(lo) else None
        high = hi if math.isfinite(hi) else None
    statement = _needed_statement(point, low, high, unreached, law.a, target)
    return ImagesNeeded(target, point, low, high, unreached, law.a, statement)


def _needed_or_inf(law: PowerLaw, target: float) -> float:
    n = law.images_for(target)
    return math.inf if n is None else n


def _needed_statement(
    point: float | None, low: float | None, high: float | None, unreached: float, a: float, target: float
) -> str:
    if point is None:
        return (
            f"The fitted curve does not reach AUC {target:.2f}: it levels off at AUC {a:.3f}, so more "
            "training data of this kind is not predicted to get there; a better model or data would be."
        )
    text = f"About {point:,.0f} training images reach AUC {target:.2f} on the fitted curve"
    if low is None and high is None and math.isnan(unreached):
        return text + " (no bootstrap interval)."
    if high is None:
        lo = f"{low:,.0f}" if low is not None else "?"
        return (
            text + f"; 95 % interval from {lo} images with no upper bound: in {unreached:.0%} of the "
            "bootstrap resamples the curve never reaches the target."
        )
    return text + f" (95 % bootstrap interval {low:,.0f} to {high:,.0f})."


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def _scaled_model(x: np.ndarray, a: float, b_scaled: float, c: float) -> np.ndarray:
    return a - b_scaled * np.power(x, -c)


def _scaled(law: PowerLaw, n_ref: float) -> np.ndarray:
    return np.array([law.a, law.b / n_ref**law.c, law.c])


def _grid_start(x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Best (a, b', c) over a grid of c, with a and b' from a weighted linear fit at each c."""
    w = 1.0 / sigma
    best, best_cost = np.array([min(1.0, y.max() + 0.01), 0.01, 0.5]), math.inf
    for c in _C_GRID:
        design = np.column_stack([np.ones_like(x), -np.power(x, -c)])
        coef, *_ = np.linalg.lstsq(design * w[:, None], y * w, rcond=None)
        a = float(np.clip(coef[0], *_A_BOUNDS))
        b = max(float(coef[1]), _B_MIN)
        cost = float(np.sum(((y - _scaled_model(x, a, b, c)) * w) ** 2))
        if cost < best_cost:
            best, best_cost = np.array([a, b, c]), cost
    return best
