"""The ``.jrec`` container: coded indices as bytes another process can decode.

A file holds the indices of one sampler (one array, or several), coded with one
index code of :mod:`jrec.coding`, together with what a decoder must agree on: the
sampler and the options that shape its indices, a fingerprint of the shared PRNG
key(s) and a fingerprint of the proposal / model (and of the sampler options that
change samples, such as dithering's ``step``). A decoder holding a different key,
proposal, model or options gets a specific error instead of wrong samples; damaged
bytes are caught by a CRC32.

Format, version 1 (all multi-byte integers are unsigned LEB128 varints unless sized)::

    offset  size  field
    0       2     magic b"JR"
    2       1     version << 4 | flags       version = 1; flag bit 0: metadata present,
                                             bit 1: several index arrays; bits 2-3 are 0
    3       1     sampler id << 3 | code id  sampler: its declared ``container_id``
                                             (:data:`SAMPLER_IDS`; never reused);
                                             code: 0 gamma, 1 delta, 2 zeta, 3 fixed
    4       v     options, in this order, each only where it applies:
                  kappa (orc, astar_dl), num_shards (gprs_parallel), round(16 budget) (zeta code)
    .       4     key fingerprint    (BLAKE2b, 4 bytes, of the key data and key shape)
    .       4     model fingerprint  (BLAKE2b, 4 bytes, of the sampler name, the proposal's
                                      family, dtype, shape and parameter bytes, the
                                      model bytes given by the caller, and the
                                      sample-changing options)
    .       v     number of arrays (>= 2), only with flag bit 1
    .       per array: 1 byte ndim (<= 8), ndim varints (the dimensions)
    .       v     metadata length, then the metadata bytes, only with flag bit 0
    .       ...   payload: the index code (jrec.coding) of all arrays' indices, in order
                  and in C order, zero padded to whole bytes
    end-4   4     CRC32 (zlib) of all preceding bytes, little endian

A single 1-D array of fewer than 16,384 indices has a 15- or 16-byte header (17 with
the Zeta code at a budget of 8 bits or more), plus the 4-byte CRC.

Errors (all :class:`~jrec.core.BitstreamError`, a ``ValueError``): :class:`NotAJrecFileError`
(magic), :class:`UnsupportedVersionError` (a future format), :class:`TruncatedError`,
:class:`ChecksumError` (flipped bits), :class:`HeaderError` (unknown ids, absurd shapes
or counts -- checked against the payload size before anything is allocated),
:class:`KeyMismatchError`, :class:`ModelMismatchError`, and
:class:`~jrec.core.CodingError` (a payload that does not hold the indices).
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import tempfile
import zlib
from typing import NamedTuple

import distrax
import numpy as np

from jrec import api, coding, dists
from jrec.core import BitstreamError, Code, CodingError, NonTerminationError
from jrec.ratio import as_factorised
from jrec.registry import by_container_id, get

__all__ = [
    "CodeFile",
    "Header",
    "to_bytes",
    "from_bytes",
    "save_code",
    "load_code",
    "read_header",
    "decode_payload",
    "key_fingerprint",
    "model_fingerprint",
    "BitstreamError",
    "NotAJrecFileError",
    "UnsupportedVersionError",
    "CorruptDataError",
    "TruncatedError",
    "ChecksumError",
    "HeaderError",
    "KeyMismatchError",
    "ModelMismatchError",
    "CodingError",
]

MAGIC = b"JR"
VERSION = 1
#: Sampler names by header id (each sampler declares its ``container_id``; ``None``: unused).
SAMPLER_IDS = tuple(getattr(by_container_id(i), "name", None) for i in range(32))
CODE_IDS = ("gamma", "delta", "zeta", "fixed")
MAX_NDIM = 8
MAX_ARRAYS = 1 << 16
MAX_ELEMENTS = 1 << 28
_HEADER_OPTIONS = ("kappa", "num_shards")  # stored in the header (they shape the payload)
_UNFINGERPRINTED = ("max_steps", "chunk_size")  # change speed / bounds, never a decoded sample
_F_META, _F_MULTI = 1, 2


class NotAJrecFileError(BitstreamError):
    """The bytes do not start with the ``.jrec`` magic."""


class UnsupportedVersionError(BitstreamError):
    """The file uses a format version this jrec does not know (written by a newer one)."""


class CorruptDataError(BitstreamError):
    """The bytes were damaged: cut short, bits flipped, or data appended."""


class TruncatedError(CorruptDataError):
    """The bytes end before the header, or before the payload the header announces."""


class ChecksumError(CorruptDataError):
    """The CRC32 does not match: bits were flipped, or the file was cut or extended."""


class HeaderError(BitstreamError):
    """The header is malformed: unknown sampler or code, bad options, absurd shapes or counts."""


class KeyMismatchError(BitstreamError):
    """The decoder's key is not the key the file was encoded with."""


