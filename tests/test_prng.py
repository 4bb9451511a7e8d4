"""jrec.prng: the fused Threefry draws equal jax.random's bit for bit, and the encoders'
candidate search (jrec.poisson) equals the decoder's candidate regeneration."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jrec import orc, pfr, poisson, prng

KEYS = [jax.random.key(0), jax.random.key(2**31 + 5), jax.random.PRNGKey(12345), jax.random.key(-7)]


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert np.array_equal(a.view(np.uint32) if a.dtype == np.float32 else a,
                          b.view(np.uint32) if b.dtype == np.float32 else b)


@pytest.mark.parametrize("key", KEYS)
def test_fused_draws_equal_jax_random(key):
    ns = jnp.arange(0, 3000)

    def ref(n):
        tk, sk = jax.random.split(jax.random.fold_in(key, n))
        return (jax.random.bits(tk, (3,)), jax.random.uniform(sk, (2, 5)), jax.random.normal(sk, (1, 4, 3)),
                jax.random.exponential(tk, ()))

    def fused(ns):
        tw, sw = prng.split(prng.fold_in(prng.key_words(key), ns))
        return (prng.bits32(tw, (3,)), prng.uniform(sw, (2, 5)), prng.normal(sw, (1, 4, 3)),
                prng.exponential(tw, ()))

    assert prng.supported(key)
    for a, b in zip(jax.jit(jax.vmap(ref))(ns), jax.jit(fused)(ns), strict=True):
        _same(a, b)
    # eagerly, and batched over keys by vmap
    for a, b in zip(jax.vmap(ref)(ns[:50]), fused(ns[:50]), strict=True):
        _same(a, b)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(64))
    ref_n = jax.jit(jax.vmap(lambda k: jax.random.normal(k, (9,))))(keys)
    _same(ref_n, jax.jit(lambda k: prng.normal(prng.key_words(k), (9,)))(keys))


def test_threefry_known_answer():
    """Random123's known-answer vector for Threefry-2x32 with 20 rounds."""
    words = [jnp.uint32(w) for w in (0x13198A2E, 0x03707344, 0x243F6A88, 0x85A308D3)]
    x = prng.threefry2x32(*words)
    assert [int(v) for v in x] == [0xC4923A9C, 0x483DF7A0]


def test_supported():
    assert not prng.supported(jax.random.key(0), jnp.float64)
    assert not prng.supported(jax.random.key(0, impl="rbg"))
    assert not prng.supported(jax.random.key(0, impl="unsafe_rbg"))


@pytest.mark.parametrize("shape", [(), (5,), (3, 4)])
@pytest.mark.parametrize("key", KEYS[:2] + [jax.random.key(3, impl="rbg")])
def test_candidate_search_equals_decoder(shape, key):
    p = distrax.Normal(jnp.full(shape, 0.25), jnp.full(shape, 1.5))
    ns = jnp.arange(1, 2049, dtype=jnp.int32)
    want = jax.jit(jax.vmap(lambda n: poisson.candidate_sample(key, n, p)))(ns)
    _same(want, jax.jit(lambda ns: poisson.candidate_samples(key, ns, p))(ns))
    e, x = jax.jit(lambda ns: poisson.candidates(key, ns, p, jnp.float32))(ns)
    _same(want, x)
    tks = jax.vmap(lambda n: poisson.candidate_keys(key, n)[0])(ns)
    _same(jax.vmap(lambda k: jax.random.exponential(k, (), jnp.float32))(tks), e)


def test_non_normal_proposal_uses_jax_random():
    p = distrax.Uniform(jnp.zeros(3), jnp.ones(3))
    key = KEYS[0]
    ns = jnp.arange(1, 100, dtype=jnp.int32)
    want = jax.vmap(lambda n: poisson.candidate_sample(key, n, p))(ns)
    _same(want, poisson.candidate_samples(key, ns, p))


def test_encoders_indices_do_not_depend_on_the_fused_path():
    """ORC (greedy and not) and PFR select the same indices with the fused draws as with
    jax.random's, and the decoder rebuilds the encoder's sample."""
    w = 12
    key = jax.random.key(11)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(16))
    q = distrax.Normal(jnp.linspace(-0.8, 0.8, w), jnp.full(w, 0.6))
    p = distrax.Normal(jnp.zeros(w), jnp.ones(w))

    def run():
        out = {}
        for greedy in (False, True):
            out[f"orc{greedy}"] = jax.jit(jax.vmap(
                lambda k: orc.encode(k, q, p, kappa=12, greedy=greedy).index))(keys)
        out["pfr"] = jax.jit(jax.vmap(lambda k: pfr.encode(
            k, distrax.Normal(0.5, 0.8), distrax.Normal(0.0, 1.0)).index))(keys)
        return out

    fused = run()
    with prng.enabled(False):
        assert not prng.supported(key)
        stock = run()
    assert prng.supported(key)
    for name in fused:
        np.testing.assert_array_equal(fused[name], stock[name], err_msg=name)
    code = orc.encode(keys[0], q, p, kappa=12)
    _same(code.sample, orc.decode(keys[0], code.index, p))
