"""`diversity` (SPEC §3): a k-DPP over a Gaussian kernel on PCA features of source confidences.

`prepare`, once per run: items are points whose coordinates are the source models'
confidences; their first `NUM_COMPONENTS` = 4 principal components (centred per source model,
unobserved cells imputed by that model's observed mean) are the features. Items outside the
1–99 % quantiles of any component are dropped (the ``valid`` mask), and each component is
rescaled to [−0.99, 0.99] over the valid items, as the paper's code did before its sampler.
The bandwidth scale is the median distance between valid points (`dpp.median_bandwidth`).

`select`, per size k: a k-DPP with kernel ``L = Φ Φᵀ``, where ``Φ`` are the
`dpp.random_fourier_features` of the points (``F`` features approximating
``exp(−|x−y|²/(2h²))``), drawn exactly by `dpp.sample_kdpp` among the valid items. The
estimate is the plain mean of the targets' scores.

Bandwidth rule. A k-DPP needs ``rank L ≥ k``, and a Gaussian kernel of these points is
numerically low-rank at the median bandwidth (see `dpp.random_fourier_features`; ~50-60
here). Measured on the bundled MMLU-Pro and a synthetic matrix (seen halves, ample features),
the rank grows like ``h^(−1.75)``: ~60 at the median, ~200 at half of it, ~1000 at a fifth. So
the DPP of size m uses ``h(m) = h_median · min(1, sqrt(REFERENCE_SIZE / m))`` and
``F = 2·m_max`` features, which keeps the rank above m with a margin (MMLU-Pro, m = 64,
F = 128: ~100; test pool, F = 200: 49, 86, 145 at m = 10, 40, 100; a test checks rank ≥ m),
while the kernel still acts at the spacing of m points rather than collapsing to the identity.

What happens when ``rank L < k``: `dpp.sample_kdpp` draws an r-DPP (r = rank) and adds ``k − r``
items uniformly from the remaining valid items (the ε → 0 limit of the k-DPP of
``L + ε·I``); the selection is still k distinct valid items, only less diverse.

Sampler (option ``sampler``):
- ``"capped"`` (default): the DPP part has at most `DPP_CAP` items (``F = 2·DPP_CAP``); for
  ``k > DPP_CAP`` the other ``k − DPP_CAP`` items are uniform over the remaining valid items,
  exactly the rank-deficient fallback above with r = `DPP_CAP`. An exact k-DPP costs
  ``O(n·F² + F³ + k·n·k)`` per size (``F ≥ k``): ~2 s per size at k = 1000 on a 2-core CPU,
  ~10 minutes for the demo, whose budget is ~40 s. This is a departure from the paper, whose
  sampler (a discrete orthogonal-polynomial ensemble, not a Gaussian k-DPP) drew all k items.
- ``"full"``: all k items from the k-DPP (DPP size k, ``F = 2·max_size``); for accelerators.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..dpp import median_bandwidth, random_fourier_features, sample_kdpp
from .base import (MethodInfo, Selection, SourceView, TargetView, estimate_weighted_mean,
                   padding_mask)

NUM_COMPONENTS = 4
QUANTILE = 0.01
DPP_CAP = 64
REFERENCE_SIZE = 16
SAMPLERS = ("capped", "full")
_HIGHEST = jax.lax.Precision.HIGHEST


class PreparedDiversity(NamedTuple):
    """What `prepare` computes once per run.

    Attributes:
        points: float32[seen, 4], rescaled principal components (0 beyond the sources' count).
        valid: bool[seen], inside the 1–99 % quantiles of every component.
        bandwidth: float32 scalar, median distance between valid points.
    """

    points: jax.Array
    valid: jax.Array
    bandwidth: jax.Array


def principal_components(values: jax.Array, observed: jax.Array, num_components: int) -> jax.Array:
    """float32[items, num_components]: PCA scores of items described by models' values.

    Args:
        values: float32[models, items]; the items are the points, the models the features.
        observed: bool[models, items]; an unobserved cell counts as its model's observed mean.
        num_components: static; columns beyond ``models`` are 0.

    Returns:
        Scores on the leading components, in decreasing order of variance; each component's
        largest loading is positive.
    """
    weights = observed.astype(values.dtype)
    count = jnp.maximum(weights.sum(1, keepdims=True), 1.0)
    mean = jnp.sum(values * weights, axis=1, keepdims=True) / count
    centred = (values - mean) * weights  # [models, items]
    covariance = jnp.matmul(centred, centred.T, precision=_HIGHEST)
    _, vectors = jnp.linalg.eigh(covariance)  # ascending eigenvalues
    count = min(num_components, values.shape[0])
    leading = vectors[:, ::-1][:, :count]
    # Sign convention (scikit-learn's svd_flip): each component's largest loading is positive,
    # so a tiny perturbation of the data cannot flip a component and change every draw.
    pivot = leading[jnp.argmax(jnp.abs(leading), axis=0), jnp.arange(count)]
    leading = leading * jnp.where(pivot < 0, -1.0, 1.0)
    scores = jnp.matmul(centred.T, leading, precision=_HIGHEST)
    return jnp.pad(scores, ((0, 0), (0, num_components - count)))


def prepare_diversity(key, sources: SourceView, *, max_size: int, num_subtasks: int,
                      sampler: str = "capped") -> PreparedDiversity:
    """PCA features, the quantile mask and the median bandwidth (module docstring)."""
    _check(sampler)
    points = principal_components(sources.confidences, sources.observed, NUM_COMPONENTS)
    low = jnp.quantile(points, QUANTILE, axis=0)
    high = jnp.quantile(points, 1.0 - QUANTILE, axis=0)
    valid = jnp.all((points >= low) & (points <= high), axis=1)
    lowest = jnp.min(jnp.where(valid[:, None], points, jnp.inf), axis=0)
    highest = jnp.max(jnp.where(valid[:, None], points, -jnp.inf), axis=0)
    spread = highest - lowest
    scaled = 0.99 * (2.0 * (points - lowest) / jnp.where(spread > 0, spread, 1.0) - 1.0)
    points = jnp.where(spread > 0, scaled, 0.0)
    bandwidth = median_bandwidth(key, points, valid)
    return PreparedDiversity(points, valid, bandwidth)


def dpp_settings(sampler: str, max_size: int) -> tuple[int, int]:
    """(largest DPP size, number of Fourier features) for a sampler and padded size."""
    cap = min(max_size, DPP_CAP) if sampler == "capped" else max_size
    return cap, 2 * cap


def kernel_bandwidth(median: jax.Array, dpp_size: jax.Array) -> jax.Array:
    """``h(m) = median · min(1, sqrt(REFERENCE_SIZE / m))`` (module docstring)."""
    ratio = REFERENCE_SIZE / jnp.maximum(dpp_size, 1).astype(jnp.float32)
    return median * jnp.minimum(1.0, jnp.sqrt(ratio))


def select_diversity(key, sources: SourceView, size, prepared: PreparedDiversity, *,
                     max_size: int, num_subtasks: int, sampler: str = "capped"):
    """``size`` distinct valid items: a k-DPP draw, filled uniformly beyond the DPP size.

    Returns:
        (`Selection` with weights 1/k, the DPP draw's numerical rank: int32 scalar).
    """
    _check(sampler)
    cap, num_features = dpp_settings(sampler, max_size)
    feature_key, dpp_key, fill_key = jax.random.split(key, 3)
    dpp_size = jnp.minimum(size, cap)
    bandwidth = kernel_bandwidth(prepared.bandwidth, dpp_size)
    features = random_fourier_features(feature_key, prepared.points, num_features=num_features,
                                       bandwidth=bandwidth)
    draw = sample_kdpp(dpp_key, features, dpp_size, prepared.valid, max_size=cap)
    # Fill: uniform over the valid items the DPP did not draw (invalid ones only if needed).
    chosen = jnp.zeros(prepared.valid.shape, bool).at[draw.items].max(draw.active)
    noise = jax.random.uniform(fill_key, prepared.valid.shape)
    priority = jnp.where(chosen, -2.0, jnp.where(prepared.valid, noise, noise - 1.0))
    _, fill = jax.lax.top_k(priority, max_size)
    position = jnp.arange(max_size)
    from_dpp = draw.items[jnp.minimum(position, cap - 1)]
    items = jnp.where(position < dpp_size, from_dpp, fill[jnp.maximum(position - dpp_size, 0)])
    active = padding_mask(size, max_size)
    weights = jnp.where(active, 1.0 / size, 0.0).astype(jnp.float32)
    return Selection(jnp.where(active, items, 0).astype(jnp.int32), weights), draw.rank


def estimate_diversity(selection: Selection, aux, targets: TargetView, prepared, **_) -> jax.Array:
    """float32[1, targets]: the mean score over the selected items."""
    return estimate_weighted_mean(selection, targets)[None, :]


def _check(sampler):
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}; got {sampler!r}")


DIVERSITY = MethodInfo(
    select=select_diversity,
    estimators=("mean",),
    estimate=estimate_diversity,
    options={"sampler": (SAMPLERS, "capped")},
    summary="k-DPP (Gaussian kernel) on 4 PCA components of source confidences; mean",
    prepare=prepare_diversity,
    uses_confidences=True,
)
