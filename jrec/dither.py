"""Dithered (universal) quantisation: an exact uniform-noise channel in one step.

Ziv, "On universal quantization", IEEE Trans. IT 1985; Agustsson & Theis,
"Universally quantized neural compression", NeurIPS 2020.

Encoder and decoder share a dither ``U ~ U(0, 1)`` (from the key). To send a
sample of the target ``Q = U(low, low + step)`` the encoder transmits the integer

    K = ceil((low - step * U) / step)

and both sides output ``X = step * (U + K)``, which lies in ``[low, low + step)``
and is exactly uniform there (for every ``low``). The index is an integer, to be
entropy coded with the proposal (the marginal of X, e.g. prior convolved with the
noise): its cost is about ``-log2 P(cell)``, ``I(Y; Y + noise)`` on average.

Works element-wise on vectors (a batched ``distrax.Uniform``); ``step`` is the
width of the target, a static option the decoder needs. Limit: ``|K| < 2^31``.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp

from jrec import dists
from jrec.core import INDEX_DTYPE, Code, UnsupportedDistributionError

__all__ = ["encode", "decode"]


def _dither(key, shape, dtype):
    return jax.random.uniform(jax.random.fold_in(key, 0), shape, dtype)


def encode(key, target, proposal=None, *, step: float | None = None) -> Code:
    """Quantise with a shared dither; ``code.sample ~ U(low, low + step)`` exactly.

    Args:
      key: shared PRNG key.
      target: ``distrax.Uniform(low, high)`` (possibly batched); ``high - low`` is
        the quantiser step.
      proposal: unused by the sampler (it is the entropy model of the index).
      step: the step the decoder will use; defaults to the target's width (the
        checked wrapper verifies they agree).
    """
    if not isinstance(target, distrax.Uniform):
        raise UnsupportedDistributionError(
            f"dither needs a distrax.Uniform target (the uniform-noise channel), got {type(target).__name__}"
        )
    low = target.low
    width = target.high - target.low if step is None else jnp.asarray(step, low.dtype)
    u = _dither(key, low.shape, low.dtype)
    k = jnp.ceil(low / width - u)
    ok = jnp.all(jnp.abs(k) < 2.0**31 - 1)
    index = jnp.clip(k, -(2.0**31) + 1, 2.0**31 - 2).astype(INDEX_DTYPE)
    x = _reconstruct(u, index, width)
    return Code(index, x, jnp.ones((), INDEX_DTYPE), ok)


def _reconstruct(u, index, step):
    return step * (u + index.astype(u.dtype))


def decode(key, index, proposal=None, *, step: float):
    """``X = step * (U + index)`` with the shared dither ``U`` (dtype of the proposal)."""
    index = jnp.asarray(index, INDEX_DTYPE)
    dtype = dists.dtype_of(proposal) if proposal is not None else jnp.float32
    u = _dither(key, index.shape, dtype)
    return _reconstruct(u, index, jnp.asarray(step, dtype))
