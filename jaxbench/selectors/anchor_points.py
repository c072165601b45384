"""`anchor_points` (Vivek et al. 2024; SPEC §3): k-medoids of items under correlation distance.

Each seen item is the vector of the source models' confidences on it; the distance between two
items is ``1 − Pearson correlation`` across source models (an item whose source values do not
vary has correlation 0 with every other item, so distance 1; the diagonal is 0). `prepare`
builds this ``seen × seen`` matrix once per run; every size k then clusters it into k medoids,
each item joins its nearest medoid, and the anchors are the medoids, weighted by their clusters'
shares of the seen items. A target's estimate is ``Σ_m share_m · c_target[medoid_m]`` with its
confidence (``estimate="confidence"``, the paper) or its correctness (``"correctness"``).
Without confidences in the data the confidences are the scores (the study says so).

Missing cells (``missing="mask"``): an item's source values are centred by their observed mean
and unobserved cells contribute 0 (mean imputation), and estimates renormalise the weights over
the target's observed anchors.

Solvers (option ``solver``):
- ``"greedy"`` (default): greedy k-medoids++ seeding alone. Medoid 1 is uniform; each next one
  is the best, by the resulting objective ``Σ_i min_m d(i, m)``, of `GREEDY_TRIALS` candidates
  drawn ∝ distance to the nearest medoid (the greedy k-means++ of Arthur & Vassilvitskii and
  scikit-learn, with distances instead of squared distances). Cost ``O(k·trials·n)``, no
  ``n²`` pass per size. This departs from the paper, which ran FasterPAM (random init) to a
  swap-local optimum: at the demo's shape (5,163 seen items, k ≤ 1000) a swap pass of
  `jaxbench.cluster.kmedoids` with 1000 padded slots takes ~0.5 s on a 2-core CPU and
  converging takes 50-100 passes per size (over an hour for the demo), and FasterPAM itself
  0.6-4 s per size, against a budget of ~0.1 s for each of the demo's 350 (run, size) cells.
  On that matrix the greedy objective is 3-5 % above FasterPAM's (k = 10, 100, 1000); Voronoi
  ("alternate") iterations after it gained < 0.3 % and cost more than the seeding, so there
  are none.
- ``"pam"``: `jaxbench.cluster.kmedoids` (BUILD, then FasterPAM-style swap passes to a local
  optimum, at most `PAM_ITERATIONS`), the paper's objective; meant for accelerators.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..cluster import KMedoidsResult, cluster_shares, kmedoids
from .base import MethodInfo, Selection, SourceView, TargetView

ESTIMATES = ("confidence", "correctness")
SOLVERS = ("greedy", "pam")
GREEDY_TRIALS = 16
PAM_ITERATIONS = 100
_HIGHEST = jax.lax.Precision.HIGHEST


def correlation_distances(values: jax.Array, observed: jax.Array) -> jax.Array:
    """float32[items, items]: ``1 − Pearson correlation`` of the items' columns.

    Args:
        values: float32[models, items], e.g. source confidences.
        observed: bool[models, items]; unobserved cells are imputed by the item's observed mean.

    Returns:
        Distances in [0, 2] with a zero diagonal; a zero-variance item is at distance 1 from
        every other item.
    """
    observed = observed.astype(values.dtype)
    # Shift by one observed value first: a constant column becomes exactly 0, so zero variance
    # is detected exactly rather than through float32 rounding of its mean.
    first = jnp.argmax(observed, axis=0)
    shifted = (values - values[first, jnp.arange(values.shape[1])]) * observed
    count = jnp.maximum(observed.sum(0), 1.0)
    centred = (shifted - shifted.sum(0) / count) * observed
    norm = jnp.sqrt(jnp.sum(centred**2, axis=0))
    unit = centred / jnp.where(norm > 0, norm, 1.0)
    correlation = jnp.clip(jnp.matmul(unit.T, unit, precision=_HIGHEST), -1.0, 1.0)
    distances = jnp.maximum(1.0 - correlation, 0.0)
    return jnp.where(jnp.eye(values.shape[1], dtype=bool), 0.0, distances)


def kmedoids_greedy(key, distances, num_clusters, *, max_clusters: int,
                    trials: int = GREEDY_TRIALS) -> KMedoidsResult:
    """k-medoids by greedy k-medoids++ seeding alone (see module docstring).

    Labels are kept up to date while medoids are added (an item moves only to a strictly
    nearer medoid), so they equal the nearest-medoid assignment with ties to the lowest slot.

    Args:
        key: draws the candidates.
        distances: float32[items, items], symmetric with a zero diagonal.
        num_clusters: int32 scalar k (traced), ``1 <= k <= max_clusters``.
        max_clusters: static number of medoid slots.
        trials: static number of candidates per medoid.

    Returns:
        `jaxbench.cluster.KMedoidsResult` padded to ``max_clusters`` (``iterations`` = 0).

    >>> x = jnp.array([0.0, 0.1, 0.2, 5.0, 5.1, 5.2])
    >>> d = jnp.abs(x[:, None] - x[None, :])
    >>> result = kmedoids_greedy(jax.random.key(0), d, jnp.int32(2), max_clusters=3)
    >>> sorted(result.medoids[:2].tolist()), result.active.tolist()
    ([1, 4], [True, True, False])
    """
    items = distances.shape[0]
    num_clusters = jnp.clip(jnp.asarray(num_clusters, jnp.int32), 1, max_clusters)
    first_key, steps_key = jax.random.split(key)
    first = jax.random.randint(first_key, (), 0, items, jnp.int32)
    medoids = jnp.zeros(max_clusters, jnp.int32).at[0].set(first)

    def add_medoid(slot, carry):
        medoids, nearest, labels, chosen = carry
        # Items at distance 0 (medoids and their duplicates) are never drawn; when nothing is
        # left at a positive distance (fewer distinct vectors than k), draw among the unchosen.
        mass = jnp.where(nearest.sum() > 0, nearest, (~chosen).astype(nearest.dtype))
        cumulative = jnp.cumsum(mass)
        draws = jax.random.uniform(jax.random.fold_in(steps_key, slot), (trials,)) * cumulative[-1]
        candidates = jnp.minimum(jnp.searchsorted(cumulative, draws, side="right"), items - 1)
        improved = jnp.minimum(nearest[None, :], distances[candidates])  # [trials, items]
        pick = candidates[jnp.argmin(improved.sum(axis=1))]
        row = distances[pick]
        labels = jnp.where(row < nearest, slot, labels)
        return (medoids.at[slot].set(pick), jnp.minimum(nearest, row), labels,
                chosen.at[pick].set(True))

    start = (medoids, distances[first], jnp.zeros(items, jnp.int32),
             jnp.zeros(items, bool).at[first].set(True))
    medoids, nearest, labels, _ = jax.lax.fori_loop(1, num_clusters, add_medoid, start)
    active = jnp.arange(max_clusters) < num_clusters
    return KMedoidsResult(medoids, labels, jnp.sum(nearest), active, jnp.int32(0))


def _check(estimate, solver):
    if estimate not in ESTIMATES:
        raise ValueError(f"estimate must be one of {ESTIMATES}; got {estimate!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}; got {solver!r}")


def prepare_anchor_points(key, sources: SourceView, *, max_size: int, num_subtasks: int,
                          estimate: str = "confidence", solver: str = "greedy") -> jax.Array:
    """float32[seen, seen]: the run's correlation distances (size-independent work)."""
    _check(estimate, solver)
    return correlation_distances(sources.confidences, sources.observed)


