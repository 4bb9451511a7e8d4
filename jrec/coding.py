"""Index codes: universal prefix codes for the indices the samplers produce.

All codes write bits MSB first and are *vectorised*: ``encode_*(values)`` returns a
:class:`Bits` holding the concatenated codewords of a whole array, ``decode_*(bits,
count)`` returns the array. Lengths can be computed without building bit strings
(``*_bits`` functions, in JAX or NumPy), and agree exactly with the real lengths.

* Elias gamma (n >= 1): ``floor(log2 n)`` zeros, then n in binary
  (``2 floor(log2 n) + 1`` bits).
* Elias delta (n >= 1): gamma of the bit length ``L + 1`` of n, then the ``L`` low
  bits of n.
* Heap indices of branch and bound (h >= 1, depth ``D = bit length``): the depth in
  Elias gamma, then the ``D - 1`` branch bits -- which is exactly Elias delta of h.
* Fixed width (ORC): ``kappa`` bits.
* Parallel GPRS ``(shard, local index)``: ``ceil(log2 J)`` bits, then Elias gamma.
* Signed integers (dithering): zigzag map to ``0, 1, 2, ...``, plus one, Elias gamma.

Indices are at most ``2^31 - 1``; every codeword fits in 64 bits.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Bits",
    "CodingError",
    "elias_gamma_bits",
    "elias_delta_bits",
    "heap_index_bits",
    "index_bits",
    "encode_gamma",
    "decode_gamma",
    "encode_delta",
    "decode_delta",
    "encode_fixed",
    "decode_fixed",
    "encode_index",
    "decode_index",
]

_MAX = 2**31 - 1
_BLOCK = 1 << 16  # values packed per vectorised block (bounds temporary memory)


class CodingError(ValueError):
    """A value cannot be coded, or a bit string does not hold what was asked for."""


class Bits(NamedTuple):
    """A bit string: ``data`` packed MSB first (zero padded to whole bytes), ``nbits`` long."""

    data: bytes
    nbits: int


# -- lengths (JAX, for use inside jit, and exact) --------------------------------------------


def _floor_log2(n):
    n = jnp.maximum(jnp.asarray(n), 1).astype(jnp.uint32)
    return (31 - jax.lax.clz(n).astype(jnp.int32)).astype(jnp.int32)


def elias_gamma_bits(n):
    """Length of the Elias gamma code of ``n >= 1``: ``2 floor(log2 n) + 1`` bits."""
    return 2 * _floor_log2(n) + 1


def elias_delta_bits(n):
    """Length of the Elias delta code of ``n >= 1``."""
    low = _floor_log2(n)
    return elias_gamma_bits(low + 1) + low


def heap_index_bits(h):
    """Branch-and-bound heap index at depth ``D``: gamma of ``D``, then ``D - 1`` path bits."""
    return elias_delta_bits(h)


def index_bits(method: str, index, *, kappa: int = 16, num_shards: int = 4):
    """Exact bits :func:`encode_index` spends on each index of sampler ``method``."""
    index = jnp.asarray(index)
    if method == "orc":
        return jnp.full(index.shape, kappa, jnp.int32)
    if method == "gprs_parallel":
        return _shard_width(num_shards) + elias_gamma_bits(index[..., 1])
    if method == "gprs_bb":
        return heap_index_bits(index)
    if method in ("pfr", "gprs"):
        return elias_gamma_bits(index)
    if method == "dither":
        return elias_gamma_bits(_zigzag(index) + 1)
    raise CodingError(f"no index code for sampler {method!r}")


def _shard_width(num_shards: int) -> int:
    return int(num_shards - 1).bit_length()


def _zigzag(k):
    k = jnp.asarray(k).astype(jnp.int32)
    return jnp.where(k >= 0, 2 * k, -2 * k - 1).astype(jnp.uint32)


# -- bit packing (NumPy, host side) ----------------------------------------------------------


def _from_bits(bits: np.ndarray) -> Bits:
    return Bits(np.packbits(bits.astype(np.uint8)).tobytes(), int(bits.size))


def _unpack(b: Bits) -> np.ndarray:
    if not isinstance(b, Bits):
        raise CodingError(f"expected Bits, got {type(b).__name__}")
    raw = np.frombuffer(b.data, np.uint8)
    if b.nbits < 0 or raw.size * 8 < b.nbits:
        raise CodingError(f"bit string claims {b.nbits} bits but holds {raw.size * 8}")
    return np.unpackbits(raw)[: b.nbits]


def _pack(values: np.ndarray, widths: np.ndarray) -> Bits:
    """Concatenate the low ``widths[i]`` bits of ``values[i]`` (MSB first)."""
    values = np.asarray(values, np.uint64).ravel()
    widths = np.asarray(widths, np.int64).ravel()
    pieces = []
    for s in range(0, values.size, _BLOCK):
        v, w = values[s:s + _BLOCK], widths[s:s + _BLOCK]
        if v.size == 0:
            continue
        j = np.arange(int(w.max()) if w.size else 0)
        shift = w[:, None] - 1 - j[None, :]
        keep = shift >= 0
        bits = (v[:, None] >> np.maximum(shift, 0).astype(np.uint64)) & np.uint64(1)
        pieces.append(bits[keep].astype(np.uint8))
    return _from_bits(np.concatenate(pieces) if pieces else np.zeros(0, np.uint8))


def _read(bits: np.ndarray, starts: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Read ``widths[i]`` bits at ``starts[i]`` as unsigned integers (vectorised)."""
    out = np.zeros(starts.size, np.uint64)
    for s in range(0, starts.size, _BLOCK):
        st, w = starts[s:s + _BLOCK], widths[s:s + _BLOCK]
        if st.size == 0:
            continue
        j = np.arange(int(w.max()) if w.size else 0)
        pos = st[:, None] + j[None, :]
        keep = j[None, :] < w[:, None]
        b = np.where(keep, bits[np.minimum(pos, bits.size - 1)], 0).astype(np.uint64)
        weights = np.where(keep, w[:, None] - 1 - j[None, :], 0).astype(np.uint64)
        out[s:s + _BLOCK] = np.sum(b << weights, axis=1, dtype=np.uint64)
    return out


