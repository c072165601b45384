"""Exact k-DPP sampling over a low-rank Gaussian kernel, for the `diversity` method (SPEC §3).

A k-DPP with L-ensemble kernel ``L`` draws a k-subset ``S`` with ``P(S) ∝ det(L_S)``, which
favours items that are far apart in feature space. With ``L = Φ Φᵀ`` for random Fourier features
``Φ[items, F]`` (Rahimi & Recht 2007) the sampler works in the dual (Kulesza & Taskar 2012, §3.3
and Alg. 8 + Alg. 1): eigendecompose the ``F×F`` matrix ``C = ΦᵀΦ``, choose exactly k
eigenvectors by elementary symmetric polynomials, lift them to item space
``V = Φ w / sqrt(λ)`` and draw items one at a time from the projection DPP ``K = V Vᵀ``. No
``items×items`` matrix is formed; the cost is ``O(F³ + items·F·max_size + size·items·max_size)``.

Padding: ``size`` is traced and ``max_size`` static, so one executable serves every size.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_HIGHEST = jax.lax.Precision.HIGHEST


class KDPPSample(NamedTuple):
    """One k-DPP draw, padded to a static length.

    Attributes:
        items: int32[max_size], distinct item indices in draw order; 0 at padding positions.
        active: bool[max_size], True on the first ``size`` positions.
        rank: int32 scalar, numerical rank of ``L = Φ Φᵀ`` (see `sample_kdpp`). When it is below
            ``size``, the draw used the fallback described there.
    """

    items: jax.Array
    active: jax.Array
    rank: jax.Array


def median_bandwidth(
    key: jax.Array, points: jax.Array, valid: jax.Array | None = None, *, num_pairs: int = 4096
) -> jax.Array:
    """Median heuristic: the median Euclidean distance between two distinct valid points.

    All pairs are used when ``items·(items−1)/2 <= num_pairs`` (exact median); otherwise
    ``num_pairs`` random pairs, which estimates it within a few percent and bounds memory.

    Args:
        key: used only for the pair subsample.
        points: float32[items, dims].
        valid: optional bool[items]; other points are ignored.
        num_pairs: static sample size for large ``items``.

    Returns:
        float32 scalar; NaN if fewer than two points are valid.
    """
    items = points.shape[0]
    valid = jnp.ones(items, bool) if valid is None else valid
    if items * (items - 1) // 2 <= num_pairs:
        first, second = jnp.triu_indices(items, k=1)
    else:
        probabilities = valid / jnp.maximum(jnp.sum(valid), 1)
        first_key, second_key = jax.random.split(key)
        first = jax.random.choice(first_key, items, (num_pairs,), p=probabilities)
        second = jax.random.choice(second_key, items, (num_pairs,), p=probabilities)
    distances = jnp.linalg.norm(points[first] - points[second], axis=-1)
    usable = valid[first] & valid[second] & (first != second)
    return jnp.nanmedian(jnp.where(usable, distances, jnp.nan))


def random_fourier_features(
    key: jax.Array, points: jax.Array, *, num_features: int, bandwidth: jax.Array | float
) -> jax.Array:
    """Features whose inner products approximate the Gaussian kernel.

    ``φ(x)·φ(y) ≈ exp(−|x−y|² / (2·bandwidth²))`` with paired cosine/sine features of
    ``num_features / 2`` frequencies ``ω ~ N(0, I / bandwidth²)`` (Rahimi & Recht 2007; the
    paired form has ``φ(x)·φ(x) = 1`` exactly and error standard deviation ``<= 1/sqrt(F)``).

    Bandwidth rule: `median_bandwidth` is the usual default. A Gaussian kernel of low-dimensional
    points is numerically low-rank (for 4-D points at the median bandwidth, only ~50–120
    eigenvalues exceed 1e-5 of the largest), and a k-DPP needs k <= rank, so large sizes need a
    proportionally smaller bandwidth (and ``num_features >= size``).

    Args:
        key: draws the frequencies.
        points: float32[items, dims].
        num_features: static, even number of features F.
        bandwidth: float32 scalar > 0 (may be traced).

    Returns:
        float32[items, num_features].
    """
    if num_features < 2 or num_features % 2:
        raise ValueError(f"num_features must be a positive even integer; got {num_features}")
    points = jnp.asarray(points, jnp.float32)
    frequencies = jax.random.normal(key, (points.shape[1], num_features // 2)) / bandwidth
    phases = jnp.matmul(points, frequencies, precision=_HIGHEST)
    scale = jnp.sqrt(2.0 / num_features)
    return scale * jnp.concatenate([jnp.cos(phases), jnp.sin(phases)], axis=-1)


def _dual_eigen(features: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Eigenpairs of ``C = ΦᵀΦ`` with noise-level eigenvalues set to 0, and ``C`` itself.

    Float32 ``eigh`` of ``C`` is accurate to ~5e-7 of the largest eigenvalue, so eigenvalues
    below ``100·eps`` of it are indistinguishable from 0 and count as outside the rank.
    """
    gram = jnp.matmul(features.T, features, precision=_HIGHEST)
    eigenvalues, eigenvectors = jnp.linalg.eigh(gram)
    cutoff = 100 * jnp.finfo(gram.dtype).eps * eigenvalues[-1]
    eigenvalues = jnp.where((eigenvalues > cutoff) & (eigenvalues > 0), eigenvalues, 0.0)
    return eigenvalues, eigenvectors, gram


