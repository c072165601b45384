"""What a selection method sees and returns, and the default weighted-mean estimator."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class Selection(NamedTuple):
    """A micro-benchmark, padded to a static length.

    Attributes:
        items: int32[max_size], positions in the seen half; entries at and after ``size`` are
            padding.
        weights: float32[max_size], estimator weights (0 on padding; sum 1 for weighted means).
    """

    items: jax.Array
    weights: jax.Array


class SourceView(NamedTuple):
    """The only data a selection method may use: source models on the seen half.

    Attributes:
        scores: float32[sources, seen] (0 where unobserved).
        observed: bool[sources, seen].
        confidences: float32[sources, seen] (the scores where no confidences were given).
        subtasks: int32[seen], subtask code of each seen item.
    """

    scores: jax.Array
    observed: jax.Array
    confidences: jax.Array
    subtasks: jax.Array


class TargetView(NamedTuple):
    """Target models' responses on the seen half, for estimators.

    Attributes:
        scores: float32[targets, seen] (0 where unobserved).
        observed: bool[targets, seen].
        confidences: float32[targets, seen].
    """

    scores: jax.Array
    observed: jax.Array
    confidences: jax.Array


def padding_mask(size: jax.Array, max_size: int) -> jax.Array:
    """bool[max_size]: True on the first ``size`` positions."""
    return jnp.arange(max_size) < size


def estimate_weighted_mean(selection: Selection, targets: TargetView) -> jax.Array:
    """float32[targets]: ``Σ w·y / Σ w`` over the selected items each target has observed.

    Renormalising over observed cells is the ``mask`` missing-data policy of SPEC §1; with no
    missing cells it is the plain ``Σ w·y`` (weights sum to 1). A target with no observed
    selected item gets NaN.
    """
    scores = targets.scores[:, selection.items]
    weights = selection.weights[None, :] * targets.observed[:, selection.items]
    return jnp.sum(weights * scores, axis=1) / jnp.sum(weights, axis=1)


def no_preparation(key, sources: SourceView, *, max_size: int, num_subtasks: int, **options) -> None:
    """The `prepare` of methods with nothing to compute once per run."""
    return None


class MethodInfo(NamedTuple):
    """A registered method: how the engine calls it, and what the study should say about it.

    Attributes:
        select: ``(key, SourceView, size, prepared, *, max_size, num_subtasks, **options) ->
            (Selection, aux)``; ``size`` is a traced int32 scalar, outputs padded to max_size.
        estimators: names of the estimators it reports, one output row each.
        estimate: ``(Selection, aux, TargetView, prepared, **options) ->
            float32[estimators, targets]``.
        options: option name -> (allowed values, default).
        summary: one line for help texts.
        prepare: ``(key, SourceView, *, max_size, num_subtasks, **options) -> prepared``:
            size-independent work done once per run and shared by every size (an IRT fit, a
            distance matrix); its output is any pytree.
        uses_confidences: the method reads confidences (the study notes the fallback to
            correctness when a matrix has none).
        binary_only: the method thresholds graded scores at 0.5 (IRT); the study notes it.
        bytes_per_run: optional ``(num_sources, num_seen, max_size) -> bytes`` of the method's
            own per-run memory, used to size chunks of runs.
    """

    select: Callable[..., tuple[Selection, Any]]
    estimators: tuple[str, ...]
    estimate: Callable[..., jax.Array]
    options: dict[str, tuple[tuple[str, ...], str]]
    summary: str
    prepare: Callable[..., Any] = no_preparation
    uses_confidences: bool = False
    binary_only: bool = False
    bytes_per_run: Callable[[int, int, int], int] | None = None
