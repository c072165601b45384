"""Confidence-based methods: stratified_confidence, anchor_points, diversity (SPEC §3).

Unit tests call the selectors on one fixed pool (40 source and 20 target models of a synthetic
matrix with confidences, 400 "seen" items); integration tests run them through the study API
and the CLI.
"""

from __future__ import annotations

import json
import sys
from functools import partial

import jax
import jax.numpy as jnp
import kmedoids as kmedoids_package
import numpy as np
import pandas as pd
import pytest

from jaxbench import generate_synthetic, meta_evaluate
from jaxbench.cli import main
from jaxbench.cluster import kmedoids
from jaxbench.data import write_matrix
from jaxbench.selectors import METHODS, Selection, SourceView, TargetView, parse_method
from jaxbench.selectors import anchor_points as ap
from jaxbench.selectors import diversity as dv
from jaxbench.selectors import stratified_confidence as sc
from jaxbench.selectors.base import estimate_weighted_mean
from jaxbench.selectors.random import select_random

NUM_DRAWS = 5000
SOURCES, TARGETS, POOL = np.arange(40), np.arange(40, 60), np.arange(400)


@pytest.fixture(scope="module")
def matrix():
    matrix, _ = generate_synthetic(60, 800, num_subtasks=4, confidences=True, seed=5)
    return matrix


@pytest.fixture(scope="module")
def pool(matrix):
    """(SourceView, TargetView) of the fixed pool."""
    def rows(models):
        index = np.ix_(models, POOL)
        scores = jnp.asarray(matrix.scores[index])
        return scores, jnp.ones(scores.shape, bool), jnp.asarray(matrix.confidences[index])

    sources = SourceView(*rows(SOURCES), jnp.asarray(matrix.subtask_codes[POOL]))
    return sources, TargetView(*rows(TARGETS))


# --------------------------------------------------------------------------- stratified_confidence


@pytest.fixture(scope="module")
def strata(pool):
    return np.asarray(sc.prepare_stratified_confidence(jax.random.key(0), pool[0], max_size=40,
                                                       num_subtasks=4))


def _largest_remainder(capacities, size):
    quotas = size * capacities / capacities.sum()
    counts = np.floor(quotas).astype(int)
    order = sorted(range(len(capacities)), key=lambda h: (-(quotas[h] - counts[h]), h))
    counts[order[: size - counts.sum()]] += 1
    return counts


def test_strata_are_ten_intervals_of_mean_confidence(pool, strata):
    feature = np.asarray(pool[0].confidences).mean(0)
    assert sorted(set(strata.tolist())) == list(range(10))
    # 1-D k-means clusters are intervals: sorting by the feature never returns to a stratum.
    runs = strata[np.argsort(feature, kind="stable")]
    assert (np.diff(runs) != 0).sum() == 9


@pytest.mark.parametrize("size", [3, 10, 37, 120])
def test_stratified_allocation_and_horvitz_thompson_weights(pool, strata, size):
    select = jax.jit(sc.select_stratified_confidence, static_argnames=("max_size", "num_subtasks"))
    selection, _ = select(jax.random.key(size), pool[0], jnp.int32(size), jnp.asarray(strata),
                          max_size=120, num_subtasks=4)
    items, weights = np.asarray(selection.items), np.asarray(selection.weights)
    capacities = np.bincount(strata, minlength=10)
    expected = _largest_remainder(capacities, size)
    assert len(set(items[:size])) == size and np.all(weights[size:] == 0)
    np.testing.assert_array_equal(np.bincount(strata[items[:size]], minlength=10), expected)
    # Weight N_h / (N n_h); when a stratum gets no item (size < 10), the sampled strata's
    # weights are renormalised to sum to 1 (ratio estimator, module docstring).
    sampled = expected > 0
    design = capacities / (capacities[sampled].sum() * np.maximum(expected, 1))
    np.testing.assert_allclose(weights[:size], design[strata[items[:size]]], rtol=1e-5)
    assert abs(weights.sum() - 1) < 1e-5
    assert sampled.sum() == {3: 3, 10: 9, 37: 10, 120: 10}[size]


