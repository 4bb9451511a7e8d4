"""A* coding variants: AD* against AS* (steps, codelength), depth-limited AD*'s bias and index."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import OPTIONS, encoder, keys
from scipy import stats

import jrec

P = distrax.Normal(0.0, 1.0)


def _run(method, target, n, **opts):
    s = jrec.get(method)
    code = jax.jit(jax.vmap(lambda k: s.encode(k, target, P, **opts)))(keys(n))
    bits = np.asarray(jrec.coding.index_bits(method, code.index, **opts), np.float64)
    return code, np.asarray(code.num_steps, np.float64), bits


def _run_batched(method, mq, sq, n):
    """As :func:`_run` on ``N(mq, sq^2)`` with the target an argument (one compile per sampler)."""
    code = encoder(method)(keys(n), distrax.Normal(jnp.full(n, mq), jnp.full(n, sq)))
    bits = np.asarray(jrec.coding.index_bits(method, code.index), np.float64)
    return code, np.asarray(code.num_steps, np.float64), bits


@pytest.mark.slow
@pytest.mark.parametrize("mq,sq", [(2.0, 0.1), (1.03, 0.001)])
def test_dyadic_takes_fewer_steps_and_codes_shorter_than_split_on_sample(mq, sq):
    """The A* coding paper's claim: AD* beats AS* on both counts (same problems, same keys)."""
    t = distrax.Normal(mq, sq)
    _, s_as, b_as = _run_batched("astar_bb", mq, sq, 5000)
    c, s_ad, b_ad = _run_batched("astar_bb_dyadic", mq, sq, 5000)
    assert bool(jnp.all(c.ok))
    for a, d in [(s_as, s_ad), (b_as, b_ad)]:
        se = np.sqrt(a.var() / a.size + d.var() / d.size)
        assert d.mean() < a.mean() - 3 * se, (d.mean(), a.mean(), se)
    # and the heap index of AD* is short: delta code within a few bits of the KL
    kl = float(jrec.divergences.kl(t, P)) / np.log(2)
    assert b_ad.mean() < 1.6 * kl + 3


def test_depth_limited_bias_shrinks_with_kappa():
    """Approximate like ORC: far from Q for kappa << KL, indistinguishable for kappa = KL + 5."""
    t = distrax.Normal(2.0, 0.25)  # KL = 4.2 bits
    ref = stats.norm(2.0, 0.25).cdf
    res = {}
    decode = jax.jit(jax.vmap(lambda k, i: jrec.astar.decode_dl(k, i, P)))  # (needs no kappa)
    kappas = (2, 4, 10)
    # (the three depth limits in one program: fewer compiles)
    codes = jax.jit(jax.vmap(lambda k: [jrec.get("astar_dl").encode(k, t, P, kappa=kappa)
                                        for kappa in kappas]))(keys(6000))
    for kappa, code in zip(kappas, codes, strict=True):
        bits = np.asarray(jrec.coding.index_bits("astar_dl", code.index, kappa=kappa), np.float64)
        idx = np.asarray(code.index)
        assert bool(jnp.all(code.ok)) and idx.min() >= 1 and idx.max() < 2**kappa
        assert np.all(bits == kappa)  # fixed-width index
        res[kappa] = stats.kstest(np.asarray(code.sample), ref)
        np.testing.assert_array_equal(np.asarray(decode(keys(6000), code.index)), np.asarray(code.sample))
    d = {k: r.statistic for k, r in res.items()}
    assert res[2].pvalue < 1e-10 and d[2] > d[4] > d[10]
    assert res[10].pvalue > 1e-3


def test_depth_limit_one_returns_the_root_point():
    """kappa = 1: the tree is the root alone, whose point is a plain draw from P."""
    t = distrax.Normal(1.0, 0.5)
    code, steps, _ = _run("astar_dl", t, 3000, kappa=1)
    assert np.all(np.asarray(code.index) == 1)
    assert stats.kstest(np.asarray(code.sample), stats.norm(0, 1).cdf).pvalue > 1e-3


def test_depth_limited_file_is_kappa_bits_per_index(tmp_path):
    # (the batch, types and kappa of the other tests' 64 Normal targets: the same programs)
    kappa = OPTIONS["astar_dl"]["kappa"]
    t = distrax.Normal(jnp.linspace(-1, 1, 64), jnp.full(64, 0.2, jnp.float32))
    code = jrec.encode(keys(64), t, P, method="astar_dl", kappa=kappa)
    n = jrec.save_code(tmp_path / "x.jrec", code, method="astar_dl", key=keys(64), proposal=P, kappa=kappa)
    assert n * 8 - 64 * kappa < 8 * 24  # payload 64 kappa bits + a small header
    f = jrec.load_code(tmp_path / "x.jrec", key=keys(64), proposal=P)
    x = jrec.decode(keys(64), f.index, P, method="astar_dl", kappa=kappa)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(code.sample))
    with pytest.raises(jrec.ShapeMismatchError, match="indices must lie"):
        jrec.decode(keys(64), jnp.full(64, 2**kappa, jnp.int32), P, method="astar_dl", kappa=kappa)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="kappa"):
        jrec.astar.kernel_dl(kappa=0)
    with pytest.raises(ValueError, match="max_steps"):
        jrec.astar.kernel_bb_dyadic(max_steps=0)
