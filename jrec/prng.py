"""Candidate randomness in one fused computation: the bits of ``jax.random``, faster.

Every sampler's candidate ``n`` is ``X_n = proposal.sample(seed=split(fold_in(key, n))[1])``
(:mod:`jrec.poisson`). An encoder draws millions of them, and on CPU most of its time goes
to the Threefry-2x32 hash (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy
as 1, 2, 3", SC 2011): JAX lowers it there as a loop of five round groups over whole
arrays, which streams every intermediate through memory. This module computes the same
hash as one unrolled expression that XLA fuses into a single loop (4-8x the throughput on
CPU for arrays of 10^5-10^7 words), and builds from it exactly what ``jax.random`` does:
``fold_in``, ``split`` into two keys, 32-bit random bits, uniform, normal and exponential
float32 draws, under JAX's default ``threefry2x32`` implementation with partitionable
Threefry (``jax_threefry_partitionable``, the default).

Only encoders use it, to search; decoders regenerate the selected candidate through
``jax.random`` itself (distrax's ``sample``), and ``tests/test_prng.py`` checks that the two
agree bit for bit. :func:`supported` says when the fused path applies; otherwise callers
take ``jax.random``'s; ``with jrec.prng.enabled(False):`` makes them take it always (for
comparisons; it acts when a function is traced).
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["enabled", "supported", "threefry2x32", "key_words", "fold_in", "split", "bits32", "uniform",
           "normal", "exponential"]

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


_ENABLED = [True]


@contextlib.contextmanager
def enabled(flag: bool):
    """Within the block, functions traced use the fused draws (``True``, the default) or
    ``jax.random``'s (``False``); the results are the same either way."""
    old, _ENABLED[0] = _ENABLED[0], bool(flag)
    try:
        yield
    finally:
        _ENABLED[0] = old


def supported(key, dtype=jnp.float32) -> bool:
    """Whether the fused draws serve ``key`` (static: decided when tracing): they are
    enabled, and equal ``jax.random``'s for it: a Threefry-2x32 key (typed, or a raw
    ``uint32`` key under the default implementation), partitionable Threefry, float32."""
    if not _ENABLED[0] or jnp.dtype(dtype) != jnp.float32 or not jax.config.jax_threefry_partitionable:
        return False
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return str(jax.random.key_impl(key)) in ("threefry2x32", "fry")
    return key.dtype == jnp.uint32 and key.shape[-1:] == (2,) and \
        jax.config.jax_default_prng_impl == "threefry2x32"


def _rotl(x, d: int):
    return (x << np.uint32(d)) | (x >> np.uint32(32 - d))


def threefry2x32(k1, k2, x1, x2):
    """The Threefry-2x32 hash (20 rounds) of the counter words ``(x1, x2)`` under the key
    words ``(k1, k2)``, all ``uint32`` and broadcast together; unrolled, so XLA fuses it."""
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = _rotl(x2, r) ^ x1
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def key_words(key):
    """``(k1, k2)``: a key's two ``uint32`` words (typed or raw key, any batch shape)."""
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return data[..., 0], data[..., 1]


def fold_in(words, n):
    """``jax.random.fold_in`` on key words: the words of ``fold_in(key, n)`` (``n`` an
    integer array, broadcast against the words)."""
    n = jnp.asarray(n).astype(jnp.uint32)
    return threefry2x32(*words, jnp.zeros_like(n), n)


def split(words):
    """``jax.random.split(key)`` (two keys) on key words: ``(words_0, words_1)``."""
    zero = np.uint32(0)
    return threefry2x32(*words, zero, zero), threefry2x32(*words, zero, np.uint32(1))


def bits32(words, shape):
    """``jax.random.bits(key, shape)`` (``uint32``) for key words of batch shape ``B``:
    an array of shape ``B + shape``."""
    shape = tuple(shape)
    count = np.arange(int(np.prod(shape)), dtype=np.uint32).reshape(shape)
    k1, k2 = (jnp.expand_dims(w, tuple(range(w.ndim, w.ndim + len(shape)))) for w in words)
    b1, b2 = threefry2x32(k1, k2, np.zeros_like(count), count)
    return b1 ^ b2


def _uniform(words, shape, minval, maxval):
    """JAX's uniform draw in ``[minval, maxval)``. Equal to it bit for bit only where
    ``x * (maxval - minval) + minval`` rounds once whether or not XLA fuses it into a
    multiply-add: ``maxval - minval`` a power of two (the two ranges used below)."""
    bits = bits32(words, shape)
    minval = lax.convert_element_type(minval, jnp.float32)
    maxval = lax.convert_element_type(maxval, jnp.float32)
    float_bits = lax.shift_right_logical(bits, np.uint32(32 - 23)) | np.float32(1.0).view(np.uint32)
    floats = lax.bitcast_convert_type(float_bits, jnp.float32) - np.float32(1.0)
    return lax.max(minval, floats * (maxval - minval) + minval)


def uniform(words, shape):
    """``jax.random.uniform(key, shape)`` (float32, in ``[0, 1)``) on key words."""
    return _uniform(words, shape, np.float32(0.0), np.float32(1.0))


def normal(words, shape):
    """``jax.random.normal(key, shape)`` (float32) on key words."""
    lo = np.nextafter(np.float32(-1.0), np.float32(0.0), dtype=np.float32)  # 1 - lo rounds to 2
    u = _uniform(words, shape, lo, np.float32(1.0))
    return lax.mul(np.float32(np.sqrt(2)), lax.erf_inv(u))


def exponential(words, shape):
    """``jax.random.exponential(key, shape)`` (float32) on key words."""
    return lax.neg(lax.log1p(lax.neg(uniform(words, shape))))