class ModelMismatchError(BitstreamError):
    """The decoder's proposal, model, sampler or options differ from the encoder's."""


class Header(NamedTuple):
    """What a ``.jrec`` header says (see the module docstring)."""

    version: int
    method: str
    code: str
    options: dict  # header options: kappa / num_shards, where they apply
    budget: float | None  # the Zeta code's budget in bits
    key_fingerprint: bytes
    model_fingerprint: bytes
    shapes: tuple  # one shape per index array
    meta: bytes
    header_size: int  # bytes before the payload


class CodeFile(NamedTuple):
    """A decoded ``.jrec`` file whose key and model fingerprints matched the caller's.

    Attributes:
      method: the sampler.
      index: int32 index array (a tuple of arrays if the file holds several).
      options: the sampler options to decode with (header options and the caller's).
      code: the index code used. budget: the Zeta code's budget, else ``None``.
      meta: the application's metadata bytes.
    """

    method: str
    index: object
    options: dict
    code: str
    budget: float | None
    meta: bytes

    def samples(self, key, proposal):
        """``jrec.decode`` of the indices: the samples the encoder selected."""
        if not isinstance(self.index, np.ndarray):
            raise ValueError("samples() decodes a single-array file; call jrec.decode per array")
        return api.decode(key, self.index.astype(np.int32), proposal, method=self.method, **self.options)


# -- fingerprints ------------------------------------------------------------------------------


def _array_bytes(x) -> bytes:
    a = np.asarray(x)
    if a.dtype.kind not in "biufc":
        raise TypeError(f"cannot fingerprint an array of dtype {a.dtype}")
    a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<")))
    return f"{a.dtype.str}{a.shape}".encode() + a.tobytes()


def _canon(obj, out: list):
    """Append a canonical byte description of ``obj`` (proposal, options, model) to ``out``."""
    if obj is None:
        out.append(b"N")
    elif isinstance(obj, (bytes, bytearray)):
        out += [b"B%d:" % len(obj), bytes(obj)]
    elif isinstance(obj, str):
        b = obj.encode()
        out += [b"S%d:" % len(b), b]
    elif isinstance(obj, (bool, np.bool_)):
        out.append(b"T" if obj else b"F")
    elif isinstance(obj, (int, np.integer)):
        out += [b"I", _array_bytes(np.int64(obj))]
    elif isinstance(obj, (float, np.floating)):
        out += [b"R", _array_bytes(np.float64(obj))]
    elif isinstance(obj, dict):
        out.append(b"D%d:" % len(obj))
        for k in sorted(obj, key=str):
            _canon(str(k), out)
            _canon(obj[k], out)
    elif isinstance(obj, (list, tuple)):
        out.append(b"L%d:" % len(obj))
        for x in obj:
            _canon(x, out)
    elif isinstance(obj, distrax.Distribution):
        d = as_factorised(obj)[0]
        names = dists.FAMILIES.get(type(d))
        if names is None:
            raise TypeError(f"cannot fingerprint a {type(d).__name__} proposal; pass model= bytes "
                            "that identify it")
        _canon(type(d).__name__, out)
        shape = tuple(d.batch_shape)
        for n in names:
            _canon(np.broadcast_to(np.asarray(getattr(d, n)), shape), out)
    elif hasattr(obj, "shape") and hasattr(obj, "dtype"):
        out += [b"A", _array_bytes(obj)]
    else:
        raise TypeError(f"cannot fingerprint {type(obj).__name__}; pass model= as bytes or arrays")


def _digest(*parts) -> bytes:
    out: list = []
    for p in parts:
        _canon(p, out)
    return hashlib.blake2b(b"".join(out), digest_size=4).digest()


def key_fingerprint(key) -> bytes:
    """4-byte fingerprint of a (batch of) PRNG key(s), typed or raw ``uint32``."""
    import jax

    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    key = np.asarray(key)
    if key.dtype != np.uint32:
        raise TypeError(f"key must be a PRNG key or uint32 key data, got dtype {key.dtype}")
    return _digest("key", key)


