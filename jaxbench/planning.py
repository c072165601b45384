"""Closed-form answers for uniform random micro-benchmarks: per-pair reliability and a planner.

`exact_agreement` gives, for every model pair and size k, the probability that a uniform random
k-item subset of the benchmark ranks the pair as the full benchmark does (SPEC §6: exact for 0/1
scores, a normal approximation for graded ones). `plan` answers "how many items do I need to rank
models ``gap`` points apart?": the smallest k whose exact MDAD is at most the gap.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax.numpy as jnp
import numpy as np
import pandas as pd

from .agreement import (
    DEFAULT_RESOLUTION,
    CurveInterval,
    bin_reference_gaps,
    detect_mdad,
    num_bins_for,
)
from .data import ResponseMatrix, apply_missing_policy
from .engine import exact_pair_agreement
from .exact import PairAgreement

TIES = ("fail", "half")
RULES = ("paper", "monotone")


def exact_agreement_matrix(
    scores, sizes, *, ties: str = "fail", binary: bool = True, chunk_size: int = 2048,
    max_size: int | None = None,
) -> PairAgreement:
    """Agreement of every model pair at every subset size under uniform random sampling.

    ``binary=True`` (0/1 scores) is exact (SPEC §6); ``binary=False`` uses the normal
    approximation of `jaxbench.exact.approximate_pair_win_probabilities` and is approximate.

    Args:
        scores: float[models, items], 0/1 (or graded in [0, 1] with ``binary=False``), no NaN.
        sizes: int[sizes], subset sizes, each in ``1..items``.
        ties: ``"fail"`` (paper) or ``"half"``.
        binary: choose the exact binary computation or the graded normal approximation.
        chunk_size: pairs processed together (memory / cache bound).
        max_size: static scan length (default: the largest size); fixing it lets calls with
            different sizes share one compilation.

    Returns:
        `PairAgreement` with ``agreement`` of shape ``[models·(models−1)/2, len(sizes)]``.

    >>> scores = np.array([[1, 1, 1, 0], [1, 0, 0, 1], [0, 0, 1, 1]], float)
    >>> result = exact_agreement_matrix(scores, [1, 4])
    >>> np.asarray(result.agreement).round(4).tolist()
    [[0.5, 1.0], [0.5, 1.0], [0.25, 0.0]]
    """
    scores = np.asarray(scores)
    if scores.dtype == bool:
        scores = scores.astype(np.float32)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (models, items); got shape {scores.shape}")
    if not (np.issubdtype(scores.dtype, np.integer) or np.issubdtype(scores.dtype, np.floating)):
        raise TypeError(f"scores must be a real numeric array; got dtype {scores.dtype}")
    models, items = scores.shape
    if models < 2 or items < 1:
        raise ValueError(f"scores needs at least 2 models and 1 item; got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores must not contain NaN; drop or impute missing cells first")
    if scores.min() < 0 or scores.max() > 1:
        raise ValueError(f"scores must lie in [0, 1]; got range [{scores.min()}, {scores.max()}]")
    if binary and not np.isin(scores, (0, 1)).all():
        raise ValueError("binary=True needs 0/1 scores; pass binary=False for graded scores")
    sizes_array = np.asarray(sizes)
    if sizes_array.ndim != 1 or sizes_array.size == 0:
        raise ValueError(f"sizes must be a non-empty 1-D list; got shape {sizes_array.shape}")
    if not np.issubdtype(sizes_array.dtype, np.integer):
        if not (np.issubdtype(sizes_array.dtype, np.floating) and (sizes_array % 1 == 0).all()):
            raise TypeError(f"sizes must be integers; got {sizes_array.tolist()}")
    if sizes_array.min() < 1 or sizes_array.max() > items:
        raise ValueError(
            f"sizes must lie in 1..{items} (the number of items); got {sizes_array.tolist()}"
        )
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}; got {ties!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int; got {chunk_size!r}")
    if max_size is None:
        max_size = int(sizes_array.max())
    elif max_size < sizes_array.max():
        raise ValueError(f"max_size ({max_size}) is below the largest size {sizes_array.max()}")
    dtype = jnp.result_type(float)
    return exact_pair_agreement(
        jnp.asarray(scores, dtype),
        jnp.asarray(sizes_array, jnp.int32),
        max_size=int(max_size),
        binary=bool(binary),
        ties=ties,
        chunk_size=chunk_size,
    )


def _prepare(matrix: ResponseMatrix, models: Sequence[str] | None, missing: str) -> ResponseMatrix:
    if not isinstance(matrix, ResponseMatrix):
        raise TypeError(f"matrix must be a ResponseMatrix (see jaxbench.load); got {type(matrix).__name__}")
    if missing == "mask":
        raise ValueError("exact agreement needs complete data: use missing='drop_items' or 'drop_models'")
    if models is not None:
        models = list(models)
        if len(models) < 2:
            raise ValueError(f"models must name at least 2 models; got {models}")
        matrix = matrix.select(models=matrix.model_indices(models))
    matrix, _ = apply_missing_policy(matrix, missing)
    return matrix


def exact_agreement(
    matrix: ResponseMatrix,
    sizes: Sequence[int],
    *,
    ties: str = "fail",
    models: Sequence[str] | None = None,
    missing: str = "drop_items",
) -> pd.DataFrame:
    """Per-pair probability that a uniform random k-item subset ranks the pair correctly.

    The pool is the whole benchmark (after the missing-data policy); the reference order is the
    full-benchmark score. Exact for 0/1 scores; graded scores use the normal approximation with
    finite-population correction and are flagged ``approximate``.

    Args:
        matrix: the `ResponseMatrix`.
        sizes: subset sizes k (each at most the number of items).
        ties: ``"fail"`` (paper) or ``"half"``.
        models: optional subset of model names (default: all).
        missing: ``drop_items`` (default), ``drop_models`` or ``error``.

    Returns:
        DataFrame with one row per (pair, size): ``model_a, model_b, difference`` (a − b, points),
        ``size, agreement, approximate``.

    >>> import jaxbench
    >>> rows = exact_agreement(jaxbench.load("mmlu-pro"), [100], models=["Yi-34B_5shots",
    ...                        "Mixtral-8x7B-v0.1_5shots"])
    >>> float(rows.agreement.iloc[0]) > 0.5
    True
    """
    matrix = _prepare(matrix, models, missing)
    binary = matrix.is_binary
    result = exact_agreement_matrix(matrix.scores, list(sizes), ties=ties, binary=binary)
    first, second = np.asarray(result.first), np.asarray(result.second)
    agreement = np.asarray(result.agreement)
    sizes = np.asarray(list(sizes))
    difference = _differences(matrix.scores, first, second)
    return pd.DataFrame({
        "model_a": np.repeat(matrix.models[first], len(sizes)),
        "model_b": np.repeat(matrix.models[second], len(sizes)),
        "difference": np.repeat(difference, len(sizes)),
        "size": np.tile(sizes, len(first)),
        "agreement": agreement.reshape(-1),
        "approximate": not binary,
    })


def _differences(scores: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    means = scores.astype(np.float64).mean(axis=1)
    return 100.0 * (means[first] - means[second])


@dataclasses.dataclass
class PlanResult:
    """The planner's answer.

    Attributes:
        size: the smallest k whose exact MDAD is at most ``gap`` (None if even the whole
            benchmark cannot).
        mdad: the MDAD at that size (points).
        gap, threshold, rule: the question asked.
        curve: the exact agreement curve at ``size`` (``bin, bin_upper, pairs, agreement``).
        searched: every (size, mdad) evaluated by the search, for transparency.
        approximate: True when scores are graded (normal approximation).
        num_items: the pool size.
    """

    size: int | None
    mdad: float | None
    gap: float
    threshold: float
    rule: str
    curve: pd.DataFrame
    searched: pd.DataFrame
    approximate: bool
    num_items: int


def plan(
    matrix: ResponseMatrix,
    gap: float = 2.0,
    threshold: float = 0.8,
    *,
    ties: str = "fail",
    rule: str = "paper",
    resolution: float = DEFAULT_RESOLUTION,
    models: Sequence[str] | None = None,
    missing: str = "drop_items",
) -> PlanResult:
    """The smallest uniform random subset size whose exact MDAD is at most ``gap`` points.

    For every candidate k the exact per-pair agreements of all model pairs (pool = the whole
    benchmark) are averaged per |Δ| bin and the MDAD is read off that curve (``rule="paper"``:
    first bin reaching τ; ``"monotone"``: every larger bin reaches τ too). A binary search over
    k (agreement grows with k) finds the smallest k; the answer is then checked directly (k
    qualifies, k − 1 does not).

    Args:
        matrix: the `ResponseMatrix`.
        gap: the ability difference (points) the micro-benchmark must detect.
        threshold: agreement τ.
        ties, resolution, models, missing: as in `exact_agreement`; `resolution` is the bin width.
        rule: ``"paper"`` or ``"monotone"`` MDAD.

    Returns:
        A `PlanResult`.
    """
    if not gap >= 0:
        raise ValueError(f"gap must be a non-negative number of points; got {gap}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1]; got {threshold}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}; got {rule!r}")
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}; got {ties!r}")
    matrix = _prepare(matrix, models, missing)
    binary = matrix.is_binary
    scores = matrix.scores
    num_items = matrix.num_items
    num_bins = num_bins_for(resolution)
    # The same binning as the Monte Carlo engine (exact integer arithmetic for 0/1 scores).
    counts = jnp.full(matrix.num_models, num_items, jnp.float32)
    bins, _ = bin_reference_gaps(jnp.asarray(scores.sum(axis=1)), counts, num_bins=num_bins,
                                 resolution=resolution)
    bins = np.asarray(bins)
    pairs = np.bincount(bins, minlength=num_bins)
    evaluated: dict[int, tuple[float | None, np.ndarray]] = {}

    def evaluate(size: int) -> float | None:
        if size not in evaluated:
            result = exact_agreement_matrix(scores, [size], ties=ties, binary=binary,
                                            max_size=num_items)
            per_pair = np.asarray(result.agreement)[:, 0].astype(np.float64)
            with np.errstate(invalid="ignore"):
                curve = np.bincount(bins, per_pair, minlength=num_bins) / pairs
            curve = curve.astype(np.float32)
            found = detect_mdad(jnp.asarray(curve), CurveInterval(jnp.asarray(curve), jnp.asarray(curve)),
                                threshold=threshold)
            index = int(found.index if rule == "paper" else found.monotone)
            evaluated[size] = (None if index < 0 else index * resolution, curve)
        return evaluated[size][0]

    def qualifies(size: int) -> bool:
        value = evaluate(size)
        return value is not None and value <= gap + 1e-9

    low, high = 1, num_items
    if qualifies(low):
        high = low
    elif not qualifies(high):
        high = None
    else:
        while high - low > 1:  # invariant: low fails, high qualifies
            middle = (low + high) // 2
            if qualifies(middle):
                high = middle
            else:
                low = middle
    size = high
    curve_values = evaluated[size if size is not None else num_items][1]
    present = np.flatnonzero(pairs)
    curve = pd.DataFrame({
        "bin": present * resolution, "bin_upper": (present + 1) * resolution,
        "pairs": pairs[present], "agreement": curve_values[present],
    })
    searched = pd.DataFrame(sorted((k, v[0]) for k, v in evaluated.items()), columns=["size", "mdad"])
    return PlanResult(
        size=size, mdad=None if size is None else evaluated[size][0], gap=float(gap),
        threshold=float(threshold), rule=rule, curve=curve, searched=searched,
        approximate=not binary, num_items=num_items,
    )
