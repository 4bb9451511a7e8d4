"""Index codes: turning the indices samplers produce into bits, and back.

Codes (``code=``), all vectorised over an array of indices and written MSB first:

* ``"gamma"`` -- Elias gamma of ``n >= 1``: ``floor(log2 n)`` zeros, then ``n`` in
  binary (``2 floor(log2 n) + 1`` bits).
* ``"delta"`` -- Elias delta of ``n >= 1``: gamma of the bit length ``L + 1`` of ``n``,
  then its ``L`` low bits. For the heap index of branch and bound (depth = bit length)
  this *is* "depth in gamma, then the branch bits".
* ``"zeta"`` -- an entropy code of ``n`` under the Zeta law
  ``P(n = k) ∝ k^-alpha`` with ``alpha = 1 + 1 / budget``, where ``budget`` is a bound
  on ``E[log2 N]`` both sides know (e.g. the KL budget of the problem, in bits). If
  ``E[log2 N] <= budget`` the expected length is at most
  ``budget + log2(budget + 1) + 1`` bits (Li & El Gamal, IEEE Trans. IT 2018, Prop. 1:
  ``alpha E[log2 N] + log2 zeta(alpha)`` with ``zeta(s) <= s / (s - 1)``). Coded with
  the ANS coder of `constriction <https://bamler-lab.github.io/constriction/>`_.
* ``"fixed"`` -- ``kappa`` bits per index (ORC's ``[0, 2^kappa)`` indices).

How each sampler's index becomes codeable values (``Sampler.index_kind`` in the
registry): ``"positive"`` (candidate numbers and heap indices ``>= 1``) are coded as
they are; ``"shard"`` (parallel GPRS ``(shard, local)``) puts all shard ids first in
``ceil(log2 J)`` bits each, then the local indices; ``"signed"`` (dithering) maps
``k -> zigzag(k) + 1``; ``"fixed"`` (ORC) uses the fixed-width code. A bit string holds
the fixed-width fields of all indices, then (byte aligned when the value code is
``"zeta"``) the codes of all values.

The Zeta code's alphabet: ``k < 256`` are symbols of their own; a larger ``k`` with bit
length ``L + 1`` is the symbol ``(L, top 8 bits after the leading one)`` followed by its
``L - 8`` remaining bits, coded uniformly (the Zeta law is flat within such a
sub-bucket to 1 part in 256, which costs < 1e-5 bits). Symbol probabilities are
computed in exact decimal arithmetic (Python's ``decimal``; no platform ``libm``),
rounded to integer weights summing to ``2^24`` and handed to constriction as integers
its quantiser reproduces exactly, so encoder and decoder use the same table on every
machine; the budget is quantised to 1/16 bit.

Lengths: :func:`index_bits` computes the length of each index's code in JAX (usable
under ``jit``): exact for the prefix codes, the information content ``-log2 p`` plus
the raw bits for ``"zeta"`` (an ANS stream is their sum plus 32 to 64 bits).

Indices are at most ``2^31 - 1``; every prefix codeword fits in 64 bits.
"""

from __future__ import annotations

import decimal
import functools
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from jrec.core import CodingError, bit_length
from jrec.registry import get

__all__ = [
    "kind_and_code",
    "shard_width",
    "Bits",
    "CodingError",
    "CODES",
    "default_code",
    "elias_gamma_bits",
    "elias_delta_bits",
    "zeta_bits",
    "index_bits",
    "encode_gamma",
    "decode_gamma",
    "encode_delta",
    "decode_delta",
    "encode_zeta",
    "decode_zeta",
    "zeta_max_count",
    "zeta_budget",
    "encode_fixed",
    "decode_fixed",
    "encode_index",
    "decode_index",
    "quantise_budget",
]

CODES = ("gamma", "delta", "zeta", "fixed")
_MAX = 2**31 - 1
_BLOCK = 1 << 16  # values packed per vectorised block (bounds temporary memory)
_ZM = 8  # Zeta alphabet: mantissa bits per bucket
_ZSYM = (1 << _ZM) - 1 + (31 - _ZM) * (1 << _ZM)  # 6143 symbols
_PREC = 24  # constriction's default fixed-point precision (AnsCoder / Categorical)
_LO = 12  # raw bits per uniform piece (constriction's Uniform takes sizes < 2^24)
# The ANS state starts at 2^32 (words [0, 1]) rather than 0: from state 0, symbol 0 would
# be free for ever, so a stream could hold unboundedly many indices in no bits; from a
# normalised state every index costs at least its information content (so a header's
# count is bounded by the payload size), for ~40 bits per stream.
_SEED = np.array([0, 1], np.uint32)
BUDGET_STEP = 16  # budgets are multiples of 1/16 bit
MAX_BUDGET_Q = 16383  # budget < 1024 bits (the header stores round(16 budget) in <= 2 bytes)


