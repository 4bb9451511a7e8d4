"""The .jrec container: round trips to identical samples, header size, and every bad input."""

import io
import struct
import zlib

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import OPTIONS, keys
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jrec
from jrec import bitstream as bs

P = distrax.Normal(0.0, 1.0)
N = 64  # (test_samplers.py's vmap test checks this batch: the same compiled programs, as long
# as the argument types are the same too: float32 parameters, not weakly typed ones)
T = distrax.Normal(jnp.linspace(-1, 1, N), jnp.full(N, 0.3, jnp.float32))


def _code(method, **opts):
    if method == "dither":
        t = distrax.Uniform(jnp.linspace(-3, 3, N), jnp.linspace(-3, 3, N) + 0.5)
        return jrec.encode(keys(N), t, None, method="dither", step=0.5), None
    return jrec.encode(keys(N), T, P, method=method, **opts), P


CASES = [("pfr", None, {}), ("pfr", "delta", {}), ("pfr", "zeta", {}), ("gprs", None, {}),
         ("gprs", "zeta", {}), ("grs", "zeta", {}), ("astar_bb", None, {}), ("gprs_bb", None, {}),
         ("gprs_bb", "zeta", {}),
         ("gprs_parallel", None, {"num_shards": 4}), ("gprs_parallel", "zeta", {"num_shards": 3}),
         ("orc", None, OPTIONS["orc"]), ("astar_bb_dyadic", None, {}),
         ("astar_dl", None, OPTIONS["astar_dl"]), ("gprs_bb_dyadic", None, {}), ("grc_bb", "zeta", {}),
         ("dither", None, {"step": 0.5}), ("dither", "zeta", {"step": 0.5})]


@pytest.mark.parametrize("method,code,opts", CASES)
def test_round_trip_gives_identical_samples(method, code, opts, tmp_path):
    c, prop = _code(method, **opts)
    budget = 3.0 if code == "zeta" else None
    path = tmp_path / "x.jrec"
    n = jrec.save_code(path, c, method=method, key=keys(N), proposal=prop, code=code, budget=budget, **opts)
    assert n == path.stat().st_size
    dec_opts = {"step": 0.5} if method == "dither" else {}
    f = jrec.load_code(path, key=keys(N), proposal=prop, **dec_opts)
    assert f.method == method and f.code == (code or jrec.get(method).default_code)
    np.testing.assert_array_equal(f.index, np.asarray(c.index))
    assert f.index.dtype == np.int32
    x = f.samples(keys(N), prop)  # another jit of the decoder: the identical floats
    np.testing.assert_array_equal(np.asarray(x), np.asarray(c.sample))


