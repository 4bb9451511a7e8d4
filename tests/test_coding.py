"""Index codes: exact round trips (property-based), exact length estimators, clear errors."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jrec import coding

INDEX = st.integers(min_value=1, max_value=2**31 - 1)
SMALLISH = st.one_of(INDEX, st.integers(1, 64))


@settings(max_examples=200, deadline=None)
@given(st.lists(SMALLISH, min_size=0, max_size=60))
def test_gamma_and_delta_round_trip(values):
    v = np.asarray(values, np.int64)
    for enc, dec, length in [(coding.encode_gamma, coding.decode_gamma, coding.elias_gamma_bits),
                             (coding.encode_delta, coding.decode_delta, coding.elias_delta_bits)]:
        b = enc(v)
        np.testing.assert_array_equal(dec(b, v.size), v)
        want = int(np.sum(np.asarray(length(jnp.asarray(v, jnp.int32))))) if v.size else 0
        assert b.nbits == want


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 20), st.data())
def test_fixed_round_trip(width, data):
    v = np.asarray(data.draw(st.lists(st.integers(0, 2**width - 1), max_size=50)), np.int64)
    b = coding.encode_fixed(v, width)
    assert b.nbits == v.size * width
    np.testing.assert_array_equal(coding.decode_fixed(b, v.size, width), v)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["pfr", "gprs", "gprs_bb", "orc", "dither", "gprs_parallel"]), st.data())
def test_index_codes_round_trip_and_lengths(method, data):
    kw = {}
    if method == "orc":
        kw = {"kappa": data.draw(st.integers(1, 30))}
        idx = data.draw(st.lists(st.integers(0, 2 ** kw["kappa"] - 1), max_size=40))
    elif method == "dither":
        idx = data.draw(st.lists(st.integers(-(2**30) + 1, 2**30 - 1), max_size=40))
    elif method == "gprs_parallel":
        kw = {"num_shards": data.draw(st.integers(1, 64))}
        idx = data.draw(st.lists(st.tuples(st.integers(0, kw["num_shards"] - 1), INDEX), max_size=40))
    else:
        idx = data.draw(st.lists(INDEX, max_size=40))
    idx = np.asarray(idx, np.int64).reshape((-1, 2) if method == "gprs_parallel" else (-1,))
    b = coding.encode_index(method, idx, **kw)
    out = coding.decode_index(method, b, idx.shape[0], **kw)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, idx)
    est = int(np.sum(np.asarray(coding.index_bits(method, jnp.asarray(idx, jnp.int32), **kw))))
    assert est == b.nbits


def test_extreme_values():
    v = np.array([1, 2, 2**31 - 1, 2**30, 3])
    for m in ("pfr", "gprs_bb"):
        np.testing.assert_array_equal(coding.decode_index(m, coding.encode_index(m, v), 5), v)
    orc = coding.encode_index("orc", [0, 2**30 - 1], kappa=30)
    np.testing.assert_array_equal(coding.decode_index("orc", orc, 2, kappa=30), [0, 2**30 - 1])
    d = np.array([0, -1, 1, -(2**30) + 1, 2**30 - 1])
    np.testing.assert_array_equal(coding.decode_index("dither", coding.encode_index("dither", d), 5), d)


def test_bad_values_and_bit_strings():
    with pytest.raises(coding.CodingError, match=r"\[1, 2\^31 - 1\]"):
        coding.encode_gamma([0])
    with pytest.raises(coding.CodingError, match="integers"):
        coding.encode_gamma([1.5])
    with pytest.raises(coding.CodingError, match="2\\^4"):
        coding.encode_fixed([16], 4)
    b = coding.encode_gamma(np.arange(1, 50))
    with pytest.raises(coding.CodingError, match="truncated|corrupt"):
        coding.decode_gamma(coding.Bits(b.data, b.nbits - 3), 49)
    with pytest.raises(coding.CodingError, match="trailing"):
        coding.decode_gamma(b, 48)
    with pytest.raises(coding.CodingError, match="claims"):
        coding.decode_gamma(coding.Bits(b"\x01", 9), 1)
    with pytest.raises(coding.CodingError, match="corrupt|truncated"):
        coding.decode_gamma(coding.Bits(b"\x00" * 8, 64), 1)  # 64 zeros: no index is that long
    with pytest.raises(coding.CodingError, match="expected"):
        coding.decode_fixed(coding.encode_fixed([1, 2], 8), 3, 8)
    with pytest.raises(coding.CodingError, match="no index code"):
        coding.encode_index("nope", [1])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.integers(0, 50),
       st.sampled_from(["pfr", "gprs_bb", "gprs_parallel", "dither"]))
def test_decoders_never_crash_on_garbage(data, count, method):
    """Arbitrary bytes either decode to valid int32 indices or raise CodingError -- nothing else."""
    b = coding.Bits(data, len(data) * 8)
    try:
        out = coding.decode_index(method, b, count)
    except coding.CodingError:
        return
    assert out.dtype == np.int32 and out.shape[0] == count