class Bits(NamedTuple):
    """A bit string: ``data`` packed MSB first (zero padded to whole bytes), ``nbits`` long."""

    data: bytes
    nbits: int


# -- lengths (JAX, for use inside jit) ------------------------------------------------------


def elias_gamma_bits(n):
    """Length of the Elias gamma code of ``n >= 1``: ``2 floor(log2 n) + 1`` bits."""
    return 2 * bit_length(jnp.maximum(jnp.asarray(n), 1)) - 1


def elias_delta_bits(n):
    """Length of the Elias delta code of ``n >= 1``."""
    low = bit_length(jnp.maximum(jnp.asarray(n), 1)) - 1
    return elias_gamma_bits(low + 1) + low


def zeta_bits(n, budget: float):
    """Information content (bits) of ``n >= 1`` under the quantised Zeta model of ``budget``."""
    table = jnp.asarray(_zeta_model(quantise_budget(budget)).neglog2, jnp.float32)
    n = jnp.maximum(jnp.asarray(n).astype(jnp.int32), 1)
    low = bit_length(n) - 1
    shift = jnp.maximum(low - _ZM, 0)
    top = n >> shift
    sym = jnp.where(low < _ZM, n - 1, (1 << _ZM) - 1 + (low - _ZM) * (1 << _ZM) + top - (1 << _ZM))
    return table[sym] + shift.astype(jnp.float32)


def default_code(method: str) -> str:
    """The code :func:`encode_index` uses for ``method`` when none is given."""
    return _sampler(method).default_code


def index_bits(method: str, index, *, code: str | None = None, budget: float | None = None,
               kappa: int = 16, num_shards: int = 4):
    """Bits :func:`encode_index` spends on each index of sampler ``method`` (JAX).

    Exact (int32) for the prefix codes; for ``"zeta"`` the information content (float32),
    whose sum the real ANS stream matches to within a few bits.
    """
    kind, code = kind_and_code(method, code)
    index = jnp.asarray(index)
    if kind == "fixed":
        return jnp.full(index.shape, kappa, jnp.int32)
    fixed = 0
    if kind == "shard":
        fixed, index = shard_width(num_shards), index[..., 1]
    elif kind == "signed":
        index = _zigzag(index).astype(jnp.int32) + 1
    if code == "gamma":
        return fixed + elias_gamma_bits(index)
    if code == "delta":
        return fixed + elias_delta_bits(index)
    return fixed + zeta_bits(index, _need_budget(budget))


def shard_width(num_shards: int) -> int:
    """Bits of the shard id of a parallel-GPRS index (``ceil(log2 num_shards)``)."""
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


def _concat(a: Bits, b: Bits) -> Bits:
    return _from_bits(np.concatenate([_unpack(a), _unpack(b)]))


def _pack(values: np.ndarray, widths: np.ndarray) -> Bits:
    """Concatenate the low ``widths[i]`` bits of ``values[i]`` (MSB first)."""
    values = np.asarray(values, np.uint64).ravel()
    widths = np.asarray(widths, np.int64).ravel()
    pieces = []
    for s in range(0, values.size, _BLOCK):
        v, w = values[s:s + _BLOCK], widths[s:s + _BLOCK]
        j = np.arange(int(w.max()))
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
        j = np.arange(int(w.max()))
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
    """Bit lengths of non-negative integers < 2^53 (exact via the float exponent)."""
    return np.frexp(np.asarray(v, np.float64))[1].astype(np.int64)


def _count(count) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise CodingError(f"count must be a non-negative int, got {count!r}")
    return int(count)


def _check_end(bits: np.ndarray, end: int, padded: bool):
    """All bits consumed -- or, for byte-padded strings, only < 8 zero bits left."""
    rest = bits.size - end
    if rest == 0 or (padded and rest < 8 and not bits[end:].any()):
        return
    raise CodingError(f"{rest} unexpected trailing bits after the last codeword")


