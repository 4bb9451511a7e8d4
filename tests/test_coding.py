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
       st.sampled_from(["pfr", "gprs_bb", "gprs_parallel", "dither"]), st.sampled_from([None, "zeta"]))
def test_decoders_never_crash_on_garbage(data, count, method, code):
    """Arbitrary bytes either decode to valid int32 indices or raise CodingError -- nothing else."""
    b = coding.Bits(data, len(data) * 8)
    try:
        out = coding.decode_index(method, b, count, code=code, budget=2.0)
    except coding.CodingError:
        return
    assert out.dtype == np.int32 and out.shape[0] == count


@settings(max_examples=120, deadline=None)
@given(st.lists(SMALLISH, max_size=200), st.sampled_from([0.0625, 0.5, 2.0, 6.25, 16.0, 64.0]),
       st.sampled_from(["pfr", "gprs_bb", "gprs_parallel", "dither"]))
def test_zeta_round_trip_and_length_estimate(values, budget, method):
    v = np.asarray(values, np.int64)
    if method == "gprs_parallel":
        v = np.stack([v % 3, v], -1)
    elif method == "dither":
        v = (v % (2**30 - 1)) * np.where(v % 2 == 0, 1, -1)
    b = coding.encode_index(method, v, code="zeta", budget=budget, num_shards=3)
    out = coding.decode_index(method, b, v.shape[0], code="zeta", budget=budget, num_shards=3)
    np.testing.assert_array_equal(out, v)
    est = float(np.sum(np.asarray(coding.index_bits(method, jnp.asarray(v, jnp.int32), code="zeta",
                                                    budget=budget, num_shards=3), np.float64)))
    pad = 8 if method == "gprs_parallel" else 0  # shard bits are byte aligned before the ANS words
    assert est - 1 <= b.nbits <= est + 64 + 32 + pad  # the ANS seed and its final word


def test_zeta_extremes_and_many_values():
    v = np.array([1, 2, 255, 256, 257, 511, 512, 2**20 + 12345, 2**30, 2**31 - 1, 1])
    for budget in (0.0625, 1, 31.25, coding.MAX_BUDGET_Q / 16):
        b = coding.encode_zeta(v, budget)
        np.testing.assert_array_equal(coding.decode_zeta(b, v.size, budget), v)
    rng = np.random.default_rng(0)
    v = np.clip(np.floor(2 ** np.minimum(rng.exponential(6.0, 100_000), 31)), 1, 2**31 - 1).astype(np.int64)
    b = coding.encode_zeta(v, 6.0)
    np.testing.assert_array_equal(coding.decode_zeta(b, v.size, 6.0), v)
    est = float(np.sum(np.asarray(coding.zeta_bits(v, 6.0), np.float64)))
    assert abs(b.nbits - est) < 100  # < 0.001 bits per index
    assert coding.zeta_max_count(b.nbits, 6.0) >= v.size


def test_zeta_table_is_the_zeta_law():
    for q in (1, 16, 96, 1000):
        m = coding._zeta_model(q)
        assert m.weights.sum() == 2**24 and m.weights.min() >= 1
        alpha = 1 + 16 / q
        k = np.arange(1, 256)
        p = m.weights[:255] / 2**24
        # ratios of neighbouring probabilities follow k^-alpha wherever the weights are not tiny
        big = m.weights[:255] > 10_000
        r = p[1:][big[1:]] / p[:-1][big[1:]]
        want = (k[1:] / k[:-1])[big[1:]] ** -alpha
        np.testing.assert_allclose(r, want, rtol=2e-3)
    # deterministic table (exact decimal arithmetic): a digest guards the format
    import hashlib
    assert hashlib.sha256(coding._zeta_model(72).weights.astype("<i8").tobytes()).hexdigest()[:16] == (
        ZETA_72_DIGEST)


# weights of the budget-4.5 table, as written by jrec 0.1 on 2026-11-22 (format 1)
ZETA_72_DIGEST = "6601f42a3036d5a7"


def test_zeta_budget_errors():
    with pytest.raises(coding.CodingError, match="budget"):
        coding.encode_zeta([1], 0.0)
    with pytest.raises(coding.CodingError, match="budget"):
        coding.encode_zeta([1], float("nan"))
    with pytest.raises(coding.CodingError, match="budget"):
        coding.encode_index("pfr", [1], code="zeta")
    with pytest.raises(coding.CodingError, match="code must be"):
        coding.encode_index("orc", [1], code="zeta")
    b = coding.encode_zeta([5, 6, 7], 2.0)
    with pytest.raises(coding.CodingError, match="corrupt"):
        coding.decode_zeta(b, 2, 2.0)
    with pytest.raises(coding.CodingError, match="words"):
        coding.decode_zeta(coding.Bits(b.data[:-1], 8 * len(b.data) - 8), 3, 2.0)


@pytest.mark.slow
@pytest.mark.parametrize("mq,sq", [(0.3, 0.8), (1.0, 0.25), (2.0, 0.1)])
def test_zeta_code_meets_the_li_el_gamal_bound_with_pfr(mq, sq):
    """Mean real Zeta-coded bits of PFR indices <= KL + log2(KL + 1) + 1 (budget = KL)."""
    import distrax
    import jax
    import jax.numpy as jnp
    from conftest import encoder

    from jrec import divergences

    t, p = distrax.Normal(mq, sq), distrax.Normal(0.0, 1.0)
    kl = float(divergences.kl(t, p)) / np.log(2)
    n = 4000
    # (the targets are arguments: one compiled encoder serves the three problems)
    code = encoder("pfr")(jax.random.split(jax.random.PRNGKey(3), n),
                          distrax.Normal(jnp.full(n, mq), jnp.full(n, sq)))
    b = coding.encode_zeta(np.asarray(code.index), coding.zeta_budget(kl))
    mean_bits = b.nbits / n
    assert mean_bits <= kl + np.log2(kl + 1) + 1, (kl, mean_bits)
