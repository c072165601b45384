"""Clustering kernels: weighted k-means and k-medoids for one run, padded to ``max_clusters``.

Used by the ``tinybenchmarks`` (k-means on IRT item features), ``stratified_confidence``
(1-D k-means) and ``anchor_points`` (k-medoids on ``1 - corr`` distances) selectors (SPEC §3).
Every kernel takes a traced ``num_clusters`` and a static ``max_clusters``, so one executable
serves every subset size; cluster slots at and after ``num_clusters`` are padding: they are
``False`` in ``active``, receive no items, and are zero (centroids) or 0 (medoids, labels).

k-means (:func:`kmeans`): greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with
``2 + floor(log k)`` local trials per centre as in scikit-learn), then Lloyd iterations until
no label changes or the centres barely move (scikit-learn's rule), best of ``num_inits``
seeds by inertia. Points are centred first and distances are direct differences
``sum_f (x_f - c_f)^2`` (XLA fuses the broadcast into the reduction, and it avoids the
cancellation of ``|x|^2 - 2x.c + |c|^2``, which matters for 1-D strata). A cluster that
empties is re-seeded at the point farthest from its centroid (the farthest for the first
empty slot, the next for the second, ...), as scikit-learn does. Cluster sums are a one-hot
matmul rather than a scatter-add, which is deterministic on GPUs.

k-medoids (:func:`kmedoids`): BUILD (Kaufman & Rousseeuw) or k-medoids++ seeding, then swap
passes. A pass evaluates every (medoid, candidate) swap at once with the FasterPAM
decomposition (Schubert & Rousseeuw 2021): the change of the objective when medoid ``m`` is
replaced by item ``c`` is ``sum_o min(d_oc - dn_o, 0) + sum_{o in C_m} [min(d_oc, ds_o) -
min(d_oc, dn_o)]`` (``dn``/``ds`` = distance to the nearest/second nearest medoid). Each
medoid's best improving swap is proposed; all of them are applied together when the exact
objective of the result is at least as good as the single best swap, otherwise only the best
swap is. The loop stops when no swap improves the objective by more than ``tolerance`` times
the objective, so the result is a swap-local optimum like PAM's and FasterPAM's.

Peak temporaries per run (float32, ``n`` items, ``K = max_clusters``, ``f`` features,
``I = num_inits``), from XLA's ``memory_analysis`` on CPU (a test checks the bounds): k-means
holds about ``1.1·I·n·K`` values (distances and one-hot memberships of the seeds evaluated
together; ~0.27 GB at n = 6016, K = 1000, I = 10; ``init_batch_size`` lowers ``I`` here) and
never ``n·K·f``. k-medoids holds the caller's ``n²`` matrix plus about ``2.1·n²`` (the swap
corrections and a broadcast XLA keeps; ~0.3 GB at n = 6016) and ``O(n·K)`` (memberships,
swap table), never ``n²·K``. Work per swap pass is a ``K×n×n`` matmul (deterministic on
GPUs, unlike a scatter-add); BUILD costs ``k·n²``, so ``init="kmedoids++"`` (``n·k``) is the
cheaper start for large ``k`` on CPU.

Values that only exist inside ``jit`` are not checked there: a ``num_clusters`` outside
``[1, max_clusters]`` gives NaN ``inertia``/``objective``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_key as _check_key
from ._checks import is_concrete as _is_concrete

_HIGHEST = jax.lax.Precision.HIGHEST


class KMeansResult(NamedTuple):
    """Result of :func:`kmeans` (the best seed by inertia).

    Attributes:
        centroids: float32[max_clusters, features]; rows at and after ``num_clusters`` are 0.
        labels: int32[items], the centroid slot of each item (always an active slot).
        inertia: float32[], ``sum_i w_i |x_i - c_{label_i}|^2``.
        active: bool[max_clusters], True on the first ``num_clusters`` slots.
        iterations: int32[], Lloyd iterations run by the best seed.
    """

    centroids: jax.Array
    labels: jax.Array
    inertia: jax.Array
    active: jax.Array
    iterations: jax.Array


class KMedoidsResult(NamedTuple):
    """Result of :func:`kmedoids`.

    Attributes:
        medoids: int32[max_clusters], item index of each medoid; 0 on padding slots.
        labels: int32[items], the medoid slot nearest each item (always an active slot).
        objective: float32[], ``sum_i distances[i, medoids[labels[i]]]``.
        active: bool[max_clusters], True on the first ``num_clusters`` slots.
        iterations: int32[], swap passes run.
    """

    medoids: jax.Array
    labels: jax.Array
    objective: jax.Array
    active: jax.Array
    iterations: jax.Array


class ClusterAnchors(NamedTuple):
    """One representative item per cluster, and the clusters' sizes.

    Attributes:
        items: int32[max_clusters], the member nearest each centroid; 0 on inactive or empty
            slots.
        shares: float32[max_clusters], fraction of all items in each cluster (0 on padding);
            the anchor weights of tinyBenchmarks and anchor points.
    """

    items: jax.Array
    shares: jax.Array


# --------------------------------------------------------------------------- validation


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive Python int; got {value!r}")


def _check_clusters(num_clusters, max_clusters, items):
    _check_positive_int(max_clusters, "max_clusters")
    if max_clusters > items:
        raise ValueError(f"max_clusters must be <= the number of items {items}; got {max_clusters}")
    if np.shape(num_clusters) != ():
        raise ValueError(f"num_clusters must be a scalar; got shape {np.shape(num_clusters)}")
    dtype = jnp.result_type(num_clusters)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"num_clusters must be an integer; got dtype {dtype}")
    if _is_concrete(num_clusters) and not 1 <= int(num_clusters) <= max_clusters:
        raise ValueError(
            f"num_clusters must be in [1, max_clusters={max_clusters}]; got {int(num_clusters)}"
        )


def _check_iterations(max_iterations):
    if _is_concrete(max_iterations) and (np.shape(max_iterations) != () or int(max_iterations) < 1):
        raise ValueError(f"max_iterations must be a positive integer; got {max_iterations!r}")


# --------------------------------------------------------------------------- k-means


def _squared_distances(points, centroids):
    """float32[items, clusters]; the broadcast fuses into the reduction (no items×K×f array)."""
    return jnp.sum((points[:, None, :] - centroids[None, :, :]) ** 2, axis=-1)


def _sample_proportional(key, mass):
    """An index drawn with probability ``mass / sum(mass)`` (inverse CDF, as scikit-learn)."""
    cumulative = jnp.cumsum(mass)
    # side="right" never returns an index whose mass is 0.
    index = jnp.searchsorted(cumulative, jax.random.uniform(key) * cumulative[-1], side="right")
    return jnp.minimum(index, mass.shape[0] - 1).astype(jnp.int32)


def _kmeans_plusplus(key, points, weights, num_clusters, max_clusters):
    """Greedy k-means++: each new centre is the best of several D²-sampled candidates."""
    first_key, steps_key = jax.random.split(key)
    first = _sample_proportional(first_key, weights)
    centroids = jnp.zeros((max_clusters, points.shape[1]), points.dtype).at[0].set(points[first])
    closest = jnp.sum((points - points[first]) ** 2, axis=-1)
    max_trials = 2 + int(math.log(max_clusters))
    num_trials = 2 + jnp.floor(jnp.log(num_clusters.astype(jnp.float32))).astype(jnp.int32)

    def add_centre(slot, carry):
        centroids, closest = carry
        # fold_in per trial: the draws for slot i do not depend on max_clusters.
        trial_keys = jax.vmap(jax.random.fold_in, (None, 0))(
            jax.random.fold_in(steps_key, slot), jnp.arange(max_trials)
        )
        candidates = jax.vmap(_sample_proportional, (0, None))(trial_keys, weights * closest)
        trial_distances = _squared_distances(points[candidates], points)
        trial_closest = jnp.minimum(closest[None, :], trial_distances)
        potential = jnp.dot(trial_closest, weights, precision=_HIGHEST)
        potential = jnp.where(jnp.arange(max_trials) < num_trials, potential, jnp.inf)
        best = jnp.argmin(potential)
        return centroids.at[slot].set(points[candidates[best]]), trial_closest[best]

    centroids, _ = jax.lax.fori_loop(1, num_clusters, add_centre, (centroids, closest))
    return centroids


def _assign(points, centroids, active):
    distances = jnp.where(active[None, :], _squared_distances(points, centroids), jnp.inf)
    return jnp.argmin(distances, axis=1).astype(jnp.int32), jnp.min(distances, axis=1)


def _lloyd_update(points, weights, centroids, active, labels, distances):
    """Weighted means; empty active clusters move to the farthest points (scikit-learn)."""
    max_clusters = centroids.shape[0]
    membership = (labels[:, None] == jnp.arange(max_clusters)).astype(points.dtype)
    weighted = jnp.concatenate([points, jnp.ones_like(points[:, :1])], axis=1) * weights[:, None]
    totals = jnp.matmul(membership.T, weighted, precision=_HIGHEST)
    sums, mass = totals[:, :-1], totals[:, -1]
    means = sums / jnp.where(mass > 0, mass, 1.0)[:, None]
    empty = active & (mass <= 0)
    farthest = jnp.argsort(jnp.where(weights > 0, -distances, jnp.inf))
    reseeded = points[farthest[jnp.clip(jnp.cumsum(empty) - 1, 0, points.shape[0] - 1)]]
    return jnp.where(empty[:, None], reseeded, jnp.where(mass[:, None] > 0, means, centroids))


def _kmeans_one_seed(key, points, weights, num_clusters, active, max_iterations, min_shift):
    centroids = _kmeans_plusplus(key, points, weights, num_clusters, active.shape[0])

    def keep_going(state):
        iteration, _, _, moving = state
        return moving & (iteration < max_iterations)

    def lloyd_step(state):
        iteration, old_centroids, old_labels, _ = state
        labels, distances = _assign(points, old_centroids, active)
        centroids = _lloyd_update(points, weights, old_centroids, active, labels, distances)
        # scikit-learn's stopping rule: labels stable, or a total squared centre shift <= tol.
        shift = jnp.sum((centroids - old_centroids) ** 2)
        return iteration + 1, centroids, labels, jnp.any(labels != old_labels) & (shift > min_shift)

    start = (jnp.int32(0), centroids, jnp.full(points.shape[0], -1, jnp.int32), jnp.bool_(True))
    iterations, centroids, _, _ = jax.lax.while_loop(keep_going, lloyd_step, start)
    labels, distances = _assign(points, centroids, active)
    return centroids, labels, jnp.sum(weights * distances), iterations


def kmeans(
    key,
    points,
    num_clusters,
    *,
    max_clusters: int,
    num_inits: int = 10,
    max_iterations=100,
    tolerance=1e-4,
    weights=None,
    init_batch_size: int | None = None,
) -> KMeansResult:
    """Weighted k-means (k-means++ seeding, Lloyd iterations), best of ``num_inits`` seeds.

    Args:
        key: a typed PRNG key (``jax.random.key``); one split per seed.
        points: float32[items, features].
        num_clusters: int32[] number of clusters ``k``, traced, ``1 <= k <= max_clusters``.
        max_clusters: static Python int, the padded number of cluster slots (``<= items``).
        num_inits: static number of k-means++ seeds; the lowest inertia wins (first on ties).
        max_iterations: Lloyd iterations per seed at most (static or traced).
        tolerance: stop once the centres move less than ``tolerance`` times the mean feature
            variance in total squared distance (scikit-learn's ``tol``); 0 iterates until
            no label changes.
        weights: float32[items] non-negative item weights (default all 1).
        init_batch_size: static; evaluate the seeds ``init_batch_size`` at a time with
            ``lax.map`` to bound memory (default: all at once with ``vmap``). Same results.

    Returns:
        KMeansResult, padded to ``max_clusters``.

    >>> import jax, jax.numpy as jnp
    >>> points = jnp.array([[0.0], [0.1], [5.0], [5.2]])
    >>> result = kmeans(jax.random.key(0), points, jnp.int32(2), max_clusters=3)
    >>> result.labels[0] == result.labels[1], result.labels[0] != result.labels[2]
    (Array(True, dtype=bool), Array(True, dtype=bool))
    >>> result.active.tolist()
    [True, True, False]
    """
    _check_key(key)
    points = jnp.asarray(points)
    if points.ndim != 2:
        raise ValueError(f"points must be 2-D (items, features); got shape {points.shape}")
    if not jnp.issubdtype(points.dtype, jnp.floating):
        points = points.astype(jnp.float32)
    items = points.shape[0]
    _check_clusters(num_clusters, max_clusters, items)
    _check_positive_int(num_inits, "num_inits")
    _check_iterations(max_iterations)
    if init_batch_size is not None:
        _check_positive_int(init_batch_size, "init_batch_size")
    if weights is None:
        weights = jnp.ones(items, points.dtype)
    weights = jnp.asarray(weights, points.dtype)
    if weights.shape != (items,):
        raise ValueError(f"weights must have shape (items,) = ({items},); got {weights.shape}")
    if _is_concrete(tolerance) and not float(tolerance) >= 0:
        raise ValueError(f"tolerance must be >= 0; got {tolerance!r}")
    if _is_concrete(weights) and not (np.all(np.asarray(weights) >= 0) and np.sum(weights) > 0):
        raise ValueError("weights must be non-negative with a positive sum")

    num_clusters = jnp.asarray(num_clusters, jnp.int32)
    valid = (num_clusters >= 1) & (num_clusters <= max_clusters)
    num_clusters = jnp.clip(num_clusters, 1, max_clusters)
    active = jnp.arange(max_clusters) < num_clusters
    # Centring keeps float32 distances accurate far from the origin; it moves no label.
    centre = jnp.dot(weights, points, precision=_HIGHEST) / jnp.sum(weights)
    centred = points - centre
    variance = jnp.dot(weights, centred**2, precision=_HIGHEST) / jnp.sum(weights)
    min_shift = tolerance * jnp.mean(variance)

    def one_seed(seed_key):
        return _kmeans_one_seed(
            seed_key, centred, weights, num_clusters, active, max_iterations, min_shift
        )

    seed_keys = jax.random.split(key, num_inits)
    if init_batch_size is None:
        seeds = jax.vmap(one_seed)(seed_keys)
    else:
        seeds = jax.lax.map(one_seed, seed_keys, batch_size=min(init_batch_size, num_inits))
    best = jnp.argmin(seeds[2])
    centroids, labels, inertia, iterations = (value[best] for value in seeds)
    centroids = jnp.where(active[:, None], centroids + centre, 0.0)
    return KMeansResult(centroids, labels, jnp.where(valid, inertia, jnp.nan), active, iterations)


def cluster_shares(labels, active):
    """float32[max_clusters]: fraction of the items in each cluster (0 on padding slots).

    Args:
        labels: int32[items] cluster slot of each item.
        active: bool[max_clusters].
    """
    counts = jnp.bincount(labels, length=active.shape[0])
    return jnp.where(active, counts / labels.shape[0], 0.0).astype(jnp.float32)


def nearest_to_centroids(points, centroids, labels, active) -> ClusterAnchors:
    """The member of each cluster nearest its centroid (tinyBenchmarks' anchors), and shares.

    Args:
        points: float[items, features].
        centroids: float[max_clusters, features].
        labels: int32[items] cluster slot of each item.
        active: bool[max_clusters].

    Returns:
        ClusterAnchors; ties go to the lowest item index.
    """
    items = points.shape[0]
    max_clusters = centroids.shape[0]
    distance = jnp.sum((points - centroids[labels]) ** 2, axis=-1)
    closest = jax.ops.segment_min(distance, labels, num_segments=max_clusters)
    candidates = jnp.where(distance <= closest[labels], jnp.arange(items), items)
    anchors = jax.ops.segment_min(candidates, labels, num_segments=max_clusters)
    shares = cluster_shares(labels, active)
    return ClusterAnchors(jnp.where(active & (shares > 0), anchors, 0).astype(jnp.int32), shares)


# --------------------------------------------------------------------------- k-medoids


def _nearest_two(distances, medoids, active):
    """Nearest medoid slot, and the distances to the nearest and second-nearest medoids."""
    to_medoids = jnp.where(active[None, :], distances[:, medoids], jnp.inf)
    nearest = jnp.argmin(to_medoids, axis=1).astype(jnp.int32)
    first = jnp.min(to_medoids, axis=1)
    others = jnp.where(jnp.arange(medoids.shape[0]) == nearest[:, None], jnp.inf, to_medoids)
    return nearest, first, jnp.min(others, axis=1)


def _build(distances, num_clusters, max_clusters):
    """Greedy BUILD: each new medoid maximises the reduction of the objective."""
    first = jnp.argmin(jnp.sum(distances, axis=0)).astype(jnp.int32)
    medoids = jnp.zeros(max_clusters, jnp.int32).at[0].set(first)
    is_medoid = jnp.zeros(distances.shape[0], bool).at[first].set(True)

    def add_medoid(slot, carry):
        medoids, nearest, is_medoid = carry
        gain = jnp.sum(jnp.maximum(nearest[:, None] - distances, 0.0), axis=0)
        best = jnp.argmax(jnp.where(is_medoid, -1.0, gain)).astype(jnp.int32)
        nearest = jnp.minimum(nearest, distances[:, best])
        return medoids.at[slot].set(best), nearest, is_medoid.at[best].set(True)

    carry = (medoids, distances[:, first], is_medoid)
    return jax.lax.fori_loop(1, num_clusters, add_medoid, carry)[0]


def _kmedoids_plusplus(key, distances, num_clusters, max_clusters):
    """k-medoids++: each new medoid is drawn with probability proportional to ``dn``."""
    first_key, steps_key = jax.random.split(key)
    first = jax.random.randint(first_key, (), 0, distances.shape[0], jnp.int32)
    medoids = jnp.zeros(max_clusters, jnp.int32).at[0].set(first)

    def add_medoid(slot, carry):
        medoids, nearest = carry
        chosen = _sample_proportional(jax.random.fold_in(steps_key, slot), nearest)
        return medoids.at[slot].set(chosen), jnp.minimum(nearest, distances[:, chosen])

    carry = (medoids, distances[:, first])
    return jax.lax.fori_loop(1, num_clusters, add_medoid, carry)[0]


def _swap_pass(distances, medoids, active, tolerance):
    """One pass of swaps; returns the new medoids and whether any swap was made."""
    items, max_clusters = distances.shape[0], medoids.shape[0]
    nearest, first, second = _nearest_two(distances, medoids, active)
    objective = jnp.sum(first)
    is_medoid = jnp.zeros(items, bool).at[medoids].max(active)
    # FasterPAM's decomposition of the change for swapping medoid m out and item c in (module
    # docstring): a part shared by all m, plus a correction summed over m's members.
    shared = jnp.sum(jnp.minimum(distances - first[:, None], 0.0), axis=0)
    correction = jnp.minimum(distances, second[:, None]) - jnp.minimum(distances, first[:, None])
    membership = (nearest[:, None] == jnp.arange(max_clusters)).astype(distances.dtype)
    change = jnp.matmul(membership.T, correction, precision=_HIGHEST) + shared[None, :]
    change = jnp.where(active[:, None] & ~is_medoid[None, :], change, jnp.inf)
    candidate = jnp.argmin(change, axis=1).astype(jnp.int32)
    gain = jnp.take_along_axis(change, candidate[:, None], axis=1)[:, 0]
    improving = gain < -tolerance * objective

    # Propose every medoid's best swap; a candidate wanted by several medoids goes to the one
    # with the largest improvement (lowest slot on ties).
    claim = jax.ops.segment_min(jnp.where(improving, gain, jnp.inf), candidate, num_segments=items)
    winner = improving & (gain <= claim[candidate])
    slots = jnp.arange(max_clusters)
    first_slot = jax.ops.segment_min(jnp.where(winner, slots, max_clusters), candidate, items)
    winner = winner & (slots == first_slot[candidate])
    together = jnp.where(winner, candidate, medoids)
    together_objective = jnp.sum(_nearest_two(distances, together, active)[1])
    best_slot = jnp.argmin(gain)
    alone = medoids.at[best_slot].set(candidate[best_slot])
    # The joint proposal can interact badly; keep it only if it beats the best single swap.
    proposal = jnp.where(together_objective <= objective + gain[best_slot], together, alone)
    swapped = jnp.any(improving)
    return jnp.where(swapped, proposal, medoids), swapped


def kmedoids(
    key,
    distances,
    num_clusters,
    *,
    max_clusters: int,
    max_iterations=100,
    init: str = "build",
    tolerance=1e-6,
) -> KMedoidsResult:
    """k-medoids (PAM objective) on a precomputed dissimilarity matrix.

    Args:
        key: a typed PRNG key; used only by ``init="kmedoids++"``.
        distances: float32[items, items] dissimilarities, ``distances[i, j]`` = cost of
            assigning item ``i`` to medoid ``j`` (symmetric, zero diagonal in the usual case).
        num_clusters: int32[] number of medoids ``k``, traced, ``1 <= k <= max_clusters``.
        max_clusters: static Python int, the padded number of medoid slots (``<= items``).
        max_iterations: swap passes at most (static or traced). From BUILD a few to ~15
            passes converge (n = 2000, k = 500); from k-medoids++ several times more.
        init: static, ``"build"`` (greedy BUILD, deterministic, ``k·n²`` work) or
            ``"kmedoids++"`` (random seeding proportional to distance, ``n·k`` work).
        tolerance: a swap must lower the objective by more than ``tolerance · objective``.

    Returns:
        KMedoidsResult, padded to ``max_clusters``.

    >>> import jax, jax.numpy as jnp
    >>> x = jnp.array([0.0, 0.1, 0.2, 5.0, 5.1, 5.2])
    >>> d = jnp.abs(x[:, None] - x[None, :])
    >>> result = kmedoids(jax.random.key(0), d, jnp.int32(2), max_clusters=2)
    >>> sorted(result.medoids.tolist())
    [1, 4]
    """
    _check_key(key)
    distances = jnp.asarray(distances)
    if distances.ndim != 2 or distances.shape[0] != distances.shape[1]:
        raise ValueError(f"distances must be a square (items, items) matrix; got {distances.shape}")
    if not jnp.issubdtype(distances.dtype, jnp.floating):
        distances = distances.astype(jnp.float32)
    _check_clusters(num_clusters, max_clusters, distances.shape[0])
    _check_iterations(max_iterations)
    if init not in ("build", "kmedoids++"):
        raise ValueError(f"init must be 'build' or 'kmedoids++'; got {init!r}")
    if _is_concrete(tolerance) and not float(tolerance) >= 0:
        raise ValueError(f"tolerance must be >= 0; got {tolerance!r}")

    num_clusters = jnp.asarray(num_clusters, jnp.int32)
    valid = (num_clusters >= 1) & (num_clusters <= max_clusters)
    num_clusters = jnp.clip(num_clusters, 1, max_clusters)
    active = jnp.arange(max_clusters) < num_clusters
    if init == "build":
        medoids = _build(distances, num_clusters, max_clusters)
    else:
        medoids = _kmedoids_plusplus(key, distances, num_clusters, max_clusters)

    def keep_going(state):
        iteration, _, swapped = state
        return swapped & (iteration < max_iterations)

    def swap_step(state):
        iteration, medoids, _ = state
        return (iteration + 1, *_swap_pass(distances, medoids, active, tolerance))

    start = (jnp.int32(0), medoids, jnp.bool_(True))
    iterations, medoids, _ = jax.lax.while_loop(keep_going, swap_step, start)
    labels, first, _ = _nearest_two(distances, medoids, active)
    objective = jnp.where(valid, jnp.sum(first), jnp.nan)
    return KMedoidsResult(jnp.where(active, medoids, 0), labels, objective, active, iterations)