def select_anchor_points(key, sources: SourceView, size, distances, *, max_size: int,
                         num_subtasks: int, estimate: str = "confidence",
                         solver: str = "greedy") -> tuple[Selection, None]:
    """``size`` medoids of the prepared distances, weighted by their clusters' shares.

    Args:
        key: seeds the clustering.
        sources: unused beyond `prepare` (the distances carry the information).
        size: int32 scalar k (traced, ``k <= max_size``).
        distances: float32[seen, seen] from `prepare_anchor_points`.
        max_size: static padded length (medoid slots).

    Returns:
        (`Selection` of medoids and cluster shares, None). A cluster left empty (an item
        identical to another medoid) keeps its medoid with weight 0.
    """
    _check(estimate, solver)
    if solver == "greedy":
        result = kmedoids_greedy(key, distances, size, max_clusters=max_size)
    else:
        result = kmedoids(key, distances, size, max_clusters=max_size,
                          max_iterations=PAM_ITERATIONS, init="build")
    shares = cluster_shares(result.labels, result.active)
    return Selection(result.medoids.astype(jnp.int32), shares), None


def estimate_anchor_points(selection: Selection, aux, targets: TargetView, prepared, *,
                           estimate: str = "confidence", solver: str = "greedy") -> jax.Array:
    """float32[1, targets]: ``Σ share · value`` over anchors, renormalised over observed cells."""
    values = targets.confidences if estimate == "confidence" else targets.scores
    weights = selection.weights[None, :] * targets.observed[:, selection.items]
    total = jnp.sum(weights * values[:, selection.items], axis=1) / jnp.sum(weights, axis=1)
    return total[None, :]


def anchor_points_bytes(num_sources: int, num_seen: int, max_size: int) -> int:
    """Per-run bytes, conservatively: the ``n²`` distance matrix plus ~3 ``n²`` temporaries.

    ``solver="pam"`` holds about 2.1 ``n²`` beside the matrix (`jaxbench.cluster` docs); the
    greedy default peaked at ~1.5 ``n²`` per run in total (benchmarks/bench_methods.py: 1.07 GB
    of resident memory for 5 runs at n = 6012).
    """
    return 4 * (4 * num_seen * num_seen + 2 * num_sources * num_seen + 4 * num_seen * max_size)


ANCHOR_POINTS = MethodInfo(
    select=select_anchor_points,
    estimators=("mean",),
    estimate=estimate_anchor_points,
    options={"estimate": (ESTIMATES, "confidence"), "solver": (SOLVERS, "greedy")},
    summary="k-medoids of items (1 - correlation of source confidences); share-weighted anchors",
    prepare=prepare_anchor_points,
    uses_confidences=True,
    bytes_per_run=anchor_points_bytes,
)