# -- Elias gamma / delta / fixed ---------------------------------------------------------------


def encode_gamma(values) -> Bits:
    """Elias gamma code of each value (>= 1), concatenated."""
    v = _check_positive(values)
    return _pack(v, 2 * _bit_length(v) - 1)  # L zeros then the L + 1 bits of v


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


def _decode_gamma(bits: np.ndarray, count: int, start: int = 0):
    starts, lengths, end = _gamma_fields(bits.tolist(), count, start)
    return _read(bits, starts, lengths).astype(np.int64), end


def decode_gamma(b: Bits, count: int, *, padded: bool = False) -> np.ndarray:
    """Decode ``count`` Elias gamma codewords; raises :class:`CodingError` if they are not there."""
    bits = _unpack(b)
    out, end = _decode_gamma(bits, _count(count))
    _check_end(bits, end, padded)
    return out


def encode_delta(values) -> Bits:
    """Elias delta code of each value (>= 1), concatenated."""
    v = _check_positive(values)
    n = _bit_length(v)  # L + 1
    low = n - 1
    width = (2 * _bit_length(n) - 1) + low
    payload = (n.astype(np.uint64) << low.astype(np.uint64)) | (
        v.astype(np.uint64) & ((np.uint64(1) << low.astype(np.uint64)) - np.uint64(1)))
    return _pack(payload, width)


def _decode_delta(bits: np.ndarray, count: int, start: int = 0):
    bl = bits.tolist()
    starts = np.empty(count, np.int64)
    lows = np.empty(count, np.int64)
    p, nb = start, len(bl)
    for i in range(count):
        (q,), (ln,), _ = _gamma_fields(bl, 1, p)
        n = _small_int(bl, int(q), int(ln))  # bit length of the value, 1..31
        end = int(q) + int(ln) + n - 1
        if n > 31 or end > nb:
            raise CodingError(f"corrupt or truncated delta codeword {i} of {count} (bit {p})")
        starts[i], lows[i] = int(q) + int(ln), n - 1
        p = end
    low_vals = _read(bits, starts, lows)
    return ((np.uint64(1) << lows.astype(np.uint64)) | low_vals).astype(np.int64), p


def decode_delta(b: Bits, count: int, *, padded: bool = False) -> np.ndarray:
    """Decode ``count`` Elias delta codewords."""
    bits = _unpack(b)
    out, end = _decode_delta(bits, _count(count))
    _check_end(bits, end, padded)
    return out


def encode_fixed(values, width: int) -> Bits:
    """Each value in exactly ``width`` bits (0 <= value < 2^width)."""
    v = np.asarray(values)
    if v.size and not np.issubdtype(v.dtype, np.integer):
        raise CodingError(f"indices must be integers, got dtype {v.dtype}")
    v = v.astype(np.int64).ravel()
    if not 0 <= width <= 32:
        raise CodingError(f"width must be in [0, 32], got {width}")
    if v.size and (v.min() < 0 or v.max() >= 2**width):
        raise CodingError(f"values must lie in [0, 2^{width}), got [{v.min()}, {v.max()}]")
    return _pack(v, np.full(v.size, width))


def _decode_fixed(bits: np.ndarray, count: int, width: int, start: int = 0):
    end = start + count * width
    if end > bits.size:
        raise CodingError(f"truncated: {count} x {width}-bit fields need {end - start} bits, "
                          f"{bits.size - start} left")
    starts = start + np.arange(count, dtype=np.int64) * width
    return _read(bits, starts, np.full(count, width)).astype(np.int64), end


def decode_fixed(b: Bits, count: int, width: int, *, padded: bool = False) -> np.ndarray:
    """Decode ``count`` fixed-width values."""
    bits = _unpack(b)
    count = _count(count)
    if not padded and bits.size != count * width:
        raise CodingError(f"expected {count * width} bits for {count} x {width}, got {bits.size}")
    out, end = _decode_fixed(bits, count, width)
    _check_end(bits, end, padded)
    return out


# -- Zeta code (constriction ANS) ----------------------------------------------------------------


class _ZetaModel(NamedTuple):
    weights: np.ndarray  # int64, >= 1, sum 2^24 (the quantised probabilities * 2^24)
    neglog2: np.ndarray  # float64 -log2(weights / 2^24)


