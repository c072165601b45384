"""`tinybenchmarks`: anchors, estimators against NumPy/SciPy, λ* from sources only, accuracy."""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

import jaxbench
from jaxbench.cluster import kmeans, nearest_to_centroids
from jaxbench.selectors import SourceView, TargetView, parse_method
from jaxbench.selectors import tinybenchmarks as tb

# One study shape for every meta_evaluate call (one compile): 80 models x 800 items.
STUDY = dict(methods=["random", "tinybenchmarks"], sizes=(10, 25), num_runs=8, num_targets=20,
             num_bootstrap=100, exact=False)
ROWS = {"tinybenchmarks/anchor", "tinybenchmarks/pirt", "tinybenchmarks/gpirt"}
# A tiny direct problem: 16 sources, 5 targets, 160 seen items, max_size 140 (two k-means widths).
MAX_SIZE = 140


@pytest.fixture(scope="module")
def study_matrix():
    matrix, _ = jaxbench.generate_synthetic(80, 800, num_subtasks=4, confidences=True, seed=21)
    return matrix


@pytest.fixture(scope="module")
def study(study_matrix):
    return jaxbench.meta_evaluate(study_matrix, **STUDY)


def test_meta_evaluate_reports_three_estimators(study):
    assert set(study.mdad.method) == ROWS | {"random"}
    estimation = study.estimation[study.estimation.method.isin(ROWS)]
    assert len(estimation) == 3 * 2 * 8 * 2  # estimators x sizes x runs x references
    assert np.isfinite(estimation.estimation_error).all()
    assert not any(note.startswith("tinybenchmarks") for note in study.notes)  # binary data
    assert parse_method("tinybenchmarks(inits=10)").row_labels() == [
        "tinybenchmarks(inits=10)/anchor", "tinybenchmarks(inits=10)/pirt",
        "tinybenchmarks(inits=10)/gpirt"]


def _mean_error(result, method, size):
    rows = result.estimation
    rows = rows[(rows.method == method) & (rows["size"] == size) & (rows.reference == "seen")]
    return rows.estimation_error.mean()


def test_irt_estimators_beat_random_on_irt_data(study):
    # Measured (8 runs, seen reference): random 10.4 / 6.9 points at k = 10 / 25, pirt 9.2 / 6.5,
    # gpirt 8.7 / 5.9. On a 2PL matrix the ability fit removes only the item-difficulty part of
    # the sampling variance, so the honest margins are modest; pirt is only checked at k = 10.
    random = {size: _mean_error(study, "random", size) for size in (10, 25)}
    assert _mean_error(study, "tinybenchmarks/pirt", 10) < 0.95 * random[10]
    for size in (10, 25):
        assert _mean_error(study, "tinybenchmarks/gpirt", size) < 0.9 * random[size]


def test_graded_and_missing_data(study, study_matrix):
    graded = dataclasses.replace(study_matrix, scores=np.where(study_matrix.scores > 0.5, 0.8, 0.3))
    result = jaxbench.meta_evaluate(graded, **STUDY)
    assert "tinybenchmarks: graded scores thresholded at 0.5 for IRT" in result.notes
    # Same IRT input (thresholded), graded labels: the anchor estimate is 0.3 + 0.5 * accuracy.
    for size in (10, 25):
        assert _mean_error(result, "tinybenchmarks/anchor", size) == pytest.approx(
            0.5 * _mean_error(study, "tinybenchmarks/anchor", size), rel=1e-3)
    holes = np.random.default_rng(0).random(study_matrix.shape) < 0.05
    missing = dataclasses.replace(study_matrix, scores=np.where(holes, np.nan, study_matrix.scores))
    masked = jaxbench.meta_evaluate(missing, missing="mask", **STUDY)
    rows = masked.estimation[masked.estimation.method.isin(ROWS)]
    assert np.isfinite(rows.estimation_error).all()
    for method in ROWS:
        assert _mean_error(masked, method, 25) < 1.5 * _mean_error(study, method, 25)


# --------------------------------------------------------------------------- direct pieces


@pytest.fixture(scope="module")
def tiny():
    matrix, _ = jaxbench.generate_synthetic(21, 160, num_subtasks=2, seed=11)
    scores = jnp.asarray(matrix.scores)
    sources = SourceView(scores[:16], jnp.ones((16, 160), bool), scores[:16],
                         jnp.zeros(160, jnp.int32))
    prepare = jax.jit(partial(tb.prepare_tinybenchmarks, max_size=MAX_SIZE, num_subtasks=1))
    select = jax.jit(partial(tb.select_tinybenchmarks, max_size=MAX_SIZE, num_subtasks=1))
    prepared = prepare(jax.random.key(5), sources)
    return scores, sources, prepared, select, jax.jit(tb.estimate_with_lambda)


@jax.jit
def _padded_anchors(key, features, size):
    result = kmeans(key, features, size, max_clusters=MAX_SIZE, num_inits=1, max_iterations=3,
                    init_batch_size=1)
    return nearest_to_centroids(features, result.centroids, result.labels, result.active)