def _sample_options(method: str, options: dict) -> dict:
    defaults = get(method).options
    merged = {**defaults, **options}
    return {k: v for k, v in merged.items() if k not in _HEADER_OPTIONS + _UNFINGERPRINTED}


def model_fingerprint(method: str, proposal, model=None, **options) -> bytes:
    """4-byte fingerprint of what must match between encoder and decoder besides the key."""
    return _digest("model", method, proposal, model, _sample_options(method, options))


# -- varints -----------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    if n < 0 or n >= 1 << 35:
        raise ValueError(f"varint out of range: {n}")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes, end: int):
        self.data, self.pos, self.end = data, 0, end

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise TruncatedError(f"the data ends inside the header ({what}) after {self.end} bytes")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def varint(self, what: str, limit: int) -> int:
        n = shift = 0
        for _ in range(5):
            (b,) = self.take(1, what)
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if n > limit:
                    raise HeaderError(f"{what} = {n} exceeds the limit {limit}")
                return n
        raise HeaderError(f"{what}: varint longer than 5 bytes")


# -- writing ------------------------------------------------------------------------------------


def _as_arrays(index):
    if isinstance(index, Code):
        index = [index]
    multi = isinstance(index, (list, tuple))
    arrays = []
    for x in (index if multi else [index]):
        if isinstance(x, Code):
            ok = np.asarray(x.ok)
            if not ok.all():
                raise NonTerminationError(
                    f"refusing to save codes with ok=False ({int((~ok).sum())} of {ok.size}): "
                    "their samples are not exact draws from the target")
            x = x.index
        a = np.asarray(x)
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise CodingError(f"indices must be integers, got dtype {a.dtype}")
        arrays.append(a.astype(np.int64))
    return arrays, multi and len(arrays) != 1


def _check_shape(method: str, shape: tuple):
    s = get(method)
    if len(shape) > MAX_NDIM:
        raise HeaderError(f"at most {MAX_NDIM} dimensions, got {len(shape)}")
    if math.prod(max(int(d), 1) for d in shape) > MAX_ELEMENTS:  # even when another dim is 0
        raise HeaderError(f"array shape {shape} is absurd (more than {MAX_ELEMENTS} elements per slice)")
    if s.index_kind == "shard" and (not shape or shape[-1] != 2):
        raise HeaderError(f"{method} index arrays end in an axis of 2 (shard, index); got {shape}")


def to_bytes(index, *, method: str, key, proposal, code: str | None = None,
             budget: float | None = None, model=None, meta: bytes = b"", **options) -> bytes:
    """Serialise indices of sampler ``method`` into a ``.jrec`` byte string.

    Args:
      index: an int index array, a :class:`~jrec.core.Code` (refused if any ``ok`` is
        ``False``), or a list/tuple of them (several arrays in one file).
      method: the registry name of the sampler that produced them.
      key: the key(s) they were encoded with (fingerprinted, not stored).
      proposal: the proposal (a distrax distribution of a supported family, arrays, or
        ``None``), fingerprinted, not stored.
      code: index code (:mod:`jrec.coding`); default: the sampler's.
      budget: the Zeta code's bound on ``E[log2 N]`` in bits.
      model: anything else both sides must share (bytes, arrays, dicts of them), e.g. an
        INR's architecture and prior; fingerprinted with the proposal.
      meta: application bytes stored verbatim (e.g. an image's shape).
      **options: the sampler's static options (``kappa``, ``num_shards``, ``step``, ...).
    """
    sampler = get(method)
    unknown = set(options) - set(sampler.options)
    if unknown:
        raise TypeError(f"{method}: unknown option(s) {sorted(unknown)}")
    _, code = coding.kind_and_code(method, code)
    opts = {**sampler.options, **options}
    arrays, multi = _as_arrays(index)
    if len(arrays) > MAX_ARRAYS:
        raise HeaderError(f"at most {MAX_ARRAYS} arrays per file")
    meta = bytes(meta)
    for a in arrays:
        _check_shape(method, a.shape)
    flat = np.concatenate([a.reshape(-1, 2) if sampler.index_kind == "shard" else a.ravel()
                           for a in arrays]) if arrays else np.zeros(0, np.int64)
    if flat.shape[0] > MAX_ELEMENTS:
        raise HeaderError(f"at most {MAX_ELEMENTS} indices per file")
    kw = {"code": code, "budget": budget, "kappa": opts.get("kappa", 16),
          "num_shards": opts.get("num_shards", 4)}
    payload = coding.encode_index(method, flat, **kw)
    head = bytearray(MAGIC)
    head.append(VERSION << 4 | (_F_META if meta else 0) | (_F_MULTI if multi else 0))
    head.append(sampler.container_id << 3 | CODE_IDS.index(code))
    if sampler.index_kind == "fixed":
        head += _varint(int(opts["kappa"]))
    if sampler.index_kind == "shard":
        head += _varint(int(opts["num_shards"]))
    if code == "zeta":
        head += _varint(coding.quantise_budget(budget))
    head += key_fingerprint(key)
    head += model_fingerprint(method, proposal, model, **options)
    if multi:
        head += _varint(len(arrays))
    for a in arrays:
        head.append(a.ndim)
        for d in a.shape:
            head += _varint(int(d))
    if meta:
        head += _varint(len(meta)) + meta
    body = bytes(head) + payload.data
    return body + struct.pack("<I", zlib.crc32(body))


