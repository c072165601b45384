"""The engine against the NumPy reference of SPEC §2/§5, and its invariants."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import numpy_reference as ref
from jaxbench import meta_evaluate
from jaxbench.agreement import num_bins_for
from jaxbench.engine import EngineConfig, EngineData, draw_runs, estimate_runs, evaluate
from jaxbench.protocol import make_layout
from jaxbench.selectors import parse_method

NUM_TARGETS, NUM_SOURCES, MAX_SIZE = 8, 12, 50
SIZES = (10, 25, 50)
STUDY = dict(sizes=SIZES, num_runs=12, num_targets=NUM_TARGETS, num_sources=NUM_SOURCES,
             num_bootstrap=200, seed=7)


def _data(matrix):
    scores = np.nan_to_num(matrix.scores)
    return EngineData(jnp.asarray(scores), jnp.asarray(matrix.observed), jnp.asarray(scores),
                      make_layout(matrix.subtask_codes))


def _config(method, matrix):
    return EngineConfig(parse_method(method), MAX_SIZE, NUM_TARGETS, NUM_SOURCES,
                        int(matrix.subtask_codes.max()) + 1, num_bins_for(0.5), 0.5, 1e-6)


def _keys(seed, runs):
    run_root, _ = jax.random.split(jax.random.key(seed))
    return jax.random.split(run_root, runs)


@pytest.fixture(scope="module", params=["random", "stratified_subtask"])
def study(request, small_matrix_with_missing):
    matrix = small_matrix_with_missing
    result = meta_evaluate(matrix, methods=[request.param], missing="mask", ci="none", **STUDY)
    return request.param, matrix, result


def test_study_equals_numpy_reference(study):
    method, matrix, result = study
    data, config = _data(matrix), _config(method, matrix)
    keys = _keys(STUDY["seed"], STUDY["num_runs"])
    scores, observed = np.nan_to_num(matrix.scores).astype(np.float64), matrix.observed
    codes = matrix.subtask_codes
    for size in SIZES:
        detail = jax.tree.map(np.asarray, draw_runs(keys, data, jnp.int32(size), config))
        rows = {"seen": [], "unseen": []}
        for run in range(STUDY["num_runs"]):
            targets, sources = detail.split.targets[run], detail.split.sources[run]
            seen, unseen = detail.split.seen[run], detail.split.unseen[run]
            items, weights = detail.selection.items[run], detail.selection.weights[run]
            # The split obeys SPEC §2.
            assert len(set(targets) | set(sources)) == NUM_TARGETS + NUM_SOURCES
            assert sorted(np.concatenate([seen, unseen])) == list(range(matrix.num_items))
            for code in np.unique(codes):
                assert (codes[seen] == code).sum() == (codes == code).sum() // 2
            # The selection: `size` distinct seen items, weights summing to 1, padding zero.
            assert len(set(items[:size])) == size
            assert np.all(weights[size:] == 0) and abs(weights.sum() - 1) < 1e-5
            estimates = ref.weighted_estimates(scores, observed, targets, seen, items, weights)
            np.testing.assert_allclose(detail.estimates[run, 0], estimates, rtol=1e-5, atol=1e-6)
            for name, columns in (("seen", seen), ("unseen", unseen)):
                truth = ref.reference_means(scores, observed, targets, columns)
                rows[name].append(ref.pair_rows(estimates, truth))
                row = result.estimation.query("size == @size and run == @run and reference == @name")
                assert len(row) == 1
                np.testing.assert_allclose(row.estimation_error.iloc[0],
                                           ref.estimation_error(estimates, truth), rtol=1e-4)
                tau = scipy.stats.kendalltau(estimates, truth, variant="b").statistic
                np.testing.assert_allclose(row.kendall_tau.iloc[0], tau, rtol=1e-4, atol=1e-6)
        for name in ("seen", "unseen"):
            pairs, agreement = ref.curve(rows[name])
            table = result.agreement.query("size == @size and reference == @name")
            present = np.flatnonzero(pairs)
            np.testing.assert_allclose(table["bin"].to_numpy(), present * 0.5)
            np.testing.assert_array_equal(table["pairs"].to_numpy(), pairs[present])
            np.testing.assert_allclose(table["agreement"].to_numpy(), agreement[present], rtol=1e-6)
            # With ci="none" the interval is the point itself; the MDAD follows the SPEC rules.
            index, low, high, monotone = ref.mdad_rules(agreement, agreement, agreement, 0.8)
            row = result.mdad.query("size == @size and reference == @name").iloc[0]
            for column, value in (("mdad", index), ("mdad_ci_lower", low),
                                  ("mdad_ci_upper", high), ("mdad_monotone", monotone)):
                expected = np.nan if value is None else value * 0.5
                np.testing.assert_equal(row[column], expected)
            assert row["reached"] == (index is not None)


def test_chunked_equals_unchunked_and_vmapped_equals_looped(small_matrix):
    data, config = _data(small_matrix), _config("stratified_subtask", small_matrix)
    keys = _keys(1, 7)
    whole = evaluate(keys, data, 25, config, chunk_size=7)
    chunked = evaluate(keys, data, 25, config, chunk_size=3)
    looped = [evaluate(keys[i : i + 1], data, 25, config, chunk_size=1) for i in range(7)]
    looped = jax.tree.map(lambda *xs: np.concatenate(xs), *looped)
    for other in (chunked, looped):
        for got, expected in zip(jax.tree.leaves(other), jax.tree.leaves(whole)):
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(other.counts.pairs, whole.counts.pairs)
        np.testing.assert_array_equal(other.counts.agree, whole.counts.agree)


def test_seeds_reproduce_and_differ(small_matrix):
    first = meta_evaluate(small_matrix, methods=["random"], **STUDY)
    again = meta_evaluate(small_matrix, methods=["random"], **STUDY)
    other = meta_evaluate(small_matrix, methods=["random"], **{**STUDY, "seed": 8})
    for name in ("agreement", "mdad", "estimation"):
        assert getattr(first, name).equals(getattr(again, name))
    assert not first.estimation.equals(other.estimation)


def test_one_executable_serves_all_sizes_and_new_data(small_matrix, small_matrix_with_missing):
    config = _config("random", small_matrix)
    keys = _keys(2, 4)
    evaluate(keys, _data(small_matrix), 10, config, chunk_size=4)
    compiled = estimate_runs._cache_size()
    for size in SIZES:
        evaluate(keys, _data(small_matrix_with_missing), size, config, chunk_size=4)
    assert estimate_runs._cache_size() == compiled


def test_results_do_not_depend_on_other_sizes(small_matrix):
    alone = meta_evaluate(small_matrix, methods=["random"], **{**STUDY, "sizes": (25,)})
    together = meta_evaluate(small_matrix, methods=["random"], **STUDY)
    part = together.estimation.query("size == 25").reset_index(drop=True)
    np.testing.assert_allclose(part.estimation_error, alone.estimation.estimation_error, rtol=1e-6)


@pytest.mark.slow
def test_one_device_equals_four_devices(small_matrix, tmp_path):
    """Runs sharded over 4 simulated CPU devices give the numbers of 1 device."""
    script = textwrap.dedent(
        f"""
        import json, sys
        import jax
        assert jax.device_count() == 4, jax.devices()
        import jaxbench
        matrix, _ = jaxbench.generate_synthetic(40, 600, num_subtasks=4, seed=3)
        result = jaxbench.meta_evaluate(matrix, methods=["random"], sizes=[10, 25],
                                        num_runs=6, num_targets={NUM_TARGETS}, seed=5,
                                        num_bootstrap=200, chunk_size=4)
        json.dump(result.estimation.estimation_error.tolist()
                  + result.agreement.pairs.tolist(), sys.stdout)
        """
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    sharded = json.loads(out.stdout)
    single = meta_evaluate(small_matrix, methods=["random"], sizes=[10, 25], num_runs=6,
                           num_targets=NUM_TARGETS, seed=5, num_bootstrap=200, chunk_size=4)
    expected = single.estimation.estimation_error.tolist() + single.agreement.pairs.tolist()
    np.testing.assert_allclose(sharded, expected, rtol=1e-6)
