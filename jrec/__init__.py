"""jrec: relative entropy coding (channel simulation) in JAX.

Encoder and decoder share a PRNG key and a proposal P; the encoder turns a target
Q into an index whose candidate is a sample of Q, the decoder turns key + index
back into that sample. See README.md and DESIGN for the algorithms.

Public API::

    code = jrec.gprs.encode(key, target, proposal)        # pure, jit/vmap-able
    x = jrec.gprs.decode(key, code.index, proposal)
    code = jrec.encode(key, target, proposal, method="gprs")  # checked + jitted
    jrec.samplers(), jrec.get("gprs_bb")
    jrec.save_code("x.jrec", code, method="gprs", key=key, proposal=p)  # .jrec container
    from jrec.nn import GaussianBottleneck                   # REC bottleneck for Flax models
    f = jrec.load_code("x.jrec", key=key, proposal=p); x = f.samples(key, p)
"""

from jrec import (
    astar,
    batch,
    bb,
    bitstream,
    bounds,
    coding,
    dists,
    dither,
    divergences,
    gprs,
    grs,
    nn,
    orc,
    pfr,
    poisson,
    prng,
    ratio,
    shard,
    spec,
)
from jrec.api import decode, encode, validate
from jrec.bitstream import (
    ChecksumError,
    CodeFile,
    CorruptDataError,
    HeaderError,
    KeyMismatchError,
    ModelMismatchError,
    NotAJrecFileError,
    TruncatedError,
    UnsupportedVersionError,
    from_bytes,
    load_code,
    save_code,
    to_bytes,
)
from jrec.core import (
    BitstreamError,
    Code,
    CodingError,
    DtypeMismatchError,
    InfiniteDivergenceError,
    InvalidDistributionError,
    JrecError,
    NonTerminationError,
    ShapeMismatchError,
    UnsupportedDistributionError,
)
from jrec.registry import Sampler, get, samplers

__version__ = "0.1.0"

__all__ = [
    "Code",
    "Sampler",
    "samplers",
    "get",
    "encode",
    "decode",
    "validate",
    "JrecError",
    "InvalidDistributionError",
    "UnsupportedDistributionError",
    "InfiniteDivergenceError",
    "ShapeMismatchError",
    "DtypeMismatchError",
    "NonTerminationError",
    "CodeFile",
    "save_code",
    "load_code",
    "to_bytes",
    "from_bytes",
    "BitstreamError",
    "CodingError",
    "CorruptDataError",
    "TruncatedError",
    "ChecksumError",
    "HeaderError",
    "NotAJrecFileError",
    "UnsupportedVersionError",
    "KeyMismatchError",
    "ModelMismatchError",
    "batch",
    "shard",
    "spec",
    "astar",
    "bounds",
    "bitstream",
    "coding",
    "pfr",
    "gprs",
    "grs",
    "nn",
    "orc",
    "dither",
    "divergences",
    "dists",
    "poisson",
    "prng",
    "bb",
    "ratio",
]
