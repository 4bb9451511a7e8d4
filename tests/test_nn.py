"""jrec.nn.GaussianBottleneck: analytic KL, exact coding, bit-exact bytes round trips, jit/vmap."""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jrec
from jrec.nn import SHRINK, GaussianBottleneck, from_bytes, to_bytes


def _latents(n, l, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    mean = 0.8 * jax.random.normal(k1, (n, l))
    std = jnp.exp(-1.0 - jax.random.uniform(k2, (n, l)))  # 0.13 .. 0.37: narrower than the prior
    return mean, std


def _init(bn, mean, std):
    v = bn.init(jax.random.key(0), mean, std, jax.random.key(1))
    # a non-trivial learned prior
    v = jax.tree.map(lambda x: x, v)
    p = v["params"]
    p = {"prior_loc": p["prior_loc"] + 0.1, "prior_log_scale": p["prior_log_scale"] + 0.05}
    return {"params": p}


def test_kl_is_the_analytic_value():
    bn = GaussianBottleneck(num_latents=5)
    mean, std = _latents(3, 5)
    v = _init(bn, mean, std)
    out = bn.apply(v, mean, std, jax.random.key(2))
    loc, scale = 0.1, math.exp(0.05)
    q = distrax.Normal(mean, std)
    want = jnp.sum(q.kl_divergence(distrax.Normal(loc, scale)), -1) / math.log(2)
    np.testing.assert_allclose(np.asarray(out.kl_bits), np.asarray(want), rtol=1e-5)
    assert out.z.shape == mean.shape
    # the training sample is the reparameterised posterior sample
    eps = jax.random.normal(jax.random.key(2), mean.shape)
    np.testing.assert_allclose(np.asarray(out.z), np.asarray(mean + std * eps), rtol=1e-6)


@pytest.mark.parametrize("method,block", [("gprs_bb", 1), ("orc", 4), ("pfr", 3)])
def test_coding_round_trips_bit_exactly_through_bytes(method, block):
    bn = GaussianBottleneck(num_latents=7, method=method, block_size=block, kappa=10)
    mean, std = _latents(6, 7, seed=1)
    v = _init(bn, mean, std)
    keys = jax.random.split(jax.random.key(3), 6)
    enc = jax.jit(lambda v, m, s, k: bn.apply(v, m, s, k, method=bn.encode))
    code = enc(v, mean, std, keys)
    assert code.index.shape == (6, bn.num_blocks) and code.sample.shape == (6, 7)
    assert bool(jnp.all(code.ok))
    data = to_bytes(bn, v, code, keys)
    z = from_bytes(bn, v, data, keys)
    # the decoder is another compiled program: equal up to float rounding (gprs_bb's interval
    # search), bit for bit for the samplers that regenerate a candidate
    if method == "gprs_bb":
        np.testing.assert_array_max_ulp(np.asarray(z), np.asarray(code.sample), maxulp=4)
    else:
        np.testing.assert_array_equal(np.asarray(z), np.asarray(code.sample))
    # one example coded alone gets the same index (no dependence on the batch)
    one = enc(v, mean[2:3], std[2:3], keys[2:3])
    np.testing.assert_array_equal(np.asarray(one.index[0]), np.asarray(code.index[2]))
    assert enc._cache_size() == 2  # one trace per batch shape, no retracing


def test_decoder_with_another_prior_refuses():
    bn = GaussianBottleneck(num_latents=4, method="orc", block_size=4, kappa=8)
    mean, std = _latents(2, 4)
    v = _init(bn, mean, std)
    keys = jax.random.split(jax.random.key(0), 2)
    code = bn.apply(v, mean, std, keys, method=bn.encode)
    data = to_bytes(bn, v, code, keys)
    other = {"params": {**v["params"], "prior_loc": v["params"]["prior_loc"] + 1e-3}}
    with pytest.raises(jrec.ModelMismatchError):
        from_bytes(bn, other, data, keys)
    with pytest.raises(jrec.KeyMismatchError):
        from_bytes(bn, v, data, jax.random.split(jax.random.key(1), 2))


def test_gprs_bb_bottleneck_samples_follow_the_posterior():
    n = 3000
    bn = GaussianBottleneck(num_latents=2, learn_prior=False)
    mean = jnp.broadcast_to(jnp.array([1.0, -0.5]), (n, 2))
    std = jnp.broadcast_to(jnp.array([0.25, 0.6]), (n, 2))
    v = bn.init(jax.random.key(0), mean, std, jax.random.key(1))
    code = jax.jit(lambda m, s, k: bn.apply(v, m, s, k, method=bn.encode))(
        mean, std, jax.random.split(jax.random.key(7), n))
    x = np.asarray(code.sample)
    for d, (m, s) in enumerate([(1.0, 0.25), (-0.5, 0.6)]):
        assert stats.kstest(x[:, d], "norm", args=(m, s)).pvalue > 1e-3


def test_bad_shapes_and_methods_are_refused():
    bn = GaussianBottleneck(num_latents=4)
    mean, std = _latents(2, 4)
    v = _init(bn, mean, std)
    with pytest.raises(AssertionError):
        bn.apply(v, mean, std[:, :3], jax.random.key(0))
    with pytest.raises(AssertionError):
        bn.apply(v, mean, std, jax.random.key(0), method=bn.encode)  # one key for a batch of 2
    with pytest.raises(ValueError, match="method"):
        GaussianBottleneck(num_latents=4, method="nope").init(jax.random.key(0), mean, std, jax.random.key(1))
    # a posterior wider than the prior (unbounded ratio) is coded with its std capped at
    # SHRINK times the prior's: exact samplers terminate, samples follow N(mean, SHRINK^2)
    wide = GaussianBottleneck(num_latents=2, method="pfr", block_size=2, learn_prior=False)
    m, s = jnp.zeros((200, 2)), jnp.full((200, 2), 1.5)
    vw = wide.init(jax.random.key(0), m, s, jax.random.key(1))
    keys = jax.random.split(jax.random.key(0), 200)
    code = jax.jit(lambda m, s, k: wide.apply(vw, m, s, k, method=wide.encode))(m, s, keys)
    assert bool(code.ok.all())
    assert stats.kstest(np.asarray(code.sample).ravel(), "norm", args=(0, SHRINK)).pvalue > 1e-3
