"""Metric kernels against the plain NumPy/SciPy reference on fixed inputs."""

from __future__ import annotations

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import numpy_reference as ref
from jaxbench.agreement import (
    BinCounts,
    CurveInterval,
    bin_pair_agreement,
    bootstrap_over_pairs,
    bootstrap_over_runs,
    curve_from_counts,
    detect_mdad,
    kendall_tau_b,
    num_bins_for,
)

NUM_BINS = num_bins_for(0.5)


def _bins(estimates, totals, counts):
    return jax.tree.map(np.asarray, bin_pair_agreement(
        jnp.asarray(estimates, jnp.float32), jnp.asarray(totals, jnp.float32),
        jnp.asarray(counts, jnp.float32), num_bins=NUM_BINS))


def _reference_counts(estimates, totals, counts):
    pairs, agree, tied = np.zeros(NUM_BINS), np.zeros(NUM_BINS), np.zeros(NUM_BINS)
    n = len(estimates)
    for a in range(n):
        for b in range(a + 1, n):
            gap = Fraction(int(totals[a]), int(counts[a])) - Fraction(int(totals[b]), int(counts[b]))
            index = min(int(abs(gap) * 200), NUM_BINS - 1)  # exact floor of |Δ| / 0.5 point
            delta_hat = estimates[a] - estimates[b]
            pairs[index] += 1
            if delta_hat == 0:
                tied[index] += 1
            elif (delta_hat > 0) == (gap >= 0):
                agree[index] += 1
    return pairs, agree, tied


def test_pair_bins_match_exact_rational_reference(rng):
    # Counts out of 300 items: many gaps fall exactly on bin edges (multiples of 1/300).
    for _ in range(5):
        n = 25
        totals = rng.integers(0, 301, n).astype(float)
        counts = np.full(n, 300.0)
        counts[:3] = [290, 299, 300]  # some unequal denominators (the mask policy)
        estimates = rng.integers(0, 11, n) / 10  # k = 10: many exact ties
        got = _bins(estimates, totals, counts)
        pairs, agree, tied = _reference_counts(estimates, totals, counts)
        np.testing.assert_array_equal(got.pairs, pairs)
        np.testing.assert_array_equal(got.agree, agree)
        np.testing.assert_array_equal(got.tied, tied)


def test_zero_gap_counts_as_positive_and_ties_fail():
    # a and b tie exactly on the reference; estimates a > b agree, a < b and a == b do not.
    got = _bins([0.6, 0.4], [5, 5], [10, 10])
    assert got.pairs[0] == 1 and got.agree[0] == 1
    got = _bins([0.4, 0.6], [5, 5], [10, 10])
    assert got.agree[0] == 0 and got.tied[0] == 0
    got = _bins([0.5, 0.5], [7, 5], [10, 10])
    assert got.tied[20 * 2] == 1 and got.agree.sum() == 0  # |Δ| = 20 points -> bin 40


def test_float32_rounding_of_sums_still_ties():
    # Σ w·y over different item positions: same count of correct items must tie.
    k = 7
    weights = np.full(k, 1 / k, np.float32)
    a = np.array([1, 1, 1, 0, 0, 0, 0], np.float32)
    b = np.array([0, 0, 0, 0, 1, 1, 1], np.float32)
    estimates = jnp.stack([jnp.sum(weights * a), jnp.sum(weights * b)])
    got = _bins(np.asarray(estimates), [10, 3], [20, 20])
    assert got.tied.sum() == 1


def test_curve_tie_conventions():
    counts = BinCounts(jnp.array([4, 0, 2]), jnp.array([1, 0, 2]), jnp.array([2, 0, 0]))
    np.testing.assert_allclose(curve_from_counts(counts, tie_value=0.0), [0.25, np.nan, 1.0])
    np.testing.assert_allclose(curve_from_counts(counts, tie_value=0.5), [0.5, np.nan, 1.0])


def test_kendall_tau_b_matches_scipy(rng):
    for _ in range(10):
        x = rng.integers(0, 6, 30).astype(np.float32) / 5  # heavy ties
        y = rng.integers(0, 8, 30).astype(np.float32) / 7
        expected = scipy.stats.kendalltau(x, y, variant="b").statistic
        got = float(kendall_tau_b(jnp.asarray(x), jnp.asarray(y)))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_kendall_constant_input_is_nan():
    assert np.isnan(float(kendall_tau_b(jnp.ones(5), jnp.arange(5.0))))