@pytest.fixture(scope="module")
def repeated_estimates(pool, strata):
    """[draws, targets] estimates at k = 40 from stratified_confidence and from random."""
    sources, targets = pool
    size = 40
    keys = jax.random.split(jax.random.key(1), NUM_DRAWS)

    @jax.jit
    @partial(jax.vmap)
    def stratified(key):
        selection, _ = sc.select_stratified_confidence(key, sources, jnp.int32(size),
                                                       jnp.asarray(strata), max_size=size,
                                                       num_subtasks=4)
        return sc.estimate_stratified_confidence(selection, None, targets, None)[0]

    @jax.jit
    @partial(jax.vmap)
    def uniform(key):
        selection = select_random(key, sources, jnp.int32(size), max_size=size)
        return estimate_weighted_mean(selection, targets)

    return np.asarray(stratified(keys), np.float64), np.asarray(uniform(keys), np.float64)


def test_stratified_confidence_is_unbiased(pool, strata, repeated_estimates):
    estimates, _ = repeated_estimates
    truth = np.asarray(pool[1].scores, np.float64).mean(1)
    standard_error = estimates.std(0, ddof=1) / np.sqrt(NUM_DRAWS)
    z = (estimates.mean(0) - truth) / standard_error
    assert np.all(np.abs(z) < 4), z
    # The Monte Carlo variance matches the exact stratified variance
    # Σ_h (N_h/N)² (1 − n_h/N_h) S_h² / n_h (a 5000-draw variance is within ~6 % of it).
    scores = np.asarray(pool[1].scores, np.float64)
    capacities = np.bincount(strata, minlength=10)
    counts = _largest_remainder(capacities, 40)
    exact = sum(
        (capacities[h] / len(strata)) ** 2 * (1 - counts[h] / capacities[h])
        * scores[:, strata == h].var(1, ddof=1) / counts[h]
        for h in range(10)
    )
    np.testing.assert_allclose(estimates.var(0, ddof=1), exact, rtol=0.15)


def test_stratified_confidence_beats_random_when_confidence_predicts(repeated_estimates):
    # The synthetic confidences predict correctness, so strata of mean confidence cut variance.
    stratified, uniform = repeated_estimates
    ratio = stratified.var(0) / uniform.var(0)
    assert ratio.mean() < 0.9 and np.all(ratio < 1.0), ratio


# --------------------------------------------------------------------------- anchor_points


def _numpy_distances(values):
    values = np.asarray(values, np.float64)
    centred = values - values.mean(0)
    norm = np.linalg.norm(centred, axis=0)
    zero = norm == 0
    unit = centred / np.where(zero, 1.0, norm)
    correlation = unit.T @ unit
    distances = 1.0 - correlation  # zero-variance columns: correlation 0, distance 1
    np.fill_diagonal(distances, 0.0)
    return distances


def test_distance_matrix_matches_numpy_with_zero_variance_items():
    rng = np.random.default_rng(0)
    values = rng.random((12, 60)).astype(np.float32)
    values[:, 3] = 0.7  # zero variance
    values[:, 10] = 1.0  # zero variance
    values[:, 20] = values[:, 21]  # identical items: distance 0
    values[:, 30] = 1.0 - values[:, 31]  # perfectly anti-correlated: distance 2
    got = np.asarray(ap.correlation_distances(jnp.asarray(values), jnp.ones(values.shape, bool)))
    want = _numpy_distances(values)
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert got[3, 10] == 1.0 and got[3, 3] == 0.0 and np.all(got[3, np.arange(60) != 3] == 1.0)
    assert abs(got[20, 21]) < 1e-6 and abs(got[30, 31] - 2.0) < 1e-6
    # numpy.corrcoef agrees where it is defined.
    with np.errstate(invalid="ignore", divide="ignore"):
        reference = np.corrcoef(values.astype(np.float64), rowvar=False)
    defined = np.isfinite(reference)
    np.fill_diagonal(defined, False)
    np.testing.assert_allclose(got[defined], 1.0 - reference[defined], atol=2e-6)


def test_distance_matrix_masks_by_mean_imputation():
    rng = np.random.default_rng(1)
    values = rng.random((10, 30)).astype(np.float32)
    observed = rng.random(values.shape) > 0.2
    observed[:, 5] = False
    observed[2, 5] = True  # a single observed cell: zero variance
    imputed = np.where(observed, values, np.nan)
    imputed = np.where(observed, values, np.nanmean(imputed, axis=0))
    got = np.asarray(ap.correlation_distances(jnp.asarray(np.where(observed, values, 0.0)),
                                              jnp.asarray(observed)))
    np.testing.assert_allclose(got, _numpy_distances(imputed), atol=2e-6)