def _select_eigenvectors(key: jax.Array, eigenvalues: jax.Array, size: jax.Array, max_size: int):
    """bool[F]: exactly ``size`` eigenvectors, ``P(J) ∝ Π_{n∈J} λ_n`` (Kulesza & Taskar Alg. 8).

    The elementary symmetric polynomials ``e_l^n`` of the first n eigenvalues are kept as logs
    (``e_l^n = e_l^{n−1} + λ_n e_{l−1}^{n−1}`` becomes a ``logaddexp``) of eigenvalues divided by
    the largest, so nothing overflows for any size. Requires ``size <= rank``.
    """
    scaled = eigenvalues / jnp.maximum(eigenvalues[-1], jnp.finfo(eigenvalues.dtype).tiny)
    log_eigenvalues = jnp.log(scaled)  # -inf outside the rank: never selected
    first_column = jnp.full(max_size + 1, -jnp.inf).at[0].set(0.0)

    def extend(column, log_eigenvalue):
        shifted = jnp.concatenate([jnp.array([-jnp.inf]), log_eigenvalue + column[:-1]])
        column = jnp.logaddexp(column, shifted)
        return column, column

    _, columns = jax.lax.scan(extend, first_column, log_eigenvalues)
    columns = jnp.concatenate([first_column[None], columns])  # [F + 1, max_size + 1]
    uniforms = jax.random.uniform(key, eigenvalues.shape)

    def decide(remaining, inputs):
        log_eigenvalue, previous, current, uniform = inputs
        # P(include n | l still needed) = λ_n e_{l−1}^{n−1} / e_l^n.
        log_probability = log_eigenvalue + previous[jnp.maximum(remaining - 1, 0)] - current[remaining]
        take = (remaining > 0) & (uniform < jnp.exp(log_probability))
        return remaining - take, take

    inputs = (log_eigenvalues, columns[:-1], columns[1:], uniforms)
    _, selected = jax.lax.scan(decide, size, inputs, reverse=True)
    return selected


def _item_space_basis(features, eigenvalues, eigenvectors, gram, selected, max_size):
    """float32[items, max_size]: orthonormal columns spanning ``Φ w_n`` for the selected n.

    ``V = Φ W Λ^{-1/2}`` is orthonormal only up to float32 error (~1e-2 for eigenvalues near the
    cutoff), which would bias the sequential sampler; one Cholesky step on ``VᵀV = UᵀCU``
    (``F×F`` work, no ``items`` factor) restores it. Padding columns are exactly 0.
    """
    count = jnp.sum(selected)
    (columns,) = jnp.nonzero(selected, size=max_size, fill_value=0)
    active = jnp.arange(max_size) < count
    inverse_root = jnp.where(active, jax.lax.rsqrt(jnp.where(active, eigenvalues[columns], 1.0)), 0.0)
    dual = eigenvectors[:, columns] * inverse_root  # U: [F, max_size]
    overlap = jnp.matmul(dual.T, jnp.matmul(gram, dual, precision=_HIGHEST), precision=_HIGHEST)
    overlap = overlap + jnp.diag(~active)  # identity block on padding keeps it positive definite
    factor = jnp.linalg.cholesky(overlap)
    dual = jax.scipy.linalg.solve_triangular(factor, dual.T, lower=True).T  # U L^{-T}
    return jnp.matmul(features, dual, precision=_HIGHEST)


