"""ResponseMatrix validation, missing-data policies, readers/writers, bundled and synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import shared_file
from jaxbench.data import (
    ResponseMatrix,
    apply_missing_policy,
    generate_synthetic,
    load,
    matrix_to_long_table,
    read_matrix,
    write_matrix,
)


def _matrix(**overrides):
    values = dict(scores=np.array([[1, 0, np.nan], [0, 1, 1.0]]), models=["a", "b"],
                  items=["x", "y", "z"], subtasks=["s", "s", "t"])
    values.update(overrides)
    return ResponseMatrix(**values)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(scores=np.zeros(3)), "must be 2-D"),
        (dict(scores=np.array([[2.0, 0, 0], [0, 0, 0]])), r"in \[0, 1\]"),
        (dict(models=["a", "a"]), "model names must be unique"),
        (dict(items=["x", "y"]), "one entry per items"),
        (dict(subtasks=["s"]), "subtasks must be 1-D"),
        (dict(confidences=np.zeros((2, 2))), "confidences must have the shape"),
        (dict(scores=[["a", "b", "c"], ["d", "e", "f"]]), "numeric"),
    ],
)
def test_validation_messages(overrides, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _matrix(**overrides)


def test_defaults_and_properties():
    matrix = ResponseMatrix(np.array([[1.0, 0.5]]), models=["m"], items=["i", "j"])
    assert list(matrix.subtasks) == ["all", "all"]
    assert not matrix.is_binary and matrix.shape == (1, 2)
    assert _matrix().is_binary


def test_missing_policies():
    matrix = _matrix()
    dropped, report = apply_missing_policy(matrix, "drop_items")
    assert list(dropped.items) == ["x", "y"] and report.dropped_items == 1
    with pytest.raises(ValueError, match="fewer than 2 models"):
        apply_missing_policy(matrix, "drop_models")
    three = _matrix(scores=np.array([[1, 0, np.nan], [0, 1, 1.0], [1, 1, 0.0]]), models=["a", "b", "c"])
    dropped, report = apply_missing_policy(three, "drop_models")
    assert list(dropped.models) == ["b", "c"] and report.dropped_models == ("a",)
    masked, report = apply_missing_policy(matrix, "mask")
    assert masked is matrix and report.masked_cells == 1
    with pytest.raises(ValueError, match="missing"):
        apply_missing_policy(matrix, "error")
    with pytest.raises(ValueError, match="missing must be one of"):
        apply_missing_policy(matrix, "ignore")
    half_missing = _matrix(scores=np.array([[1, np.nan, np.nan], [0, 1, 1.0]]))
    with pytest.raises(ValueError, match="more than half"):
        apply_missing_policy(half_missing, "drop_items")


@pytest.mark.parametrize("suffix", [".npz", ".csv", ".parquet"])
def test_write_read_roundtrip(tmp_path, suffix):
    matrix, _ = generate_synthetic(6, 30, num_subtasks=3, confidences=True, missing_rate=0.1, seed=2)
    path = write_matrix(matrix, tmp_path / f"m{suffix}")
    back = read_matrix(path)
    np.testing.assert_array_equal(back.models, matrix.models)
    np.testing.assert_array_equal(back.items, matrix.items)
    np.testing.assert_array_equal(back.subtasks, matrix.subtasks)
    np.testing.assert_allclose(back.scores, matrix.scores, equal_nan=True)
    np.testing.assert_allclose(back.confidences, matrix.confidences, rtol=1e-6, equal_nan=True)


def test_wide_table_and_subtask_mapping(tmp_path):
    wide = pd.DataFrame({"model": ["a", "b"], "q1": [1, 0], "q2": [0.5, None]})
    wide.to_csv(tmp_path / "wide.csv", index=False)
    matrix = read_matrix(tmp_path / "wide.csv", subtasks={"q1": "s1", "q2": "s2"})
    assert matrix.shape == (2, 2) and list(matrix.subtasks) == ["s1", "s2"]
    assert np.isnan(matrix.scores[1, 1])
    with pytest.raises(ValueError, match="lacks"):
        read_matrix(tmp_path / "wide.csv", subtasks={"q1": "s1"})


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.npz")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="expected a .npz"):
        read_matrix(tmp_path / "x.txt")
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="long table"):
        read_matrix(tmp_path / "bad.csv")
    pd.DataFrame({"model": ["a", "a"], "item": ["i", "i"], "score": [1, 0]}).to_csv(
        tmp_path / "dup.csv", index=False)
    with pytest.raises(ValueError, match="repeated"):
        read_matrix(tmp_path / "dup.csv")


def test_long_table_has_every_cell():
    matrix, _ = generate_synthetic(5, 20, seed=1, missing_rate=0.2)
    table = matrix_to_long_table(matrix)
    assert len(table) == matrix.scores.size
    assert table.score.isna().sum() == int((~matrix.observed).sum())


def test_bundled_mmlu_pro_matches_shared_copy():
    bundled = load("mmlu-pro")
    assert bundled.shape == (29, 12032) and len(bundled.subtask_names) == 14
    assert bundled.meta["license"].startswith("Apache-2.0")
    shared = read_matrix(shared_file("mmlu_pro_tiger.npz"))
    np.testing.assert_array_equal(bundled.scores, shared.scores)


@pytest.mark.parametrize("name", ["bfcl_v2_20240811.npz", "alpaca_eval2_weighted_gpt4turbo.npz",
                                  "metabench_oll_v1.npz"])
def test_reads_shared_datasets(name):
    matrix = read_matrix(shared_file(name))
    meta = json.loads(json.dumps(matrix.meta))
    assert matrix.num_models > 1 and matrix.num_items > 100 and isinstance(meta, dict)
    if name.startswith("alpaca"):
        assert not matrix.is_binary
    if name.startswith("metabench"):
        # 25 % of cells are missing: drop_items refuses, mask keeps everything.
        with pytest.raises(ValueError, match="more than half"):
            apply_missing_policy(matrix, "drop_items")
        dropped, report = apply_missing_policy(matrix, "drop_models")
        assert dropped.num_models == 2001 and len(report.dropped_models) == matrix.num_models - 2001


def test_synthetic_ground_truth_is_consistent():
    matrix, truth = generate_synthetic(200, 400, num_subtasks=3, dimensions=2, seed=0)
    assert truth.ability.shape == (200, 2) and truth.probability.shape == (200, 400)
    # Drawn scores follow the true probabilities: calibration within sampling error.
    gap = matrix.scores.mean() - truth.probability.mean()
    assert abs(gap) < 4 * np.sqrt(0.25 / matrix.scores.size)
    assert np.corrcoef(matrix.scores.mean(1), truth.probability.mean(1))[0, 1] > 0.95
    with pytest.raises(ValueError, match="num_models"):
        generate_synthetic(0, 10)
    again, _ = generate_synthetic(200, 400, num_subtasks=3, dimensions=2, seed=0)
    np.testing.assert_array_equal(again.scores, matrix.scores)


def test_synthetic_confidences_predict_correctness():
    matrix, _ = generate_synthetic(30, 500, confidences=True, seed=5)
    right = matrix.confidences[matrix.scores == 1].mean()
    wrong = matrix.confidences[matrix.scores == 0].mean()
    assert right > wrong + 0.2
