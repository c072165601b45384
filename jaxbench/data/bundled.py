"""Datasets shipped inside the package, and `load`, which opens one by name or a file by path."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Mapping

from .formats import read_matrix
from .matrix import ResponseMatrix

# name -> (file inside jaxbench/data/datasets, one-line description)
BUNDLED = {
    "mmlu-pro": (
        "mmlu_pro_tiger.npz",
        "MMLU-Pro, 29 models x 12,032 items, 14 subtasks, 0/1 (TIGER-AI-Lab, Apache-2.0)",
    ),
}


def bundled_path(name: str) -> Path:
    """Path of a bundled dataset file (see `BUNDLED`)."""
    if name not in BUNDLED:
        raise ValueError(f"unknown dataset {name!r}; bundled: {', '.join(BUNDLED)}")
    return Path(str(resources.files("jaxbench.data") / "datasets" / BUNDLED[name][0]))


def load(name_or_path: str | os.PathLike, *, subtasks: Mapping[str, str] | None = None) -> ResponseMatrix:
    """Load a bundled dataset by name (``"mmlu-pro"``) or a response-matrix file by path.

    Args:
        name_or_path: a name in `BUNDLED`, or a ``.npz``/``.csv``/``.parquet`` file.
        subtasks: optional item id -> subtask mapping (for wide tables).

    >>> matrix = load("mmlu-pro")
    >>> matrix.shape
    (29, 12032)
    """
    if isinstance(name_or_path, str) and name_or_path in BUNDLED:
        return read_matrix(bundled_path(name_or_path), subtasks=subtasks)
    path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(
            f"no such data file or bundled dataset: {name_or_path} (bundled: {', '.join(BUNDLED)})"
        )
    return read_matrix(path, subtasks=subtasks)
