"""`tinybenchmarks`: IRT item features, k-means anchors, and the anchor / p-IRT / gp-IRT estimators.

SPEC §3 row ``tinybenchmarks`` (Polo et al., 2024, "tinyBenchmarks"), on the IRT model of §4.

prepare (once per run): graded scores are thresholded at 0.5 (the study notes it);
``H = max(1, round(S/5))`` of the S source models are held out at random (at least one is left
to fit on); the D-dimensional IRT model (`jaxbench.irt.fit_irt`, unobserved cells masked out of
the likelihood) is fitted on the other ``S − H`` sources. Item features: ``[a_j (D dims), b_j]``.

select (per size k): k-means on the features (`jaxbench.cluster.kmeans`: k-means++ seeding, best
of ``inits`` seeds by inertia); the member of each cluster nearest its centroid is the cluster's
anchor, weighted by the cluster's share of the seen items. k is traced; see
`select_tinybenchmarks` for the static widths.

estimate (per target, from its anchors only):
- ``anchor``: ``Σ share·y[anchor] / Σ share`` over the anchors the target has observed.
- ``pirt``: ``(Σ_{observed anchors} y_j + Σ_{other seen items} P̂_j(θ̂)) / N_seen``, i.e.
  ``λ·mean(y on anchors) + (1−λ)·mean(P̂ over the other seen items)`` with ``λ = k/N_seen``;
  ``θ̂`` is the MAP ability (`fit_ability`, prior N(0, I)) on the target's observed anchors,
  unweighted, with graded labels thresholded at 0.5. An anchor the target has not observed is
  predicted like any other item (and ``λ`` counts observed anchors only).
- ``gpirt``: ``λ*·anchor + (1−λ*)·pirt``. The held-out sources go through the same two
  estimators (same anchors, item parameters they did not inform, ``θ̂`` from their anchors);
  ``λ*`` minimises ``Σ_h |λ·anchor_h + (1−λ)·pirt_h − seen mean_h|`` over the grid
  ``0, 0.01, ..., 1`` (ties: the smallest λ; held-out rows with a NaN are skipped; λ* = 0 if
  none is left). Only source rows enter; target labels never do.

Departures from tinyBenchmarks (and why):
- Item parameters are MAP estimates of the clipped model (see `jaxbench.irt`), fitted on
  ``S − H`` sources, so the held-out sources are out of sample for the IRT model exactly as
  targets are and λ* is tuned on the estimator it is combined with, with one fit per run.
- λ* follows SPEC §3 (held-out sources, grid search); the paper's own rule for λ is not used.
- Anchors are the nearest *member* of each cluster (tinyBenchmarks takes the nearest item
  overall, which can repeat an item across clusters); weights are unweighted cluster shares.
- Budget defaults (the demo runs on 2 CPU cores): ``inits=1`` (tinyBenchmarks' code calls
  scikit-learn's KMeans with ``n_init="auto"``: one k-means++ seed), ``iterations=3`` Lloyd
  iterations (theirs: up to 300; on MMLU-Pro features 3 iterations end within ~2-4 % of the
  converged inertia), ``steps=200`` Adam steps for the IRT fit (relative tolerance
  `IRT_TOLERANCE`; their py-irt fit: 2000 SVI epochs) and at most `ABILITY_STEPS` steps per
  ability fit (their: BFGS). ``tinybenchmarks(inits=10, iterations=300, steps=2000)`` is the
  slow, closer setting.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..cluster import kmeans, nearest_to_centroids
from ..irt import IRTParams, fit_ability, fit_irt, predict_probability
from .base import MethodInfo, Selection, SourceView, TargetView

ESTIMATORS = ("anchor", "pirt", "gpirt")
DIMENSIONS = ("1", "2", "3", "5", "10", "15", "20")
INITS = ("1", "2", "3", "5", "10")
ITERATIONS = ("1", "3", "10", "30", "100", "300")
STEPS = ("100", "200", "300", "1000", "2000")
HOLDOUT_FRACTION = 0.2
IRT_TOLERANCE = 1e-5
ABILITY_STEPS = 100
ABILITY_TOLERANCE = 1e-5
LAMBDA_GRID = tuple(i / 100 for i in range(101))


class TinyPrepared(NamedTuple):
    """Size-independent state of one run.

    Attributes:
        params: `IRTParams` fitted on the training sources (held-out rows of theta stay at the
            prior mode and are unused).
        holdout_scores: float32[H, seen], the held-out sources' scores.
        holdout_observed: bool[H, seen].
    """

    params: IRTParams
    holdout_scores: jax.Array
    holdout_observed: jax.Array


class TinyAux(NamedTuple):
    """Per-size state passed from `select` to `estimate`.

    Attributes:
        ability_key: key for the ability fits (it only jitters their starting points).
        branch: int32[], index into `cluster_widths` of the width that holds the anchors.
    """

    ability_key: jax.Array
    branch: jax.Array


def num_holdout(num_sources: int) -> int:
    """Held-out sources for λ*: ``max(1, round(S/5))``, leaving at least one to fit on."""
    if num_sources < 2:
        raise ValueError(f"tinybenchmarks needs at least 2 source models; got {num_sources}")
    return min(max(1, round(HOLDOUT_FRACTION * num_sources)), num_sources - 1)


def item_features(params: IRTParams) -> jax.Array:
    """float32[items, dims + 1]: ``[a_j, b_j]``, the k-means input of tinyBenchmarks."""
    return jnp.concatenate([params.a, params.b[:, None]], axis=1)


def prepare_tinybenchmarks(key, sources: SourceView, *, max_size: int, num_subtasks: int,
                           dimensions: str = "10", steps: str = "200", **_) -> TinyPrepared:
    """Hold out sources for λ* and fit the IRT model on the others (module docstring)."""
    num_sources = sources.scores.shape[0]
    holdout_key, fit_key = jax.random.split(key)
    holdout = jax.random.permutation(holdout_key, num_sources)[: num_holdout(num_sources)]
    training = jnp.ones(num_sources, bool).at[holdout].set(False)
    responses = (sources.scores >= 0.5).astype(jnp.float32)
    fit = fit_irt(fit_key, responses, sources.observed & training[:, None],
                  dimensions=int(dimensions), max_steps=int(steps), tolerance=IRT_TOLERANCE)
    return TinyPrepared(fit.params, sources.scores[holdout], sources.observed[holdout])


def cluster_widths(max_size: int) -> tuple[int, ...]:
    """Static cluster-slot counts of the k-means branches: ``64·4^j < max_size/2``, then
    ``max_size`` (e.g. 64, 256, 1000 for max_size = 1000; just max_size up to 128)."""
    widths, width = [], 64
    while width < max_size / 2:
        widths.append(width)
        width *= 4
    return (*widths, max_size)


def select_tinybenchmarks(key, sources: SourceView, size, prepared: TinyPrepared, *,
                          max_size: int, num_subtasks: int, inits: str = "1",
                          iterations: str = "3", **_) -> tuple[Selection, TinyAux]:
    """Anchors of ``size`` k-means clusters of the item features, weighted by cluster share.

    k-means work grows with its number of cluster slots, so ``size`` picks (`lax.switch`) the
    smallest of `cluster_widths` that holds it; the result is padded to ``max_size``. Padding
    does not change `kmeans` results, so this equals one k-means with ``max_size`` slots. The
    estimate fits abilities on the same width. Under ``vmap`` over sizes the switch would run
    every branch (the engine maps over sizes instead).
    """
    cluster_key, ability_key = jax.random.split(key)
    features = item_features(prepared.params)

    def cluster(width):
        def run(key, size):
            # init_batch_size=1: seeds one after another; memory does not grow with `inits`.
            result = kmeans(key, features, size, max_clusters=width, num_inits=int(inits),
                            max_iterations=int(iterations), init_batch_size=1)
            anchors = nearest_to_centroids(features, result.centroids, result.labels,
                                           result.active)
            return (jnp.pad(anchors.items, (0, max_size - width)),
                    jnp.pad(anchors.shares, (0, max_size - width)))
        return run

    widths = cluster_widths(max_size)
    size = jnp.asarray(size, jnp.int32)
    branch = jnp.minimum(jnp.searchsorted(jnp.asarray(widths), size), len(widths) - 1)
    items, shares = jax.lax.switch(branch, [cluster(w) for w in widths], cluster_key, size)
    return Selection(items, shares), TinyAux(ability_key, branch)


def estimate_one(key, scores, observed, selection: Selection, a, b):
    """(anchor, pirt) estimates of one model from its responses on the anchors.

    Args:
        key: jitters the start of the ability fit.
        scores: float32[seen]; only the observed anchors' entries are read.
        observed: bool[seen].
        selection: anchors int32[max_size] and cluster shares (0 on padding / empty clusters).
        a: float32[seen, dims]; b: float32[seen]: item parameters.
    """
    items, shares = selection
    used = (shares > 0) & observed[items]
    labels = jnp.where(used, scores[items], 0.0)
    weights = jnp.where(used, shares, 0.0)
    anchor = jnp.sum(weights * labels) / jnp.sum(weights)
    theta = fit_ability(key, (labels >= 0.5).astype(jnp.float32), used, a[items], b[items],
                        max_steps=ABILITY_STEPS, tolerance=ABILITY_TOLERANCE)
    predicted = predict_probability(theta, a, b)
    anchored = jnp.zeros(scores.shape, bool).at[items].max(used)
    pirt = jnp.mean(jnp.where(anchored, scores, predicted))
    return anchor, pirt


def choose_lambda(anchor, pirt, truth) -> jax.Array:
    """λ* on `LAMBDA_GRID` minimising Σ |λ·anchor + (1−λ)·pirt − truth| over the models with
    finite values (float32[models] each); the smallest such λ, or 0 when none is finite."""
    grid = jnp.asarray(LAMBDA_GRID, jnp.float32)[:, None]
    valid = jnp.isfinite(anchor) & jnp.isfinite(pirt) & jnp.isfinite(truth)
    error = jnp.abs(grid * anchor + (1.0 - grid) * pirt - truth)
    return grid[jnp.argmin(jnp.sum(jnp.where(valid, error, 0.0), axis=1)), 0]


def estimate_with_lambda(selection: Selection, aux: TinyAux, targets: TargetView,
                         prepared: TinyPrepared) -> tuple[jax.Array, jax.Array]:
    """(float32[3, targets] anchor/pirt/gpirt estimates, λ*).

    Held-out sources and targets go through one vmapped `estimate_one` (one compiled ability
    fit per width); rows are independent, and λ* reads the held-out rows only.
    """
    holdout_keys = jax.random.split(jax.random.fold_in(aux.ability_key, 0),
                                    prepared.holdout_scores.shape[0])
    target_keys = jax.random.split(jax.random.fold_in(aux.ability_key, 1), targets.scores.shape[0])
    keys = jnp.concatenate([holdout_keys, target_keys])
    scores = jnp.concatenate([prepared.holdout_scores, targets.scores])
    observed = jnp.concatenate([prepared.holdout_observed, targets.observed])

    def rows(width):
        # The anchors sit in the first `size` <= width slots; the rest is zero-weight padding.
        narrow = Selection(selection.items[:width], selection.weights[:width])
        one = partial(estimate_one, selection=narrow, a=prepared.params.a, b=prepared.params.b)
        return lambda *arrays: jax.vmap(one)(*arrays)

    widths = cluster_widths(selection.items.shape[0])
    anchor, pirt = jax.lax.switch(aux.branch, [rows(w) for w in widths], keys, scores, observed)
    held = holdout_keys.shape[0]
    truth = (jnp.sum(prepared.holdout_scores * prepared.holdout_observed, axis=1)
             / jnp.sum(prepared.holdout_observed, axis=1))
    lambda_star = choose_lambda(anchor[:held], pirt[:held], truth)
    anchor, pirt = anchor[held:], pirt[held:]
    gpirt = lambda_star * anchor + (1.0 - lambda_star) * pirt
    return jnp.stack([anchor, pirt, gpirt]), lambda_star


def estimate_tinybenchmarks(selection: Selection, aux: TinyAux, targets: TargetView,
                            prepared: TinyPrepared, **_) -> jax.Array:
    """float32[3, targets]: the anchor, pirt and gpirt estimates (module docstring)."""
    return estimate_with_lambda(selection, aux, targets, prepared)[0]


def bytes_per_run(num_sources: int, num_seen: int, max_size: int) -> int:
    """Per-run temporaries: the clipped IRT logits and their gradient (~4 float32 copies of
    [sources, seen, dims], dims <= 20) and k-means' ~1.1·seen·max_size values of one seed."""
    return 4 * (4 * num_sources * num_seen * 20 + 2 * num_seen * max_size)


TINYBENCHMARKS = MethodInfo(
    select=select_tinybenchmarks,
    estimators=ESTIMATORS,
    estimate=estimate_tinybenchmarks,
    options={"dimensions": (DIMENSIONS, "10"), "inits": (INITS, "1"),
             "iterations": (ITERATIONS, "3"), "steps": (STEPS, "200")},
    summary="IRT item features, k-means anchors; anchor, p-IRT and gp-IRT estimators",
    prepare=prepare_tinybenchmarks,
    binary_only=True,
    bytes_per_run=bytes_per_run,
)
