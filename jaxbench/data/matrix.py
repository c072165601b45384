"""`ResponseMatrix`: models × items scores with their labels, validated on construction.

Plain NumPy on the host; nothing here is traced by JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

MISSING_POLICIES = ("drop_items", "drop_models", "mask", "error")
DEFAULT_SUBTASK = "all"


@dataclasses.dataclass(frozen=True, eq=False)
class ResponseMatrix:
    """A response matrix: how every model scored on every item of one benchmark.

    Attributes:
        scores: float32[models, items] in [0, 1] (0/1 correctness or a graded score); NaN marks a
            missing cell.
        models: str[models], unique model names.
        items: str[items], unique item ids.
        subtasks: str[items], the category of each item (one subtask, ``"all"``, if none is given).
        confidences: optional float32[models, items] in [0, 1], the probability each model gave to
            the correct answer (NaN where missing).
        meta: free-form provenance (source, license, notes), kept in outputs.

    Construction validates shapes, ranges and uniqueness and raises ``ValueError``/``TypeError``
    naming what was expected and what was received.

    >>> m = ResponseMatrix(np.array([[1.0, 0.0], [0.0, 0.0]]), models=["a", "b"], items=["q1", "q2"])
    >>> m.shape
    (2, 2)
    """

    scores: np.ndarray
    models: np.ndarray
    items: np.ndarray
    subtasks: np.ndarray = None  # type: ignore[assignment]
    confidences: np.ndarray | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        scores = _as_float_matrix(self.scores, "scores")
        num_models, num_items = scores.shape
        models = _as_labels(self.models, "models", num_models, "models (rows of scores)")
        items = _as_labels(self.items, "items", num_items, "items (columns of scores)")
        _check_unique(models, "model names")
        _check_unique(items, "item ids")
        if self.subtasks is None:
            subtasks = np.full(num_items, DEFAULT_SUBTASK, dtype=object).astype(str)
        else:
            subtasks = _as_labels(self.subtasks, "subtasks", num_items, "items")
        _check_range(scores, "scores")
        confidences = None
        if self.confidences is not None:
            confidences = _as_float_matrix(self.confidences, "confidences")
            if confidences.shape != scores.shape:
                raise ValueError(
                    f"confidences must have the shape of scores {scores.shape}; "
                    f"got {confidences.shape}"
                )
            _check_range(confidences, "confidences")
        if not isinstance(self.meta, dict):
            raise TypeError(f"meta must be a dict; got {type(self.meta).__name__}")
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "subtasks", subtasks)
        object.__setattr__(self, "confidences", confidences)

    @property
    def shape(self) -> tuple[int, int]:
        """(models, items)."""
        return self.scores.shape  # type: ignore[return-value]

    @property
    def num_models(self) -> int:
        return self.scores.shape[0]

    @property
    def num_items(self) -> int:
        return self.scores.shape[1]

    @property
    def observed(self) -> np.ndarray:
        """bool[models, items]: True where the score is present."""
        return ~np.isnan(self.scores)

    @property
    def is_binary(self) -> bool:
        """True when every observed score is exactly 0 or 1."""
        observed = self.scores[self.observed]
        return bool(np.all((observed == 0.0) | (observed == 1.0)))

    @property
    def subtask_names(self) -> np.ndarray:
        """str[subtasks], sorted unique subtask names."""
        return np.unique(self.subtasks)

    @property
    def subtask_codes(self) -> np.ndarray:
        """int32[items], index of each item's subtask in `subtask_names`."""
        return np.unique(self.subtasks, return_inverse=True)[1].astype(np.int32)

    def select(self, models: Any = None, items: Any = None) -> ResponseMatrix:
        """A sub-matrix by row and column indices, boolean masks or names (None keeps all)."""
        rows = self._indices(models, self.models, "model")
        cols = self._indices(items, self.items, "item")
        return ResponseMatrix(
            scores=self.scores[np.ix_(rows, cols)],
            models=self.models[rows],
            items=self.items[cols],
            subtasks=self.subtasks[cols],
            confidences=None if self.confidences is None else self.confidences[np.ix_(rows, cols)],
            meta=dict(self.meta),
        )

    def model_indices(self, names: Any) -> np.ndarray:
        """int[n] row indices of the given model names; unknown names raise ValueError."""
        return self._indices(list(names), self.models, "model")

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: shape, value type, subtasks, missing cells, mean accuracy."""
        missing = ~self.observed
        names, counts = np.unique(self.subtasks, return_counts=True)
        with np.errstate(invalid="ignore"):
            accuracy = np.nanmean(np.where(missing, np.nan, self.scores), axis=1)
        return {
            "models": self.num_models,
            "items": self.num_items,
            "values": "binary" if self.is_binary else "graded",
            "confidences": self.confidences is not None,
            "subtasks": {str(n): int(c) for n, c in zip(names, counts, strict=True)},
            "missing_cells": int(missing.sum()),
            "models_with_missing": int(missing.any(axis=1).sum()),
            "items_with_missing": int(missing.any(axis=0).sum()),
            "accuracy_points": {
                "min": float(np.nanmin(accuracy) * 100),
                "median": float(np.nanmedian(accuracy) * 100),
                "max": float(np.nanmax(accuracy) * 100),
            },
        }

    @staticmethod
    def _indices(selector: Any, labels: np.ndarray, what: str) -> np.ndarray:
        if selector is None:
            return np.arange(len(labels))
        selector = np.asarray(selector)
        if selector.dtype == bool:
            if selector.shape != labels.shape:
                raise ValueError(
                    f"a boolean {what} mask must have length {len(labels)}; got {selector.shape}"
                )
            return np.flatnonzero(selector)
        if selector.dtype.kind in "iu":
            if selector.size and (selector.min() < -len(labels) or selector.max() >= len(labels)):
                raise ValueError(f"{what} index out of range for {len(labels)} {what}s")
            return selector.astype(np.int64)
        position = {name: i for i, name in enumerate(labels)}
        unknown = [str(s) for s in selector if str(s) not in position]
        if unknown:
            raise ValueError(f"unknown {what} name(s): {', '.join(unknown[:5])}")
        return np.array([position[str(s)] for s in selector], dtype=np.int64)


class MissingReport(NamedTuple):
    """What a missing-data policy removed."""

    policy: str
    dropped_models: tuple[str, ...]
    dropped_items: int
    masked_cells: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "dropped_models": list(self.dropped_models),
            "dropped_items": self.dropped_items,
            "masked_cells": self.masked_cells,
        }


def apply_missing_policy(
    matrix: ResponseMatrix, policy: str = "drop_items"
) -> tuple[ResponseMatrix, MissingReport]:
    """Apply a missing-data policy of SPEC §1 and report what it did.

    Args:
        matrix: the response matrix, NaN marking missing scores.
        policy: ``"drop_items"`` (default; drop every item some model misses, and refuse if that
            drops more than half of the items), ``"drop_models"`` (drop every model that misses an
            item), ``"mask"`` (keep NaN; estimators renormalise over observed cells) or ``"error"``.

    Returns:
        The matrix after the policy, and a `MissingReport`.
    """
    if policy not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {', '.join(MISSING_POLICIES)}; got {policy!r}")
    missing = ~matrix.observed
    if not missing.any() or policy == "mask":
        if policy == "mask" and (missing.all(axis=1).any() or missing.all(axis=0).any()):
            raise ValueError("with missing='mask' every model and item needs one observed score")
        return matrix, MissingReport(policy, (), 0, int(missing.sum()))
    if policy == "error":
        rows = np.flatnonzero(missing.any(axis=1))
        raise ValueError(
            f"{int(missing.sum())} scores are missing (models: "
            f"{', '.join(matrix.models[rows][:3])}{'...' if len(rows) > 3 else ''}); choose a "
            "missing policy: drop_items, drop_models or mask"
        )
    if policy == "drop_items":
        keep = ~missing.any(axis=0)
        if keep.sum() < matrix.num_items / 2:
            raise ValueError(
                f"missing='drop_items' would drop {int((~keep).sum())} of {matrix.num_items} "
                "items (more than half); use missing='drop_models' or 'mask'"
            )
        return matrix.select(items=keep), MissingReport(policy, (), int((~keep).sum()), 0)
    keep = ~missing.any(axis=1)
    if keep.sum() < 2:
        raise ValueError("missing='drop_models' leaves fewer than 2 models; use 'mask'")
    dropped = tuple(str(m) for m in matrix.models[~keep])
    return matrix.select(models=keep), MissingReport(policy, dropped, 0, 0)


def _as_float_matrix(values: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be numeric; {error}") from None
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (models, items); got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} must have at least one model and one item; got {array.shape}")
    return array


def _as_labels(values: Any, name: str, length: int, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] != length:
        raise ValueError(f"{name} must be 1-D with one entry per {what} ({length}); got {array.shape}")
    return array.astype(str)


def _check_unique(labels: np.ndarray, what: str) -> None:
    names, counts = np.unique(labels, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{what} must be unique; repeated: {', '.join(names[counts > 1][:5])}")


def _check_range(array: np.ndarray, name: str) -> None:
    observed = array[~np.isnan(array)]
    if np.isinf(observed).any() or (observed < 0).any() or (observed > 1).any():
        raise ValueError(f"{name} must lie in [0, 1] (NaN for missing); got values outside it")