def quantise_budget(budget: float) -> int:
    """The Zeta code's budget in sixteenths of a bit (what the container stores)."""
    try:
        q = round(float(budget) * BUDGET_STEP)
    except (TypeError, ValueError, OverflowError):
        raise CodingError(f"zeta budget must be a number of bits, got {budget!r}") from None
    if not 1 <= q <= MAX_BUDGET_Q:
        raise CodingError(f"zeta budget must lie in [1/16, {MAX_BUDGET_Q / BUDGET_STEP}] bits, "
                          f"got {budget!r}")
    return q


def _need_budget(budget):
    if budget is None:
        raise CodingError("the zeta code needs budget= (a bound on E[log2 N] in bits, e.g. the KL)")
    return budget


@functools.lru_cache(maxsize=32)
def _zeta_model(q: int) -> _ZetaModel:
    """Quantised Zeta(1 + 16/q) table over the 6143 symbols, in exact decimal arithmetic."""
    ctx = decimal.Context(prec=34)
    D = decimal.Decimal
    a1 = ctx.divide(D(BUDGET_STEP), D(q))  # alpha - 1 = 1 / budget
    alpha = 1 + a1

    def power(k):  # k^-alpha
        return ctx.exp(ctx.minus(alpha * ctx.ln(D(k))))

    def tail(a):  # sum_{k >= a} k^-alpha by Euler-Maclaurin (a >= 256: error < 1e-25 relative)
        pa, da = power(a), D(a)
        return (ctx.divide(pa * da, a1) + pa / 2 + ctx.divide(alpha * pa, 12 * da)
                - ctx.divide(alpha * (alpha + 1) * (alpha + 2) * pa, 720 * da ** 3))

    masses = [power(k) for k in range(1, 1 << _ZM)]
    tails = {}
    for low in range(_ZM, 31):
        width = 1 << (low - _ZM)
        for top in range(1 << _ZM, 1 << (_ZM + 1)):
            a, b = top * width, min((top + 1) * width, _MAX + 1)
            if width == 1:
                masses.append(power(a))
                continue
            for x in (a, b):
                if x not in tails:
                    tails[x] = tail(x)
            masses.append(tails[a] - tails[b])
    total = sum(masses, D(0))
    free = (1 << _PREC) - len(masses)
    raw = [ctx.divide(m * free, total) for m in masses]
    floor = [int(r) for r in raw]  # largest remainder rounding, ties to the lower symbol
    order = sorted(range(len(raw)), key=lambda i: (raw[i] - floor[i], -i), reverse=True)
    for i in order[: free - sum(floor)]:
        floor[i] += 1
    w = np.asarray(floor, np.int64) + 1
    assert w.size == _ZSYM and int(w.sum()) == 1 << _PREC
    return _ZetaModel(w, _PREC - np.log2(w.astype(np.float64)))


@functools.lru_cache(maxsize=32)
def _zeta_categorical(q: int):
    import constriction

    # constriction's fast quantiser gives symbol i the weight floor(c_{i+1} s) - floor(c_i s)
    # + 1 with s = (2^24 - n) / sum(p): integer p_i = w_i - 1 make s = 1 and reproduce w.
    w = _zeta_model(q).weights
    return constriction.stream.model.Categorical((w - 1).astype(np.float64), perfect=False)


def _zeta_split(v: np.ndarray):
    """Value ``k >= 1`` -> (symbol, raw low bits, number of raw bits)."""
    low = _bit_length(v) - 1
    shift = np.maximum(low - _ZM, 0)
    top = v >> shift
    sym = np.where(low < _ZM, v - 1, (1 << _ZM) - 1 + (low - _ZM) * (1 << _ZM) + top - (1 << _ZM))
    return sym, v & ((np.int64(1) << shift) - 1), shift


