"""Shared fixtures: one small synthetic matrix and one engine shape, so JAX compiles once."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from jaxbench.data import generate_synthetic

# The CLI keeps a persistent compilation cache in the user's home; tests run without it
# (test_cli checks the cache separately, in a temporary folder).
os.environ["JAXBENCH_CACHE_DIR"] = ""

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(name: str) -> Path:
    """A file of ../shared/data, or skip the test when that folder is absent (a user's clone)."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} not found: real-data tests need ../shared/data beside the project")
    return path


@pytest.fixture(scope="session")
def small_matrix():
    """40 models x 600 items, 4 subtasks, binary, no missing cells."""
    matrix, truth = generate_synthetic(40, 600, num_subtasks=4, seed=3)
    return matrix


@pytest.fixture(scope="session")
def small_matrix_with_missing():
    matrix, _ = generate_synthetic(40, 600, num_subtasks=4, missing_rate=0.02, seed=4)
    return matrix


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(12345)