def _orthogonalise(row: jax.Array, row_basis: jax.Array) -> jax.Array:
    coefficients = jnp.matmul(row_basis, row, precision=_HIGHEST)
    return row - jnp.matmul(row_basis.T, coefficients, precision=_HIGHEST)


def _draw_items(key, basis, count, size, valid, max_size) -> jax.Array:
    """int32[max_size]: ``size`` distinct items; the first ``count`` from the projection DPP.

    Chain rule for ``K = V Vᵀ`` (Kulesza & Taskar Alg. 1): ``P(i | chosen) ∝ |V_i|² − |P V_i|²``
    where ``P`` projects onto the span of the chosen rows; the rows are orthogonalised by
    Gram–Schmidt (two passes for stability), ``O(items·max_size)`` per draw. Draws after the
    first ``count`` are uniform over the remaining valid items.
    """
    items = basis.shape[0]
    residual = jnp.sum(basis**2, axis=1)

    def draw(step, state):
        residual, row_basis, chosen, drawn = state
        projection_weights = jnp.where(chosen, 0.0, jnp.maximum(residual, 0.0))
        use_projection = (step < count) & (jnp.sum(projection_weights) > 0)
        fallback_weights = (~chosen & valid).astype(jnp.float32)
        fallback_weights = jnp.where(jnp.any(fallback_weights > 0), fallback_weights, ~chosen)
        weights = jnp.where(use_projection, projection_weights, fallback_weights)
        item = jax.random.categorical(jax.random.fold_in(key, step), jnp.log(weights))
        row = basis[item]
        row = _orthogonalise(row, row_basis)
        row = _orthogonalise(row, row_basis)  # "twice is enough" (Giraud et al. 2005)
        norm = jnp.linalg.norm(row)
        direction = jnp.where(use_projection & (norm > 0), row / jnp.where(norm > 0, norm, 1.0), 0.0)
        residual = residual - jnp.matmul(basis, direction, precision=_HIGHEST) ** 2
        row_basis = row_basis.at[step].set(direction)
        return residual, row_basis, chosen.at[item].set(True), drawn.at[step].set(item)

    row_basis = jnp.zeros((max_size, max_size))
    state = (residual, row_basis, jnp.zeros(items, bool), jnp.zeros(max_size, jnp.int32))
    return jax.lax.fori_loop(0, size, draw, state)[-1]


def sample_kdpp(
    key: jax.Array,
    features: jax.Array,
    size: jax.Array | int,
    valid: jax.Array | None = None,
    *,
    max_size: int,
) -> KDPPSample:
    """Draw ``size`` distinct items from the k-DPP with kernel ``L = Φ Φᵀ``, exactly.

    Items outside ``valid`` get a zero feature row, hence probability 0. If ``size`` exceeds the
    numerical rank r of ``L`` (no k-DPP exists; `draw_kdpp` raises instead), the draw is the
    ε → 0 limit of the k-DPP of ``L + ε·diag(valid)``: an r-DPP draw plus ``size − r`` items
    uniform over the remaining valid items. ``size`` must not exceed the number of valid items
    (beyond it, invalid items fill the draw). For a given ``size`` the draw does not depend on
    ``max_size`` beyond floating-point rounding.

    Args:
        key: the draw's key.
        features: float32[items, features], rows ``φ(x_i)`` (e.g. `random_fourier_features`).
        size: int32 scalar k (traced), ``1 <= k <= max_size``.
        valid: optional bool[items]; items that may be drawn.
        max_size: static padded length.

    Returns:
        `KDPPSample` with ``size`` active, distinct items.

    >>> points = jax.random.normal(jax.random.key(0), (200, 2))
    >>> phi = random_fourier_features(jax.random.key(1), points, num_features=64, bandwidth=1.0)
    >>> sample = jax.jit(sample_kdpp, static_argnames="max_size")  # one compile for all sizes
    >>> draw = sample(jax.random.key(2), phi, 5, jnp.ones(200, bool), max_size=8)
    >>> int(draw.active.sum()), len(set(draw.items[:5].tolist()))
    (5, 5)
    """
    features = jnp.asarray(features, jnp.float32)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (items, features); got shape {features.shape}")
    valid = jnp.ones(features.shape[0], bool) if valid is None else jnp.asarray(valid, bool)
    features = features * valid[:, None]
    eigen_key, item_key = jax.random.split(key)
    size = jnp.clip(jnp.asarray(size, jnp.int32), 0, max_size)
    eigenvalues, eigenvectors, gram = _dual_eigen(features)
    rank = jnp.sum(eigenvalues > 0).astype(jnp.int32)
    selected = _select_eigenvectors(eigen_key, eigenvalues, jnp.minimum(size, rank), max_size)
    basis = _item_space_basis(features, eigenvalues, eigenvectors, gram, selected, max_size)
    items = _draw_items(item_key, basis, jnp.sum(selected), size, valid, max_size)
    active = jnp.arange(max_size) < size
    return KDPPSample(items=jnp.where(active, items, 0), active=active, rank=rank)