def encode_zeta(values, budget: float) -> Bits:
    """Zeta code of each value (>= 1): one ANS stream of 32-bit words (little endian)."""
    import constriction

    q = quantise_budget(budget)
    v = _check_positive(values)
    sym, raw, shift = _zeta_split(v)
    uniform = constriction.stream.model.Uniform()
    coder = constriction.stream.stack.AnsCoder(_SEED)
    hi = shift > _LO  # pieces decoded in the order: symbols, low pieces, high pieces
    coder.encode_reverse((raw[hi] >> _LO).astype(np.int32), uniform,
                         (np.int64(1) << (shift[hi] - _LO)).astype(np.int32))
    lo = shift > 0
    coder.encode_reverse((raw[lo] & ((1 << _LO) - 1)).astype(np.int32), uniform,
                         (np.int64(1) << np.minimum(shift[lo], _LO)).astype(np.int32))
    coder.encode_reverse(sym.astype(np.int32), _zeta_categorical(q))
    words = coder.get_compressed().astype("<u4")
    return Bits(words.tobytes(), 32 * words.size)


def _decode_zeta_words(data: bytes, count: int, q: int) -> np.ndarray:
    import constriction

    if len(data) % 4:
        raise CodingError(f"a zeta stream is whole 32-bit words; got {len(data)} bytes")
    words = np.frombuffer(data, "<u4").astype(np.uint32)
    uniform = constriction.stream.model.Uniform()
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        sym = coder.decode(_zeta_categorical(q), count).astype(np.int64)
        small = sym < (1 << _ZM) - 1
        j = np.where(small, 0, sym - ((1 << _ZM) - 1))
        shift = np.where(small, 0, j >> _ZM)
        top = (1 << _ZM) + (j & ((1 << _ZM) - 1))
        lo, hi = shift > 0, shift > _LO
        raw = np.zeros(count, np.int64)
        raw[lo] = coder.decode(uniform, (np.int64(1) << np.minimum(shift[lo], _LO)).astype(np.int32))
        raw[hi] |= coder.decode(uniform, (np.int64(1) << (shift[hi] - _LO)).astype(np.int32)).astype(
            np.int64) << _LO
        rest = coder.get_compressed()
    except CodingError:
        raise
    except Exception as e:  # constriction rejects malformed word streams
        raise CodingError(f"corrupt zeta stream: {e}") from None
    if rest.size != _SEED.size or (rest != _SEED).any():
        raise CodingError("corrupt zeta stream: it does not end where the last index does")
    return np.where(small, sym + 1, (top << shift) | raw)


def zeta_budget(kl_bits: float) -> float:
    """A Zeta budget for the indices of the global samplers (``pfr``, ``gprs``) at this KL.

    ``max(KL, 1/2)`` bits: their ``E[log2 N]`` is below the KL from about half a bit up,
    but 0.2--0.4 bits at KL 0.1--0.3 (``benchmarks/codelength.py``), and a budget below
    ``E[log2 N]`` makes the Zeta law too steep (``alpha = 1 + 1/budget``).
    """
    return max(float(kl_bits), 0.5)


def zeta_max_count(nbits: int, budget: float) -> int:
    """At most this many indices fit in a Zeta stream of ``nbits`` bits (each costs >= min -log2 p)."""
    min_info = float(_zeta_model(quantise_budget(budget)).neglog2.min())
    return int(max(nbits - 32, 0) / min_info) + 1


def decode_zeta(b: Bits, count: int, budget: float) -> np.ndarray:
    """Decode ``count`` Zeta-coded values (``budget`` as when encoding)."""
    _unpack(b)
    if b.nbits != 8 * len(b.data):
        raise CodingError("a zeta stream is whole 32-bit words")
    return _decode_zeta_words(bytes(b.data), _count(count), quantise_budget(budget))


# -- per-sampler index codes -------------------------------------------------------------------


def _sampler(method: str):
    try:
        return get(method)
    except KeyError as e:
        raise CodingError(f"no index code for sampler {method!r}: {e}") from None


def kind_and_code(method: str, code: str | None):
    """``(index kind, code)`` of sampler ``method``'s indices under ``code`` (``None``: its
    default); raises :class:`~jrec.core.CodingError` for a code its indices cannot take."""
    s = _sampler(method)
    code = s.default_code if code is None else code
    allowed = ("fixed",) if s.index_kind == "fixed" else ("gamma", "delta", "zeta")
    if code not in allowed:
        raise CodingError(f"{method}: code must be one of {allowed}, got {code!r}")
    return s.index_kind, code


def _encode_values(code: str, values: np.ndarray, budget) -> Bits:
    if code == "gamma":
        return encode_gamma(values)
    if code == "delta":
        return encode_delta(values)
    return encode_zeta(values, _need_budget(budget))


