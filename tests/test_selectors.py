"""Selection methods: allocation rules against NumPy, uniformity, unbiasedness, method parsing."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench.selectors import (
    SourceView,
    TargetView,
    allocate_equal,
    allocate_proportional,
    estimate_weighted_mean,
    parse_method,
    select_random,
    select_stratified_subtask,
    split_method_list,
)

SUBTASKS = np.repeat(np.arange(5), [3, 40, 12, 25, 70]).astype(np.int32)  # 150 items, unequal
CAPACITIES = np.bincount(SUBTASKS)
MAX_SIZE = 60


def _view(subtasks=SUBTASKS):
    n = len(subtasks)
    zeros = jnp.zeros((1, n))
    return SourceView(zeros, zeros > 0, zeros, jnp.asarray(subtasks))


def _equal_reference(capacities, size):
    """Paper allocation by explicit redistribution: floor(k/t) each, surplus re-spread."""
    allocation = np.zeros_like(capacities)
    remaining = size
    open_ = capacities > 0
    while remaining > 0:
        share = remaining // open_.sum()
        if share == 0:
            break
        add = np.where(open_, np.minimum(share, capacities - allocation), 0)
        allocation += add
        remaining -= add.sum()
        open_ = allocation < capacities
    return allocation, remaining, open_  # remaining < open subtasks: leftovers to random ones


@pytest.mark.parametrize("size", [1, 4, 5, 7, 16, 33, 60, 149, 150])
def test_equal_allocation_matches_reference(size):
    base, leftover, open_ = _equal_reference(CAPACITIES, size)
    allocate = jax.jit(jax.vmap(allocate_equal, in_axes=(0, None, None)))
    for got in np.asarray(allocate(jax.random.split(jax.random.key(0), 5), jnp.asarray(CAPACITIES),
                                   jnp.int32(size))):
        assert got.sum() == size and np.all(got <= CAPACITIES)
        extra = got - base
        assert set(np.unique(extra)) <= {0, 1} and extra.sum() == leftover
        assert np.all(extra[~open_] == 0)


def test_equal_allocation_leftovers_are_random():
    allocate = jax.jit(jax.vmap(allocate_equal, in_axes=(0, None, None)))
    chosen = allocate(jax.random.split(jax.random.key(0), 200), jnp.asarray(CAPACITIES), jnp.int32(7))
    # size 7 over 5 subtasks: 1 each + 2 leftovers among the 5; each subtask gets one ~40 %.
    frequency = (np.array(chosen) == 2).mean(0)
    assert np.all(np.abs(frequency - 0.4) < 0.15)


@pytest.mark.parametrize("size", [1, 5, 10, 33, 100, 150])
def test_proportional_allocation_is_largest_remainder(size):
    got = np.asarray(allocate_proportional(jnp.asarray(CAPACITIES), jnp.int32(size)))
    # Exact remainders (floating-point fractions of equal quotas can differ in the last bit).
    expected, remainder = np.divmod(size * CAPACITIES, CAPACITIES.sum())
    order = np.argsort(-remainder, kind="stable")
    expected[order[: size - expected.sum()]] += 1
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("allocation", ["equal", "proportional"])
@pytest.mark.parametrize("weighting", ["unweighted", "design"])
def test_stratified_selection_respects_allocation(allocation, weighting):
    select = jax.jit(partial(select_stratified_subtask, max_size=MAX_SIZE, num_subtasks=5,
                             allocation=allocation, weighting=weighting))
    for size in (3, 17, 60):
        selection = select(jax.random.key(size), _view(), jnp.int32(size))
        items = np.asarray(selection.items[:size])
        weights = np.asarray(selection.weights)
        assert len(set(items)) == size
        assert np.all(weights[size:] == 0) and abs(weights.sum() - 1) < 1e-5
        counts = np.bincount(SUBTASKS[items], minlength=5)
        if allocation == "proportional":
            expected = allocate_proportional(jnp.asarray(CAPACITIES), jnp.int32(size))
            np.testing.assert_array_equal(counts, expected)
        else:
            assert counts.max() - counts[counts < CAPACITIES].min(initial=counts.max()) <= 1


def test_design_weights_are_unbiased_and_unweighted_are_not():
    # One target whose accuracy differs by subtask; the seen mean is the micro average.
    rng = np.random.default_rng(0)
    correct = (rng.random(len(SUBTASKS)) < np.array([0.9, 0.2, 0.5, 0.8, 0.3])[SUBTASKS])
    targets = TargetView(jnp.asarray(correct[None].astype(np.float32)),
                         jnp.ones((1, len(SUBTASKS)), bool), jnp.zeros((1, len(SUBTASKS))))
    truth = correct.mean()

    def estimates(weighting, size, draws=4000):
        def one(key):
            selection = select_stratified_subtask(key, _view(), jnp.int32(size), max_size=MAX_SIZE,
                                                  num_subtasks=5, weighting=weighting)
            return estimate_weighted_mean(selection, targets)[0]
        return np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(1), draws)))

    design = estimates("design", 20)
    assert abs(design.mean() - truth) < 4 * design.std() / np.sqrt(len(design))
    unweighted = estimates("unweighted", 20)
    assert abs(unweighted.mean() - truth) > 6 * unweighted.std() / np.sqrt(len(unweighted))


def test_random_selection_is_uniform():
    select = jax.jit(jax.vmap(partial(select_random, max_size=MAX_SIZE), in_axes=(0, None, None)))
    selection = select(jax.random.split(jax.random.key(0), 3000), _view(), jnp.int32(15))
    items = np.asarray(selection.items[:, :15])
    assert all(len(set(row)) == 15 for row in items[:50])
    frequency = np.bincount(items.ravel(), minlength=len(SUBTASKS)) / 3000
    expected = 15 / len(SUBTASKS)
    assert np.all(np.abs(frequency - expected) < 5 * np.sqrt(expected * (1 - expected) / 3000))


def test_missing_cells_are_renormalised():
    targets = TargetView(jnp.array([[1.0, 0.0, 1.0]]), jnp.array([[True, False, True]]), jnp.zeros((1, 3)))
    from jaxbench.selectors import Selection
    selection = Selection(jnp.array([0, 1, 2]), jnp.full(3, 1 / 3))
    assert float(estimate_weighted_mean(selection, targets)[0]) == pytest.approx(1.0)


def test_parse_method():
    spec = parse_method("stratified_subtask(weighting=design, allocation=equal)")
    assert spec.label == "stratified_subtask(weighting=design)"
    assert parse_method("stratified_subtask").label == "stratified_subtask"
    assert hash(spec) == hash(parse_method("stratified_subtask(allocation=equal,weighting=design)"))
    for bad, message in [("nope", "unknown method"), ("random(x=1)", "no option"),
                         ("stratified_subtask(allocation=odd)", "must be one of")]:
        with pytest.raises(ValueError, match=message):
            parse_method(bad)
    assert split_method_list("random, stratified_subtask(allocation=equal, weighting=design)") == [
        "random", "stratified_subtask(allocation=equal, weighting=design)"]
