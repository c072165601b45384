"""`stratified_confidence` (SPEC §3): strata of mean source confidence, stratified HT estimate.

Each seen item's feature is the source models' mean confidence on it (over observed cells; an
item no source observed gets the mean feature). `prepare` splits the seen items once per run
into `NUM_STRATA` = 10 strata by 1-D k-means on that feature (`jaxbench.cluster.kmeans`,
`KMEANS_INITS` = 1 k-means++ seed, as scikit-learn's ``n_init="auto"`` in the paper's code; a
seed costs ~3 s per 50 runs on 2 CPU cores at 5,000 seen items). Each size k is allocated to
the strata by largest remainder ∝ stratum size (`allocate_proportional`, summing to exactly k,
never above a stratum's size); items are drawn uniformly without replacement within strata.

Estimator: the stratified Horvitz–Thompson estimate ``Σ_h (N_h/N)·ȳ_h`` of the seen-half mean,
i.e. weight ``N_h / (N·n_h) = 1 / (N·π_i)`` on each drawn item with its exact inclusion
probability ``π_i = n_h/N_h`` (the paper's code rounded the allocation and used approximate
probabilities). It is unbiased whenever every non-empty stratum receives an item. When one gets
none (k below the number of non-empty strata, or a stratum so small that its largest-remainder
quota rounds to 0), its items have inclusion probability 0 and no unbiased estimate exists; the
weights of the sampled strata are then renormalised to sum to 1, giving
``Σ_{h sampled} N_h·ȳ_h / Σ_{h sampled} N_h`` (a ratio estimator over the sampled strata,
biased by the unsampled strata's difference from the rest). With missing target cells the
weights are renormalised over the observed ones (the ``mask`` policy).

Departures from the paper's code: exact largest-remainder (not rounded) allocation summing to k
(the paper topped up a rounding shortfall with items from anywhere), and exact inclusion
probabilities.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..cluster import kmeans
from .base import MethodInfo, Selection, SourceView, TargetView, estimate_weighted_mean
from .stratified_subtask import select_stratified_subtask

NUM_STRATA = 10
KMEANS_INITS = 1


def mean_source_confidence(confidences: jax.Array, observed: jax.Array) -> jax.Array:
    """float32[items]: mean over observed source cells (items with none: the overall mean)."""
    weights = observed.astype(confidences.dtype)
    count = weights.sum(0)
    mean = jnp.sum(confidences * weights, axis=0) / jnp.maximum(count, 1.0)
    overall = jnp.sum(confidences * weights) / jnp.maximum(count.sum(), 1.0)
    return jnp.where(count > 0, mean, overall)


def prepare_stratified_confidence(key, sources: SourceView, *, max_size: int,
                                  num_subtasks: int) -> jax.Array:
    """int32[seen]: the stratum (0..9) of every seen item, from 1-D k-means of its feature."""
    feature = mean_source_confidence(sources.confidences, sources.observed)
    strata = min(NUM_STRATA, feature.shape[0])
    result = kmeans(key, feature[:, None], jnp.int32(strata), max_clusters=strata,
                    num_inits=KMEANS_INITS)
    return result.labels


def select_stratified_confidence(key, sources: SourceView, size, strata, *, max_size: int,
                                 num_subtasks: int):
    """Proportional stratified sample of ``size`` seen items with HT weights (module docstring).

    Args:
        key: the selection key.
        sources: only its shape is used; the strata come from `prepare`.
        size: int32 scalar k (traced, ``k <= max_size``).
        strata: int32[seen] from `prepare_stratified_confidence`.
        max_size: static padded length.

    Returns:
        (`Selection`, None).
    """
    view = sources._replace(subtasks=strata)
    selection = select_stratified_subtask(
        key, view, size, max_size=max_size, num_subtasks=NUM_STRATA,
        allocation="proportional", weighting="design",
    )
    return selection, None


def estimate_stratified_confidence(selection: Selection, aux, targets: TargetView, prepared,
                                   **_) -> jax.Array:
    """float32[1, targets]: the HT weights applied to the targets' scores."""
    return estimate_weighted_mean(selection, targets)[None, :]


STRATIFIED_CONFIDENCE = MethodInfo(
    select=select_stratified_confidence,
    estimators=("mean",),
    estimate=estimate_stratified_confidence,
    options={},
    summary="10 strata of mean source confidence (1-D k-means); stratified Horvitz-Thompson mean",
    prepare=prepare_stratified_confidence,
    uses_confidences=True,
)
