"""Index codelengths (the full bitstream format is built on top of these).

Universal codes for the index kinds the samplers produce; lengths are computed
without building bit strings, vectorised, in JAX.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["elias_gamma_bits", "heap_index_bits", "index_bits"]


def _floor_log2(n):
    n = jnp.maximum(jnp.asarray(n), 1).astype(jnp.uint32)
    return (31 - jax.lax.clz(n).astype(jnp.int32)).astype(jnp.int32)


def elias_gamma_bits(n):
    """Length of the Elias gamma code of ``n >= 1``: ``2 floor(log2 n) + 1`` bits."""
    return 2 * _floor_log2(n) + 1


def heap_index_bits(h):
    """Branch-and-bound heap index at depth ``D``: Elias gamma of ``D``, then ``D - 1`` path bits."""
    depth = _floor_log2(h) + 1
    return elias_gamma_bits(depth) + depth - 1


def index_bits(method: str, index, *, kappa: int = 16, num_shards: int = 4):
    """Bits to send ``index`` of sampler ``method`` with a simple prefix code.

    Candidate numbers: Elias gamma. Heap indices: their depth (Elias gamma) and
    path. Parallel GPRS: ``ceil(log2 J)`` bits for the shard
    plus Elias gamma of the local index. ORC: ``kappa`` bits.
    """
    index = jnp.asarray(index)
    if method == "orc":
        return jnp.full(index.shape, kappa, jnp.int32)
    if method == "gprs_parallel":
        shard_bits = int(jnp.ceil(jnp.log2(num_shards))) if num_shards > 1 else 0
        return shard_bits + elias_gamma_bits(index[..., 1])
    if method == "gprs_bb":
        return heap_index_bits(index)
    if method in ("pfr", "gprs"):
        return elias_gamma_bits(index)
    raise ValueError(f"no index code for {method!r} here (dither indices are entropy coded)")
