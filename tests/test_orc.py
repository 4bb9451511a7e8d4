"""Ordered random coding: an approximate sampler whose bias shrinks as kappa grows."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import keys
from scipy import stats

import jrec


@pytest.mark.slow
def test_orc_bias_shrinks_with_kappa():
    t, p = distrax.Normal(1.0, 0.25), distrax.Normal(0.0, 1.0)  # KL = 2.05 bits
    kappas = (0, 2, 4, 10)
    # (the four budgets in one program: fewer compiles)
    codes = jax.jit(jax.vmap(lambda k: [jrec.orc.encode(k, t, p, kappa=kappa) for kappa in kappas]))(
        keys(20_000, seed=3))
    res = {}
    for kappa, code in zip(kappas, codes, strict=True):
        idx = np.asarray(code.index)
        assert idx.min() >= 0 and idx.max() < 2**kappa
        res[kappa] = stats.kstest(np.asarray(code.sample, np.float64), stats.norm(1.0, 0.25).cdf)
    d = {k: r.statistic for k, r in res.items()}
    print("ORC KS statistic vs kappa (KL = 2.05 bits):", {k: round(v, 4) for k, v in d.items()})
    assert res[0].pvalue < 1e-10  # kappa = 0 returns a proposal sample
    assert d[0] > d[2] > d[4] > d[10]
    assert res[10].pvalue > 1e-3  # kappa well past the KL: indistinguishable from Q


def test_orc_block_round_trip_and_fixed_width():
    d = 8
    t = distrax.MultivariateNormalDiag(jnp.linspace(-0.5, 0.5, d), jnp.full(d, 0.5))
    p = distrax.MultivariateNormalDiag(jnp.zeros(d), jnp.ones(d))
    kl_bits = float(jrec.divergences.kl(t, p)) / np.log(2)
    kappa = int(np.ceil(kl_bits)) + 4
    enc = jax.jit(jax.vmap(lambda k: jrec.orc.encode(k, t, p, kappa=kappa)))
    code = enc(keys(500))
    assert code.sample.shape == (500, d)
    dec = jax.jit(jax.vmap(lambda k, i: jrec.orc.decode(k, i, p)))(keys(500), code.index)
    np.testing.assert_array_equal(np.asarray(dec), np.asarray(code.sample))
    assert int(code.index.max()) < 2**kappa
    # approximately the target: per-coordinate means within a loose band
    err = np.abs(np.asarray(code.sample).mean(0) - np.linspace(-0.5, 0.5, d))
    assert err.max() < 0.15


def test_orc_is_pfr_truncated():
    """With a budget past PFR's stopping point ORC picks PFR's index (shared candidates)."""
    t, p = distrax.Normal(1.0, 0.25), distrax.Normal(0.0, 1.0)
    ks = keys(300)
    pfr = jax.jit(jax.vmap(lambda k: jrec.pfr.encode(k, t, p)))(ks)
    orc = jax.jit(jax.vmap(lambda k: jrec.orc.encode(k, t, p, kappa=12)))(ks)
    fits = np.asarray(pfr.num_steps) <= 2**12
    np.testing.assert_array_equal(np.asarray(orc.index)[fits] + 1, np.asarray(pfr.index)[fits])


def test_orc_greedy_picks_the_largest_ratio():
    """``greedy=True``: the index of the largest density ratio among the 2^kappa shared
    candidates (checked by brute force; its search skips the arrival times), independent
    of the chunk size, decoded like ORC's."""
    d, kappa, n = 6, 10, 40
    t = distrax.MultivariateNormalDiag(jnp.linspace(-0.8, 0.8, d), jnp.full(d, 0.4))
    p = distrax.MultivariateNormalDiag(jnp.zeros(d), jnp.ones(d))
    ks = keys(n, seed=11)
    greedy, other_chunk, orc = jax.jit(jax.vmap(lambda k: (  # (one program)
        jrec.orc.encode(k, t, p, kappa=kappa, greedy=True),
        jrec.orc.encode(k, t, p, kappa=kappa, greedy=True, chunk_size=64),
        jrec.orc.encode(k, t, p, kappa=kappa))))(ks)
    every = jnp.arange(2**kappa)
    cands = jax.jit(jax.vmap(lambda k: jax.vmap(lambda i: jrec.orc.decode(k, i, p))(every)))(ks)
    log_r = np.asarray(t.log_prob(cands) - p.log_prob(cands))  # (n, 2^kappa)
    np.testing.assert_array_equal(np.asarray(greedy.index), log_r.argmax(axis=1))
    np.testing.assert_array_equal(np.asarray(other_chunk.index), np.asarray(greedy.index))
    np.testing.assert_array_equal(np.asarray(greedy.sample), np.asarray(cands)[np.arange(n), log_r.argmax(1)])
    assert np.asarray(greedy.ok).all()
    # ORC's sampled index is a lower-ratio candidate in most problems
    orc_lr = log_r[np.arange(n), np.asarray(orc.index)]
    assert np.all(orc_lr <= log_r.max(axis=1)) and np.mean(orc_lr < log_r.max(axis=1)) > 0.5
    assert np.mean(log_r.max(axis=1) - orc_lr) > 0.5  # nats
    with pytest.raises(ValueError, match="greedy"):
        jrec.orc.kernel(kappa=4, greedy=1)
    # (the greedy search draws no arrival times; a stopping rule cannot do without them)
    with pytest.raises(ValueError, match="arrival times"):
        jrec.poisson.argmin_kernel(max_steps=8, chunk_size=4, stopping=True, result=None, decode=None,
                               timed=False)
