"""The report's statistics against values known in advance (hand-computed or generated from known parameters)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweep.analysis import stats
from sweep.analysis.learning_curve import analyse
from sweep.analysis.stats import PowerLaw

TRUE = PowerLaw(a=0.85, b=3.0, c=0.35)
# Two decades of training-set sizes: over one decade a, b and c trade off against each other and
# only the curve, not each parameter, is pinned down.
WIDE_SIZES = np.round(np.geomspace(500, 78_468, 10))
SWEEP_SIZES = np.round(np.linspace(0.1, 1.0, 10) * 78_468)


def noisy_groups(
    law: PowerLaw, sizes: np.ndarray, *, sd: float, replicas: int, seed: int
) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [law(n) + rng.normal(0, sd, replicas) for n in sizes]


# --- t-interval -------------------------------------------------------------------------------


def test_t_interval_of_a_known_sample() -> None:
    # mean 0.718, s = sqrt(0.00148 / 4) = 0.0192354, se = 0.00860233, t(0.975, 4) = 2.7764451
    # half-width = 0.0238839 (scipy.stats.t.interval gives the same to 1e-12)
    ci = stats.t_interval([0.71, 0.74, 0.69, 0.73, 0.72])
    assert ci.n == 5
    assert ci.estimate == pytest.approx(0.718, abs=1e-12)
    assert ci.low == pytest.approx(0.6941161, abs=1e-7)
    assert ci.high == pytest.approx(0.7418839, abs=1e-7)


def test_t_interval_ignores_nan_and_uses_one_degree_of_freedom_for_two_values() -> None:
    # [0.7, 0.8]: se = 0.05, t(0.975, 1) = 12.7062047 -> half-width 0.6353102
    ci = stats.t_interval([0.7, math.nan, 0.8])
    assert ci.n == 2
    assert (ci.low, ci.high) == pytest.approx((0.75 - 0.6353102, 0.75 + 0.6353102), abs=1e-7)


def test_t_interval_of_one_value_has_no_width_and_of_none_no_mean() -> None:
    one = stats.t_interval([0.7])
    assert one.estimate == 0.7 and math.isnan(one.low) and math.isnan(one.high)
    assert math.isnan(stats.t_interval([]).estimate)


# --- weights ----------------------------------------------------------------------------------


def test_fraction_sigmas_shrink_each_variance_toward_the_pooled_one() -> None:
    # variances 2e-4 (1 dof) and 1e-4 (2 dof) -> pooled 1.3333e-4; prior weight 4 dof:
    # (2e-4 + 4 * 1.3333e-4) / 5 = 1.46667e-4 over 2 replicas -> 0.0085635
    # (2 * 1e-4 + 4 * 1.3333e-4) / 6 = 1.22222e-4 over 3 replicas -> 0.0063828
    # one replica -> the pooled variance over 1 -> 0.0115470
    groups = [np.array([0.70, 0.72]), np.array([0.80, 0.81, 0.82]), np.array([0.9])]
    sigmas, weighted = stats.fraction_sigmas(groups)
    assert weighted
    assert sigmas == pytest.approx([0.0085635, 0.0063828, 0.0115470], abs=1e-7)


def test_fraction_sigmas_without_any_replicated_fraction_are_unweighted() -> None:
    sigmas, weighted = stats.fraction_sigmas([np.array([0.7]), np.array([0.8])])
    assert not weighted and list(sigmas) == [1.0, 1.0]


# --- the inverse power law ------------------------------------------------------------------


def test_fit_recovers_the_parameters_of_an_exact_curve() -> None:
    groups = [np.array([TRUE(n)]) for n in SWEEP_SIZES]
    fit = stats.fit_learning_curve(SWEEP_SIZES, groups)
    assert fit is not None
    assert (fit.law.a, fit.law.b, fit.law.c) == pytest.approx((0.85, 3.0, 0.35), rel=1e-6)
    assert fit.quality.r2 == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_fit_recovers_the_parameters_of_a_noisy_curve_within_tolerance(seed: int) -> None:
    # 5 replicas with AUC noise sd 0.004. Tolerances: a within 0.02 AUC, b within 20 %, c within 0.04
    # (over 30 seeds the largest errors were 0.013, 12 % and 0.024).
    groups = noisy_groups(TRUE, WIDE_SIZES, sd=0.004, replicas=5, seed=seed)
    fit = stats.fit_learning_curve(WIDE_SIZES, groups)
    assert fit is not None
    assert fit.law.a == pytest.approx(0.85, abs=0.02)
    assert fit.law.b == pytest.approx(3.0, rel=0.2)
    assert fit.law.c == pytest.approx(0.35, abs=0.04)
    assert fit.weighted and fit.warnings == ()


def test_fit_over_a_sweeps_range_pins_down_the_curve_if_not_each_parameter() -> None:
    # Fractions 10..100 % only: the fitted curve stays within 0.005 AUC of the true one where measured.
    groups = noisy_groups(TRUE, SWEEP_SIZES, sd=0.005, replicas=5, seed=1)
    fit = stats.fit_learning_curve(SWEEP_SIZES, groups)
    grid = np.geomspace(SWEEP_SIZES.min(), SWEEP_SIZES.max(), 50)
    assert np.max(np.abs(fit.law(grid) - TRUE(grid))) < 0.005


def test_fit_respects_the_bounds_on_data_that_do_not_rise() -> None:
    falling = PowerLaw(a=0.6, b=-3.0, c=0.35)  # AUC dropping with more data: b would be negative
    groups = noisy_groups(falling, SWEEP_SIZES, sd=0.002, replicas=3, seed=0)
    fit = stats.fit_learning_curve(SWEEP_SIZES, groups)
    assert fit is not None
    assert fit.law.b > 0 and fit.law.c > 0 and fit.law.a <= 1.0
    assert any("explains little" in w for w in fit.warnings)


def test_a_flat_sweep_gets_a_poor_fit_warning() -> None:
    # The reference report's situation: AUC the same at every fraction.
    rng = np.random.default_rng(0)
    groups = [0.62 + rng.normal(0, 0.01, 3) for _ in SWEEP_SIZES]
    fit = stats.fit_learning_curve(SWEEP_SIZES, groups)
    assert fit.quality.r2 < stats.POOR_R2
    assert any("R²" in w for w in fit.warnings)


def test_too_few_fractions_warn_and_fewer_than_three_do_not_fit() -> None:
    three = noisy_groups(TRUE, SWEEP_SIZES[[0, 4, 9]], sd=0.003, replicas=3, seed=0)
    fit = stats.fit_learning_curve(SWEEP_SIZES[[0, 4, 9]], three)
    assert fit is not None
    assert any("Only 3 training-set sizes" in w for w in fit.warnings)
    assert stats.fit_learning_curve(SWEEP_SIZES[:2], three[:2]) is None


# --- images needed ----------------------------------------------------------------------------


def test_images_needed_is_the_analytic_inverse() -> None:
    law = PowerLaw(a=0.82, b=5.0, c=0.4)
    # (5 / (0.82 - 0.75)) ** (1 / 0.4) = 71.428571 ** 2.5 = 43,120.115
    n = law.images_for(0.75)
    assert n == pytest.approx(43_120.115, rel=1e-7)
    assert float(law(n)) == pytest.approx(0.75, abs=1e-12)
    needed = stats.images_needed(law, 0.75, boot=None)
    assert needed.images == n
    assert "43,120" in needed.statement


@pytest.mark.parametrize("target", [0.82, 0.9])
def test_target_at_or_above_the_asymptote_gets_the_plain_statement(target: float) -> None:
    law = PowerLaw(a=0.82, b=5.0, c=0.4)
    assert law.images_for(target) is None
    needed = stats.images_needed(law, target, boot=None)
    assert needed.images is None
    assert needed.statement.startswith(f"The fitted curve does not reach AUC {target:.2f}")
    assert "levels off at AUC 0.820" in needed.statement


def test_bootstrap_is_reproducible_and_brackets_the_truth() -> None:
    groups = noisy_groups(TRUE, SWEEP_SIZES, sd=0.005, replicas=3, seed=3)
    fit = stats.fit_learning_curve(SWEEP_SIZES, groups)
    first = stats.bootstrap_fits(SWEEP_SIZES, groups, fit.law, resamples=200, seed=11)
    again = stats.bootstrap_fits(SWEEP_SIZES, groups, fit.law, resamples=200, seed=11)
    other = stats.bootstrap_fits(SWEEP_SIZES, groups, fit.law, resamples=200, seed=12)
    np.testing.assert_array_equal(first.params, again.params)
    assert not np.array_equal(first.params, other.params)
    needed = stats.images_needed(fit.law, 0.75, first)
    assert needed.low < needed.images < needed.high
    assert needed.low < TRUE.images_for(0.75) < needed.high  # 21,4xx images
    assert "95 % bootstrap interval" in needed.statement


def test_a_target_near_the_asymptote_gets_an_open_interval() -> None:
    groups = noisy_groups(TRUE, SWEEP_SIZES, sd=0.005, replicas=3, seed=3)
    curve = analyse(SWEEP_SIZES, groups, 0.845, resamples=200, seed=5)
    needed = curve.needed
    assert needed.high is None and needed.share_unreached > 0.025
    assert "no upper bound" in needed.statement or "does not reach" in needed.statement


def test_percentile_interval_keeps_infinite_samples() -> None:
    samples = np.array([1.0, 2.0, 3.0, math.inf, math.inf])
    low, high = stats.percentile_interval(samples, confidence=0.5)
    assert (low, high) == (2.0, math.inf)


def test_single_replica_sweep_fits_without_an_interval() -> None:
    groups = [np.array([TRUE(n)]) for n in SWEEP_SIZES]
    curve = analyse(SWEEP_SIZES, groups, 0.75, resamples=50)
    assert curve.boot is None and curve.needed.low is None
    assert any("single replica" in w for w in curve.warnings)


def test_a_curve_that_never_levels_off_ends_on_the_bound_with_a_warning() -> None:
    # AUC rising linearly in log(n) has no asymptote: the fit runs into a <= 1 and says so.
    groups = [0.3 + 0.1 * np.log10(n) + np.array([0.0, 0.002, -0.002]) for n in SWEEP_SIZES]
    fit = stats.fit_learning_curve(SWEEP_SIZES, groups)
    assert fit.law.a == pytest.approx(1.0)
    assert any("asymptote is at its bound" in w for w in fit.warnings)