@pytest.fixture(scope="module")
def distances(pool):
    return ap.prepare_anchor_points(jax.random.key(0), pool[0], max_size=100, num_subtasks=4)


@pytest.mark.parametrize("solver", ap.SOLVERS)
@pytest.mark.parametrize("size", [1, 10, 100])
def test_medoids_and_cluster_share_weights(pool, distances, solver, size):
    select = jax.jit(ap.select_anchor_points,
                     static_argnames=("max_size", "num_subtasks", "solver"))
    selection, _ = select(jax.random.key(size), pool[0], jnp.int32(size), distances, max_size=100,
                          num_subtasks=4, solver=solver)
    items, weights = np.asarray(selection.items), np.asarray(selection.weights)
    medoids = items[:size]
    assert len(set(medoids.tolist())) == size
    assert np.all(items[size:] == 0) and np.all(weights[size:] == 0)
    # Each item joins its nearest medoid (lowest slot on ties); weights are cluster shares.
    labels = np.argmin(np.asarray(distances)[:, medoids], axis=1)
    np.testing.assert_allclose(weights[:size], np.bincount(labels, minlength=size) / len(POOL))
    assert np.all(labels[medoids] == np.arange(size))


@pytest.mark.parametrize("size", [10, 40, 100])
def test_kmedoids_objectives_near_fasterpam(distances, size):
    matrix = np.asarray(distances, np.float64)
    best = min(kmedoids_package.fasterpam(matrix, size, init="random", random_state=seed).loss
               for seed in range(3))
    greedy = jax.jit(ap.kmedoids_greedy, static_argnames="max_clusters")
    objectives = [
        float(greedy(jax.random.key(seed), distances, jnp.int32(size), max_clusters=100).objective)
        for seed in range(3)
    ]
    # Greedy seeding alone (the default) is measured at 3-10 % above FasterPAM here.
    assert max(objectives) / best < 1.12, (objectives, best)
    pam = jax.jit(kmedoids, static_argnames=("max_clusters", "init"))
    swapped = pam(jax.random.key(0), distances, jnp.int32(size), max_clusters=100, init="build")
    assert float(swapped.objective) / best < 1.02


def test_kmedoids_greedy_with_fewer_distinct_items_than_k():
    # Two distinct item vectors, five copies each, k = 4: the medoids stay distinct items, and
    # each group's items are shared among that group's medoids (float32 rounding decides which
    # copy is "nearest"), so each group's medoids carry half the weight.
    values = jnp.asarray(np.tile([[0.0, 1.0], [1.0, 0.0], [0.5, 0.2]], (1, 5)))
    distances = ap.correlation_distances(values, jnp.ones(values.shape, bool))
    result = ap.kmedoids_greedy(jax.random.key(0), distances, jnp.int32(4), max_clusters=4)
    medoids, labels = np.asarray(result.medoids), np.asarray(result.labels)
    assert len(set(medoids.tolist())) == 4 and set(medoids % 2) == {0, 1}
    shares = np.bincount(labels, minlength=4) / 10
    for group in (0, 1):
        assert np.all(medoids[labels[group::2]] % 2 == group)
        assert np.isclose(shares[medoids % 2 == group].sum(), 0.5)


@pytest.mark.parametrize("estimate", ap.ESTIMATES)
def test_anchor_estimates_match_numpy(pool, estimate):
    _, targets = pool
    items = jnp.array([5, 17, 250, 399, 0, 0], jnp.int32)
    weights = jnp.array([0.1, 0.4, 0.3, 0.2, 0.0, 0.0], jnp.float32)
    got = np.asarray(ap.estimate_anchor_points(Selection(items, weights), None, targets, None,
                                               estimate=estimate))[0]
    values = targets.confidences if estimate == "confidence" else targets.scores
    values = np.asarray(values, np.float64)
    want = values[:, [5, 17, 250, 399]] @ np.array([0.1, 0.4, 0.3, 0.2])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # Missing target cells: the weights are renormalised over the observed anchors.
    observed = np.ones(targets.scores.shape, bool)
    observed[0, 17] = False
    masked = targets._replace(observed=jnp.asarray(observed))
    got = np.asarray(ap.estimate_anchor_points(Selection(items, weights), None, masked, None,
                                               estimate=estimate))[0]
    assert np.isclose(got[0], values[0, [5, 250, 399]] @ np.array([0.1, 0.3, 0.2]) / 0.6, rtol=1e-5)