def save_code(file, index, **kwargs) -> int:
    """Write :func:`to_bytes` to a path (atomically: temp file + rename) or a binary file.

    Returns the number of bytes written.
    """
    data = to_bytes(index, **kwargs)
    if hasattr(file, "write"):
        file.write(data)
        return len(data)
    path = os.fspath(file)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".jrec-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(data)


# -- reading ------------------------------------------------------------------------------------


def _min_payload_bits(method: str, code: str, count: int, kappa: int, num_shards: int) -> int:
    """Fewest payload bits that can hold ``count`` indices (checked before allocating)."""
    kind = coding.kind_and_code(method, code)[0]
    if kind == "fixed":
        return count * kappa
    fixed = count * coding.shard_width(num_shards) if kind == "shard" else 0
    return fixed + (count if code in ("gamma", "delta") else 0)


def read_header(data: bytes) -> Header:
    """Check magic, version, CRC and header of a ``.jrec`` byte string; no key or model check."""
    data = bytes(data)
    if not data:
        raise TruncatedError("empty data: no .jrec header")
    if data[:2] != MAGIC[: len(data[:2])]:
        raise NotAJrecFileError(f"not a .jrec file: starts with {data[:2]!r}, expected {MAGIC!r}")
    if len(data) < 3:
        raise TruncatedError(f"the data ends inside the magic / version ({len(data)} bytes)")
    version = data[2] >> 4
    if version != VERSION:
        raise UnsupportedVersionError(
            f".jrec format version {version}; this jrec reads version {VERSION}"
            + (" (the file was written by a newer jrec)" if version > VERSION else ""))
    if len(data) < 4 + 8 + 4:
        raise TruncatedError(f"{len(data)} bytes: shorter than any .jrec file (at least 17)")
    body, crc = data[:-4], struct.unpack("<I", data[-4:])[0]
    r = _Reader(data, len(body))
    if zlib.crc32(body) != crc:
        # a cut file fails here too: say "truncated" when the header announces more data
        try:
            _parse(r, data[2])
        except TruncatedError as e:
            raise TruncatedError(f"{e} (and the checksum does not match)") from None
        except HeaderError:
            pass
        raise ChecksumError(f"checksum mismatch: the file is corrupt or truncated ({len(data)} bytes)")
    return _parse(r, data[2])


