"""Reading and writing response matrices: `.npz`, and long or wide tables in CSV or Parquet.

Formats:
- ``.npz`` as in ``shared/data/``: ``Y`` float32[models, items] (NaN = missing), ``models``,
  ``items``, ``subtask`` (str[items]), optional ``confidence`` float32[models, items], and a
  ``meta_json`` string. Loaded without pickle.
- Long table (``.csv``/``.parquet``): one row per cell, columns ``model, item, score`` and
  optionally ``subtask`` and ``confidence``. Absent rows and empty scores are missing.
- Wide table: one row per model, a ``model`` column and one column per item id. Subtasks may
  be given as a separate mapping.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .matrix import ResponseMatrix

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def read_matrix(path: str | os.PathLike, *, subtasks: Mapping[str, str] | None = None) -> ResponseMatrix:
    """Read a response matrix from ``.npz``, ``.csv`` or ``.parquet``.

    Args:
        path: the file. Tables are long (``model, item, score[, subtask, confidence]``) or wide
            (``model`` plus one column per item); the layout is detected from the columns.
        subtasks: optional item id -> subtask mapping, for wide tables (overrides a long table's).

    Raises:
        FileNotFoundError, ValueError: missing file, unknown suffix or malformed content.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        matrix = read_npz(path)
    elif suffix in TABLE_SUFFIXES:
        table = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        matrix = matrix_from_table(table, source=str(path))
    else:
        raise ValueError(
            f"cannot read {path.name}: expected a .npz, .csv or .parquet file; got {suffix or 'no suffix'}"
        )
    if subtasks is not None:
        matrix = _with_subtasks(matrix, subtasks)
    return matrix


def read_npz(path: str | os.PathLike) -> ResponseMatrix:
    """Read the ``.npz`` format of ``shared/data/`` (see module docstring)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {path} as .npz: {error}") from None
    with archive:
        keys = set(archive.files)
        required = {"Y", "models", "items"}
        if not required <= keys:
            raise ValueError(
                f"{Path(path).name} lacks key(s) {', '.join(sorted(required - keys))}; "
                "expected Y, models, items[, subtask, confidence, meta_json]"
            )
        meta = json.loads(str(archive["meta_json"])) if "meta_json" in keys else {}
        confidences = None
        for name in ("confidence", "C"):
            if name in keys:
                confidences = archive[name]
        return ResponseMatrix(
            scores=archive["Y"],
            models=archive["models"],
            items=archive["items"],
            subtasks=archive["subtask"] if "subtask" in keys else None,
            confidences=confidences,
            meta=meta,
        )


def matrix_from_table(table: pd.DataFrame, *, source: str = "table") -> ResponseMatrix:
    """Build a matrix from a long or a wide DataFrame (see module docstring)."""
    columns = set(table.columns)
    if {"model", "item", "score"} <= columns:
        return _from_long(table, source)
    if "model" in columns:
        return _from_wide(table, source)
    raise ValueError(
        f"{source}: expected a long table with columns model, item, score[, subtask, confidence] "
        f"or a wide table with a 'model' column; got columns {', '.join(map(str, table.columns[:8]))}"
    )


def _from_long(table: pd.DataFrame, source: str) -> ResponseMatrix:
    table = table.assign(model=table["model"].astype(str), item=table["item"].astype(str))
    duplicated = table.duplicated(["model", "item"])
    if duplicated.any():
        first = table.loc[duplicated].iloc[0]
        raise ValueError(
            f"{source}: {int(duplicated.sum())} repeated (model, item) rows, e.g. "
            f"({first['model']}, {first['item']})"
        )
    models = pd.unique(table["model"])
    items = pd.unique(table["item"])
    rows = pd.Index(models).get_indexer(table["model"])
    cols = pd.Index(items).get_indexer(table["item"])

    def scatter(column: str) -> np.ndarray:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float32)
        grid = np.full((len(models), len(items)), np.nan, dtype=np.float32)
        grid[rows, cols] = values
        return grid

    subtasks = None
    if "subtask" in table.columns:
        per_item = table.groupby("item", sort=False)["subtask"].agg(lambda s: set(map(str, s)))
        conflicting = per_item[per_item.map(len) > 1]
        if len(conflicting):
            raise ValueError(f"{source}: item {conflicting.index[0]} has several subtasks")
        subtasks = per_item.reindex(items).map(lambda s: next(iter(s))).to_numpy()
    confidences = scatter("confidence") if "confidence" in table.columns else None
    return ResponseMatrix(
        scatter("score"), models, items, subtasks, confidences, meta={"source": source}
    )


def _from_wide(table: pd.DataFrame, source: str) -> ResponseMatrix:
    item_columns = [c for c in table.columns if c != "model"]
    values = table[item_columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)
    return ResponseMatrix(
        values,
        models=table["model"].astype(str).to_numpy(),
        items=np.asarray([str(c) for c in item_columns]),
        meta={"source": source},
    )


def _with_subtasks(matrix: ResponseMatrix, subtasks: Mapping[str, str]) -> ResponseMatrix:
    missing = [item for item in matrix.items if item not in subtasks]
    if missing:
        raise ValueError(f"subtasks mapping lacks {len(missing)} item(s), e.g. {missing[0]}")
    labels = np.asarray([str(subtasks[item]) for item in matrix.items])
    return ResponseMatrix(
        matrix.scores, matrix.models, matrix.items, labels, matrix.confidences, matrix.meta
    )


def matrix_to_long_table(matrix: ResponseMatrix) -> pd.DataFrame:
    """The long table of a matrix: one row per cell, model-major, missing scores left empty.

    Writing every cell (not only observed ones) keeps the model and item order on a round trip.
    """
    rows, cols = np.indices(matrix.shape).reshape(2, -1)
    table = pd.DataFrame(
        {
            "model": matrix.models[rows],
            "item": matrix.items[cols],
            "score": matrix.scores[rows, cols],
            "subtask": matrix.subtasks[cols],
        }
    )
    if matrix.confidences is not None:
        table["confidence"] = matrix.confidences[rows, cols]
    return table


def write_matrix(matrix: ResponseMatrix, path: str | os.PathLike) -> Path:
    """Write a matrix as ``.npz`` or as a long ``.csv``/``.parquet`` table, atomically.

    Returns:
        The path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npz", *TABLE_SUFFIXES):
        raise ValueError(f"cannot write {path.name}: use a .npz, .csv or .parquet suffix")
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(target: Path) -> None:
        if suffix == ".npz":
            arrays: dict[str, Any] = {
                "Y": matrix.scores,
                "models": matrix.models,
                "items": matrix.items,
                "subtask": matrix.subtasks,
                "meta_json": np.asarray(json.dumps(matrix.meta)),
            }
            if matrix.confidences is not None:
                arrays["confidence"] = matrix.confidences
            with open(target, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        elif suffix == ".csv":
            matrix_to_long_table(matrix).to_csv(target, index=False)
        else:
            matrix_to_long_table(matrix).to_parquet(target, index=False)

    atomic_write(path, write)
    return path


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(temporary_path)`` then rename it onto ``path``, so a crash leaves no partial file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