def test_anchor_estimate_option_changes_the_estimate(pool, distances):
    sources, targets = pool
    selection, _ = ap.select_anchor_points(jax.random.key(3), sources, jnp.int32(20), distances,
                                           max_size=100, num_subtasks=4)
    by_confidence, by_correctness = (
        np.asarray(ap.estimate_anchor_points(selection, None, targets, None, estimate=e))[0]
        for e in ("confidence", "correctness")
    )
    assert np.all((by_correctness >= 0) & (by_correctness <= 1))
    assert np.abs(by_confidence - by_correctness).max() > 0.01
    label = "anchor_points(estimate=correctness)"
    assert parse_method(label).label == label
    with pytest.raises(ValueError, match="estimate must be one of"):
        parse_method("anchor_points(estimate=probability)")


def test_anchor_memory_estimate_covers_distances():
    assert ap.anchor_points_bytes(300, 6016, 1000) >= 4 * 6016**2 * 3


# --------------------------------------------------------------------------- diversity


@pytest.fixture(scope="module")
def prepared_diversity(pool):
    return dv.prepare_diversity(jax.random.key(0), pool[0], max_size=100, num_subtasks=4)


def test_principal_components_match_numpy(pool, prepared_diversity):
    values = np.asarray(pool[0].confidences, np.float64).T  # items x sources
    centred = values - values.mean(0)
    _, _, right = np.linalg.svd(centred, full_matrices=False)
    want = centred @ right[:4].T
    got = np.asarray(dv.principal_components(pool[0].confidences, pool[0].observed, 4), np.float64)
    signs = np.sign(np.sum(got * want, axis=0))
    np.testing.assert_allclose(got * signs, want, atol=2e-3 * np.abs(want).max())
    # The valid mask is the 1-99 % quantile rule on every component, then rescaled to ±0.99.
    low, high = np.quantile(want, 0.01, axis=0), np.quantile(want, 0.99, axis=0)
    expected_valid = np.all((want >= low - 1e-4) & (want <= high + 1e-4), axis=1)
    valid = np.asarray(prepared_diversity.valid)
    assert (valid != expected_valid).sum() <= 2 and 0.9 * len(POOL) < valid.sum() < len(POOL)
    points = np.asarray(prepared_diversity.points)[valid]
    np.testing.assert_allclose(points.min(0), -0.99, atol=1e-5)
    np.testing.assert_allclose(points.max(0), 0.99, atol=1e-5)


def test_principal_components_with_fewer_sources_than_components():
    values = jnp.asarray(np.random.default_rng(2).random((3, 50)), jnp.float32)
    scores = np.asarray(dv.principal_components(values, jnp.ones(values.shape, bool), 4))
    assert scores.shape == (50, 4) and np.all(scores[:, 3] == 0) and np.all(scores[:, 0] != 0)


_select_diversity = jax.jit(dv.select_diversity,
                            static_argnames=("max_size", "num_subtasks", "sampler"))


@pytest.mark.parametrize("sampler", dv.SAMPLERS)
@pytest.mark.parametrize("size", [1, 20, 64, 100])
def test_diversity_draws_distinct_valid_items(pool, prepared_diversity, sampler, size):
    selection, rank = _select_diversity(jax.random.key(size), pool[0], jnp.int32(size),
                                        prepared_diversity, max_size=100, num_subtasks=4,
                                        sampler=sampler)
    items, weights = np.asarray(selection.items), np.asarray(selection.weights)
    assert len(set(items[:size].tolist())) == size
    assert np.all(np.asarray(prepared_diversity.valid)[items[:size]])
    np.testing.assert_allclose(weights[:size], 1.0 / size)
    assert np.all(weights[size:] == 0)
    # The bandwidth rule keeps the kernel's rank at least the DPP size.
    dpp_size = min(size, dv.dpp_settings(sampler, 100)[0])
    assert int(rank) >= dpp_size


def _nearest_neighbour_distance(points):
    gaps = np.linalg.norm(points[:, None] - points[None, :], axis=-1)
    np.fill_diagonal(gaps, np.inf)
    return gaps.min(1).mean()