def test_header_overhead_and_documented_layout():
    idx = np.arange(1, 1001, dtype=np.int32)
    for method, opts in [("pfr", {}), ("gprs_bb", {}), ("orc", {"kappa": 16})]:
        data = jrec.to_bytes(idx if method != "orc" else idx - 1, method=method, key=keys(1000),
                             proposal=P, **opts)
        h = bs.read_header(data)
        assert h.header_size <= 16, (method, h.header_size)
        assert data[:2] == b"JR" and data[2] >> 4 == 1
        assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])
        assert h.shapes == ((1000,),) and h.meta == b""
    # payload bits equal the code's exact length, padded to a byte
    data = jrec.to_bytes(idx, method="pfr", key=keys(1000), proposal=P)
    bits = int(np.sum(np.asarray(jrec.coding.index_bits("pfr", idx))))
    assert len(data) == bs.read_header(data).header_size + -(-bits // 8) + 4


def test_several_arrays_and_metadata(tmp_path):
    a = np.arange(1, 7, dtype=np.int32).reshape(2, 3)
    b = np.array([5, 9, 2**31 - 1], np.int32)
    data = jrec.to_bytes([a, b], method="gprs", key=keys(3), proposal=P, meta=b"image 64x64")
    f = jrec.from_bytes(data, key=keys(3), proposal=P)
    assert isinstance(f.index, tuple)
    np.testing.assert_array_equal(f.index[0], a)
    np.testing.assert_array_equal(f.index[1], b)
    assert f.meta == b"image 64x64"
    buf = io.BytesIO()
    jrec.save_code(buf, b, method="gprs", key=keys(3), proposal=P)
    buf.seek(0)
    np.testing.assert_array_equal(jrec.load_code(buf, key=keys(3), proposal=P).index, b)
    empty = jrec.to_bytes(np.zeros((0,), np.int32), method="pfr", key=keys(1), proposal=P)
    assert jrec.from_bytes(empty, key=keys(1), proposal=P).index.shape == (0,)


def test_wrong_key_proposal_model_or_options_are_refused():
    c, _ = _code("gprs")
    data = jrec.to_bytes(c, method="gprs", key=keys(N), proposal=P, model={"arch": "mlp", "w": np.ones(3)})
    ok = {"key": keys(N), "proposal": P, "model": {"arch": "mlp", "w": np.ones(3)}}
    jrec.from_bytes(data, **ok)
    with pytest.raises(jrec.KeyMismatchError, match="key"):
        jrec.from_bytes(data, **{**ok, "key": keys(N, seed=1)})
    with pytest.raises(jrec.KeyMismatchError):
        jrec.from_bytes(data, **{**ok, "key": keys(N - 1)})
    with pytest.raises(jrec.ModelMismatchError, match="proposal"):
        jrec.from_bytes(data, **{**ok, "proposal": distrax.Normal(0.0, 1.0 + 1e-7)})
    with pytest.raises(jrec.ModelMismatchError):
        jrec.from_bytes(data, **{**ok, "proposal": distrax.Laplace(0.0, 1.0)})
    with pytest.raises(jrec.ModelMismatchError):
        jrec.from_bytes(data, **{**ok, "model": {"arch": "mlp", "w": np.ones(3) * 2}})
    with pytest.raises(jrec.ModelMismatchError, match="gprs"):
        jrec.from_bytes(data, **ok, method="pfr")
    d, _ = _code("dither")
    data = jrec.to_bytes(d, method="dither", key=keys(N), proposal=None, step=0.5)
    with pytest.raises(jrec.ModelMismatchError, match="step"):
        jrec.from_bytes(data, key=keys(N), proposal=None, step=0.25)
    o, _ = _code("orc", kappa=12)
    data = jrec.to_bytes(o, method="orc", key=keys(N), proposal=P, kappa=12)
    with pytest.raises(jrec.ModelMismatchError, match="kappa=12"):
        jrec.from_bytes(data, key=keys(N), proposal=P, kappa=16)


def test_bad_files_raise_specific_errors():
    c, _ = _code("gprs_bb")
    data = jrec.to_bytes(c, method="gprs_bb", key=keys(N), proposal=P, meta=b"m")
    kw = {"key": keys(N), "proposal": P}
    with pytest.raises(jrec.NotAJrecFileError, match="not a .jrec"):
        jrec.from_bytes(b"\x89PNG\r\n" + data[6:], **kw)
    future = bytearray(data)
    future[2] = 2 << 4
    with pytest.raises(jrec.UnsupportedVersionError, match="newer"):
        jrec.from_bytes(bytes(future), **kw)
    with pytest.raises(jrec.TruncatedError, match="empty"):
        jrec.from_bytes(b"", **kw)
    for n in range(1, len(data)):  # cut anywhere: a corrupt-data error, never a wrong result
        with pytest.raises(jrec.CorruptDataError):
            jrec.from_bytes(data[:n], **kw)
    with pytest.raises(jrec.TruncatedError, match="shorter than any"):
        jrec.from_bytes(data[:8], **kw)
    with pytest.raises(jrec.TruncatedError, match="inside the header"):
        jrec.from_bytes(data[:17], **kw)
    with pytest.raises(jrec.ChecksumError):
        jrec.from_bytes(data + b"\x00", **kw)
    for i in range(len(data) * 8):  # every single bit flip is detected
        bad = bytearray(data)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(jrec.BitstreamError):
            jrec.from_bytes(bytes(bad), **kw)
    bad_ok = c._replace(ok=c.ok.at[3].set(False))
    with pytest.raises(jrec.NonTerminationError, match="ok=False"):
        jrec.to_bytes(bad_ok, method="gprs_bb", key=keys(N), proposal=P)
    with pytest.raises(jrec.CodingError, match="budget"):
        jrec.to_bytes(c, method="gprs_bb", key=keys(N), proposal=P, code="zeta")
    with pytest.raises(jrec.CodingError, match="code must be"):
        jrec.to_bytes(c, method="orc", key=keys(N), proposal=P, code="gamma")


def _forge(header_tail: bytes, payload: bytes = b"\x00" * 4, method_code: int = 0) -> bytes:
    body = b"JR" + bytes([1 << 4, method_code]) + bytes(8) + header_tail + payload
    return body + struct.pack("<I", zlib.crc32(body))


def test_absurd_headers_do_not_allocate():
    kw = {"key": keys(1), "proposal": P}
    with pytest.raises(bs.HeaderError, match="absurd"):  # 2^28 x 2^28 indices
        jrec.from_bytes(_forge(b"\x02" + b"\x80\x80\x80\x80\x01" * 2), **kw)
    with pytest.raises(jrec.TruncatedError, match="claims"):  # 10^6 gamma indices in 32 bits
        jrec.from_bytes(_forge(b"\x01\xc0\x84\x3d"), **kw)
    with pytest.raises(bs.HeaderError, match="zeta payload"):  # 10^6 zeta indices in 4 bytes
        jrec.from_bytes(_zeta_forge(), **kw)
    with pytest.raises(bs.HeaderError, match="absurd"):  # found by the atheris run: (0, 2^28, 2^28)
        jrec.from_bytes(_forge(b"\x03\x00" + b"\x80\x80\x80\x80\x01" * 2), **kw)
    with pytest.raises(bs.HeaderError, match="ndim"):
        jrec.from_bytes(_forge(b"\x09" + b"\x01" * 9), **kw)
    with pytest.raises(bs.HeaderError, match="varint"):
        jrec.from_bytes(_forge(b"\x01" + b"\xff" * 6), **kw)
    with pytest.raises(bs.HeaderError, match="unknown sampler"):
        jrec.from_bytes(_forge(b"\x01\x01", method_code=31 << 3), **kw)
    with pytest.raises(bs.HeaderError, match="reserved"):
        body = b"JR" + bytes([1 << 4 | 8, 0]) + bytes(8) + b"\x01\x01\x80"
        jrec.from_bytes(body + struct.pack("<I", zlib.crc32(body)), **kw)


def _zeta_forge() -> bytes:
    body = b"JR" + bytes([1 << 4, 2]) + b"\x10" + bytes(8) + b"\x01\xc0\x84\x3d" + bytes(4)
    return body + struct.pack("<I", zlib.crc32(body))


def test_golden_file_is_stable_across_machines_and_versions():
    """Bytes of a fixed file (key, proposal, Zeta table, format): any change is a format break."""
    idx = np.array([1, 2, 3, 7, 300, 70000, 2**31 - 1, 1, 1, 12], np.int32)
    key = jax.random.split(jax.random.key(42), 10)
    data = jrec.to_bytes(idx, method="gprs", key=key, proposal=distrax.Normal(0.0, 1.0), code="zeta",
                         budget=4.5)
    assert data.hex() == GOLDEN, data.hex()
    np.testing.assert_array_equal(jrec.from_bytes(data, key=key, proposal=distrax.Normal(0.0, 1.0)).index,
                                  idx)


# written by jrec 0.1 (format 1) on 2026-11-22; a decoder must read these bytes for ever
GOLDEN = "4a52100a486578da45600530af010a00f070ffc9ffffbb76a46e8586931a243d0000003642ed24"

METHODS = st.sampled_from([c[:3] for c in CASES])


@st.composite
def containers(draw):
    method, code, opts = draw(METHODS)
    n = draw(st.integers(0, 30))
    if method == "orc":
        idx = draw(st.lists(st.integers(0, 2 ** opts["kappa"] - 1), min_size=n, max_size=n))
    elif method == "astar_dl":  # heap indices of the depth-(kappa - 1) tree
        idx = draw(st.lists(st.integers(1, 2 ** opts["kappa"] - 1), min_size=n, max_size=n))
    elif method == "dither":
        idx = draw(st.lists(st.integers(-(2**30) + 1, 2**30 - 1), min_size=n, max_size=n))
    elif method == "gprs_parallel":
        idx = draw(st.lists(st.tuples(st.integers(0, opts["num_shards"] - 1), st.integers(1, 2**31 - 1)),
                            min_size=n, max_size=n))
    else:
        idx = draw(st.lists(st.one_of(st.integers(1, 2**31 - 1), st.integers(1, 40)), min_size=n, max_size=n))
    idx = np.asarray(idx, np.int32).reshape((-1, 2) if method == "gprs_parallel" else (-1,))
    meta = draw(st.binary(max_size=8))
    budget = draw(st.sampled_from([0.0625, 1.0, 7.5, 30.0])) if code == "zeta" else None
    return method, code, opts, idx, meta, budget


_KW = {"key": keys(1)}


def _proposal(method):
    return None if method == "dither" else P


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(containers(), st.data())
def test_container_property_round_trip_and_mutations(c, data):
    method, code, opts, idx, meta, budget = c
    raw = jrec.to_bytes(idx, method=method, key=keys(1), proposal=_proposal(method), code=code,
                        budget=budget, meta=meta, **opts)
    dec_opts = {"step": 0.5} if method == "dither" else {}
    f = jrec.from_bytes(raw, key=keys(1), proposal=_proposal(method), **dec_opts)
    np.testing.assert_array_equal(f.index, idx)
    assert f.meta == meta
    # a random mutation: flip, cut, splice or insert bytes -> a BitstreamError (CRC32) or,
    # only where the bytes are unchanged, the same result
    kind = data.draw(st.sampled_from(["flip", "cut", "insert", "replace"]))
    pos = data.draw(st.integers(0, len(raw) - 1))
    if kind == "flip":
        bad = raw[:pos] + bytes([raw[pos] ^ data.draw(st.integers(1, 255))]) + raw[pos + 1:]
    elif kind == "cut":
        bad = raw[:pos]
    elif kind == "insert":
        bad = raw[:pos] + data.draw(st.binary(min_size=1, max_size=4)) + raw[pos:]
    else:
        bad = raw[:pos] + data.draw(st.binary(min_size=1, max_size=6)) + raw[pos + 6:]
    try:
        g = jrec.from_bytes(bad, key=keys(1), proposal=_proposal(method), **dec_opts)
    except jrec.BitstreamError:
        return
    assert bad == raw and np.array_equal(g.index, idx)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(list(range(10))), st.sampled_from(range(4)))
