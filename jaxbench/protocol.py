"""The resampling protocol of SPEC §2: which models and items one run uses, drawn from its key.

One run draws target and source models, then splits every subtask's items in half at random:
``floor(n_s / 2)`` items go to the *seen* half (micro-benchmarks are chosen from it), the rest to
the *unseen* half (a fresh draw of the same task). Because subtask sizes are fixed, the positions
of seen items in the subtask-sorted order are the same in every run; only which item sits at
each position is random. `SplitLayout` holds those fixed positions (host-computed once), so the
per-run kernel is a lexsort and two gathers.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class SplitLayout(NamedTuple):
    """Fixed, data-independent facts of the item split (identical for every run).

    Attributes:
        subtasks: int32[items], subtask code of every item.
        seen_positions: int32[seen], positions (in the subtask-sorted order) of the seen half.
        unseen_positions: int32[unseen], positions of the unseen half.
        seen_subtasks: int32[seen], subtask code of each seen position.
    """

    subtasks: jax.Array
    seen_positions: jax.Array
    unseen_positions: jax.Array
    seen_subtasks: jax.Array


class RunSplit(NamedTuple):
    """One run's models and items (indices into the response matrix).

    Attributes:
        targets: int32[targets], the models whose ranking is evaluated.
        sources: int32[sources], the models a selection method may look at.
        seen: int32[seen], items of the seen half (grouped by subtask).
        unseen: int32[unseen], items of the unseen half.
    """

    targets: jax.Array
    sources: jax.Array
    seen: jax.Array
    unseen: jax.Array


def make_layout(subtask_codes: np.ndarray) -> SplitLayout:
    """Host-side: the seen/unseen positions for items with the given subtask codes.

    Args:
        subtask_codes: int[items], codes 0..num_subtasks-1.
    """
    codes = np.asarray(subtask_codes, dtype=np.int32)
    if codes.ndim != 1 or codes.size < 2:
        raise ValueError(f"subtask codes must be 1-D with at least 2 items; got shape {codes.shape}")
    sorted_codes = np.sort(codes, kind="stable")
    starts = np.searchsorted(sorted_codes, sorted_codes, side="left")
    rank_in_subtask = np.arange(codes.size) - starts
    counts = np.bincount(codes)
    seen_mask = rank_in_subtask < counts[sorted_codes] // 2
    if not seen_mask.any():
        raise ValueError("every subtask has a single item: the seen half would be empty")
    seen_positions = np.flatnonzero(seen_mask).astype(np.int32)
    unseen_positions = np.flatnonzero(~seen_mask).astype(np.int32)
    return SplitLayout(
        subtasks=jnp.asarray(codes),
        seen_positions=jnp.asarray(seen_positions),
        unseen_positions=jnp.asarray(unseen_positions),
        seen_subtasks=jnp.asarray(sorted_codes[seen_positions]),
    )


def draw_split(
    key: jax.Array,
    layout: SplitLayout,
    *,
    num_models: int,
    num_targets: int,
    num_sources: int,
    cohort: jax.Array | None = None,
    others: jax.Array | None = None,
) -> RunSplit:
    """Draw one run's target/source models and seen/unseen items (SPEC §2 steps 1-2).

    Args:
        key: the run's key.
        layout: from `make_layout`.
        num_models: rows of the response matrix (static).
        num_targets, num_sources: how many of each to draw (static).
        cohort: optional int32[targets], a fixed target cohort; then sources are drawn from
            ``others`` (int32[models - targets], every other model).

    Returns:
        A `RunSplit`.
    """
    model_key, item_key = jax.random.split(key)
    if cohort is None:
        order = jax.random.permutation(model_key, num_models)
        targets = order[:num_targets]
        sources = order[num_targets : num_targets + num_sources]
    else:
        targets = cohort
        sources = jax.random.permutation(model_key, others)[:num_sources]
    noise = jax.random.uniform(item_key, layout.subtasks.shape)
    # Sort by subtask, then by noise: a uniform shuffle within every subtask.
    order = jnp.lexsort((noise, layout.subtasks))
    return RunSplit(
        targets=targets.astype(jnp.int32),
        sources=sources.astype(jnp.int32),
        seen=order[layout.seen_positions].astype(jnp.int32),
        unseen=order[layout.unseen_positions].astype(jnp.int32),
    )