def _numerical_rank(features: jax.Array) -> jax.Array:
    return jnp.sum(_dual_eigen(jnp.asarray(features, jnp.float32))[0] > 0)


_sample_kdpp_jit = jax.jit(sample_kdpp, static_argnames=("max_size",))
_numerical_rank_jit = jax.jit(_numerical_rank)


def draw_kdpp(
    features: np.ndarray,
    size: int,
    *,
    seed: int | jax.Array,
    valid: np.ndarray | None = None,
    max_size: int | None = None,
) -> np.ndarray:
    """Host-side, validated `sample_kdpp`: ``size`` distinct item indices in draw order.

    Args:
        features: float[items, features], rows ``φ(x_i)`` with ``L = Φ Φᵀ``.
        size: number of items k, ``1 <= k <= rank(L)``.
        seed: int seed or a typed key from ``jax.random.key``.
        valid: optional bool[items]; items that may be drawn.
        max_size: padded length (default ``size``); pass the largest size to reuse one compile.

    Returns:
        int32[size].

    Raises:
        ValueError: bad shapes or values, or ``size`` above the numerical rank of ``L``.
        TypeError: non-numeric features, non-integer size or seed.

    >>> features = np.random.default_rng(0).standard_normal((20, 6))
    >>> items = draw_kdpp(features, 4, seed=0, max_size=6)
    >>> items.shape, len(set(items.tolist()))
    ((4,), 4)
    """
    array = np.asarray(features)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"features must be real numbers; got dtype {array.dtype}")
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"features must be 2-D (items, features), non-empty; got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("features must be finite; got NaN or infinity")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"size must be an int; got {type(size).__name__}")
    max_size = size if max_size is None else max_size
    if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)):
        raise TypeError(f"max_size must be an int; got {type(max_size).__name__}")
    if not 1 <= size <= max_size:
        raise ValueError(f"size must satisfy 1 <= size <= max_size; got {size=}, {max_size=}")
    mask = np.ones(array.shape[0], bool) if valid is None else np.asarray(valid)
    if mask.dtype != bool or mask.shape != (array.shape[0],):
        raise ValueError(f"valid must be bool[{array.shape[0]}]; got {mask.dtype}{list(mask.shape)}")
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        key = jax.random.key(int(seed))
    elif isinstance(seed, jax.Array) and jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
        if seed.shape != ():
            raise ValueError(f"seed must be a single key; got a key array of shape {seed.shape}")
        key = seed
    else:
        raise TypeError(f"seed must be an int or a scalar key from jax.random.key; got {seed!r}")
    array = array.astype(np.float32)
    rank = int(_numerical_rank_jit(array * mask[:, None]))
    if size > rank:
        raise ValueError(
            f"size={size} exceeds the numerical rank {rank} of L = Φ Φᵀ; a k-DPP needs k <= rank. "
            "Use more features (at least size) or a smaller kernel bandwidth."
        )
    sample = _sample_kdpp_jit(key, array, np.int32(size), mask, max_size=int(max_size))
    return np.asarray(sample.items[:size])