@pytest.mark.parametrize(
    "agreement, lower, upper, expected",
    [
        # paper rule picks bin 1 even though bin 2 dips; monotone waits for bin 3
        ([0.5, 0.85, 0.7, 0.9, 0.95], [0.3, 0.7, 0.6, 0.85, 0.9], [0.7, 0.9, 0.8, 0.95, 1.0], (1, 1, 3, 3)),
        # never reached: all null
        ([0.5, 0.6, 0.7], [0.4, 0.5, 0.6], [0.6, 0.7, 0.79], (None, None, None, None)),
        # empty bins (NaN) are skipped
        ([np.nan, 0.9, np.nan, 0.85], [np.nan, 0.75, np.nan, 0.81], [np.nan, 0.95, np.nan, 0.9], (1, 1, 3, 1)),
        # the last bin fails: monotone not reached although the paper rule is
        ([0.9, 0.7], [0.85, 0.6], [0.95, 0.8], (0, 0, 0, None)),
    ],
)
def test_mdad_rules_against_reference(agreement, lower, upper, expected):
    agreement, lower, upper = (np.asarray(v, np.float32) for v in (agreement, lower, upper))
    got = detect_mdad(jnp.asarray(agreement), CurveInterval(jnp.asarray(lower), jnp.asarray(upper)),
                      threshold=0.8)
    got = tuple(None if int(v) < 0 else int(v) for v in (got.index, got.low, got.high, got.monotone))
    assert got == expected
    assert got == ref.mdad_rules(agreement, lower, upper, 0.8)


def _random_counts(rng, runs=30, bins=6):
    pairs = rng.integers(0, 40, (runs, bins))
    pairs[:, 2] = 0  # an empty bin
    agree = rng.binomial(pairs, 0.7)
    tied = rng.binomial(pairs - agree, 0.3)
    return BinCounts(jnp.asarray(pairs), jnp.asarray(agree), jnp.asarray(tied))


def test_bootstrap_over_runs_matches_numpy_resampling(rng):
    counts = _random_counts(rng)
    got = bootstrap_over_runs(jax.random.key(0), counts, tie_value=0.5, num_bootstrap=4000)
    pairs, agree, tied = (np.asarray(c) for c in counts)
    score = agree + 0.5 * tied
    draws = rng.integers(0, pairs.shape[0], (4000, pairs.shape[0]))
    with np.errstate(invalid="ignore"):
        replicates = score[draws].sum(1) / pairs[draws].sum(1)
    for bin_index in (0, 1, 3, 4, 5):
        low, high = np.percentile(replicates[:, bin_index], [2.5, 97.5])
        # Two independent bootstraps of B = 4000: endpoints agree to Monte Carlo error.
        assert abs(float(got.lower[bin_index]) - low) < 0.02
        assert abs(float(got.upper[bin_index]) - high) < 0.02
    assert np.isnan(float(got.lower[2])) and np.isnan(float(got.upper[2]))


def test_bootstrap_over_pairs_matches_numpy_resampling(rng):
    counts = _random_counts(rng)
    got = bootstrap_over_pairs(jax.random.key(1), counts, tie_value=0.5, num_bootstrap=4000)
    pooled = [np.asarray(c).sum(0) for c in counts]
    for bin_index in (0, 1, 3):
        n, a, t = (int(c[bin_index]) for c in pooled)
        values = np.concatenate([np.ones(a), np.full(t, 0.5), np.zeros(n - a - t)])
        replicates = rng.choice(values, (4000, n)).mean(1)
        low, high = np.percentile(replicates, [2.5, 97.5])
        assert abs(float(got.lower[bin_index]) - low) < 0.01
        assert abs(float(got.upper[bin_index]) - high) < 0.01


def test_runs_interval_is_wider_when_runs_are_correlated(rng):
    # Every pair in a run agrees or fails together: resampling pairs understates uncertainty.
    runs = 40
    outcome = rng.random(runs) < 0.7
    pairs = np.full((runs, 1), 50)
    counts = BinCounts(jnp.asarray(pairs), jnp.asarray(pairs * outcome[:, None]), jnp.zeros_like(pairs))
    by_runs = bootstrap_over_runs(jax.random.key(2), counts, tie_value=0.0, num_bootstrap=2000)
    by_pairs = bootstrap_over_pairs(jax.random.key(2), counts, tie_value=0.0, num_bootstrap=2000)
    width_runs = float(by_runs.upper[0] - by_runs.lower[0])
    width_pairs = float(by_pairs.upper[0] - by_pairs.lower[0])
    assert width_runs > 3 * width_pairs
