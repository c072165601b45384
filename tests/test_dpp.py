"""k-DPP sampler (jaxbench.dpp): exact subset law by enumeration, spread, RFF accuracy, validation."""

from __future__ import annotations

import doctest
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import pdist

from jaxbench import dpp

_sample = jax.jit(dpp.sample_kdpp, static_argnames="max_size")


@functools.partial(jax.jit, static_argnames="max_size")
def _sample_runs(keys, features, size, valid, *, max_size):
    kernel = functools.partial(dpp.sample_kdpp, max_size=max_size)
    return jax.vmap(kernel, in_axes=(0, 0, None, None))(keys, features, size, valid)


@functools.partial(jax.jit, static_argnames="max_size")
def _sample_many(keys, features, size, valid, *, max_size):
    return jax.vmap(lambda key: dpp.sample_kdpp(key, features, size, valid, max_size=max_size))(keys)


@pytest.fixture(scope="module")
def clustered():
    """2-D points in four clusters of unequal size (150, 30, 12, 8) and their labels."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
    sizes = [150, 30, 12, 8]
    points = np.concatenate([c + 0.4 * rng.standard_normal((s, 2)) for c, s in zip(centres, sizes)])
    return points.astype(np.float32), np.repeat(np.arange(4), sizes)


@pytest.fixture(scope="module")
def clustered_features(clustered):
    points, _ = clustered
    return dpp.random_fourier_features(jax.random.key(0), points, num_features=64, bandwidth=1.0)


_NUM_RUNS, _RUN_SIZE = 200, 8


@pytest.fixture(scope="module")
def runs(clustered):
    """Like the engine: per-run keys, per-run random features, one vmapped draw of 8 items."""
    points, _ = clustered
    feature_keys, draw_keys = jax.random.split(jax.random.key(7), (2, _NUM_RUNS))
    features = jax.vmap(
        lambda key: dpp.random_fourier_features(key, points, num_features=64, bandwidth=1.0)
    )(feature_keys)
    valid = jnp.ones(points.shape[0], bool)
    return draw_keys, features, _sample_runs(draw_keys, features, _RUN_SIZE, valid, max_size=_RUN_SIZE)


def test_distinct_items_exact_size_one_compile(clustered_features):
    items = clustered_features.shape[0]
    valid = jnp.arange(items) % 5 != 0
    compiled_before = _sample._cache_size()
    for size in (1, 3, 5, 8):
        for seed in range(3):
            draw = _sample(jax.random.key(seed), clustered_features, size, valid, max_size=8)
            chosen = np.asarray(draw.items)[:size]
            np.testing.assert_array_equal(np.asarray(draw.active), np.arange(8) < size)
            assert len(set(chosen.tolist())) == size
            assert np.all(np.asarray(valid)[chosen]), "an invalid item was drawn"
            assert np.all(np.asarray(draw.items)[size:] == 0)
            assert int(draw.rank) >= 8
    assert _sample._cache_size() <= compiled_before + 1, "sizes must share one executable"


def test_draw_does_not_depend_on_max_size(clustered_features):
    valid = jnp.ones(clustered_features.shape[0], bool)
    for seed in range(3):
        small = _sample(jax.random.key(seed), clustered_features, 5, valid, max_size=8)
        large = _sample(jax.random.key(seed), clustered_features, 5, valid, max_size=12)
        np.testing.assert_array_equal(np.asarray(small.items)[:5], np.asarray(large.items)[:5])


def _subset_law(kernel: np.ndarray, size: int, valid: np.ndarray, rank: int) -> dict:
    """Exact P(S) by enumeration: ∝ det(L_S), or for size > rank the documented ε → 0 limit
    ∝ Σ_{R ⊂ S, |R| = rank} det(L_R) (a rank-DPP draw plus uniform fill)."""
    pool = np.flatnonzero(valid)
    masses = {}
    for subset in itertools.combinations(pool, size):
        if size <= rank:
            masses[subset] = np.linalg.det(kernel[np.ix_(subset, subset)])
        else:
            minors = (kernel[np.ix_(r, r)] for r in itertools.combinations(subset, rank))
            masses[subset] = sum(np.linalg.det(minor) for minor in minors)
    total = sum(masses.values())
    return {subset: max(mass, 0.0) / total for subset, mass in masses.items()}


_NUM_DRAWS = 20_000


@pytest.mark.parametrize(
    ("size", "rank", "masked"),
    [(2, 5, False), (3, 5, False), (3, 5, True), (4, 2, False)],
    ids=["k2", "k3", "k3-masked", "k4-above-rank2"],
)
def test_exact_marginals_and_subset_law(size, rank, masked):
    rng = np.random.default_rng(size + 10 * rank + masked)
    features = rng.standard_normal((7, 5)).astype(np.float32)
    features[:, rank:] = 0.0  # zero columns: rank of L = Φ Φᵀ is `rank`
    valid = np.arange(7) != 6 if masked else np.ones(7, bool)
    kernel = features.astype(np.float64) @ features.T.astype(np.float64)
    law = _subset_law(kernel, size, valid, rank)

    keys = jax.random.split(jax.random.key(1234 + size), _NUM_DRAWS)
    draws = _sample_many(keys, jnp.asarray(features), size, jnp.asarray(valid), max_size=4)
    assert np.all(np.asarray(draws.rank) == rank)
    chosen = np.sort(np.asarray(draws.items)[:, :size], axis=1)
    assert np.all(np.diff(chosen, axis=1) > 0), "items must be distinct"

    marginals = np.zeros(7)
    for subset, probability in law.items():
        marginals[list(subset)] += probability
    empirical = np.bincount(chosen.ravel(), minlength=7) / _NUM_DRAWS
    standard_error = np.sqrt(marginals * (1 - marginals) / _NUM_DRAWS)
    assert np.all(np.abs(empirical - marginals) <= 4 * standard_error + 1e-12), (empirical, marginals)

    # Chi-square on subset frequencies; cells with expected count < 5 are pooled.
    index = {subset: i for i, subset in enumerate(law)}
    observed = np.bincount([index[tuple(row)] for row in chosen.tolist()], minlength=len(law))
    expected = _NUM_DRAWS * np.array(list(law.values()))
    small = expected < 5
    observed = np.append(observed[~small], observed[small].sum())
    expected = np.append(expected[~small], expected[small].sum())
    keep = expected > 0
    result = stats.chisquare(observed[keep], expected[keep] * observed.sum() / expected[keep].sum())
    assert result.pvalue > 1e-3, f"subset law rejected: {result.statistic=:.1f}, {result.pvalue=:.2g}"


def test_kdpp_spreads_over_unequal_clusters(clustered, runs):
    points, labels = clustered
    diverse = np.asarray(runs[2].items)
    rng = np.random.default_rng(7)
    uniform = np.stack([rng.choice(points.shape[0], _RUN_SIZE, replace=False) for _ in range(_NUM_RUNS)])

    def mean_distance(draws):
        return np.mean([pdist(points[row]).mean() for row in draws])

    def mean_clusters_hit(draws):
        return np.mean([len(set(labels[row].tolist())) for row in draws])

    # Measured: ~3.7 vs ~2.3 (distance) and ~3.7 vs ~2.4 of 4 clusters hit.
    assert mean_distance(diverse) > 1.3 * mean_distance(uniform)
    assert mean_clusters_hit(diverse) > mean_clusters_hit(uniform) + 0.8


def test_random_fourier_features_approximate_gaussian_kernel():
    rng = np.random.default_rng(3)
    points = rng.standard_normal((40, 3)).astype(np.float32)
    bandwidth = 1.3
    key = jax.random.key(5)
    features = dpp.random_fourier_features(key, points, num_features=20_000, bandwidth=bandwidth)
    features = np.asarray(features, np.float64)
    exact = np.exp(-(np.linalg.norm(points[:, None] - points[None], axis=-1) ** 2) / (2 * bandwidth**2))
    approximate = features @ features.T
    np.testing.assert_allclose(np.diag(approximate), 1.0, atol=1e-5)
    # Error sd <= 1/sqrt(F) ≈ 0.007; 0.04 is > 5 sd over the 780 distinct pairs.
    assert np.abs(approximate - exact).max() < 0.04


def test_median_bandwidth_matches_scipy():
    rng = np.random.default_rng(4)
    small = rng.standard_normal((30, 4)).astype(np.float32)
    valid = np.arange(30) >= 5
    median = jax.jit(dpp.median_bandwidth, static_argnames="num_pairs")
    exact = median(jax.random.key(0), jnp.asarray(small), jnp.asarray(valid))
    np.testing.assert_allclose(float(exact), np.median(pdist(small[valid])), rtol=1e-5)
    large = rng.standard_normal((400, 4)).astype(np.float32)
    sampled = median(jax.random.key(1), jnp.asarray(large), num_pairs=4096)
    np.testing.assert_allclose(float(sampled), np.median(pdist(large)), rtol=0.05)


def test_vmap_over_runs_equals_loop(clustered, runs):
    keys, features, batched = runs
    valid = jnp.ones(clustered[0].shape[0], bool)
    for run in (0, 1, 150, _NUM_RUNS - 1):
        single = _sample(keys[run], features[run], _RUN_SIZE, valid, max_size=_RUN_SIZE)
        np.testing.assert_array_equal(np.asarray(batched.items[run]), np.asarray(single.items))
        assert int(batched.rank[run]) == int(single.rank)


def test_draw_kdpp_returns_distinct_items_and_validates():
    rng = np.random.default_rng(5)
    features = rng.standard_normal((20, 6))
    drawn = dpp.draw_kdpp(features, 4, seed=0, max_size=6)
    assert drawn.shape == (4,) and len(set(drawn.tolist())) == 4
    np.testing.assert_array_equal(drawn, dpp.draw_kdpp(features, 4, seed=jax.random.key(0), max_size=6))

    with pytest.raises(ValueError, match="2-D"):
        dpp.draw_kdpp(features[0], 2, seed=0)
    with pytest.raises(ValueError, match="finite"):
        dpp.draw_kdpp(np.where(features > 2, np.nan, features), 2, seed=0)
    with pytest.raises(TypeError, match="real numbers"):
        dpp.draw_kdpp(features.astype(str), 2, seed=0)
    with pytest.raises(TypeError, match="size must be an int"):
        dpp.draw_kdpp(features, 2.0, seed=0)
    with pytest.raises(ValueError, match="1 <= size <= max_size"):
        dpp.draw_kdpp(features, 0, seed=0)
    with pytest.raises(ValueError, match="1 <= size <= max_size"):
        dpp.draw_kdpp(features, 5, seed=0, max_size=4)
    with pytest.raises(ValueError, match=r"valid must be bool\[20\]"):
        dpp.draw_kdpp(features, 2, seed=0, valid=np.ones(19, bool))
    with pytest.raises(TypeError, match="seed"):
        dpp.draw_kdpp(features, 2, seed=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="single key"):
        dpp.draw_kdpp(features, 2, seed=jax.random.split(jax.random.key(0), 2))
    with pytest.raises(ValueError, match="exceeds the numerical rank 6"):
        dpp.draw_kdpp(features, 7, seed=0)
    with pytest.raises(ValueError, match="exceeds the numerical rank 3"):
        dpp.draw_kdpp(features, 4, seed=0, valid=np.arange(20) < 3)
    with pytest.raises(ValueError, match="even"):
        dpp.random_fourier_features(jax.random.key(0), features, num_features=7, bandwidth=1.0)


def test_docstring_example_runs():
    failures, tried = doctest.testmod(dpp, extraglobs={"jax": jax}, verbose=False)
    assert tried > 0 and failures == 0