def encode_index(method: str, index, *, code: str | None = None, budget: float | None = None,
                 kappa: int = 16, num_shards: int = 4) -> Bits:
    """Code an array of indices of sampler ``method`` (its shape is not stored).

    Args:
      method: registry name; its ``index_kind`` says how indices become values.
      index: integer array of indices (last axis ``(shard, local)`` for parallel GPRS).
      code: ``"gamma"``, ``"delta"``, ``"zeta"`` or ``"fixed"``; default
        :func:`default_code`.
      budget: the Zeta code's bound on ``E[log2 N]`` in bits (multiples of 1/16).
      kappa: ORC's index width. num_shards: parallel GPRS's ``J``.

    Raises:
      CodingError: values outside what the sampler produces, or a bad code/option.
    """
    kind, code = kind_and_code(method, code)
    idx = np.asarray(index)
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise CodingError(f"indices must be integers, got dtype {idx.dtype}")
    idx = idx.astype(np.int64)
    if kind == "fixed":
        return encode_fixed(idx, kappa)
    if kind == "signed":
        if idx.size and (idx.min() <= -(2**30) or idx.max() >= 2**30):
            raise CodingError("dither indices must lie in (-2^30, 2^30)")
        return _encode_values(code, np.asarray(_zigzag(idx.ravel()), np.int64) + 1, budget)
    if kind == "shard":
        if idx.ndim < 1 or idx.shape[-1] != 2:
            raise CodingError(f"{method} indices have a last axis (shard, index), got {idx.shape}")
        idx = idx.reshape(-1, 2)
        if not 1 <= num_shards <= 2**16:
            raise CodingError(f"num_shards must lie in [1, 2^16], got {num_shards}")
        if idx.size and (idx[:, 0].min() < 0 or idx[:, 0].max() >= num_shards):
            raise CodingError(f"shard ids must lie in [0, {num_shards})")
        shards = encode_fixed(idx[:, 0], shard_width(num_shards))
        values = _encode_values(code, idx[:, 1], budget)
        if code == "zeta":  # byte-align the ANS words
            shards = Bits(shards.data, 8 * len(shards.data))
        return _concat(shards, values)
    return _encode_values(code, idx.ravel(), budget)


def decode_index(method: str, b: Bits, count: int, *, code: str | None = None,
                 budget: float | None = None, kappa: int = 16, num_shards: int = 4,
                 padded: bool = False) -> np.ndarray:
    """Decode ``count`` indices of sampler ``method`` (int32; ``(count, 2)`` for parallel GPRS).

    ``padded``: the bit string may end in up to 7 zero bits (whole bytes, as in a file).
    Raises :class:`CodingError` if the bits do not hold exactly ``count`` indices.
    """
    kind, code = kind_and_code(method, code)
    bits = _unpack(b)
    count = _count(count)
    start = 0
    if kind == "fixed":
        out, end = _decode_fixed(bits, count, kappa)
        _check_end(bits, end, padded)
        return out.astype(np.int32)
    if kind == "shard":
        if not 1 <= num_shards <= 2**16:
            raise CodingError(f"num_shards must lie in [1, 2^16], got {num_shards}")
        shards, start = _decode_fixed(bits, count, shard_width(num_shards))
        if count and shards.max() >= num_shards:
            raise CodingError(f"shard id {shards.max()} >= num_shards={num_shards}")
    if code == "zeta":
        aligned = -(-start // 8) * 8
        if aligned > bits.size or bits[start:aligned].any() or b.nbits != 8 * len(b.data):
            raise CodingError("corrupt or truncated bit string before the zeta stream")
        start = aligned
        vals = _decode_zeta_words(bytes(b.data[start // 8:]), count, quantise_budget(_need_budget(budget)))
    else:
        vals, end = (_decode_gamma if code == "gamma" else _decode_delta)(bits, count, start)
        _check_end(bits, end, padded)
    if count and vals.max() > _MAX:
        raise CodingError("decoded index out of the int32 range")
    if kind == "signed":
        z = vals - 1
        vals = np.where(z % 2 == 0, z // 2, -(z + 1) // 2)
        if count and (vals.min() <= -(2**30) or vals.max() >= 2**30):
            raise CodingError("decoded dither index outside (-2^30, 2^30)")
    if kind == "shard":
        vals = np.stack([shards, vals], axis=-1).reshape(count, 2)
    return vals.astype(np.int32)
