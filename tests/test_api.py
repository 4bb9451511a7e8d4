"""Registry, the checked wrapper, and every bad-input case raising a clear error."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import keys

import jrec

P = distrax.Normal(0.0, 1.0)


def test_registry_lists_all_samplers():
    assert set(jrec.samplers()) >= {"pfr", "gprs", "gprs_parallel", "gprs_bb", "grs", "astar_bb", "orc",
                                    "dither"}
    for name in jrec.samplers():
        s = jrec.get(name)
        assert callable(s.encode) and callable(s.decode)
        assert isinstance(s.exact, bool) and s.requires and s.reference
    assert jrec.get("orc").exact is False
    assert jrec.get("gprs_bb").exact is True
    with pytest.raises(KeyError, match="available"):
        jrec.get("nope")


# the checked wrapper's batch of every sampler (against the pure function, and decoded
# bit for bit) is in test_samplers.py's vmap test, its files in test_bitstream.py


def test_checked_encode_with_lane_refill():
    t = distrax.Normal(jnp.linspace(-1, 1, 40), jnp.linspace(0.05, 0.8, 40))
    plain = jrec.encode(keys(40), t, P, method="gprs")
    code = jrec.encode(keys(40), t, P, method="gprs", lanes=8)
    np.testing.assert_array_equal(np.asarray(code.index), np.asarray(plain.index))
    np.testing.assert_array_equal(np.asarray(code.sample), np.asarray(plain.sample))


def test_checked_dither():
    lo = jnp.linspace(-2, 2, 8)
    code = jrec.encode(keys(8), distrax.Uniform(lo, lo + 0.25), P, method="dither", step=0.25)
    x = jrec.decode(keys(8), code.index, P, method="dither", step=0.25)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(code.sample))


def test_block_target_for_pfr_and_orc():
    t = distrax.MultivariateNormalDiag(jnp.array([0.2, -0.1, 0.3]), jnp.array([0.6, 0.7, 0.8]))
    p = distrax.Normal(jnp.zeros(3), jnp.ones(3))
    for method in ("pfr", "orc"):
        code = jrec.encode(keys(1)[0], t, p, method=method)
        assert code.sample.shape == (3,) and code.index.shape == ()
        x = jrec.decode(keys(1)[0], code.index, p, method=method)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(code.sample))


def test_error_not_absolutely_continuous():
    with pytest.raises(jrec.InvalidDistributionError, match="absolutely continuous"):
        jrec.encode(keys(1)[0], distrax.Normal(0.5, 0.1), distrax.Uniform(0.0, 1.0), method="gprs")
    with pytest.raises(jrec.InvalidDistributionError, match="absolutely continuous"):
        jrec.encode(keys(1)[0], distrax.Uniform(-0.5, 0.5), distrax.Uniform(0.0, 1.0), method="pfr")


@pytest.mark.parametrize("method", ["pfr", "gprs", "gprs_parallel", "gprs_bb", "gprs_bb_dyadic", "grs",
                                    "grc_bb", "astar_bb", "astar_bb_dyadic", "astar_dl"])
def test_error_wider_target_names_alternative(method):
    with pytest.raises(jrec.InfiniteDivergenceError, match="orc"):
        jrec.encode(keys(1)[0], distrax.Normal(0.0, 1.5), P, method=method)


def test_wider_target_is_fine_for_orc():
    code = jrec.encode(keys(1)[0], distrax.Normal(0.0, 1.5), P, method="orc", kappa=4)
    assert bool(code.ok)


def test_error_nan_and_bad_parameters():
    with pytest.raises(jrec.InvalidDistributionError, match="NaN"):
        jrec.encode(keys(1)[0], distrax.Normal(jnp.nan, 0.5), P, method="gprs")
    with pytest.raises(jrec.InvalidDistributionError, match="NaN"):
        jrec.encode(keys(1)[0], distrax.Normal(0.0, 0.5), distrax.Normal(0.0, jnp.inf), method="pfr")
    with pytest.raises(jrec.InvalidDistributionError, match="scale > 0"):
        jrec.encode(keys(1)[0], distrax.Normal(0.0, -0.5), P, method="gprs_bb")
    with pytest.raises(jrec.InvalidDistributionError, match="alpha > 0"):
        jrec.encode(keys(1)[0], distrax.Beta(-1.0, 2.0), distrax.Uniform(0.0, 1.0), method="gprs")
    with pytest.raises(jrec.InvalidDistributionError, match="high > low"):
        jrec.encode(keys(1)[0], distrax.Uniform(0.5, 0.2), distrax.Uniform(0.0, 1.0), method="gprs")


def test_error_shape_mismatch():
    t = distrax.Normal(jnp.zeros(5), jnp.full(5, 0.5))
    with pytest.raises(jrec.ShapeMismatchError, match="one key per problem"):
        jrec.encode(keys(4), t, P, method="gprs")
    with pytest.raises(jrec.ShapeMismatchError, match="proposal shape"):
        jrec.encode(keys(5), t, distrax.Normal(jnp.zeros(3), jnp.ones(3)), method="gprs")
    with pytest.raises(jrec.ShapeMismatchError, match="scalar targets"):
        jrec.encode(keys(1)[0], t, distrax.Normal(jnp.zeros(5), jnp.ones(5)), method="gprs_bb")
    with pytest.raises(jrec.ShapeMismatchError, match="PRNG key"):
        jrec.encode(jnp.zeros(3), distrax.Normal(0.0, 0.5), P, method="gprs")
    with pytest.raises(jrec.ShapeMismatchError, match="index shape"):
        jrec.decode(keys(3), jnp.ones((4,), jnp.int32), P, method="gprs")
    with pytest.raises(jrec.ShapeMismatchError, match="must lie in"):
        jrec.decode(keys(3), jnp.array([1, 0, 2], jnp.int32), P, method="gprs")
    with pytest.raises(jrec.ShapeMismatchError, match="must lie in"):
        jrec.decode(keys(2), jnp.array([3, 256], jnp.int32), P, method="orc", kappa=8)
    with pytest.raises(jrec.ShapeMismatchError, match="shard"):
        jrec.decode(keys(1), jnp.array([[4, 1]], jnp.int32), P, method="gprs_parallel")
    with pytest.raises(jrec.ShapeMismatchError, match="int32"):
        jrec.decode(keys(3), jnp.ones((3,), jnp.float32), P, method="gprs")


def test_error_dtype_mismatch():
    t = distrax.Normal(jnp.float16(0.0), jnp.float16(0.5))
    with pytest.raises(jrec.DtypeMismatchError, match="dtype"):
        jrec.encode(keys(1)[0], t, P, method="gprs")


def test_error_unsupported_and_options():
    with pytest.raises(jrec.UnsupportedDistributionError, match="Uniform"):
        jrec.encode(keys(1)[0], distrax.Normal(0.0, 0.5), P, method="dither", step=0.5)
    with pytest.raises(TypeError, match="unknown option"):
        jrec.encode(keys(1)[0], distrax.Normal(0.0, 0.5), P, method="gprs", kappa=3)
    with pytest.raises(ValueError, match="max_steps"):
        jrec.gprs.encode_bb(keys(1)[0], distrax.Normal(0.0, 0.5), P, max_steps=40)
    with pytest.raises(ValueError, match="kappa"):
        jrec.orc.encode(keys(1)[0], distrax.Normal(0.0, 0.5), P, kappa=31)


def test_error_on_ok_false():
    with pytest.raises(jrec.NonTerminationError, match="max_steps"):
        jrec.encode(keys(64), distrax.Normal(jnp.full(64, 2.0), jnp.full(64, 0.1)), P,
                    method="gprs", max_steps=2)


def test_pure_encode_reports_unbounded_ratio_as_not_ok():
    """Inside jit there is no exception: an unbounded ratio gives ok=False, not a hang."""
    code = jax.jit(lambda k: jrec.pfr.encode(k, distrax.Normal(0.0, 2.0), P, max_steps=64))(keys(1)[0])
    assert not bool(code.ok)
    code = jax.jit(lambda k: jrec.gprs.encode_bb(k, distrax.Normal(0.0, 2.0), P))(keys(1)[0])
    assert not bool(code.ok)


def test_index_code_lengths():
    from jrec.coding import elias_gamma_bits, index_bits

    n = jnp.array([1, 2, 3, 4, 7, 8, 2**20, 2**31 - 1])
    np.testing.assert_array_equal(np.asarray(elias_gamma_bits(n)),
                                  2 * np.floor(np.log2(np.asarray(n, np.float64))).astype(int) + 1)
    # heap index 1 (root, depth 1): gamma(1) = 1 bit; h = 0b1011 (depth 4): gamma(4) = 5 bits + 3 path bits
    np.testing.assert_array_equal(np.asarray(index_bits("gprs_bb", jnp.array([1, 11]))), [1, 8])
    assert int(index_bits("orc", jnp.array(5), kappa=12)) == 12
    assert int(index_bits("gprs_parallel", jnp.array([3, 1]), num_shards=4)) == 3
