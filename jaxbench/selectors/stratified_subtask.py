"""`stratified_subtask`: uniform sampling within subtasks, with equal or proportional allocation.

SPEC §3: ``allocation="equal"`` (paper) gives ``floor(k/t)`` items to each of the t subtasks and
the ``k mod t`` leftovers to distinct random subtasks; ``"proportional"`` uses largest-remainder
allocation proportional to subtask size. A subtask smaller than its share gives the surplus to
the others (water-filling). Weights are ``1/k`` (``weighting="unweighted"``, paper) or the
design weights ``N_s / (N k_s)`` (``"design"``), which make the estimate unbiased for the
seen-half mean; when k < t some subtasks get no item and the design weights are renormalised to
sum to 1 (a ratio estimator over the sampled subtasks).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import Selection, SourceView, padding_mask

ALLOCATIONS = ("equal", "proportional")
WEIGHTINGS = ("unweighted", "design")


def allocate_equal(key: jax.Array, capacities: jax.Array, size: jax.Array) -> jax.Array:
    """int32[subtasks]: equal allocation of ``size`` items with capacity caps (water-filling).

    The level L is the largest with ``Σ min(n_s, L) <= size``; every subtask gets ``min(n_s, L)``
    and the remaining ``r`` items go to ``r`` distinct random subtasks that still have room.
    Without caps this is the paper's ``floor(k/t)`` plus ``k mod t`` random leftovers.

    Args:
        key: for the choice of leftover subtasks.
        capacities: int32[subtasks], seen items per subtask.
        size: int32 scalar, at most ``Σ capacities``.
    """
    # Binary search for the level: Σ min(n_s, L) is non-decreasing in L.
    def total(level):
        return jnp.sum(jnp.minimum(capacities, level))

    def body(_, bounds):
        low, high = bounds  # invariant: total(low) <= size < total(high)
        middle = (low + high) // 2
        fits = total(middle) <= size
        return jnp.where(fits, middle, low), jnp.where(fits, high, middle)

    top = (jnp.max(capacities) + 1).astype(jnp.int32)
    # 32 halvings cover any int32 capacity.
    level, _ = jax.lax.fori_loop(0, 32, body, (jnp.int32(0), top))
    allocation = jnp.minimum(capacities, level)
    leftover = size - allocation.sum()
    eligible = capacities > level
    noise = jnp.where(eligible, jax.random.uniform(key, capacities.shape), 2.0)
    rank = jnp.argsort(jnp.argsort(noise))
    return (allocation + (eligible & (rank < leftover))).astype(jnp.int32)


def allocate_proportional(capacities: jax.Array, size: jax.Array) -> jax.Array:
    """int32[subtasks]: largest-remainder allocation of ``size`` items proportional to capacity.

    Quotas ``size·n_s/N`` are split into integer parts and remainders in exact integer
    arithmetic; the ``size − Σ floor`` leftover items go to the largest remainders (ties to the
    lower subtask code). Never exceeds a capacity (a quota below n_s rounds up to at most n_s).
    """
    total = capacities.sum()
    product = size * capacities
    base = product // total
    remainder = product - base * total
    leftover = size - base.sum()
    rank = jnp.argsort(jnp.argsort(-remainder, stable=True), stable=True)
    return (base + (rank < leftover)).astype(jnp.int32)


def select_stratified_subtask(
    key: jax.Array,
    sources: SourceView,
    size: jax.Array,
    *,
    max_size: int,
    num_subtasks: int,
    allocation: str = "equal",
    weighting: str = "unweighted",
) -> Selection:
    """Stratified-by-subtask selection of ``size`` seen items (see module docstring).

    Args:
        key: the selection key.
        sources: only ``sources.subtasks`` (int32[seen]) is used.
        size: int32 scalar k (traced, k <= max_size).
        max_size: static padded length.
        num_subtasks: static number of subtask codes.
        allocation: ``"equal"`` or ``"proportional"`` (static).
        weighting: ``"unweighted"`` or ``"design"`` (static).
    """
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {ALLOCATIONS}; got {allocation!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}; got {weighting!r}")
    subtasks = sources.subtasks
    capacities = jnp.zeros(num_subtasks, jnp.int32).at[subtasks].add(1)
    allocation_key, order_key, pick_key = jax.random.split(key, 3)
    if allocation == "equal":
        counts = allocate_equal(allocation_key, capacities, size)
    else:
        counts = allocate_proportional(capacities, size)
    # Uniform within each subtask: shuffle within subtasks, keep the first counts[s] of each.
    noise = jax.random.uniform(order_key, subtasks.shape)
    order = jnp.lexsort((noise, subtasks))
    starts = jnp.cumsum(capacities) - capacities
    rank = jnp.arange(subtasks.shape[0]) - starts[subtasks[order]]
    chosen = jnp.zeros(subtasks.shape, bool).at[order].set(rank < counts[subtasks[order]])
    # Chosen items first (in random order), then padding.
    priority = jnp.where(chosen, jax.random.uniform(pick_key, subtasks.shape), -1.0)
    _, items = jax.lax.top_k(priority, max_size)
    active = padding_mask(size, max_size)
    if weighting == "unweighted":
        weights = jnp.where(active, 1.0 / size, 0.0)
    else:
        item_subtask = subtasks[items]
        design = capacities[item_subtask] / (subtasks.shape[0] * jnp.maximum(counts[item_subtask], 1))
        design = jnp.where(active, design, 0.0)
        weights = design / design.sum()
    return Selection(items.astype(jnp.int32), weights.astype(jnp.float32))
