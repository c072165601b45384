"""Exact agreement (SPEC §6) against brute force, SciPy, Monte Carlo and float64."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxbench.exact import (
    WinProbabilities,
    agreement_from_wins,
    approximate_pair_win_probabilities,
    pair_win_probabilities,
)
from jaxbench.planning import exact_agreement_matrix


def _wins(n_plus, n_minus, pool_size, size, max_size):
    """Vectorised over leading axes of the first four arguments."""
    fn = jax.vmap(lambda a, b, n, s: pair_win_probabilities(a, b, n, s, max_size=max_size))
    return jax.jit(fn)(
        jnp.asarray(n_plus), jnp.asarray(n_minus), jnp.asarray(pool_size), jnp.asarray(size)
    )


def _scipy_wins(n_plus, n_minus, pool_size, size):
    """Σ_m Hypergeom(N, D, n).pmf(m) · P(X⁺ > m − X⁺ | m) with SciPy's distributions."""
    disc = n_plus + n_minus
    m = np.arange(0, min(size, disc) + 1)
    weights = stats.hypergeom.pmf(m, pool_size, disc, size)
    greater = stats.hypergeom.sf(m // 2, disc, n_plus, m)  # X⁺ ≥ ⌊m/2⌋ + 1
    less = stats.hypergeom.sf(m // 2, disc, n_minus, m)
    return weights @ greater, weights @ less


@pytest.fixture(scope="module")
def brute_force():
    """Every (N⁺, N⁻, N, n) with N ≤ 12, counted over all subsets with itertools."""
    rows, greater, less = [], [], []
    for pool in range(1, 13):
        combos = [(p, q) for p in range(pool + 1) for q in range(pool + 1 - p)]
        labels = np.array([[1] * p + [-1] * q + [0] * (pool - p - q) for p, q in combos])
        for size in range(1, pool + 1):
            subsets = list(itertools.combinations(range(pool), size))
            members = np.zeros((len(subsets), pool), int)
            for row, subset in enumerate(subsets):
                members[row, list(subset)] = 1
            balance = members @ labels.T  # [subsets, combos]: X⁺ − X⁻
            greater.extend((balance > 0).mean(axis=0))
            less.extend((balance < 0).mean(axis=0))
            rows.extend((p, q, pool, size) for p, q in combos)
    rows = np.array(rows)
    return rows, np.array(greater), np.array(less)


def test_matches_brute_force_in_float64(brute_force):
    rows, greater, less = brute_force
    assert len(rows) > 2000
    # The edge cases the recurrences must handle are all in the enumeration.
    p, q, pool, size = rows.T
    assert ((p == q) & (p > 0)).any() and (p + q == 0).any() and (p + q == pool).any()
    assert (size == pool).any() and (size == 1).any()
    with jax.enable_x64(True):
        wins = _wins(p, q, pool, size, max_size=12)
        assert wins.greater.dtype == jnp.float64
        np.testing.assert_allclose(wins.greater, greater, rtol=0, atol=1e-12)
        np.testing.assert_allclose(wins.less, less, rtol=0, atol=1e-12)
        difference = p - q
        tie = 1.0 - greater - less
        won = np.where(difference >= 0, greater, less)
        fail = agreement_from_wins(wins, difference, ties="fail")
        half = agreement_from_wins(wins, difference, ties="half")
        np.testing.assert_allclose(fail, won, rtol=0, atol=1e-10)
        np.testing.assert_allclose(half, won + 0.5 * tie, rtol=0, atol=1e-10)


def test_float32_close_to_brute_force(brute_force):
    rows, greater, less = brute_force
    wins = _wins(*rows.T, max_size=12)
    assert wins.greater.dtype == jnp.float32
    np.testing.assert_allclose(wins.greater, greater, rtol=0, atol=1e-6)
    np.testing.assert_allclose(wins.less, less, rtol=0, atol=1e-6)


def test_several_sizes_in_one_call_and_independent_of_max_size():
    wins = jax.jit(pair_win_probabilities, static_argnames="max_size")
    sizes = jnp.array([1, 7, 40, 200])
    many = wins(90, 70, 1000, sizes, max_size=200)
    padded = wins(90, 70, 1000, sizes, max_size=333)
    np.testing.assert_array_equal(padded.greater, many.greater)
    np.testing.assert_array_equal(padded.less, many.less)
    for index, size in enumerate([1, 7, 40, 200]):
        alone = wins(90, 70, 1000, jnp.int32(size), max_size=200)
        # Equal up to float32 rounding (XLA vectorises the size axis differently).
        np.testing.assert_allclose(alone.greater, many.greater[index], rtol=1e-6)
        np.testing.assert_allclose(alone.less, many.less[index], rtol=1e-6)
        np.testing.assert_allclose(alone, _scipy_wins(90, 70, 1000, size), rtol=0, atol=1e-6)


def test_sizes_outside_the_pool_give_nan():
    wins = pair_win_probabilities(3, 2, 10, jnp.array([5, 11, 25]), max_size=20)
    assert np.isfinite(wins.greater[0]) and np.isnan(wins.greater[1:]).all()


@pytest.mark.parametrize(
    "n_plus, n_minus", [(150, 120), (40, 40), (300, 0), (12, 30), (1500, 1400)]
)
def test_matches_monte_carlo(n_plus, n_minus):
    pool, size, draws = 3000, 100, 20_000
    rng = np.random.default_rng(n_plus * 7919 + n_minus)
    colours = [n_plus, n_minus, pool - n_plus - n_minus]
    counts = rng.multivariate_hypergeometric(colours, size, draws)
    wins = pair_win_probabilities(n_plus, n_minus, pool, size, max_size=size)
    for exact, simulated in [
        (wins.greater, (counts[:, 0] > counts[:, 1]).mean()),
        (wins.less, (counts[:, 0] < counts[:, 1]).mean()),
    ]:
        standard_error = np.sqrt(max(float(exact) * (1 - float(exact)), 1e-4) / draws)
        assert abs(float(exact) - simulated) < 4 * standard_error


LARGE = [(10, 5), (260, 240), (2500, 2400), (30_000, 29_000), (40_000, 20_000), (0, 100_000)]


def test_float32_stable_on_large_pools():
    pool, sizes = 100_000, jnp.array([1, 10, 100, 1000, 2500, 5000])
    plus, minus = (jnp.array(column) for column in zip(*LARGE))
    narrow = jax.vmap(lambda a, b: pair_win_probabilities(a, b, pool, sizes, max_size=5000))
    low = jax.jit(narrow)(plus, minus)
    with jax.enable_x64(True):
        high = jax.jit(narrow)(plus, minus)
        assert high.greater.dtype == jnp.float64
        # float64 against SciPy (an independent, slower computation) at n = 1000.
        for index, (p, q) in enumerate(LARGE):
            greater, less = _scipy_wins(p, q, pool, 1000)
            np.testing.assert_allclose(high.greater[index, 3], greater, rtol=0, atol=1e-10)
            np.testing.assert_allclose(high.less[index, 3], less, rtol=0, atol=1e-10)
    assert np.isfinite(low.greater).all() and np.isfinite(low.less).all()
    np.testing.assert_allclose(low.greater, high.greater, rtol=0, atol=1e-5)
    np.testing.assert_allclose(low.less, high.less, rtol=0, atol=1e-5)


def test_swapping_the_pair_swaps_greater_and_less():
    plus = jnp.array([0, 3, 17, 250, 4])
    minus = jnp.array([5, 3, 2, 260, 0])
    sizes = jnp.array([1, 9, 80])
    forward = _wins(plus, minus, jnp.full(5, 600), jnp.tile(sizes, (5, 1)), max_size=80)
    backward = _wins(minus, plus, jnp.full(5, 600), jnp.tile(sizes, (5, 1)), max_size=80)
    unequal = np.asarray(plus != minus)
    np.testing.assert_array_equal(forward.greater[unequal], backward.less[unequal])
    np.testing.assert_array_equal(forward.less[unequal], backward.greater[unequal])
    np.testing.assert_allclose(forward.greater, backward.less, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def binary_scores():
    rng = np.random.default_rng(3)
    return (rng.random((5, 10)) < rng.uniform(0.2, 0.8, (5, 1))).astype(float)


def test_matrix_matches_subset_enumeration(binary_scores):
    sizes = [1, 3, 10]
    with jax.enable_x64(True):
        result = jax.tree.map(np.asarray, exact_agreement_matrix(binary_scores, sizes, ties="half"))
    first, second = np.triu_indices(5, k=1)
    np.testing.assert_array_equal(result.first, first)
    np.testing.assert_array_equal(result.second, second)
    full = 100 * binary_scores.mean(axis=1)
    np.testing.assert_allclose(result.difference, full[first] - full[second], atol=1e-10)
    for column, size in enumerate(sizes):
        subsets = [list(s) for s in itertools.combinations(range(10), size)]
        estimates = np.stack([binary_scores[:, s].mean(axis=1) for s in subsets])
        gaps = estimates[:, first] - estimates[:, second]
        sign = np.where(result.difference >= 0, 1.0, -1.0)
        expected = np.where(np.abs(gaps) < 1e-12, 0.5, (gaps * sign > 0)).mean(axis=0)
        np.testing.assert_allclose(result.agreement[:, column], expected, atol=1e-10)


def test_matrix_is_symmetric_in_model_order(binary_scores):
    forward = exact_agreement_matrix(binary_scores, [2, 5])
    backward = exact_agreement_matrix(binary_scores[::-1], [2, 5])
    # Pair (i, j) of the reversed matrix is pair (4 − j, 4 − i) of the original.
    forward, backward = jax.tree.map(np.asarray, (forward, backward))
    lookup = {(a, b): row for row, (a, b) in enumerate(zip(forward.first, forward.second))}
    rows = [lookup[(4 - b, 4 - a)] for a, b in zip(backward.first, backward.second)]
    np.testing.assert_allclose(backward.difference, -forward.difference[rows], atol=1e-5)
    nonzero = backward.difference != 0
    assert nonzero.sum() >= 5
    np.testing.assert_allclose(
        backward.agreement[nonzero], forward.agreement[rows][nonzero], rtol=0, atol=1e-6
    )


def test_matrix_does_not_recompile_for_new_data():
    from jaxbench import engine

    rng = np.random.default_rng(0)
    exact_agreement_matrix((rng.random((4, 30)) < 0.5).astype(float), [5, 20])
    before = engine.exact_pair_agreement._cache_size()
    exact_agreement_matrix((rng.random((4, 30)) < 0.5).astype(float), [3, 20])
    assert engine.exact_pair_agreement._cache_size() == before


def _graded_pair(rng, pool, shift=0.04):
    first = rng.beta(2, 2, pool)
    return first, np.clip(first - shift + rng.normal(0, 0.15, pool), 0, 1)


@pytest.mark.parametrize("size, shift", [(30, 0.025), (150, 0.01)])
def test_normal_approximation_matches_monte_carlo(size, shift):
    rng = np.random.default_rng(size)
    pool, draws = 400, 20_000
    first, second = _graded_pair(rng, pool, shift)
    differences = first - second
    wins = approximate_pair_win_probabilities(jnp.asarray(differences), size)
    assert abs(float(wins.greater) + float(wins.less) - 1) < 1e-6
    chosen = np.argsort(rng.random((draws, pool)), axis=1)[:, :size]
    simulated = (differences[chosen].mean(axis=1) > 0).mean()
    # CLT error at these sizes is ~0.01; Monte Carlo adds ~0.003.
    assert 0.6 < simulated < 0.99
    assert abs(float(wins.greater) - simulated) < 0.02


def test_graded_matrix_uses_the_approximation():
    rng = np.random.default_rng(1)
    scores = np.stack(_graded_pair(rng, 300) + _graded_pair(rng, 300))
    result = exact_agreement_matrix(scores, [20, 300], binary=False)
    for row, (a, b) in enumerate(zip(result.first, result.second)):
        gap = scores[a] - scores[b]
        mean = gap.mean()
        spread = np.sqrt(gap.var() / 20 * (300 - 20) / 299)
        assert abs(float(result.agreement[row, 0]) - stats.norm.cdf(abs(mean) / spread)) < 1e-5
    np.testing.assert_array_equal(result.agreement[:, 1], 1.0)  # n = N: no sampling noise


def test_normal_approximation_close_to_exact_for_binary():
    rng = np.random.default_rng(2)
    scores = (rng.random((2, 6000)) < np.array([[0.62], [0.6]])).astype(float)
    exact = exact_agreement_matrix(scores, [100, 1000, 5000], ties="half")
    approximate = exact_agreement_matrix(scores, [100, 1000, 5000], binary=False, ties="half")
    np.testing.assert_allclose(approximate.agreement, exact.agreement, atol=0.02)


@pytest.mark.parametrize(
    "scores, sizes, options, message",
    [
        (np.ones(5), [1], {}, "2-D"),
        (np.ones((1, 5)), [1], {}, "at least 2 models"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), [1], {}, "NaN"),
        (np.array([[0.0, 1.5], [1.0, 0.0]]), [1], {}, r"\[0, 1\]"),
        (np.array([[0.0, 0.5], [1.0, 0.0]]), [1], {}, "binary=False"),
        (np.eye(3), [0], {}, "1..3"),
        (np.eye(3), [4], {}, "1..3"),
        (np.eye(3), [], {}, "non-empty"),
        (np.eye(3), [1], {"ties": "draw"}, "ties"),
        (np.eye(3), [1], {"chunk_size": 0}, "chunk_size"),
    ],
)
def test_validation_errors(scores, sizes, options, message):
    with pytest.raises(ValueError, match=message):
        exact_agreement_matrix(scores, sizes, **options)


def test_boolean_and_integer_scores_are_accepted(binary_scores):
    reference = exact_agreement_matrix(binary_scores, [3]).agreement
    for scores in (binary_scores.astype(bool), binary_scores.astype(int)):
        np.testing.assert_array_equal(exact_agreement_matrix(scores, [3]).agreement, reference)


def test_validation_type_errors():
    with pytest.raises(TypeError, match="integers"):
        exact_agreement_matrix(np.eye(3), [1.5])
    with pytest.raises(TypeError, match="numeric"):
        exact_agreement_matrix(np.array([["a", "b"], ["c", "d"]]), [1])
    with pytest.raises(ValueError, match="ties"):
        agreement_from_wins(WinProbabilities(jnp.zeros(1), jnp.zeros(1)), jnp.zeros(1), ties="x")