@pytest.mark.parametrize("size", [10, 40])
def test_diversity_spreads_items_more_than_random(pool, prepared_diversity, size):
    points = np.asarray(prepared_diversity.points)
    valid = np.flatnonzero(np.asarray(prepared_diversity.valid))
    rng = np.random.default_rng(size)
    spread_dpp, spread_random = [], []
    for draw in range(20):
        selection, _ = _select_diversity(jax.random.key(draw), pool[0], jnp.int32(size),
                                         prepared_diversity, max_size=100, num_subtasks=4,
                                         sampler="capped")
        spread_dpp.append(_nearest_neighbour_distance(points[np.asarray(selection.items[:size])]))
        uniform = rng.choice(valid, size, replace=False)
        spread_random.append(_nearest_neighbour_distance(points[uniform]))
    # Measured: 1.31 (k = 10) and 1.33 (k = 40) times random's mean nearest-neighbour distance.
    assert np.mean(spread_dpp) > 1.15 * np.mean(spread_random), (spread_dpp, spread_random)


def test_diversity_when_kernel_rank_is_below_k(pool, prepared_diversity):
    # A huge bandwidth makes L = ΦΦᵀ nearly rank one: sample_kdpp draws rank-many items from the
    # DPP and the rest uniformly over the valid items, so the selection is still k distinct
    # valid items.
    wide = prepared_diversity._replace(bandwidth=jnp.float32(1e4))
    selection, rank = _select_diversity(jax.random.key(0), pool[0], jnp.int32(30), wide,
                                        max_size=100, num_subtasks=4, sampler="capped")
    items = np.asarray(selection.items[:30])
    assert int(rank) < 30
    assert len(set(items.tolist())) == 30 and np.all(np.asarray(wide.valid)[items])


# --------------------------------------------------------------------------- study API and CLI
# (marked slow: each method compiles its own engine executable, ~5 s apiece on 2 cores)

STUDY = dict(sizes=[10, 20], num_runs=4, num_targets=8, num_sources=20, num_bootstrap=50, seed=1)
LABELS = ["stratified_confidence", "anchor_points(estimate=correctness)", "diversity"]


@pytest.fixture(scope="module")
def study(matrix):
    return meta_evaluate(matrix, methods=LABELS, **STUDY)


@pytest.mark.slow
def test_methods_run_in_meta_evaluate(study):
    assert {"stratified_confidence", "anchor_points", "diversity"} <= set(METHODS)
    for table in (study.mdad, study.agreement, study.estimation):
        assert set(table["method"]) == set(LABELS)
    errors = study.estimation.groupby("method")["estimation_error"].mean()
    assert np.all(np.isfinite(errors)) and errors.max() < 25
    assert not any("no confidences" in note for note in study.notes)


@pytest.mark.slow
def test_runs_do_not_depend_on_chunking(matrix, study):
    # A tiny memory budget puts one run per chunk (bytes_per_run includes the n² matrix). XLA
    # sums over a non-minor axis differ in the last bit between batch sizes; stratified and
    # anchor estimates move by that much only. A k-DPP draw turns such bits into other
    # (equally distributed) draws, so diversity is only reproducible for a fixed chunking.
    chunked = meta_evaluate(matrix, methods=LABELS, memory_limit_gb=1e-4, **STUDY)
    again = meta_evaluate(matrix, methods=LABELS, memory_limit_gb=1e-4, **STUDY)
    pd.testing.assert_frame_equal(chunked.estimation, again.estimation, check_exact=True)
    stable = ~chunked.estimation["method"].str.startswith("diversity")
    pd.testing.assert_frame_equal(chunked.estimation[stable], study.estimation[stable], rtol=1e-5)


@pytest.mark.slow
def test_cli_runs_the_methods_and_notes_missing_confidences(monkeypatch, capsys, tmp_path,
                                                             small_matrix):
    # small_matrix has no confidences: the methods fall back to correctness and say so.
    data = write_matrix(small_matrix, tmp_path / "plain.npz")
    argv = ["jaxbench", "run", "--data", str(data), "--methods",
            "random,stratified_confidence,anchor_points(solver=pam),diversity(sampler=full)",
            "--sizes", "10", "--runs", "2", "--targets", "8", "--bootstrap", "20",
            "--out", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", argv)
    main()
    assert "anchor_points(solver=pam)" in capsys.readouterr().out
    mdad = pd.read_csv(tmp_path / "out" / "mdad.csv")
    labels = {"stratified_confidence", "anchor_points(solver=pam)", "diversity(sampler=full)"}
    assert set(mdad["method"]) >= labels | {"random"}
    notes = json.loads((tmp_path / "out" / "run.json").read_text())["notes"]
    for label in labels:
        assert f"{label}: no confidences in the data; used correctness" in notes
    assert not any(note.startswith("random:") for note in notes)
