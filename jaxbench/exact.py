"""Exact agreement of uniform random micro-benchmarks (SPEC §6), without Monte Carlo.

Binary scores. For a pair (a, b) on a pool of N items, N⁺ items have a right and b wrong, N⁻ the
reverse, D = N⁺ + N⁻. A uniform n-subset draws m ~ Hypergeom(N, D, n) discordant items and, given
m, X⁺ ~ Hypergeom(D, N⁺, m) of them favour a; a wins iff X⁺ ≥ t_m = ⌊m/2⌋ + 1. So

    P(X⁺ > X⁻) = Σ_m P_n(m) · S_m,  S_m = P(X⁺_m ≥ t_m),  P(tie) = Σ_{m even} P_n(m)·P(X⁺_m = m/2).

`S_m` follows from drawing the discordant items one at a time: one more draw adds
``P(X_m = t−1) · (N⁺ − t + 1)/(D − m)`` to ``P(X ≥ t)``, and each time t_m steps up (m odd) the
centre mass ``c_{m+1} = P(X_{m+1} = t_m)`` is removed. The centre masses ``c_m = P(X_m = ⌊m/2⌋)``
obey a two-step product recurrence, and ``P_n(m)`` the ratio recurrence
``P_n(m+1)/P_n(m) = (D−m)(n−m) / ((m+1)(N−D−n+m+1))``. One `lax.scan` over m = 0..max_size
carries all of them for every size at once: O(max_size · sizes) per pair, no log-gamma (whose
float32 cancellation would be ~0.06 nats at N = 10⁵). The unnormalised `P_n(m)` run in linear
space and are normalised at the end; they are rescaled by an exact power of two when large (the
pmf is log-concave, so everything accumulated earlier is smaller and nothing overflows).

Graded scores use the normal approximation with finite-population correction (labelled
approximate): ``Δ̂ ~ N(Δ, σ²_d/n · (N−n)/(N−1))`` with σ²_d the population variance of the item
differences. It puts no mass on ties except when the variance is 0 (n = N or constant d), where
Δ̂ = Δ exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

_RESCALE_ABOVE = 2.0**60  # ratios are ≤ N·n < 2^40, so one rescale per step keeps < 2^100
_TIES = ("fail", "half")


class WinProbabilities(NamedTuple):
    """Probabilities that a random micro-benchmark ranks model a above / below model b.

    Attributes:
        greater: float[...], P(Δ̂ > 0).
        less: float[...], P(Δ̂ < 0). The tie probability is ``1 − greater − less``.
    """

    greater: jax.Array
    less: jax.Array


class PairAgreement(NamedTuple):
    """Agreement of every model pair, in `jnp.triu_indices(models, k=1)` order.

    Attributes:
        first: int32[pairs], index of model a.
        second: int32[pairs], index of model b (a < b).
        difference: float[pairs], full-pool Δ = score_a − score_b in accuracy points.
        agreement: float[pairs, sizes], probability that a uniform random subset of each size
            orders the pair as the full pool does (SPEC §5 convention for ties).
    """

    first: jax.Array
    second: jax.Array
    difference: jax.Array
    agreement: jax.Array


def _favoured_win_scan(favoured, other, pool_size, sizes, max_size, dtype):
    """P(X_fav > X_oth) and P(tie) for each size; see the module docstring for the recurrences."""
    fav, oth = favoured.astype(dtype), other.astype(dtype)
    disc, pool, n = fav + oth, pool_size.astype(dtype), sizes.astype(dtype)
    # First m with P_n(m) > 0: the non-discordant items cannot fill the whole subset.
    first_m = jnp.maximum(0, sizes - (pool_size - favoured - other))
    one = jnp.ones((), dtype)

    def step(carry, m):
        tail, centre, weight, acc_greater, acc_tie, acc_total = carry
        mf, half, even = m.astype(dtype), (m // 2).astype(dtype), m % 2 == 0
        acc_greater = acc_greater + weight * tail
        acc_tie = acc_tie + weight * jnp.where(even, centre, 0.0)
        acc_total = acc_total + weight
        # Draw discordant item m+1 (only meaningful while m < D; beyond, P_n(m) = 0).
        room = disc - mf
        live = room > 0
        per_room = 1.0 / jnp.where(live, room, 1.0)
        raised = tail + centre * (fav - half) * per_room
        centre_next = centre * per_room * jnp.where(
            even, (oth - half) * (mf + 1.0) / (half + 1.0), 2.0 * (fav - half)
        )
        centre_next = jnp.where(live, centre_next, 0.0)
        tail_next = jnp.where(live, jnp.where(even, raised, raised - centre_next), tail)
        # Hypergeom(N, D, n) pmf ratio, started at 1 on its first support point.
        below = pool - disc - n + mf + 1.0
        ratio = room * (n - mf) / jnp.where(below > 0, below, 1.0) / (mf + 1.0)
        weight = jnp.where(m + 1 == first_m, one, jnp.where(m >= first_m, weight * ratio, 0.0))
        scale = jnp.where(weight > _RESCALE_ABOVE, one / _RESCALE_ABOVE, one)
        return (
            tail_next,
            centre_next,
            weight * scale,
            acc_greater * scale,
            acc_tie * scale,
            acc_total * scale,
        ), None

    zeros = jnp.zeros(sizes.shape, dtype)
    start = (
        jnp.zeros((), dtype),  # S_0 = P(X_0 ≥ 1)
        one,  # c_0 = P(X_0 = 0)
        jnp.where(first_m == 0, one, 0.0).astype(dtype),
        zeros,
        zeros,
        zeros,
    )
    final, _ = jax.lax.scan(step, start, jnp.arange(max_size + 1))
    _, _, _, acc_greater, acc_tie, acc_total = final
    return acc_greater / acc_total, acc_tie / acc_total


def pair_win_probabilities(
    n_plus: jax.Array,
    n_minus: jax.Array,
    pool_size: jax.Array,
    size: jax.Array,
    *,
    max_size: int,
) -> WinProbabilities:
    """Exact win probabilities of one pair under uniform sampling without replacement.

    Exact in float64 (enable x64, e.g. ``with jax.enable_x64(True):``) to ~1e-12, and within
    ~2e-6 in float32 for pools up to 10⁵ items and sizes up to 5,000 (needs N·n < 2⁴⁰). Errors
    are absolute: a probability of 1e-80 comes out as ~0. All sizes share one scan of length
    ``max_size + 1``; results do not depend on ``max_size`` beyond that.

    Args:
        n_plus: int[], items that model a gets right and model b wrong (N⁺).
        n_minus: int[], items that b gets right and a wrong (N⁻).
        pool_size: int[], number of items N in the pool (N ≥ N⁺ + N⁻).
        size: int[] or int[sizes], subset sizes n (traced). Sizes outside ``0..min(N,
            max_size)`` give NaN.
        max_size: static upper bound on every size.

    Returns:
        `WinProbabilities` with the shape of ``size``: P(X⁺ > X⁻) and P(X⁺ < X⁻).

    >>> wins = pair_win_probabilities(3, 1, 10, 2, max_size=2)
    >>> print(f"{wins.greater:.4f} {wins.less:.4f}")
    0.4667 0.1333
    """
    n_plus, n_minus = jnp.asarray(n_plus), jnp.asarray(n_minus)
    pool_size, size = jnp.asarray(pool_size), jnp.asarray(size)
    sizes = jnp.atleast_1d(size)
    dtype = jnp.result_type(float)
    # Scan the side with fewer discordant items, so swapping a and b swaps the outputs exactly.
    plus_is_fewer = n_plus <= n_minus
    fewer = jnp.where(plus_is_fewer, n_plus, n_minus)
    more = jnp.where(plus_is_fewer, n_minus, n_plus)
    fewer_wins, tie = _favoured_win_scan(fewer, more, pool_size, sizes, max_size, dtype)
    more_wins = 1.0 - fewer_wins - tie
    greater = jnp.where(plus_is_fewer, fewer_wins, more_wins)
    less = jnp.where(plus_is_fewer, more_wins, fewer_wins)
    outside = (sizes < 0) | (sizes > max_size) | (sizes > pool_size)
    greater = jnp.where(outside, jnp.nan, greater).reshape(size.shape)
    less = jnp.where(outside, jnp.nan, less).reshape(size.shape)
    return WinProbabilities(greater, less)


def approximate_pair_win_probabilities(differences: jax.Array, size: jax.Array) -> WinProbabilities:
    """Normal approximation (with finite-population correction) for graded scores, one pair.

    ``Δ̂`` is the mean of ``size`` differences drawn without replacement, approximated by
    ``N(Δ, σ²_d/n · (N−n)/(N−1))``. With positive variance there is no tie mass (greater + less
    = 1, and Δ = 0 gives ½ each); with zero variance Δ̂ = Δ, so greater = [Δ > 0], less = [Δ < 0].

    Args:
        differences: float[items], ``y_a − y_b`` on every pool item.
        size: int[], subset size n (traced), 1 ≤ n ≤ items.

    Returns:
        `WinProbabilities` of scalars.
    """
    pool = differences.shape[0]
    n = jnp.asarray(size).astype(differences.dtype)
    mean = jnp.mean(differences)
    variance = jnp.mean(jnp.square(differences - mean)) / n * (pool - n) / max(pool - 1, 1)
    spread = jnp.sqrt(jnp.maximum(variance, 0.0))
    random = spread > 0
    z = mean / jnp.where(random, spread, 1.0)
    greater = jnp.where(random, ndtr(z), (mean > 0).astype(z.dtype))
    less = jnp.where(random, ndtr(-z), (mean < 0).astype(z.dtype))
    return WinProbabilities(greater, less)


def agreement_from_wins(
    wins: WinProbabilities, reference_difference: jax.Array, *, ties: str = "fail"
) -> jax.Array:
    """Probability that the subset orders a pair as the reference does (SPEC §5 convention).

    Args:
        wins: `WinProbabilities` of any shape broadcastable with ``reference_difference``.
        reference_difference: float[...], Δ on the reference set; Δ = 0 counts as Δ > 0.
        ties: ``"fail"`` (a tied subset disagrees) or ``"half"`` (it scores ½).

    Returns:
        float[...], the agreement probability.
    """
    if ties not in _TIES:
        raise ValueError(f"ties must be one of {_TIES}; got {ties!r}")
    won = jnp.where(reference_difference >= 0, wins.greater, wins.less)
    if ties == "half":
        won = won + 0.5 * (1.0 - wins.greater - wins.less)
    return won


def discordant_counts(scores: jax.Array) -> tuple[jax.Array, jax.Array]:
    """N⁺ and N⁻ (int32[pairs], `jnp.triu_indices` order) of a 0/1 float[models, items] matrix.

    ``plus[i, j]`` counts items model i gets right and model j wrong; the integer-valued sums are
    exact in float32.
    """
    first, second = jnp.triu_indices(scores.shape[0], k=1)
    plus = jnp.matmul(scores, (1.0 - scores).T, precision=jax.lax.Precision.HIGHEST)
    plus = jnp.round(plus).astype(jnp.int32)
    return plus[first, second], plus[second, first]


def pair_agreement(
    scores: jax.Array, sizes: jax.Array, *, max_size: int, binary: bool, ties: str, chunk_size: int
) -> PairAgreement:
    """Agreement of every model pair at every size (the kernel behind `exact_agreement_matrix`).

    Args:
        scores: float[models, items], 0/1 when ``binary`` (exact), else graded (approximate).
        sizes: int32[sizes], traced subset sizes, each ≤ ``max_size`` (static).
        ties: ``"fail"`` or ``"half"`` (static).
        chunk_size: pairs per `lax.map` batch (static).
    """
    models, pool = scores.shape
    first, second = jnp.triu_indices(models, k=1)
    if binary:
        n_plus, n_minus = discordant_counts(scores)
        difference = 100.0 * (n_plus - n_minus).astype(scores.dtype) / pool

        def one_pair(counts):
            return pair_win_probabilities(counts[0], counts[1], pool, sizes, max_size=max_size)

        wins = jax.lax.map(one_pair, (n_plus, n_minus), batch_size=chunk_size)
    else:
        means = jnp.mean(scores, axis=1)
        difference = 100.0 * (means[first] - means[second])

        def one_pair(index):
            gaps = scores[index[0]] - scores[index[1]]
            return jax.vmap(approximate_pair_win_probabilities, (None, 0))(gaps, sizes)

        wins = jax.lax.map(one_pair, (first, second), batch_size=chunk_size)
    agreement = agreement_from_wins(wins, difference[:, None], ties=ties)
    return PairAgreement(first, second, difference, agreement)