def _parse(r: _Reader, vflags: int) -> Header:
    r.pos = 3
    flags = vflags & 0x0F
    if flags & ~(_F_META | _F_MULTI):
        raise HeaderError(f"reserved flag bits set: {flags:#x}")
    (sc,) = r.take(1, "sampler/code")
    sid, cid = sc >> 3, sc & 7
    if by_container_id(sid) is None or cid >= len(CODE_IDS):
        raise HeaderError(f"unknown sampler id {sid} or code id {cid}")
    method, code = by_container_id(sid).name, CODE_IDS[cid]
    try:
        kind, _ = coding.kind_and_code(method, code)
    except CodingError as e:
        raise HeaderError(str(e)) from None
    options, budget = {}, None
    if kind == "fixed":
        options["kappa"] = r.varint("kappa", 30)
        if options["kappa"] < 1:
            raise HeaderError("kappa must be >= 1")
    if kind == "shard":
        options["num_shards"] = r.varint("num_shards", 1 << 16)
        if options["num_shards"] < 1:
            raise HeaderError("num_shards must be >= 1")
    if code == "zeta":
        q = r.varint("zeta budget", coding.MAX_BUDGET_Q)
        if q < 1:
            raise HeaderError("zeta budget must be >= 1/16 bit")
        budget = q / coding.BUDGET_STEP
    kfp, mfp = r.take(4, "key fingerprint"), r.take(4, "model fingerprint")
    n_arrays = r.varint("number of arrays", MAX_ARRAYS) if flags & _F_MULTI else 1
    if flags & _F_MULTI and n_arrays < 2:
        raise HeaderError("the multi-array flag needs >= 2 arrays")
    shapes, total = [], 0
    for i in range(n_arrays):
        (ndim,) = r.take(1, f"ndim of array {i}")
        if ndim > MAX_NDIM:
            raise HeaderError(f"array {i}: ndim {ndim} > {MAX_NDIM}")
        shape = tuple(r.varint(f"dimension {j} of array {i}", MAX_ELEMENTS) for j in range(ndim))
        _check_shape(method, shape)
        total += math.prod(shape)
        if total > MAX_ELEMENTS:
            raise HeaderError(f"the header claims more than {MAX_ELEMENTS} indices")
        shapes.append(shape)
    meta = b""
    if flags & _F_META:
        n = r.varint("metadata length", r.end)
        meta = r.take(n, "metadata")
    count = total // 2 if kind == "shard" else total
    payload_bits = 8 * (r.end - r.pos)
    need = _min_payload_bits(method, code, count, options.get("kappa", 16), options.get("num_shards", 4))
    if code == "zeta" and count > coding.zeta_max_count(payload_bits, budget):
        raise HeaderError(f"the header claims {count} indices; a {payload_bits}-bit zeta payload "
                          "holds fewer")
    if need > payload_bits:
        raise TruncatedError(f"the header claims {count} indices ({need} bits at least); the payload "
                             f"has {payload_bits} bits")
    return Header(vflags >> 4, method, code, options, budget, kfp, mfp, tuple(shapes), bytes(meta), r.pos)


def from_bytes(data: bytes, *, key, proposal, model=None, method: str | None = None,
               **options) -> CodeFile:
    """Parse a ``.jrec`` byte string and check it against the decoder's key and model.

    Args:
      data: the bytes.
      key, proposal, model: what the decoder holds; fingerprints must match the file's.
      method: if given, the sampler the caller expects (a different one is an error).
      **options: sampler options the decoder uses (e.g. dithering's ``step``); header
        options given here must equal the file's.

    Raises:
      BitstreamError: a subclass naming what is wrong (see the module docstring).
    """
    data = bytes(data)
    h = read_header(data)
    if method is not None and method != h.method:
        raise ModelMismatchError(f"the file holds {h.method} indices, not {method}")
    for k, v in options.items():
        if k in h.options and h.options[k] != v:
            raise ModelMismatchError(f"the file was coded with {k}={h.options[k]}, not {k}={v}")
    if key_fingerprint(key) != h.key_fingerprint:
        raise KeyMismatchError("the key differs from the one the file was encoded with "
                               "(a different seed, split or batch of keys)")
    if model_fingerprint(h.method, proposal, model, **options) != h.model_fingerprint:
        raise ModelMismatchError(
            "the proposal / model or the sample-changing options differ from the encoder's "
            f"({h.method}; fingerprinted options: {sorted(_sample_options(h.method, options))})")
    index = decode_payload(data, h)
    opts = {**h.options, **{k: v for k, v in options.items() if k not in h.options}}
    return CodeFile(h.method, index, opts, h.code, h.budget, h.meta)


def decode_payload(data: bytes, h: Header):
    """The index arrays of a file whose header :func:`read_header` returned (no key/model check)."""
    kind = get(h.method).index_kind
    total = sum(math.prod(s) for s in h.shapes)
    count = total // 2 if kind == "shard" else total
    payload = data[h.header_size:-4]
    flat = coding.decode_index(h.method, coding.Bits(payload, 8 * len(payload)), count, code=h.code,
                               budget=h.budget, kappa=h.options.get("kappa", 16),
                               num_shards=h.options.get("num_shards", 4), padded=True)
    flat = flat.reshape(-1)
    arrays, pos = [], 0
    for s in h.shapes:
        n = math.prod(s)
        arrays.append(flat[pos:pos + n].reshape(s))
        pos += n
    return arrays[0] if len(arrays) == 1 else tuple(arrays)


def load_code(file, **kwargs) -> CodeFile:
    """:func:`from_bytes` of a path or a binary file object."""
    if hasattr(file, "read"):
        data = file.read()
    else:
        with open(os.fspath(file), "rb") as f:
            data = f.read()
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("load_code needs a binary file")
    return from_bytes(data, **kwargs)

