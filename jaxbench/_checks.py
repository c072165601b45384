"""Host-side argument checks shared by the kernels' public wrappers."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def is_concrete(*values) -> bool:
    """True when no value is a tracer (so value checks can run on the host)."""
    return not any(isinstance(v, jax.core.Tracer) for v in values)


def check_key(key) -> None:
    """Raise unless ``key`` is one typed PRNG key from `jax.random.key`."""
    if not (hasattr(key, "dtype") and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise TypeError("key must be a typed PRNG key from jax.random.key(seed)")
    if key.shape != ():
        raise ValueError(f"key must be a single key (shape ()); got shape {key.shape}")
