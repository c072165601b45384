"""Meta-evaluation metrics of SPEC §5 as pure JAX kernels.

Per run (vmapped by the engine): pairwise agreement binned by the true gap `|Δ|`, estimation
error and Kendall τ-b. Across runs: pooled agreement curves, percentile-bootstrap intervals that
resample pairs within a bin or whole runs, and the MDAD read off a curve.

Pair agreement (paper convention): with ``Δ = s_a − s_b`` on the reference half and ``Δ̂`` on the
estimates, a pair agrees iff ``sign(Δ̂) = sign(Δ)`` and ``Δ̂ ≠ 0``, where ``Δ = 0`` counts as
``Δ > 0``. Estimates closer than ``tie_tolerance`` count as tied: it absorbs float32 rounding in
``Σ w·y`` (two models with the same number of correct items must tie exactly) and is far below
any real difference (1/k ≥ 2·10⁻⁴ for k ≤ 5,000).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

DEFAULT_RESOLUTION = 0.5  # bin width, accuracy points
DEFAULT_TIE_TOLERANCE = 1e-6  # on scores in [0, 1]


class BinCounts(NamedTuple):
    """Pair counts per |Δ| bin (bin b covers ``[b·resolution, (b+1)·resolution)`` points).

    Attributes:
        pairs: int32[bins], pairs whose true gap falls in the bin.
        agree: int32[bins], of those, pairs ranked correctly (sign match, no tie).
        tied: int32[bins], of those, pairs with tied estimates.
    """

    pairs: jax.Array
    agree: jax.Array
    tied: jax.Array


class CurveInterval(NamedTuple):
    """A bootstrap interval per bin (NaN where the bin is empty)."""

    lower: jax.Array
    upper: jax.Array


class MDAD(NamedTuple):
    """MDAD read off one agreement curve, as bin indices (−1 where not reached).

    Attributes:
        index: first bin, in increasing |Δ|, whose agreement reaches the threshold (paper).
        low: first bin whose interval *upper* bound reaches it.
        high: first bin whose interval *lower* bound reaches it.
        monotone: first bin from which every larger non-empty bin reaches it.
    """

    index: jax.Array
    low: jax.Array
    high: jax.Array
    monotone: jax.Array


def num_bins_for(resolution: float) -> int:
    """Bins needed to cover gaps 0..100 points (a gap of exactly 100 gets its own bin)."""
    return int(100.0 // resolution) + 1


def pair_indices(num_targets: int) -> tuple[jax.Array, jax.Array]:
    """The (a, b) index arrays of all pairs a < b, in `jnp.triu_indices` order."""
    return jnp.triu_indices(num_targets, k=1)


def bin_pair_agreement(
    estimates: jax.Array,
    reference_total: jax.Array,
    reference_count: jax.Array,
    *,
    num_bins: int,
    resolution: float = DEFAULT_RESOLUTION,
    tie_tolerance: float = DEFAULT_TIE_TOLERANCE,
) -> BinCounts:
    """Bin all target pairs by true gap and count agreements, for one run.

    The reference score of a target is ``total / count`` (its summed score over the observed
    reference items, and their number); see `bin_reference_gaps`.

    Args:
        estimates: float32[targets], estimated scores in [0, 1].
        reference_total: float32[targets], summed reference scores (exact integers for 0/1 data).
        reference_count: float32[targets], observed reference items per target.
        num_bins: static number of bins; larger gaps go to the last bin.
        resolution: bin width in accuracy points.
        tie_tolerance: estimate differences at most this (on [0, 1]) are ties.

    Returns:
        `BinCounts` with int32[bins] fields.
    """
    first, second = pair_indices(estimates.shape[0])
    bins, positive = bin_reference_gaps(
        reference_total, reference_count, num_bins=num_bins, resolution=resolution
    )
    estimated_gap = estimates[first] - estimates[second]
    tied = jnp.abs(estimated_gap) <= tie_tolerance
    agree = ~tied & (positive == (estimated_gap > 0))
    return count_by_bin(bins, agree, tied, num_bins=num_bins)


def bin_reference_gaps(
    reference_total: jax.Array, reference_count: jax.Array, *, num_bins: int, resolution: float
) -> tuple[jax.Array, jax.Array]:
    """The |Δ| bin of every pair a < b and whether Δ ≥ 0, from exact reference sums.

    A gap of a whole number of bins is common (means are multiples of 1/n) and must land in the
    upper bin, and ``Δ = 0`` must be recognised exactly. With integer totals and a common count
    n (0/1 data without missing cells) the bin is ``floor(|s_a − s_b|·scale / n)`` in integer
    arithmetic; otherwise it is computed in float32.

    Args:
        reference_total: float32[targets], summed reference scores.
        reference_count: float32[targets], observed reference items per target.

    Returns:
        int32[pairs] bins and bool[pairs] ``Δ ≥ 0`` (Δ = 0 counts as positive).
    """
    first, second = pair_indices(reference_total.shape[0])
    total_a, total_b = reference_total[first], reference_total[second]
    count_a, count_b = reference_count[first], reference_count[second]
    same_count = count_a == count_b
    numerator = jnp.where(same_count, total_a - total_b, total_a * count_b - total_b * count_a)
    denominator = jnp.where(same_count, count_a, count_a * count_b)
    scale = 100.0 / resolution
    gap_in_bins = numerator * scale / denominator
    bins = jnp.floor(jnp.abs(gap_in_bins))
    if float(scale).is_integer():
        # 0/1 data with a common count: floor(|s_a − s_b|·scale / n) in exact integer arithmetic,
        # so the bin cannot depend on how the compiler rounds the division.
        integral = same_count & (numerator == jnp.round(numerator)) & (count_a < 2**31 / scale)
        exact_bins = (jnp.abs(jnp.round(numerator)).astype(jnp.int32) * int(scale)) // jnp.maximum(
            count_a.astype(jnp.int32), 1
        )
        bins = jnp.where(integral, exact_bins.astype(bins.dtype), bins)
    bins = jnp.minimum(bins, num_bins - 1).astype(jnp.int32)
    return bins, numerator >= 0


def count_by_bin(bins: jax.Array, agree: jax.Array, tied: jax.Array, *, num_bins: int) -> BinCounts:
    """Sum per-pair agreement and tie indicators (or probabilities) into `BinCounts`.

    Integer indicators give int32 counts; float probabilities (exact agreement) give expected
    counts in float32.
    """
    dtype = jnp.result_type(agree.dtype, tied.dtype)
    dtype = jnp.int32 if dtype == jnp.bool_ else dtype

    def count(values):
        return jnp.zeros(num_bins, dtype).at[bins].add(values.astype(dtype))

    return BinCounts(count(jnp.ones_like(bins)).astype(jnp.int32), count(agree), count(tied))


def estimation_error(estimates: jax.Array, reference: jax.Array) -> jax.Array:
    """Mean over targets of ``|ŝ − s|``, in accuracy points (float32 scalar)."""
    return jnp.mean(jnp.abs(estimates - reference)) * 100.0


def kendall_tau_b(x: jax.Array, y: jax.Array, *, tie_tolerance: float = 0.0) -> jax.Array:
    """Kendall τ-b between two float32[targets] vectors (NaN if either is constant).

    ``τ_b = (C − D) / sqrt((n₀ − n₁)(n₀ − n₂))`` with n₁, n₂ the pairs tied in x and in y;
    differences within ``tie_tolerance`` count as ties.
    """
    first, second = pair_indices(x.shape[0])

    def signs(values):
        gap = values[first] - values[second]
        return jnp.where(jnp.abs(gap) <= tie_tolerance, 0.0, jnp.sign(gap))

    sx, sy = signs(x), signs(y)
    total = first.shape[0]
    untied_x = total - jnp.sum(sx == 0)
    untied_y = total - jnp.sum(sy == 0)
    return jnp.sum(sx * sy) / jnp.sqrt(untied_x.astype(jnp.float32) * untied_y)


def pool_runs(counts: BinCounts) -> BinCounts:
    """Sum `BinCounts` over every leading axis (runs), leaving int32[bins] fields."""
    return BinCounts(*(c.reshape(-1, c.shape[-1]).sum(0) for c in counts))


def curve_from_counts(counts: BinCounts, *, tie_value: float = 0.0) -> jax.Array:
    """float32[bins]: pooled agreement per bin (NaN where empty).

    Args:
        counts: `BinCounts` with a leading runs axis (int32[runs, bins] fields) or without.
        tie_value: credit for a tied estimate: 0 (``ties="fail"``) or 0.5 (``ties="half"``).
    """
    pooled = pool_runs(counts)
    score = pooled.agree + tie_value * pooled.tied
    pairs = pooled.pairs
    return jnp.where(pairs > 0, score / jnp.maximum(pairs, 1), jnp.nan)


def bootstrap_over_runs(
    key: jax.Array, counts: BinCounts, *, tie_value: float, num_bootstrap: int, level: float = 0.95
) -> CurveInterval:
    """Percentile bootstrap interval per bin, resampling whole runs (``ci="runs"``).

    Pairs within a run share one micro-benchmark, so they are correlated; resampling runs
    respects that. Each replicate draws runs with replacement and pools their counts.

    Args:
        key: PRNG key.
        counts: `BinCounts` with int32[runs, bins] fields.
        tie_value: 0 or 0.5 (see `curve_from_counts`).
        num_bootstrap: replicates B (static).
        level: interval coverage.
    """
    num_runs = counts.pairs.shape[0]
    draws = jax.random.randint(key, (num_bootstrap, num_runs), 0, num_runs)
    multiplicity = jax.vmap(lambda d: jnp.bincount(d, length=num_runs))(draws).astype(jnp.float32)
    score = (counts.agree + tie_value * counts.tied).astype(jnp.float32)
    hi = jax.lax.Precision.HIGHEST
    pairs = jnp.matmul(multiplicity, counts.pairs.astype(jnp.float32), precision=hi)
    agreement = jnp.matmul(multiplicity, score, precision=hi) / pairs
    return _percentiles(agreement, counts.pairs.sum(0) > 0, level)


def bootstrap_over_pairs(
    key: jax.Array, counts: BinCounts, *, tie_value: float, num_bootstrap: int, level: float = 0.95
) -> CurveInterval:
    """Percentile bootstrap interval per bin, resampling pairs within the bin (``ci="pairs"``).

    Resampling n pairs with replacement from a bin only matters through how many agreeing,
    tied and failing pairs are drawn, which is Multinomial(n; shares); drawing those counts
    directly (as two binomials) is the same bootstrap at O(B) cost per bin instead of O(B·n).

    Args:
        key: PRNG key.
        counts: `BinCounts` pooled over runs (int32[bins] fields) or with a runs axis.
    """
    pooled = pool_runs(counts)
    n = pooled.pairs.astype(jnp.float32)
    safe_n = jnp.maximum(n, 1.0)
    p_agree = pooled.agree / safe_n
    p_tied_given_not = jnp.where(
        n > pooled.agree, pooled.tied / jnp.maximum(n - pooled.agree, 1.0), 0.0
    )
    agree_key, tie_key = jax.random.split(key)
    shape = (num_bootstrap, n.shape[0])
    drawn_agree = jax.random.binomial(agree_key, n, p_agree, shape)
    drawn_tied = jax.random.binomial(tie_key, n - drawn_agree, p_tied_given_not, shape)
    agreement = (drawn_agree + tie_value * drawn_tied) / safe_n
    return _percentiles(agreement, pooled.pairs > 0, level)


def _percentiles(replicates: jax.Array, present: jax.Array, level: float) -> CurveInterval:
    tail = (1.0 - level) / 2.0
    lower = jnp.quantile(replicates, tail, axis=0)
    upper = jnp.quantile(replicates, 1.0 - tail, axis=0)
    return CurveInterval(jnp.where(present, lower, jnp.nan), jnp.where(present, upper, jnp.nan))


def detect_mdad(
    agreement: jax.Array, interval: CurveInterval, *, threshold: float = 0.8
) -> MDAD:
    """The MDAD of one agreement curve, as bin indices (SPEC §5).

    Args:
        agreement: float32[bins], NaN for empty bins (which are skipped).
        interval: `CurveInterval` of the curve.
        threshold: τ, the agreement to reach.

    Returns:
        `MDAD` of int32 scalars, −1 meaning not reached.
    """
    present = ~jnp.isnan(agreement)
    bins = jnp.arange(agreement.shape[0])

    def first(condition):
        hit = present & condition
        return jnp.where(hit.any(), jnp.argmax(hit), -1)

    reaches = agreement >= threshold
    failing = present & ~reaches
    last_failure = jnp.max(jnp.where(failing, bins, -1))
    after = present & (bins > last_failure)
    monotone = jnp.where(after.any(), jnp.argmax(after), -1)
    return MDAD(
        index=first(reaches),
        low=first(interval.upper >= threshold),
        high=first(interval.lower >= threshold),
        monotone=monotone,
    )
