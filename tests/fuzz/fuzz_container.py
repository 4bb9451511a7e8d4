"""Coverage-guided fuzzing of the ``.jrec`` decoder with atheris (libFuzzer).

Only :class:`jrec.BitstreamError` (and its subclasses) may come out of the decoder; any
other exception, a crash or a hang is a finding. The first input byte picks a mode:
odd -> the rest is a file *body* and the harness appends its correct CRC32 (so the
fuzzer reaches the header and payload parsers instead of stopping at the checksum);
even -> the rest is the file as is.

    python tests/fuzz/fuzz_container.py -runs=1000000 CORPUS_DIR     # the long run (README)
    python tests/fuzz/fuzz_container.py -runs=20000 -max_total_time=60 CORPUS_DIR   # CI

``--make-seeds DIR`` writes a seed corpus of valid files (every sampler and code).
"""

import os
import struct
import sys
import zlib

import atheris

with atheris.instrument_imports(include=["jrec.bitstream", "jrec.coding"]):
    from jrec import bitstream, coding
    from jrec.core import BitstreamError


def one_input(data: bytes):
    if not data:
        return
    body = data[1:]
    full = body + struct.pack("<I", zlib.crc32(body)) if data[0] & 1 else body
    try:
        h = bitstream.read_header(full)
        idx = bitstream.decode_payload(full, h)
    except BitstreamError:
        return
    for a in idx if isinstance(idx, tuple) else (idx,):
        assert a.dtype.name == "int32", a.dtype
    assert h.method in bitstream.SAMPLER_IDS and h.code in coding.CODES


def make_seeds(path: str):
    import distrax
    import jax
    import numpy as np

    os.makedirs(path, exist_ok=True)
    key, p = jax.random.split(jax.random.PRNGKey(0), 8), distrax.Normal(0.0, 1.0)
    pos = np.array([1, 2, 3, 9, 300, 70000, 2**31 - 1, 5], np.int32)
    cases = [("pfr", "gamma", pos, {}), ("gprs", "zeta", pos, {}), ("gprs_bb", "delta", pos, {}),
             ("orc", "fixed", pos % 4096, {"kappa": 12}), ("dither", "zeta", pos % 1000 - 4, {"step": 0.5}),
             ("gprs_parallel", "gamma", np.stack([pos % 4, pos], -1), {"num_shards": 4}),
             ("gprs_parallel", "zeta", np.stack([pos % 3, pos], -1), {"num_shards": 3})]
    for i, (m, c, idx, opts) in enumerate(cases):
        raw = bitstream.to_bytes([idx, idx[:3]] if i % 2 else idx, method=m, key=key,
                                 proposal=None if m == "dither" else p, code=c,
                                 budget=4.0 if c == "zeta" else None, meta=b"seed" if i % 3 == 0 else b"",
                                 **opts)
        with open(os.path.join(path, f"seed{i}"), "wb") as f:
            f.write(b"\x01" + raw[:-4])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--make-seeds":
        make_seeds(sys.argv[2])
        sys.exit(0)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