@pytest.mark.parametrize("size", [12, 100])
def test_anchors_are_distinct_and_shares_sum_to_one(tiny, size):
    _, sources, prepared, select, _ = tiny
    selection, _ = select(jax.random.key(1), sources, jnp.int32(size), prepared)
    items, shares = np.asarray(selection.items), np.asarray(selection.weights)
    assert items.shape == (MAX_SIZE,) and np.all(shares[size:] == 0)
    anchors = items[shares > 0]
    assert len(set(anchors)) == len(anchors) and 0.9 * size <= len(anchors) <= size
    assert shares.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(shares * 160, np.round(shares * 160), atol=1e-4)  # whole items per cluster
    # The k-means branch for this size equals one k-means with max_size slots.
    features = tb.item_features(prepared.params)
    cluster_key = jax.random.split(jax.random.key(1))[0]
    expected = _padded_anchors(cluster_key, features, jnp.int32(size))
    np.testing.assert_array_equal(items, np.asarray(expected.items))
    np.testing.assert_allclose(shares, np.asarray(expected.shares), atol=1e-7)


def test_cluster_widths():
    assert tb.cluster_widths(1000) == (64, 256, 1000)
    assert tb.cluster_widths(140) == (64, 140)
    assert tb.cluster_widths(25) == (25,)
    assert [tb.num_holdout(s) for s in (2, 5, 19, 60)] == [1, 1, 4, 12]
    with pytest.raises(ValueError, match="at least 2 source"):
        tb.num_holdout(1)


def _map_ability(labels, a, b):
    """SciPy L-BFGS MAP ability of the clipped model (prior N(0, I))."""

    def objective(theta):
        raw = a * theta - b[:, None]
        logits = np.clip(raw, -30, 30).sum(1)
        loss = np.sum(np.logaddexp(0, logits) - labels * logits) + 0.5 * theta @ theta
        slope = (1 / (1 + np.exp(-logits)) - labels)[:, None] * a * (np.abs(raw) < 30)
        return loss, slope.sum(0) + theta

    return minimize(objective, np.zeros(a.shape[1]), jac=True, method="L-BFGS-B",
                    options={"gtol": 1e-8}).x


def _numpy_estimates(scores, observed, items, shares, a, b):
    used = (shares > 0) & observed[items]
    anchor = np.sum(shares[used] * scores[items][used]) / np.sum(shares[used])
    theta = _map_ability(scores[items][used], a[items][used], b[items][used])
    predicted = 1 / (1 + np.exp(-np.clip(a * theta - b[:, None], -30, 30).sum(1)))
    anchored = np.zeros(len(scores), bool)
    anchored[items[used]] = True
    return anchor, (scores[anchored].sum() + predicted[~anchored].sum()) / len(scores)


@pytest.mark.parametrize("size", [20, 100])  # the two ability-fit widths, 64 and 140
def test_estimators_match_numpy_with_missing_anchors(tiny, size):
    scores, sources, prepared, select, estimate = tiny
    selection, aux = select(jax.random.key(2), sources, jnp.int32(size), prepared)
    assert int(aux.branch) == (size > 64)
    items, shares = np.asarray(selection.items), np.asarray(selection.weights, np.float64)
    observed = np.ones((5, 160), bool)
    observed[0, items[:2]] = False  # two anchors missing for target 0, one for target 1
    observed[1, items[5]] = False
    targets = TargetView(scores[16:] * observed, jnp.asarray(observed), scores[16:])
    estimates, lambda_star = estimate(selection, aux, targets, prepared)
    a, b = (np.asarray(p, np.float64) for p in (prepared.params.a, prepared.params.b))
    y = np.asarray(scores, np.float64)
    expected = np.array([_numpy_estimates(y[16 + t], observed[t], items, shares, a, b)
                         for t in range(5)]).T
    np.testing.assert_allclose(np.asarray(estimates[:2]), expected, atol=2e-3)
    mixed = lambda_star * expected[0] + (1 - lambda_star) * expected[1]
    np.testing.assert_allclose(np.asarray(estimates[2]), mixed, atol=2e-3)
    # λ* minimises the held-out sources' absolute error over the grid (NumPy, same fit).
    held = np.asarray(prepared.holdout_scores, np.float64)
    anchor, pirt = np.array([_numpy_estimates(row, np.ones(160, bool), items, shares, a, b)
                             for row in held]).T
    grid = np.linspace(0, 1, 101)[:, None]
    loss = np.abs(grid * anchor + (1 - grid) * pirt - held.mean(1)).sum(1)
    assert loss[int(round(float(lambda_star) * 100))] <= loss.min() + 1e-3


def test_lambda_never_reads_targets(tiny):
    scores, sources, prepared, select, estimate = tiny
    selection, aux = select(jax.random.key(3), sources, jnp.int32(30), prepared)
    targets = TargetView(scores[16:], jnp.ones((5, 160), bool), scores[16:])
    estimates, lambda_star = estimate(selection, aux, targets, prepared)
    # Flip every response off the anchors: no estimate may move.
    anchors = np.zeros(160, bool)
    anchors[np.asarray(selection.items)[np.asarray(selection.weights) > 0]] = True
    flipped = jnp.where(anchors, scores[16:], 1 - scores[16:])
    same, same_lambda = estimate(selection, aux, targets._replace(scores=flipped), prepared)
    np.testing.assert_array_equal(np.asarray(same), np.asarray(estimates))
    # Replace every target response: λ* (held-out sources only) stays bit-identical.
    noise = (jax.random.uniform(jax.random.key(9), (5, 160)) < 0.9).astype(jnp.float32)
    changed, changed_lambda = estimate(selection, aux, targets._replace(scores=noise), prepared)
    assert float(same_lambda) == float(changed_lambda) == float(lambda_star)
    assert not np.allclose(np.asarray(changed), np.asarray(estimates))
