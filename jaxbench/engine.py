"""The jit boundary: the protocol as pure functions of one run, vmapped over runs, chunked, sharded.

A run (SPEC §2) is computed in three compiled stages, each vmapped over a chunk of runs:
`draw_splits` (targets, sources, seen/unseen halves and reference totals), `estimate_runs` (the
method's preparation once per run, then selection and estimation at every size k with
`lax.map`) and `summarize_runs` (per-bin pair counts, estimation error and Kendall τ against the
seen and the unseen half). Only `estimate_runs` depends on the method, so the split and metric
programs are compiled once per study; sizes are traced and selections padded to ``max_size``, so
nothing recompiles for another k. `evaluate` drives the stages over fixed-size chunks of runs (so
memory stays bounded and executables are reused), sharding each chunk's runs over all local
devices along a ``runs`` mesh axis. `evaluate_exact_runs` computes the closed-form agreement of
`random` on the same splits (SPEC §6).

Keys: run r uses ``keys[r]``, split in three: the split, the method's preparation, and the
selection at size k from ``fold_in(selection key, k)``. So a run's numbers do not depend on
chunking, sharding, which other sizes or methods are requested, or the device count.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from .agreement import (
    MDAD,
    BinCounts,
    CurveInterval,
    bin_pair_agreement,
    bootstrap_over_pairs,
    bootstrap_over_runs,
    bin_reference_gaps,
    count_by_bin,
    curve_from_counts,
    detect_mdad,
    estimation_error,
    kendall_tau_b,
)
from .exact import discordant_counts, pair_agreement, pair_win_probabilities
from .protocol import RunSplit, SplitLayout, draw_split
from .selectors import MethodSpec, Selection, SourceView, TargetView

REFERENCES = ("seen", "unseen")


class EngineData(NamedTuple):
    """Device-side inputs shared by every run (replicated across devices).

    Attributes:
        scores: float32[models, items], 0 where unobserved.
        observed: bool[models, items].
        confidences: float32[models, items] (the scores where none were given).
        layout: the fixed `SplitLayout`.
        cohort: optional int32[targets], a fixed target cohort.
        others: optional int32[models - targets], the models outside the cohort.
    """

    scores: jax.Array
    observed: jax.Array
    confidences: jax.Array
    layout: SplitLayout
    cohort: jax.Array | None = None
    others: jax.Array | None = None


class EngineConfig(NamedTuple):
    """Static settings: everything that changes shapes or code paths (hashable)."""

    method: MethodSpec
    max_size: int
    num_targets: int
    num_sources: int
    num_subtasks: int
    num_bins: int
    resolution: float
    tie_tolerance: float


class RunSummary(NamedTuple):
    """What one run brings back (leading ``runs`` axis when batched).

    Attributes:
        counts: `BinCounts` with int32[estimators, references, bins] fields.
        error: float32[estimators, references], mean |ŝ − s| in points.
        kendall: float32[estimators, references], Kendall τ-b of estimates vs reference.
    """

    counts: BinCounts
    error: jax.Array
    kendall: jax.Array


class RunDetail(NamedTuple):
    """Everything one run computed, for inspection and tests (`draw_runs`)."""

    split: RunSplit
    selection: Selection
    estimates: jax.Array  # float32[estimators, targets]
    totals: jax.Array  # float32[references, 2, targets]: summed reference score, observed count


def _totals(scores: jax.Array, observed: jax.Array) -> jax.Array:
    # [2, targets]: summed score and observed count. Sums of 0/1 scores are exact in float32.
    return jnp.stack([jnp.sum(scores * observed, axis=1), jnp.sum(observed, axis=1, dtype=jnp.float32)])


exact_pair_agreement = jax.jit(
    pair_agreement, static_argnames=("max_size", "binary", "ties", "chunk_size")
)
exact_pair_agreement.__doc__ = """Jitted `jaxbench.exact.pair_agreement` (one executable per max_size)."""


def exact_run(key: jax.Array, data: EngineData, sizes: jax.Array, config: EngineConfig) -> BinCounts:
    """Exact expected agreement counts of `random` for one run's split (SPEC §6 under §2).

    The run draws the same split as `run_detail` (same key), and every target pair's exact
    probability of being ranked above / below by a uniform k-subset of the seen half replaces
    the Monte Carlo indicator. Requires binary scores without missing cells.

    Args:
        sizes: int32[sizes], traced, each ≤ ``config.max_size``.

    Returns:
        `BinCounts` with float32[sizes, references, bins] expected counts (pairs are int32).
    """
    split_key = jax.random.split(key, 3)[0]  # the split of `split_run`
    split = draw_split(
        split_key, data.layout, num_models=data.scores.shape[0], num_targets=config.num_targets,
        num_sources=config.num_sources, cohort=data.cohort, others=data.others,
    )
    seen = data.scores[jnp.ix_(split.targets, split.seen)]
    unseen = data.scores[jnp.ix_(split.targets, split.unseen)]
    n_plus, n_minus = discordant_counts(seen)
    pool = split.seen.shape[0]

    def one_pair(counts):
        return pair_win_probabilities(counts[0], counts[1], pool, sizes, max_size=config.max_size)

    wins = jax.lax.map(one_pair, (n_plus, n_minus), batch_size=512)

    def per_reference(scores):
        count = jnp.full(scores.shape[0], scores.shape[1], jnp.float32)
        bins, positive = bin_reference_gaps(scores.sum(1), count, num_bins=config.num_bins,
                                            resolution=config.resolution)
        won = jnp.where(positive[:, None], wins.greater, wins.less)  # [pairs, sizes]
        tied = 1.0 - wins.greater - wins.less
        return jax.vmap(lambda w, t: count_by_bin(bins, w, t, num_bins=config.num_bins),
                        in_axes=(1, 1))(won, tied)

    by_reference = [per_reference(seen), per_reference(unseen)]  # each [sizes, bins]
    return jax.tree.map(lambda a, b: jnp.stack([a, b], axis=1), *by_reference)


@partial(jax.jit, static_argnames=("config",))
def evaluate_exact_runs(keys: jax.Array, data: EngineData, sizes: jax.Array, config: EngineConfig) -> BinCounts:
    """`exact_run` vmapped over keys[runs]: float32[runs, sizes, references, bins] counts."""
    return jax.vmap(partial(exact_run, config=config), in_axes=(0, None, None))(keys, data, sizes)


class RunState(NamedTuple):
    """What one run computes once and shares across sizes."""

    split: RunSplit
    sources: SourceView
    targets: TargetView
    prepared: Any  # the method's size-independent state (e.g. a fitted IRT model)
    select_key: jax.Array


def split_run(key: jax.Array, data: EngineData, num_targets: int, num_sources: int):
    """SPEC §2 steps 1-2 and 5: one run's split and its reference totals.

    Returns:
        (`RunSplit`, float32[references, 2, targets] summed reference scores and counts).
    """
    split_key = jax.random.split(key, 3)[0]
    split = draw_split(
        split_key, data.layout, num_models=data.scores.shape[0], num_targets=num_targets,
        num_sources=num_sources, cohort=data.cohort, others=data.others,
    )
    totals = jnp.stack([
        _totals(data.scores[jnp.ix_(split.targets, rows)], data.observed[jnp.ix_(split.targets, rows)])
        for rows in (split.seen, split.unseen)
    ])
    return split, totals


def prepare_run(key: jax.Array, split: RunSplit, data: EngineData, config: EngineConfig) -> RunState:
    """The views a method may see, and its size-independent preparation, for one run."""
    _, prepare_key, select_key = jax.random.split(key, 3)

    def view(rows, columns):
        index = jnp.ix_(rows, columns)
        return data.scores[index], data.observed[index], data.confidences[index]

    sources = SourceView(*view(split.sources, split.seen), data.layout.seen_subtasks)
    targets = TargetView(*view(split.targets, split.seen))
    prepared = config.method.prepare(prepare_key, sources, max_size=config.max_size,
                                     num_subtasks=config.num_subtasks)
    return RunState(split, sources, targets, prepared, select_key)


def select_and_estimate(state: RunState, size: jax.Array, config: EngineConfig):
    """SPEC §2 steps 3-4 at one size: (Selection, float32[estimators, targets] estimates)."""
    selection, aux = config.method.select(
        jax.random.fold_in(state.select_key, size), state.sources, size, state.prepared,
        max_size=config.max_size, num_subtasks=config.num_subtasks,
    )
    return selection, config.method.estimate(selection, aux, state.targets, state.prepared)


def run_detail(key: jax.Array, data: EngineData, size: jax.Array, config: EngineConfig) -> RunDetail:
    """One run at one size, before reduction (SPEC §2 steps 1-5)."""
    split, totals = split_run(key, data, config.num_targets, config.num_sources)
    selection, estimates = select_and_estimate(prepare_run(key, split, data, config), size, config)
    return RunDetail(split, selection, estimates, totals)


def estimate_run(key, split, data, sizes, config) -> jax.Array:
    """float32[sizes, estimators, targets]: one run's estimates at every size.

    The method's preparation is computed once; sizes follow one another (`lax.map`), so memory
    does not grow with the number of sizes.
    """
    state = prepare_run(key, split, data, config)
    return jax.lax.map(lambda size: select_and_estimate(state, size, config)[1], sizes)


def summarize_run(estimates: jax.Array, totals: jax.Array, *, num_bins: int, resolution: float,
                  tie_tolerance: float) -> RunSummary:
    """Per-bin pair counts, estimation error and τ of one run's float32[estimators, targets]
    estimates at one size, against both references (totals: float32[references, 2, targets])."""

    def metrics(estimate, total):
        counts = bin_pair_agreement(estimate, total[0], total[1], num_bins=num_bins,
                                    resolution=resolution, tie_tolerance=tie_tolerance)
        reference = total[0] / total[1]
        tau = kendall_tau_b(estimate, reference, tie_tolerance=tie_tolerance)
        return counts, estimation_error(estimate, reference), tau

    per_reference = jax.vmap(metrics, in_axes=(None, 0))
    counts, error, tau = jax.vmap(per_reference, in_axes=(0, None))(estimates, totals)
    return RunSummary(counts, error, tau)


# The three stages are compiled separately so that the split and the metrics (most of the
# compile time) are compiled once per study and shared by every method; only `estimate_runs`
# is compiled per method. Sizes are traced (padded to config.max_size), so no stage recompiles
# for another size.

@partial(jax.jit, static_argnames=("num_targets", "num_sources"))
def draw_splits(keys: jax.Array, data: EngineData, *, num_targets: int, num_sources: int):
    """`split_run` vmapped over keys[runs]: (`RunSplit` [runs, ...], totals [runs, 2, 2, targets])."""
    return jax.vmap(split_run, in_axes=(0, None, None, None))(keys, data, num_targets, num_sources)


@partial(jax.jit, static_argnames=("config",))
def estimate_runs(keys: jax.Array, splits: RunSplit, data: EngineData, sizes: jax.Array,
                  config: EngineConfig) -> jax.Array:
    """`estimate_run` vmapped over runs: float32[runs, sizes, estimators, targets]."""
    run = partial(estimate_run, config=config)
    return jax.vmap(run, in_axes=(0, 0, None, None))(keys, splits, data, sizes)


@partial(jax.jit, static_argnames=("num_bins", "resolution", "tie_tolerance"))
def summarize_runs(estimates: jax.Array, totals: jax.Array, *, num_bins: int, resolution: float,
                   tie_tolerance: float) -> RunSummary:
    """`summarize_run` vmapped over runs and sizes: `RunSummary` with [runs, sizes] axes."""
    run = partial(summarize_run, num_bins=num_bins, resolution=resolution,
                  tie_tolerance=tie_tolerance)
    return jax.vmap(jax.vmap(run, in_axes=(0, None)), in_axes=(0, 0))(estimates, totals)


def evaluate_runs(keys: jax.Array, data: EngineData, sizes: jax.Array, config: EngineConfig) -> RunSummary:
    """All three stages for keys[runs] at int32[sizes]: `RunSummary` with [runs, sizes] axes."""
    splits, totals = draw_splits(keys, data, num_targets=config.num_targets,
                                 num_sources=config.num_sources)
    estimates = estimate_runs(keys, splits, data, sizes, config)
    return summarize_runs(estimates, totals, num_bins=config.num_bins,
                          resolution=config.resolution, tie_tolerance=config.tie_tolerance)


@partial(jax.jit, static_argnames=("config",))
def draw_runs(keys: jax.Array, data: EngineData, size: jax.Array, config: EngineConfig) -> RunDetail:
    """Per-run splits, selections, estimates and references at one size (inspection, tests)."""
    return jax.vmap(partial(run_detail, config=config), in_axes=(0, None, None))(keys, data, size)


def evaluate(
    keys: jax.Array,
    data: EngineData,
    sizes: Any,
    config: EngineConfig,
    *,
    chunk_size: int,
    devices: list[jax.Device] | None = None,
    on_chunk: Callable[[int], None] | None = None,
    entry: Callable[..., Any] | None = None,
) -> Any:
    """Evaluate all runs at every size, chunk by chunk, and return NumPy arrays.

    Args:
        keys: key[runs].
        data: `EngineData`.
        sizes: int[sizes], micro-benchmark sizes k (each <= config.max_size).
        config: static `EngineConfig`.
        chunk_size: runs per call; rounded up to a multiple of the device count. The last chunk
            is padded with repeated keys (and the padding dropped), so every call has one shape.
        devices: devices to shard runs over (default: all local devices).
        on_chunk: called with the number of runs finished after each chunk (progress).
        entry: the jitted per-chunk function (default `evaluate_runs`, or `evaluate_exact_runs`).

    Returns:
        `RunSummary` (or ``entry``'s output) of NumPy arrays with leading [runs, sizes] axes.
    """
    entry = evaluate_runs if entry is None else entry
    devices = list(devices) if devices is not None else jax.local_devices()
    num_devices = len(devices)
    chunk_size = max(1, int(chunk_size))
    chunk_size = -(-chunk_size // num_devices) * num_devices
    num_runs = keys.shape[0]
    chunk_size = min(chunk_size, -(-num_runs // num_devices) * num_devices)
    if num_devices > 1:
        # Auto axis: jit propagates the runs sharding through the gathers (no explicit specs).
        mesh = jax.make_mesh((num_devices,), ("runs",), (jax.sharding.AxisType.Auto,),
                             devices=devices)
        key_sharding = NamedSharding(mesh, P("runs"))
        data = jax.device_put(data, NamedSharding(mesh, P()))
    else:
        key_sharding = devices[0]
        data = jax.device_put(data, devices[0])
    size_array = jnp.asarray(np.atleast_1d(np.asarray(sizes)), jnp.int32)
    pieces = []
    for start in range(0, num_runs, chunk_size):
        chunk = keys[start : start + chunk_size]
        valid = chunk.shape[0]
        if valid < chunk_size:
            chunk = jnp.concatenate([chunk, jnp.repeat(chunk[-1:], chunk_size - valid, axis=0)])
        chunk = jax.device_put(chunk, key_sharding)
        summary = entry(chunk, data, size_array, config)
        pieces.append(jax.tree.map(lambda x, v=valid: np.asarray(x)[:v], summary))
        if on_chunk is not None:
            on_chunk(valid)
    return jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *pieces)


def bytes_per_run(num_models: int, num_items: int, config: EngineConfig) -> int:
    """A conservative estimate of device memory one run needs (for choosing the chunk size)."""
    rows = config.num_targets + config.num_sources
    gathered = rows * num_items * 9  # scores, confidences (float32) and mask (bool)
    pairs = config.num_targets * (config.num_targets - 1) // 2
    total = gathered + 64 * pairs + 16 * num_items + 8 * config.max_size
    own = config.method.info.bytes_per_run
    if own is not None:
        total += own(config.num_sources, num_items // 2, config.max_size)
    return total


class CurveSummary(NamedTuple):
    """Agreement curve, its bootstrap interval and MDAD (leading axes as the input counts')."""

    agreement: jax.Array
    interval: CurveInterval
    mdad: MDAD


def _summarize_one(key, counts, threshold, *, tie_value, num_bootstrap, ci):
    agreement = curve_from_counts(counts, tie_value=tie_value)
    if ci == "none":
        interval = CurveInterval(agreement, agreement)
    else:
        bootstrap = bootstrap_over_runs if ci == "runs" else bootstrap_over_pairs
        interval = bootstrap(key, counts, tie_value=tie_value, num_bootstrap=num_bootstrap)
    return CurveSummary(agreement, interval, detect_mdad(agreement, interval, threshold=threshold))


@partial(jax.jit, static_argnames=("tie_value", "num_bootstrap", "ci"))
def summarize_curves(
    keys: jax.Array, counts: BinCounts, threshold: jax.Array, *, tie_value: float,
    num_bootstrap: int, ci: str,
) -> CurveSummary:
    """Curves, intervals and MDADs for several curves at once.

    Args:
        keys: key[curves], one bootstrap key per curve.
        counts: `BinCounts` with int32[runs, curves, bins] fields.
        threshold: float32 scalar τ.
        tie_value: 0 (``ties="fail"``) or 0.5 (``ties="half"``).
        num_bootstrap: bootstrap replicates B.
        ci: ``"runs"``, ``"pairs"`` or ``"none"``.
    """
    one = partial(_summarize_one, tie_value=tie_value, num_bootstrap=num_bootstrap, ci=ci)
    return jax.vmap(one, in_axes=(0, 1, None))(keys, counts, threshold)