def test_container_decoder_never_crashes_on_garbage(payload, sid, cid):
    """Random bytes behind a valid magic/version (and with a valid CRC): BitstreamError or a result."""
    for body in (b"JR" + bytes([1 << 4, sid << 3 | cid]) + payload, b"JR\x10" + payload):
        data = body + struct.pack("<I", zlib.crc32(body))
        try:
            bs.read_header(data)
            jrec.from_bytes(data, key=keys(1), proposal=P)
        except jrec.BitstreamError:
            pass


def test_atheris_fuzz_run_of_the_container_decoder(tmp_path):
    """A bounded coverage-guided run in CI (tests/fuzz/fuzz_container.py; README has the long run)."""
    import os
    import resource
    import subprocess
    import sys

    pytest.importorskip("atheris")
    # libFuzzer's out-of-memory check reads the peak RSS, and Linux keeps ru_maxrss across
    # fork + exec: the child starts at this pytest worker's peak. The fuzzer gets 2 GiB on top.
    rss_limit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 + 2048
    script = os.path.join(os.path.dirname(__file__), "fuzz", "fuzz_container.py")
    corpus = tmp_path / "corpus"
    subprocess.run([sys.executable, script, "--make-seeds", str(corpus)], check=True, capture_output=True)
    out = subprocess.run([sys.executable, script, "-runs=20000", "-max_total_time=120", "-seed=1",
                          f"-rss_limit_mb={rss_limit}", "-malloc_limit_mb=2048",
                          f"-artifact_prefix={tmp_path}/",
                          str(corpus)], capture_output=True, text=True, timeout=600)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "Done 20000 runs" in log, log[-3000:]
