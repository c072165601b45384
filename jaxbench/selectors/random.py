"""`random`: k distinct seen items, uniformly at random; estimate = mean (SPEC §3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import Selection, SourceView, padding_mask


def select_random(key: jax.Array, sources: SourceView, size: jax.Array, *, max_size: int) -> Selection:
    """Draw ``size`` distinct items uniformly from the seen half.

    Args:
        key: the selection key.
        sources: only ``sources.subtasks`` (its length, the seen-half size) is used.
        size: int32 scalar, the micro-benchmark size k (traced; k <= max_size).
        max_size: static padded length.

    Returns:
        `Selection` with weights 1/k on the first k entries.
    """
    # The largest max_size of iid uniforms, in decreasing order, form a uniform random ordered
    # subset, so any prefix of length k is a uniform k-subset.
    noise = jax.random.uniform(key, sources.subtasks.shape)
    _, items = jax.lax.top_k(noise, max_size)
    active = padding_mask(size, max_size)
    weights = jnp.where(active, 1.0 / size, 0.0).astype(jnp.float32)
    return Selection(items.astype(jnp.int32), weights)
