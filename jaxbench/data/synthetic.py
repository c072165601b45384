"""Synthetic response matrices from a known IRT model, for tests and benchmarks at any shape.

Ground truth: model abilities θ[models, dims], item discriminations a[items, dims] (positive) and
difficulties b[items], P(correct) = σ(a·θ − b + subtask offset). Scores are Bernoulli draws;
confidences (optional) are a noisy, calibrated-looking probability of the correct answer.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .matrix import ResponseMatrix


class SyntheticTruth(NamedTuple):
    """The parameters a synthetic matrix was drawn from."""

    ability: np.ndarray  # [models, dims]
    discrimination: np.ndarray  # [items, dims]
    difficulty: np.ndarray  # [items]
    probability: np.ndarray  # [models, items], P(correct)


def generate_synthetic(
    num_models: int = 50,
    num_items: int = 1000,
    *,
    num_subtasks: int = 5,
    dimensions: int = 1,
    confidences: bool = False,
    missing_rate: float = 0.0,
    seed: int = 0,
) -> tuple[ResponseMatrix, SyntheticTruth]:
    """Draw a response matrix from a multidimensional 2PL model with known parameters.

    Args:
        num_models, num_items: the shape.
        num_subtasks: items are split into this many subtasks of unequal size, each with its
            own difficulty offset (so subtask stratification matters).
        dimensions: number of latent ability dimensions.
        confidences: also emit confidences C[models, items]: σ(logit P + noise), shifted toward
            the drawn outcome, so that they predict correctness as real ones do.
        missing_rate: fraction of cells set to NaN, uniformly at random.
        seed: NumPy seed; the same seed gives the same matrix.

    Returns:
        The `ResponseMatrix` (float32 0/1 scores) and its `SyntheticTruth`.

    >>> matrix, truth = generate_synthetic(20, 100, seed=1)
    >>> matrix.shape, truth.probability.shape
    ((20, 100), (20, 100))
    """
    for name, value in (("num_models", num_models), ("num_items", num_items),
                        ("num_subtasks", num_subtasks), ("dimensions", dimensions)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if num_subtasks > num_items:
        raise ValueError(f"num_subtasks ({num_subtasks}) cannot exceed num_items ({num_items})")
    if not 0.0 <= missing_rate < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1); got {missing_rate}")
    rng = np.random.default_rng(seed)
    ability = rng.normal(size=(num_models, dimensions))
    discrimination = rng.lognormal(mean=0.0, sigma=0.3, size=(num_items, dimensions))
    discrimination /= np.sqrt(dimensions)
    # Unequal subtask sizes (Dirichlet shares), every subtask non-empty.
    shares = rng.dirichlet(np.full(num_subtasks, 2.0))
    subtask_codes = np.concatenate([np.arange(num_subtasks),
                                    rng.choice(num_subtasks, num_items - num_subtasks, p=shares)])
    rng.shuffle(subtask_codes)
    offsets = rng.normal(scale=0.7, size=num_subtasks)
    difficulty = rng.normal(size=num_items) + offsets[subtask_codes]
    logits = ability @ discrimination.T - difficulty
    probability = 1.0 / (1.0 + np.exp(-logits))
    scores = (rng.random(probability.shape) < probability).astype(np.float32)
    confidence = None
    if confidences:
        noisy = logits + rng.normal(scale=0.5, size=logits.shape) + 1.0 * (2 * scores - 1)
        confidence = (1.0 / (1.0 + np.exp(-noisy))).astype(np.float32)
    if missing_rate > 0:
        missing = rng.random(scores.shape) < missing_rate
        scores[missing] = np.nan
        if confidence is not None:
            confidence[missing] = np.nan
    width_m, width_i = len(str(num_models - 1)), len(str(num_items - 1))
    matrix = ResponseMatrix(
        scores=scores,
        models=np.array([f"model-{i:0{width_m}d}" for i in range(num_models)]),
        items=np.array([f"item-{j:0{width_i}d}" for j in range(num_items)]),
        subtasks=np.array([f"subtask-{s:02d}" for s in subtask_codes]),
        confidences=confidence,
        meta={"source": "jaxbench.generate_synthetic", "seed": seed, "dimensions": dimensions},
    )
    return matrix, SyntheticTruth(ability, discrimination, difficulty, probability)