def _check_positive(values) -> np.ndarray:
    v = np.asarray(values)
    if v.size and not np.issubdtype(v.dtype, np.integer):
        raise CodingError(f"indices must be integers, got dtype {v.dtype}")
    v = v.astype(np.int64).ravel()
    if v.size and (v.min() < 1 or v.max() > _MAX):
        raise CodingError(f"values must lie in [1, 2^31 - 1], got [{v.min()}, {v.max()}]")
    return v


def _bit_length(v: np.ndarray) -> np.ndarray:
    out = np.zeros(v.shape, np.int64)
    x = v.astype(np.uint64).copy()
    while np.any(x):
        nz = x > 0
        out[nz] += 1
        x >>= np.uint64(1)
    return out


# -- Elias gamma / delta / fixed ---------------------------------------------------------------


def encode_gamma(values) -> Bits:
    """Elias gamma code of each value (>= 1), concatenated."""
    v = _check_positive(values)
    length = _bit_length(v)
    return _pack(v, 2 * length - 1)  # L zeros then the L + 1 bits of v: v in 2L + 1 bits


def _gamma_fields(bl: list, count: int, start: int = 0):
    """Positions and bit lengths of ``count`` gamma codewords starting at bit ``start``.

    ``bl`` is the bit string as a Python list (fast scalar indexing). Returns
    ``(starts, lengths, end)``; raises :class:`CodingError` on a codeword longer than
    any index or running past the end.
    """
    starts = np.empty(count, np.int64)
    lengths = np.empty(count, np.int64)
    p = start
    nb = len(bl)
    for i in range(count):
        q = p
        while q < nb and q - p <= 30 and not bl[q]:
            q += 1
        zeros = q - p
        end = q + zeros + 1
        if zeros > 30 or end > nb:
            raise CodingError(f"corrupt or truncated bit string at codeword {i} of {count} (bit {p})")
        starts[i], lengths[i] = q, zeros + 1
        p = end
    return starts, lengths, p


def _small_int(bl: list, start: int, width: int) -> int:
    v = 0
    for k in range(start, start + width):
        v = (v << 1) | bl[k]
    return v


def decode_gamma(b: Bits, count: int) -> np.ndarray:
    """Decode ``count`` Elias gamma codewords; raises :class:`CodingError` if they are not there."""
    bits = _unpack(b)
    starts, lengths, end = _gamma_fields(bits.tolist(), _count(count))
    _check_end(end, bits.size)
    return _read(bits, starts, lengths).astype(np.int64)


def encode_delta(values) -> Bits:
    """Elias delta code of each value (>= 1), concatenated."""
    v = _check_positive(values)
    n = _bit_length(v)  # L + 1
    low = n - 1
    g = _bit_length(n)
    width = (2 * g - 1) + low
    payload = (n.astype(np.uint64) << low.astype(np.uint64)) | (
        v.astype(np.uint64) & ((np.uint64(1) << low.astype(np.uint64)) - np.uint64(1)))
    return _pack(payload, width)


def decode_delta(b: Bits, count: int) -> np.ndarray:
    """Decode ``count`` Elias delta codewords."""
    bits = _unpack(b)
    bl = bits.tolist()
    count = _count(count)
    starts = np.empty(count, np.int64)
    lows = np.empty(count, np.int64)
    p, nb = 0, len(bl)
    for i in range(count):
        (q,), (ln,), _ = _gamma_fields(bl, 1, p)
        n = _small_int(bl, int(q), int(ln))  # bit length of the value, 1..31
        end = int(q) + int(ln) + n - 1
        if n > 31 or end > nb:
            raise CodingError(f"corrupt or truncated delta codeword {i} of {count} (bit {p})")
        starts[i], lows[i] = int(q) + int(ln), n - 1
        p = end
    _check_end(p, nb)
    low_vals = _read(bits, starts, lows)
    return ((np.uint64(1) << lows.astype(np.uint64)) | low_vals).astype(np.int64)


