"""The Python API: validation, tables, saving, fixed cohorts, and the real MMLU-Pro data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import jaxbench
from conftest import shared_file

SMALL = dict(sizes=(10, 25), num_runs=6, num_targets=8, num_bootstrap=200)


@pytest.fixture(scope="module")
def result(small_matrix):
    return jaxbench.meta_evaluate(small_matrix, methods=["random", "stratified_subtask"], **SMALL)


def test_tables_are_tidy(result):
    assert list(result.mdad.columns) == ["method", "size", "reference", "threshold", "mdad",
                                         "mdad_ci_lower", "mdad_ci_upper", "reached",
                                         "mdad_monotone", "ties", "ci"]
    # methods (random, stratified_subtask, random/exact) x sizes x references
    assert len(result.mdad) == 3 * 2 * 2
    assert set(result.mdad.method) == {"random", "stratified_subtask", "random/exact"}
    assert set(result.agreement.columns) >= {"method", "size", "reference", "bin", "pairs",
                                             "agreement", "ci_lower", "ci_upper"}
    assert len(result.estimation) == 2 * 2 * 6 * 2
    # Every run contributes all 28 pairs of its 8 targets to each curve.
    pairs = result.agreement.groupby(["method", "size", "reference"]).pairs.sum()
    assert (pairs == 6 * 28).all()
    inside = result.agreement.dropna()
    assert ((inside.ci_lower <= inside.agreement + 1e-6) & (inside.agreement <= inside.ci_upper + 1e-6)).all()


def test_save_writes_every_output(result, tmp_path):
    result.save(tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["agreement.csv", "agreement.parquet", "estimation.csv", "estimation.parquet",
                     "mdad.csv", "mdad.parquet", "run.json"]
    back = pd.read_parquet(tmp_path / "out" / "mdad.parquet")
    pd.testing.assert_frame_equal(back, result.mdad)
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["config"]["seed"] == 0 and record["config"]["sizes"] == [10, 25]
    assert "jax" in record["versions"] and record["devices"]


def test_fixed_cohort_keeps_targets(small_matrix):
    names = list(small_matrix.models[:5])
    cohort = jaxbench.meta_evaluate(small_matrix, methods=["random"], targets=names, **SMALL)
    assert cohort.config["targets"] == names and cohort.config["num_targets"] == 5
    # Reference scores of a fixed cohort: every run has the same 10 pairs.
    assert (cohort.agreement.groupby(["method", "size", "reference"]).pairs.sum() == 6 * 10).all()


def test_ties_half_scores_at_least_ties_fail(small_matrix):
    fail = jaxbench.meta_evaluate(small_matrix, methods=["random"], ties="fail", **SMALL)
    half = jaxbench.meta_evaluate(small_matrix, methods=["random"], ties="half", **SMALL)
    assert (half.agreement.agreement.to_numpy() >= fail.agreement.agreement.to_numpy() - 1e-9).all()
    assert (half.agreement.agreement.to_numpy() > fail.agreement.agreement.to_numpy()).any()


def test_unreached_mdad_is_null():
    # Identical models: every gap is 0 and every estimate ties, so with ties="fail" no pair
    # is ever ranked correctly and no bin can reach the threshold.
    rng = np.random.default_rng(0)
    row = (rng.random(600) < 0.5).astype(np.float32)
    coins = jaxbench.ResponseMatrix(np.tile(row, (40, 1)),
                                    models=[f"m{i}" for i in range(40)],
                                    items=[f"i{j}" for j in range(600)])
    result = jaxbench.meta_evaluate(coins, methods=["random"], threshold=0.95, ci="pairs", **SMALL)
    assert (~result.mdad.reached).all() and result.mdad.mdad.isna().all()
    assert result.mdad.mdad_monotone.isna().all() and result.mdad.mdad_ci_lower.isna().all()
    assert (result.agreement.agreement == 0).all() and (result.agreement.bin == 0).all()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(methods=["nope"]), ValueError, "unknown method"),
        (dict(num_targets=500), ValueError, "exceeds the 40 models"),
        (dict(sizes=[5000]), ValueError, "every size exceeds"),
        (dict(num_runs=0), ValueError, "num_runs must be at least 1"),
        (dict(num_runs=2.5), TypeError, "num_runs must be an integer"),
        (dict(threshold=1.5), ValueError, "threshold"),
        (dict(ties="maybe"), ValueError, "ties must be one of"),
        (dict(ci="bca"), ValueError, "ci must be one of"),
        (dict(targets=["ghost"]), ValueError, "unknown model"),
        (dict(methods=["random", "random"]), ValueError, "repeated"),
    ],
)
def test_bad_arguments(small_matrix, kwargs, error, message):
    with pytest.raises(error, match=message):
        jaxbench.meta_evaluate(small_matrix, **{**SMALL, **kwargs})
    with pytest.raises(TypeError, match="ResponseMatrix"):
        jaxbench.meta_evaluate(np.zeros((3, 3)))


def test_oversized_sizes_are_skipped_with_a_note(small_matrix):
    result = jaxbench.meta_evaluate(small_matrix, methods=["random"], **{**SMALL, "sizes": (10, 400)})
    assert sorted(result.mdad["size"].unique()) == [10]
    assert any("skipped" in note for note in result.notes)


@pytest.mark.slow
def test_mmlu_pro_random_mdad_falls_with_size():
    """SPEC issue check: on the bundled data, random MDAD (seen) falls as k grows."""
    matrix = jaxbench.load("mmlu-pro")
    result = jaxbench.meta_evaluate(matrix, methods=["random"], sizes=(10, 100, 1000),
                                    num_runs=50, num_targets=10, num_bootstrap=300)
    assert any("dropped 1706 item(s)" in note for note in result.notes)
    for method in ("random", "random/exact"):
        seen = result.mdad.query("reference == 'seen' and method == @method").set_index("size")
        assert seen.reached.all() and list(seen.index) == [10, 100, 1000]
        assert np.all(np.diff(seen.mdad.to_numpy()) < 0), (method, seen.mdad.to_numpy())
    # The monotone rule needs every larger bin to reach 0.8: with 10 targets the largest gaps
    # hold few Monte Carlo pairs, so at k = 10 one misranked pair there can leave it unreached.
    exact = result.mdad.query("reference == 'seen' and method == 'random/exact'")
    assert np.all(np.diff(exact.mdad_monotone.to_numpy()) < 0)
    monte_carlo = result.mdad.query("reference == 'seen' and method == 'random' and size >= 100")
    assert np.all(np.diff(monte_carlo.mdad_monotone.to_numpy()) < 0)
    errors = result.estimation.query("reference == 'seen'").groupby("size").estimation_error.mean()
    assert np.all(np.diff(errors.to_numpy()) < 0)


@pytest.mark.slow
def test_graded_alpaca_eval_and_masked_metabench():
    alpaca = jaxbench.read_matrix(shared_file("alpaca_eval2_weighted_gpt4turbo.npz"))
    result = jaxbench.meta_evaluate(alpaca, methods=["random"], sizes=(50,), num_runs=5,
                                    num_targets=20, num_bootstrap=100)
    assert any("graded" in note for note in result.notes)
    assert result.estimation.estimation_error.between(0, 100).all()
    metabench = jaxbench.read_matrix(shared_file("metabench_oll_v1.npz"))
    metabench = metabench.select(models=np.arange(300))
    masked = jaxbench.meta_evaluate(metabench, methods=["random"], sizes=(50,), num_runs=5,
                                    num_targets=20, missing="mask", num_bootstrap=100)
    assert masked.estimation.estimation_error.notna().all()
    assert masked.config["missing"]["masked_cells"] > 0