def encode_fixed(values, width: int) -> Bits:
    """Each value in exactly ``width`` bits (0 <= value < 2^width)."""
    v = np.asarray(values).astype(np.int64).ravel()
    if not 0 <= width <= 32:
        raise CodingError(f"width must be in [0, 32], got {width}")
    if v.size and (v.min() < 0 or v.max() >= 2**width):
        raise CodingError(f"values must lie in [0, 2^{width}), got [{v.min()}, {v.max()}]")
    return _pack(v, np.full(v.size, width))


def decode_fixed(b: Bits, count: int, width: int) -> np.ndarray:
    """Decode ``count`` fixed-width values."""
    bits = _unpack(b)
    count = _count(count)
    if bits.size != count * width:
        raise CodingError(f"expected {count * width} bits for {count} x {width}, got {bits.size}")
    starts = np.arange(count, dtype=np.int64) * width
    return _read(bits, starts, np.full(count, width)).astype(np.int64)


def _count(count) -> int:
    if not isinstance(count, (int, np.integer)) or count < 0:
        raise CodingError(f"count must be a non-negative int, got {count!r}")
    return int(count)


def _check_end(end: int, nbits: int):
    if end != nbits:
        raise CodingError(f"{nbits - end} unexpected trailing bits after the last codeword")


# -- per-sampler index codes -------------------------------------------------------------------


def encode_index(method: str, index, *, kappa: int = 16, num_shards: int = 4) -> Bits:
    """Code an array of indices of sampler ``method`` (its shape is not stored)."""
    idx = np.asarray(index)
    if method == "orc":
        return encode_fixed(idx, kappa)
    if method == "gprs_parallel":
        if idx.ndim < 1 or idx.shape[-1] != 2:
            raise CodingError(f"gprs_parallel indices have a last axis (shard, index), got {idx.shape}")
        idx = idx.reshape(-1, 2)
        w = _shard_width(num_shards)
        if idx.size and (idx[:, 0].min() < 0 or idx[:, 0].max() >= num_shards):
            raise CodingError(f"shard ids must lie in [0, {num_shards})")
        local = _check_positive(idx[:, 1])
        lb = _bit_length(local)
        payload = (idx[:, 0].astype(np.uint64) << (2 * lb - 1).astype(np.uint64)) | local.astype(np.uint64)
        return _pack(payload, w + 2 * lb - 1)
    if method == "gprs_bb":
        return encode_delta(idx)
    if method in ("pfr", "gprs"):
        return encode_gamma(idx)
    if method == "dither":
        return encode_gamma(np.asarray(_zigzag(idx), np.int64) + 1)
    raise CodingError(f"no index code for sampler {method!r}")


def decode_index(method: str, b: Bits, count: int, *, kappa: int = 16, num_shards: int = 4) -> np.ndarray:
    """Decode ``count`` indices of sampler ``method`` (int32; ``(count, 2)`` for gprs_parallel)."""
    if method == "orc":
        out = decode_fixed(b, count, kappa)
    elif method == "gprs_parallel":
        bits = _unpack(b)
        bl = bits.tolist()
        count = _count(count)
        w = _shard_width(num_shards)
        shards = np.empty(count, np.int64)
        starts = np.empty(count, np.int64)
        lengths = np.empty(count, np.int64)
        p = 0
        for i in range(count):
            if p + w > len(bl):
                raise CodingError(f"truncated bit string at index {i} of {count}")
            shards[i] = _small_int(bl, p, w)
            st, ln, p = _gamma_fields(bl, 1, p + w)
            starts[i], lengths[i] = st[0], ln[0]
        _check_end(p, bits.size)
        if count and shards.max() >= num_shards:
            raise CodingError(f"shard id {shards.max()} >= num_shards={num_shards}")
        out = np.stack([shards, _read(bits, starts, lengths).astype(np.int64)], axis=-1)
    elif method == "gprs_bb":
        out = decode_delta(b, count)
    elif method in ("pfr", "gprs"):
        out = decode_gamma(b, count)
    elif method == "dither":
        z = decode_gamma(b, count) - 1
        out = np.where(z % 2 == 0, z // 2, -(z + 1) // 2)
    else:
        raise CodingError(f"no index code for sampler {method!r}")
    if out.size and (out.max() > _MAX or out.min() < -_MAX):
        raise CodingError("decoded index out of the int32 range")
    return out.astype(np.int32)
